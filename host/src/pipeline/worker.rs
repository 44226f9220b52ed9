//! A worker: the one place that decides what happens to a batch. It transforms (the module
//! stage isolates bad messages), commits (isolating rows PostgreSQL refuses, waiting out an
//! unavailable database), then acks the receipts to the lease task, which deletes them. A
//! fatal error stops the host; nothing uncommitted is ever acked.

use std::time::{Duration, Instant};

use maskflow_transform::{BodySealer, Outcome};
use tracing::{debug, info, warn};

use super::batch::{items, Batch, Envelope};
use super::isolate::{bisect, Attempt};
use super::shutdown::Shutdown;
use super::stage::{ModuleStage, Stages};
use crate::error::Result;
use crate::retry::Backoff;
use crate::sink::{CommitStats, Item, PostgresConfig, PostgresSink, SinkError, SINK_REFUSED};
use crate::source::Leases;
use crate::stats::{Phase, Retry, Stats};

pub struct Worker<'a> {
    pub rx: flume::Receiver<Vec<Envelope>>,
    pub leases: Leases,
    pub stages: &'a Stages,
    pub postgres: &'a PostgresConfig,
    pub batch_size: usize,
    pub linger: Duration,
    pub shutdown: Shutdown,
    pub stats: Stats,
}

impl Worker<'_> {
    pub fn run(&self) -> Result<()> {
        let mut stage = self.stages.stage()?;
        let mut sink = PostgresSink::new(self.postgres, self.stages.columns().to_vec())?;
        self.while_unavailable("PostgreSQL unavailable; retrying", || sink.connect())?;
        let mut carry = Vec::new();
        while let Some(batch) = self.next_batch(&mut carry) {
            self.process(batch, &mut stage, &mut sink)?;
        }
        Ok(())
    }

    /// The next batch ([`fill_batch`]), keeping `/healthz` informed while the queue is idle.
    fn next_batch(&self, carry: &mut Vec<Envelope>) -> Option<Batch> {
        fill_batch(&self.rx, carry, self.batch_size, self.linger, || self.stats.beat())
    }

    fn process(
        &self,
        mut batch: Batch,
        stage: &mut ModuleStage,
        sink: &mut PostgresSink,
    ) -> Result<()> {
        let held = batch.len() as i64;
        self.stats.add_in_flight(held);
        // One debug line per phase, so a test can tell where a kill landed (reliability.rs).
        debug!(messages = held, "batch transforming");
        let outcomes = self.stats.timed(Phase::Module, || stage.run(&batch.messages()))?;
        batch.set_outcomes(outcomes);
        debug!(messages = held, "batch committing");
        let committed = self.stats.timed(Phase::Commit, || {
            self.while_unavailable("PostgreSQL unavailable; batch not committed, retrying", || {
                commit_isolating(sink, &batch.envelopes, self.stages.sealer())
            })
        })?;
        self.stats.add_written(&committed);
        debug!(messages = held, "batch committed");
        crash_point("after-commit");
        self.stats.add_in_flight(-held);
        self.leases.ack(batch.into_receipts());
        Ok(())
    }

    /// Runs `f` until it is not [`SinkError::Unavailable`], with capped backoff; gives up when
    /// shutdown is requested (what is not committed comes back to the queue).
    fn while_unavailable<T>(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<T, SinkError>,
    ) -> Result<T> {
        let mut backoff = Backoff::new();
        loop {
            match f() {
                Err(SinkError::Unavailable(e)) if !self.shutdown.requested() => {
                    let wait = backoff.next_delay();
                    self.stats.add_retry(Retry::Postgres);
                    self.stats.beat(); // waiting out an outage is not being stuck
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what}");
                    std::thread::sleep(wait);
                }
                other => return other.map_err(Into::into),
            }
        }
    }
}

/// Up to `batch_size` messages, waiting at most `linger` after the first; `None` once the
/// pollers have stopped and the channel is drained. Messages arrive a receive at a time; what
/// does not fit stays in `carry` for the next batch. `idle` runs while nothing arrives.
fn fill_batch(
    rx: &flume::Receiver<Vec<Envelope>>,
    carry: &mut Vec<Envelope>,
    batch_size: usize,
    linger: Duration,
    idle: impl Fn(),
) -> Option<Batch> {
    while carry.is_empty() {
        idle();
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(received) => *carry = received,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => return None,
        }
    }
    let mut batch = Batch::default();
    let deadline = Instant::now() + linger;
    loop {
        let room = batch_size - batch.len();
        batch.extend(carry.drain(..room.min(carry.len())));
        if batch.len() >= batch_size {
            break;
        }
        match rx.recv_deadline(deadline) {
            Ok(received) => *carry = received,
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Commits the batch; rows PostgreSQL refuses are isolated by halving and recorded as
/// `sink_refused` rejections (with the SQLSTATE only) while the rest of the batch lands.
fn commit_isolating(
    sink: &mut PostgresSink,
    envelopes: &[Envelope],
    sealer: &BodySealer,
) -> Result<CommitStats, SinkError> {
    let attempt =
        &mut |sink: &mut PostgresSink, slice: &[Envelope]| match sink.commit(&items(slice)) {
            Ok(stats) => Attempt::Done(Committed { stats, refused: Vec::new() }),
            Err(SinkError::Refused(why)) => Attempt::Bisect(why),
            Err(e) => Attempt::Stop(e),
        };
    // A row refused on its own is kept aside; it is recorded only once the whole batch has
    // been tried, so that a table refusing *every* row stops the host with nothing recorded.
    let alone = &mut |_: &mut PostgresSink, envelope: &Envelope, why: String| {
        Ok(Committed {
            stats: CommitStats::default(),
            refused: vec![(envelope.id.clone(), envelope.body.clone(), why)],
        })
    };
    let Committed { mut stats, refused } = bisect(sink, envelopes, attempt, alone)?;
    // Rows, not messages: the batch's rejections land in their own table whatever
    // user_logins accepts (committed, but not deleted: a redelivery skips them).
    let rows = envelopes.iter().filter(|e| e.outcome.as_ref().is_some_and(Outcome::is_row)).count();
    if refused.len() == rows && rows > 1 {
        return Err(SinkError::Refused(format!(
            "PostgreSQL refused every row of a batch of {rows} ({}); nothing was deleted. The table does not \
             accept what the module writes: check its constraints and column types",
            refused[0].2
        )));
    }
    for (id, body, why) in refused {
        info!(message_id = id, reason = %why, "PostgreSQL refused a row the module accepted; rejecting it as {SINK_REFUSED}");
        let outcome = Outcome::Rejected {
            reason: SINK_REFUSED.into(),
            message: format!("PostgreSQL refused the row: {why}"),
            encrypted_body: sealer.seal(body.as_bytes()),
        };
        stats += sink.commit(&[Item { id: &id, outcome: &outcome }]).map_err(|e| match e {
            SinkError::Refused(m) => SinkError::Refused(format!(
                "the {SINK_REFUSED} record was refused too: {m}; nothing was deleted"
            )),
            other => other,
        })?;
    }
    Ok(stats)
}

/// What a (partial) commit did, and the rows refused on their own: (id, body, why).
#[derive(Default)]
struct Committed {
    stats: CommitStats,
    refused: Vec<(String, String, String)>,
}

impl super::isolate::Merge for Committed {
    fn merge(&mut self, other: Self) {
        self.stats += other.stats;
        self.refused.extend(other.refused);
    }
}

/// Test hook: `MASKFLOW_CRASH_AT=after-commit` aborts the process at that point, the worst
/// moment for exactly-once (committed, not deleted). Used by the redelivery tests.
fn crash_point(name: &str) {
    static CRASH_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if CRASH_AT.get_or_init(|| std::env::var("MASKFLOW_CRASH_AT").ok()).as_deref() == Some(name) {
        warn!("MASKFLOW_CRASH_AT={name}: aborting on purpose");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(prefix: &str, n: usize) -> Vec<Envelope> {
        (0..n)
            .map(|i| Envelope {
                id: format!("{prefix}{i}"),
                receipt: format!("r-{prefix}{i}"),
                body: String::new(),
                sent_timestamp_ms: 0,
                receive_count: 1,
                outcome: None,
            })
            .collect()
    }

    #[test]
    fn receives_are_split_across_batches_without_losing_or_repeating_a_message() {
        let (tx, rx) = flume::unbounded();
        for (prefix, n) in [("a", 10), ("b", 10), ("c", 3), ("d", 0), ("e", 1)] {
            tx.send(receive(prefix, n)).unwrap();
        }
        drop(tx);
        let mut carry = Vec::new();
        let mut sizes = Vec::new();
        let mut ids = Vec::new();
        while let Some(batch) = fill_batch(&rx, &mut carry, 7, Duration::from_secs(5), || {}) {
            sizes.push(batch.len());
            ids.extend(batch.envelopes.into_iter().map(|e| e.id));
        }
        assert_eq!(sizes, [7, 7, 7, 3], "full batches, then what is left when the pollers stop");
        let expected: Vec<String> = [("a", 10), ("b", 10), ("c", 3), ("e", 1)]
            .iter()
            .flat_map(|(p, n)| receive(p, *n))
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, expected, "every message once, in order");
        assert!(carry.is_empty());
    }
}
