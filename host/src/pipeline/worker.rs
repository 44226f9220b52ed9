//! A worker: the one place that decides what happens to a batch. It transforms (the module
//! stage isolates bad messages), commits (isolating rows PostgreSQL refuses, waiting out an
//! unavailable database), then acks the receipts to the lease task, which deletes them, and
//! hands back those of messages another session holds. A fatal error stops the host; nothing
//! uncommitted is ever acked.

use std::collections::VecDeque;
use std::time::Duration;

use maskflow_transform::Reason;

use super::assemble::{fill_batch, Receives};
use super::batch::{Batch, Held};
use super::outage::{Patience, Waited};
use super::refusals::{commit_isolating, record_refused};
use super::stage::{is_rejected_as, ModuleStage, PreparedModule};
use super::streak::{record_unless_streak, STREAK};
use crate::error::Result;
use crate::events::{event, Event};
use crate::failpoint::fail_point;
use crate::health::Heartbeat;
use crate::metrics::{Metrics, Phase, Released};
use crate::shutdown::Shutdown;
use crate::sink::{PostgresConfig, PostgresSink};
use crate::source::Leases;
use crate::stop::Stop;

pub(crate) struct Worker<'a> {
    pub(crate) rx: Receives,
    pub(crate) leases: Leases,
    pub(crate) module: &'a PreparedModule,
    pub(crate) postgres: &'a PostgresConfig,
    pub(crate) batch_size: usize,
    /// A batch stops growing at this many body bytes (big events make small batches).
    pub(crate) batch_bytes: usize,
    pub(crate) linger: Duration,
    pub(crate) shutdown: Shutdown,
    pub(crate) metrics: Metrics,
    pub(crate) heartbeat: Heartbeat,
}

/// Whether the worker goes on after a batch.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    /// Shutdown was requested while waiting out an outage: what is not committed comes back.
    Stop,
}

impl Worker<'_> {
    pub(crate) fn run(&self) -> Result<()> {
        let mut stage = self.module.stage()?;
        let mut sink = PostgresSink::new(self.postgres, self.module.columns().to_vec())?;
        if let Waited::Shutdown =
            self.patience().wait("PostgreSQL unavailable; retrying", || sink.connect())?
        {
            return Ok(());
        }
        let mut carry = VecDeque::new();
        while let Some(batch) = self.next_batch(&mut carry) {
            if self.process(batch, &mut stage, &mut sink)? == Flow::Stop {
                break;
            }
        }
        Ok(())
    }

    fn patience(&self) -> Patience<'_> {
        Patience { shutdown: &self.shutdown, metrics: &self.metrics, heartbeat: &self.heartbeat }
    }

    /// The next batch ([`fill_batch`]), beating the heartbeat while the queue is idle.
    fn next_batch(&self, carry: &mut VecDeque<Held>) -> Option<Batch> {
        let idle = || self.heartbeat.beat();
        fill_batch(&self.rx, carry, self.batch_size, self.batch_bytes, self.linger, idle)
    }

    fn process(
        &self,
        mut batch: Batch,
        stage: &mut ModuleStage,
        sink: &mut PostgresSink,
    ) -> Result<Flow> {
        self.heartbeat.beat();
        let messages = batch.len();
        let patience = self.patience();

        // 0. Keys: a change (SIGHUP) is taken here, between batches, never within one.
        let keyed = self.module.keyed();
        if stage.follow(&keyed) {
            let (generation, masking_key) = (keyed.generation, keyed.masking_key());
            event!(
                debug,
                Event::KeysFollowed,
                generation,
                masking_key,
                "this worker masks with the new keys from this batch on"
            );
        }

        // 1. Transform.
        event!(debug, Event::BatchTransforming, messages, "batch transforming");
        let outcomes = self.metrics.timed(Phase::Module, || stage.run(&batch.messages()))?;
        let failed = outcomes.iter().filter(|o| is_rejected_as(o, Reason::ModuleFailed)).count();
        batch.set_outcomes(outcomes);

        // 2. Commit, waiting out an outage. A batch the module failed on entirely may be the
        // module failing on everything: it is recorded only if the ledger says otherwise
        // (streak.rs). Rows refused on their own become rejections.
        event!(debug, Event::BatchCommitting, messages, "batch committing");
        fail_point!("before-commit");
        let stats = if failed == batch.items().len() && failed > 0 {
            let recorded = self.metrics.timed(Phase::Commit, || {
                record_unless_streak(sink, &patience, &batch.items(), Reason::ModuleFailed)
            })?;
            match recorded {
                Waited::Done(Some(stats)) => stats,
                Waited::Done(None) => {
                    return Err(Stop::ModuleFailsEverything { streak: STREAK }.into())
                }
                Waited::Shutdown => return Ok(Flow::Stop),
            }
        } else {
            let committed = self.metrics.timed(Phase::Commit, || {
                patience.wait("PostgreSQL unavailable; batch not committed, retrying", || {
                    commit_isolating(sink, &batch)
                })
            })?;
            let Waited::Done(committed) = committed else { return Ok(Flow::Stop) };
            match record_refused(sink, &patience, stage.sealer(), committed)? {
                Waited::Done(stats) => stats,
                Waited::Shutdown => return Ok(Flow::Stop),
            }
        };
        self.metrics.add_written(&stats);
        // Lag counts what committed now; blocked messages go back and are counted when they land.
        let landed = batch.received().filter(|m| !stats.blocked.contains(&m.id));
        self.metrics.observe_lag(landed.map(|m| m.sent_timestamp_ms));
        event!(
            debug,
            Event::BatchCommitted,
            messages,
            rows = stats.rows,
            rejected = stats.rejected,
            skipped = stats.redeliveries_skipped,
            "batch committed"
        );
        fail_point!("after-commit");

        // 3. Ack what committed; hand back what another session holds.
        if !stats.blocked.is_empty() {
            let held_by = stats.blocked_by.as_deref().unwrap_or("unknown");
            event!(
                warn,
                Event::MessagesReleased,
                messages = stats.blocked.len(),
                held_by,
                "ledger entries held by another open transaction; handing these messages back \
                 for later (the rest of the batch committed)"
            );
            self.metrics.released(Released::Locked, stats.blocked.len());
        }
        let (acked, released) = batch.into_receipts(&stats.blocked);
        self.leases.ack(acked);
        if !released.is_empty() {
            // By then the holder has committed, or the server has aborted it.
            self.leases.release(released, self.postgres.timeouts.commit);
        }
        Ok(Flow::Continue)
    }
}
