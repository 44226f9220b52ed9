//! A worker: the one place that decides what happens to a batch. It transforms (the module
//! stage isolates bad messages), commits (isolating rows PostgreSQL refuses, waiting out an
//! unavailable database), then acks the receipts to the lease task, which deletes them, and
//! hands back those of messages another session holds. A fatal error stops the host; nothing
//! uncommitted is ever acked.

use std::time::{Duration, Instant};

use maskflow_transform::Outcome;
use tracing::{debug, info, warn};

use super::batch::{items, Batch, Envelope};
use super::shutdown::Shutdown;
use super::stage::{ModuleStage, Stages};
use super::streak::{completes_streak, STREAK};
use crate::error::{Error, Result};
use crate::health::Heartbeat;
use crate::isolate::{bisect, Attempt};
use crate::retry::Backoff;
use crate::sink::{
    CommitStats, Item, PostgresConfig, PostgresSink, SinkError, MODULE_FAILED, SINK_REFUSED,
};
use crate::source::Leases;
use crate::stats::{Phase, Retry, Stats};

pub struct Worker<'a> {
    pub rx: flume::Receiver<Vec<Envelope>>,
    pub leases: Leases,
    pub stages: &'a Stages,
    pub postgres: &'a PostgresConfig,
    pub batch_size: usize,
    /// A batch stops growing at this many body bytes (big events make small batches).
    pub batch_bytes: usize,
    pub linger: Duration,
    pub shutdown: Shutdown,
    pub stats: Stats,
    pub heartbeat: Heartbeat,
}

/// Whether the worker goes on after a batch.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    /// Shutdown was requested while waiting out an outage: what is not committed comes back.
    Stop,
}

impl Worker<'_> {
    pub fn run(&self) -> Result<()> {
        let mut stage = self.stages.stage()?;
        let mut sink = PostgresSink::new(self.postgres, self.stages.columns().to_vec())?;
        if self.while_transient("PostgreSQL unavailable; retrying", || sink.connect())?.is_none() {
            return Ok(());
        }
        let mut carry = Vec::new();
        while let Some(batch) = self.next_batch(&mut carry) {
            if self.process(batch, &mut stage, &mut sink)? == Flow::Stop {
                break;
            }
        }
        Ok(())
    }

    /// The next batch ([`fill_batch`]), beating the heartbeat while the queue is idle.
    fn next_batch(&self, carry: &mut Vec<Envelope>) -> Option<Batch> {
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
        let held = batch.len() as i64;
        self.stats.add_in_flight(held);
        let _in_flight = scopeguard::guard((), |()| self.stats.add_in_flight(-held));
        // One debug line per phase, so a test can tell where a kill landed (reliability.rs).
        debug!(messages = held, "batch transforming");
        let outcomes = self.stats.timed(Phase::Module, || stage.run(&batch.messages()))?;
        let failed = outcomes.iter().filter(|o| is_rejected_as(o, MODULE_FAILED)).count();
        if failed == outcomes.len() && failed > 0 {
            match self.ends_streak(sink, MODULE_FAILED, failed)? {
                None => return Ok(Flow::Stop),
                Some(true) => {
                    return Err(Error::Stopped(format!(
                        "the module failed on the last {STREAK} messages or more, with nothing \
                         transformed in between; nothing was deleted. Check --module, \
                         --module-timeout-ms and --module-memory-mb"
                    )))
                }
                Some(false) => {}
            }
        }
        batch.set_outcomes(outcomes);
        debug!(messages = held, "batch committing");
        crash_point("before-commit");
        let committed = self.stats.timed(Phase::Commit, || {
            self.while_transient("PostgreSQL unavailable; batch not committed, retrying", || {
                self.commit_isolating(sink, &batch.envelopes)
            })
        })?;
        let Some(committed) = committed else { return Ok(Flow::Stop) };
        let Some(stats) = self.record_refused(sink, committed)? else { return Ok(Flow::Stop) };
        self.stats.add_written(&stats);
        // Lag counts what committed now; blocked messages go back and are counted when they land.
        let landed = batch.envelopes.iter().filter(|e| !stats.blocked.contains(&e.id));
        self.stats.observe_lag(landed.map(|e| e.sent_timestamp_ms));
        debug!(messages = held, "batch committed");
        crash_point("after-commit");
        if !stats.blocked.is_empty() {
            warn!(
                messages = stats.blocked.len(),
                held_by = stats.blocked_by.as_deref().unwrap_or("unknown"),
                "ledger entries held by another open transaction; handing these messages back \
                 for later (the rest of the batch committed)"
            );
            self.stats.add_released("locked", stats.blocked.len());
        }
        let (acked, released) = batch.into_receipts(&stats.blocked);
        self.leases.ack(acked);
        if !released.is_empty() {
            // By then the holder has committed, or the server has aborted it.
            self.leases.release(released, self.postgres.timeouts.commit);
        }
        Ok(Flow::Continue)
    }

    /// Commits the batch; rows PostgreSQL refuses on their own are isolated by halving and
    /// returned, not recorded, while the rest of the batch lands.
    fn commit_isolating<'e>(
        &self,
        sink: &mut PostgresSink,
        envelopes: &'e [Envelope],
    ) -> Result<Committed<'e>, SinkError> {
        let attempt =
            &mut |sink: &mut PostgresSink, slice: &[Envelope]| match sink.commit(&items(slice)) {
                Ok(stats) => Attempt::Done(Committed { stats, refused: Vec::new() }),
                Err(SinkError::Refused(why)) => Attempt::Bisect(why),
                Err(e) => Attempt::Stop(e),
            };
        let alone = &mut |_: &mut PostgresSink, envelope: &'e Envelope, why: String| {
            Ok(Committed { stats: CommitStats::default(), refused: vec![(envelope, why)] })
        };
        bisect(sink, envelopes, attempt, alone)
    }

    /// Records the rows PostgreSQL refused on their own as `sink_refused` rejections, unless
    /// they would complete a run of refusals with no row accepted in between (here or on any
    /// host): then the table refuses what the module writes, whatever the batch size, and the
    /// host stops with nothing of them recorded or deleted. `None`: stopped while waiting.
    fn record_refused(
        &self,
        sink: &mut PostgresSink,
        committed: Committed,
    ) -> Result<Option<CommitStats>> {
        let Committed { mut stats, refused } = committed;
        if refused.is_empty() {
            return Ok(Some(stats));
        }
        if stats.rows == 0 {
            match self.ends_streak(sink, SINK_REFUSED, refused.len())? {
                None => return Ok(None),
                Some(true) => {
                    return Err(Error::Stopped(format!(
                        "PostgreSQL refused the last {STREAK} rows or more ({}), with no row \
                         accepted in between; none was recorded and nothing was deleted. The \
                         table does not accept what the module writes: check its constraints, \
                         partitions and column types",
                        refused[0].1
                    )))
                }
                Some(false) => {}
            }
        }
        let outcomes: Vec<(&str, Outcome)> = refused
            .iter()
            .map(|(envelope, why)| {
                info!(message_id = envelope.id, reason = %why, "PostgreSQL refused a row the module accepted; rejecting it as {SINK_REFUSED}");
                let outcome = Outcome::Rejected {
                    reason: SINK_REFUSED.into(),
                    message: format!("PostgreSQL refused the row: {why}"),
                    encrypted_body: self.stages.sealer().seal(envelope.body.as_bytes()),
                };
                (envelope.id.as_str(), outcome)
            })
            .collect();
        let items: Vec<Item> = outcomes.iter().map(|(id, outcome)| Item { id, outcome }).collect();
        let recorded = self.while_transient("PostgreSQL unavailable; retrying", || {
            sink.commit(&items).map_err(|e| match e {
                SinkError::Refused(m) => SinkError::Fatal(format!(
                    "the {SINK_REFUSED} record was refused too: {m}; nothing was deleted"
                )),
                other => other,
            })
        })?;
        Ok(recorded.map(|recorded| {
            stats += recorded;
            stats
        }))
    }

    /// Whether `failed` host rejections of `reason`, with nothing else in this batch, would
    /// complete a run of [`STREAK`] in the ledger. `None`: stopped while waiting.
    fn ends_streak(
        &self,
        sink: &mut PostgresSink,
        reason: &str,
        failed: usize,
    ) -> Result<Option<bool>> {
        if failed >= STREAK {
            return Ok(Some(true));
        }
        let recent = self.while_transient("PostgreSQL unavailable; retrying", || {
            sink.recent_outcomes(super::streak::LOOK_BACK)
        })?;
        Ok(recent.map(|recent| completes_streak(&recent, reason, failed)))
    }

    /// Runs `f` until it is not [`SinkError::Transient`], with capped backoff. `None` when
    /// shutdown is requested meanwhile: what is not committed comes back to the queue, and the
    /// host exits as after any clean stop.
    fn while_transient<T>(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<T, SinkError>,
    ) -> Result<Option<T>> {
        let mut backoff = Backoff::new();
        loop {
            match f() {
                Err(SinkError::Transient(_)) if self.shutdown.requested() => return Ok(None),
                Err(SinkError::Transient(e)) => {
                    let wait = backoff.next_delay();
                    self.stats.add_retry(Retry::Postgres);
                    self.heartbeat.beat(); // waiting out an outage is not being stuck
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what}");
                    self.shutdown.sleep(wait);
                }
                other => return other.map(Some).map_err(Into::into),
            }
        }
    }
}

fn is_rejected_as(outcome: &Outcome, code: &str) -> bool {
    matches!(outcome, Outcome::Rejected { reason, .. } if reason == code)
}

/// Up to `batch_size` messages or `batch_bytes` of bodies, waiting at most `linger` after the
/// first; `None` once the pollers have stopped and the channel is drained. Messages arrive a
/// receive at a time; what does not fit stays in `carry` for the next batch. `idle` runs while
/// nothing arrives.
fn fill_batch(
    rx: &flume::Receiver<Vec<Envelope>>,
    carry: &mut Vec<Envelope>,
    batch_size: usize,
    batch_bytes: usize,
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
        while batch.len() < batch_size && (batch.is_empty() || batch.bytes() < batch_bytes) {
            let Some(envelope) = (!carry.is_empty()).then(|| carry.remove(0)) else { break };
            batch.push(envelope);
        }
        if batch.len() >= batch_size || batch.bytes() >= batch_bytes {
            break;
        }
        match rx.recv_deadline(deadline) {
            Ok(received) => *carry = received,
            Err(_) => break,
        }
    }
    Some(batch)
}

/// What a (partial) commit did, and the rows refused on their own, with why.
#[derive(Default)]
struct Committed<'a> {
    stats: CommitStats,
    refused: Vec<(&'a Envelope, String)>,
}

impl crate::isolate::Merge for Committed<'_> {
    fn merge(&mut self, other: Self) {
        self.stats += other.stats;
        self.refused.extend(other.refused);
    }
}

/// Test hooks, in `MASKFLOW_CRASH_AT`: `after-commit` aborts the process there, the worst
/// moment for exactly-once (committed, not deleted; the redelivery tests); `panic:<point>`
/// panics and `stall:<point>` stops the worker for good there (the `/healthz` and panic tests).
/// Points: `before-commit`, `after-commit`.
fn crash_point(name: &str) {
    static CRASH_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(setting) = CRASH_AT.get_or_init(|| std::env::var("MASKFLOW_CRASH_AT").ok()) else {
        return;
    };
    let (action, point) = setting.split_once(':').unwrap_or(("abort", setting));
    if point != name {
        return;
    }
    warn!("MASKFLOW_CRASH_AT={setting}: {action} on purpose");
    match action {
        "panic" => panic!("MASKFLOW_CRASH_AT={setting}"),
        "stall" => loop {
            std::thread::park();
        },
        _ => std::process::abort(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(prefix: &str, n: usize, body: &str) -> Vec<Envelope> {
        (0..n)
            .map(|i| Envelope {
                id: format!("{prefix}{i}"),
                receipt: format!("r-{prefix}{i}"),
                body: body.to_owned(),
                sent_timestamp_ms: 0,
                receive_count: 1,
                outcome: None,
                share: None,
            })
            .collect()
    }

    fn batches(
        receives: &[(&str, usize)],
        size: usize,
        bytes: usize,
        body: &str,
    ) -> Vec<Vec<String>> {
        let (tx, rx) = flume::unbounded();
        for (prefix, n) in receives {
            tx.send(receive(prefix, *n, body)).unwrap();
        }
        drop(tx);
        let mut carry = Vec::new();
        let mut out = Vec::new();
        while let Some(batch) =
            fill_batch(&rx, &mut carry, size, bytes, Duration::from_secs(5), || {})
        {
            out.push(batch.envelopes.into_iter().map(|e| e.id).collect());
        }
        assert!(carry.is_empty());
        out
    }

    #[test]
    fn receives_are_split_across_batches_without_losing_or_repeating_a_message() {
        let receives = [("a", 10), ("b", 10), ("c", 3), ("d", 0), ("e", 1)];
        let out = batches(&receives, 7, usize::MAX, "");
        let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(sizes, [7, 7, 7, 3], "full batches, then what is left when the pollers stop");
        let expected: Vec<String> =
            receives.iter().flat_map(|(p, n)| receive(p, *n, "")).map(|e| e.id).collect();
        assert_eq!(out.concat(), expected, "every message once, in order");
    }

    #[test]
    fn big_bodies_make_small_batches_and_one_huge_body_still_goes_alone() {
        let body = "x".repeat(1000);
        let out = batches(&[("a", 10), ("b", 10)], 500, 2500, &body);
        let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 3, 3, 3, 3, 2], "stops at the first message reaching 2,500 bytes");
        let out = batches(&[("a", 2)], 500, 10, &body);
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1], "never an empty batch");
    }
}
