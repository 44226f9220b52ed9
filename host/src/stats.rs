//! The run's counters: one set, read by the summary, the progress and stats lines, and
//! `/metrics` (Prometheus/OpenMetrics text via `prometheus-client`, registered in [`Stats::registry`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::health::Loops;
use crate::sink::CommitStats;

type Labels = Vec<(&'static str, String)>;

#[derive(Clone)]
pub struct Stats(Arc<Metrics>);

struct Metrics {
    received: Counter,
    received_again: Counter,
    rows: Counter,
    rejected: Family<Labels, Counter>,
    rejected_total: Counter,
    duplicates: Counter,
    deleted: Counter,
    retries: Family<Labels, Counter>,
    in_flight: Gauge,
    commit_seconds: Histogram,
    /// Commit time minus SQS `SentTimestamp`, per message: how fresh the table is.
    lag_seconds: Histogram,
    module_seconds: Histogram,
    last_commit: Gauge<f64, AtomicU64>,
    /// Seconds spent in each [`Phase`], summed over pollers, workers and the lease task.
    busy: Family<Labels, Counter<f64, AtomicU64>>,
    /// Per-entry failures inside successful SQS batch calls, by call and error code.
    entry_failures: Family<Labels, Counter>,
    /// Messages handed back to SQS uncommitted, by why.
    released: Family<Labels, Counter>,
    in_flight_bytes: Gauge,
    /// SQS pollers active now (pipeline/pollers.rs sizes them).
    pollers: Gauge,
    /// Every loop's heartbeat (`/healthz`).
    loops: Loops,
}

/// Where a message's time goes, for the summary and `scripts/bench`'s profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// ReceiveMessage calls, long-poll waits included.
    Receive,
    /// The wasm module (and the host's framing around it).
    Module,
    /// The PostgreSQL transaction: ledger, rows, rejections, commit.
    Commit,
    /// DeleteMessageBatch calls after the commit.
    Delete,
}

impl Phase {
    fn label(self) -> Labels {
        let name = match self {
            Phase::Receive => "receive",
            Phase::Module => "module",
            Phase::Commit => "commit",
            Phase::Delete => "delete",
        };
        vec![("phase", name.to_owned())]
    }
}

/// What a retry was for, as the `kind` label of `maskflow_retries_total`.
#[derive(Debug, Clone, Copy)]
pub enum Retry {
    /// A commit (or connect) waiting for PostgreSQL to come back.
    Postgres,
    /// ReceiveMessage failed and will be called again.
    Receive,
    /// A DeleteMessageBatch entry failed and is sent again.
    Delete,
    /// ChangeMessageVisibilityBatch failed and is sent again.
    Extend,
}

impl Retry {
    fn label(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

impl Default for Stats {
    fn default() -> Self {
        // Commits take ms to seconds (an outage waits inside); module calls µs to ms.
        let metrics = Metrics {
            received: Counter::default(),
            received_again: Counter::default(),
            rows: Counter::default(),
            rejected: Family::default(),
            rejected_total: Counter::default(),
            duplicates: Counter::default(),
            deleted: Counter::default(),
            retries: Family::default(),
            in_flight: Gauge::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            // 10 ms to about 1.5 hours: a backlog being caught up shows as lag too.
            lag_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 20)),
            module_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            last_commit: Gauge::default(),
            busy: Family::default(),
            entry_failures: Family::default(),
            released: Family::default(),
            in_flight_bytes: Gauge::default(),
            pollers: Gauge::default(),
            loops: Loops::default(),
        };
        // Series that alerts and dashboards watch exist from the start, at 0: an absent series
        // reads as "no data", not as "none happened".
        for kind in [Retry::Postgres, Retry::Receive, Retry::Delete, Retry::Extend] {
            let _ = metrics.retries.get_or_create(&vec![("kind", kind.label())]);
        }
        let _ = metrics.released.get_or_create(&vec![("why", "locked".to_owned())]);
        Stats(Arc::new(metrics))
    }
}

impl Stats {
    pub fn add_received(&self, n: usize) {
        self.0.received.inc_by(n as u64);
    }
    /// Messages SQS delivered more than once (`ApproximateReceiveCount` > 1).
    pub fn add_received_again(&self, n: usize) {
        self.0.received_again.inc_by(n as u64);
    }
    /// Observes each committed message's lag: now minus its SQS `SentTimestamp` (ms).
    pub fn observe_lag(&self, sent_ms: impl Iterator<Item = i64>) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let now_ms = now.as_millis() as i64;
        for sent in sent_ms.filter(|&ms| ms > 0) {
            self.0.lag_seconds.observe((now_ms - sent).max(0) as f64 / 1000.0);
        }
    }

    pub fn add_written(&self, w: &CommitStats) {
        self.0.rows.inc_by(w.rows);
        self.0.rejected_total.inc_by(w.rejected);
        for (reason, n) in &w.rejected_by_reason {
            self.0.rejected.get_or_create(&vec![("reason", reason.clone())]).inc_by(*n);
        }
        self.0.duplicates.inc_by(w.duplicates);
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        self.0.last_commit.set(now.as_secs_f64());
    }
    pub fn add_deleted(&self, n: usize) {
        self.0.deleted.inc_by(n as u64);
    }
    pub fn add_in_flight(&self, n: i64) {
        self.0.in_flight.inc_by(n);
    }
    pub fn add_retry(&self, kind: Retry) {
        self.0.retries.get_or_create(&vec![("kind", kind.label())]).inc();
    }
    /// The host's loops and their heartbeats (`/healthz`).
    pub fn loops(&self) -> &Loops {
        &self.0.loops
    }
    /// An entry of a DeleteMessageBatch / ChangeMessageVisibilityBatch call that SQS refused
    /// inside a successful answer (`call`: `delete` or `extend`; `code`: SQS' error code).
    pub fn add_entry_failure(&self, call: &str, code: &str) {
        let labels = vec![("call", call.to_owned()), ("code", code.to_owned())];
        self.0.entry_failures.get_or_create(&labels).inc();
    }
    /// Messages handed back to SQS without a commit (`why`: `locked`).
    pub fn add_released(&self, why: &str, n: usize) {
        self.0.released.get_or_create(&vec![("why", why.to_owned())]).inc_by(n as u64);
    }
    pub fn set_pollers(&self, n: usize) {
        self.0.pollers.set(n as i64);
    }

    pub fn add_in_flight_bytes(&self, n: i64) {
        self.0.in_flight_bytes.inc_by(n);
    }

    pub fn received(&self) -> u64 {
        self.0.received.get()
    }
    pub fn rows(&self) -> u64 {
        self.0.rows.get()
    }
    pub fn rejected(&self) -> u64 {
        self.0.rejected_total.get()
    }
    pub fn duplicates(&self) -> u64 {
        self.0.duplicates.get()
    }
    pub fn received_again(&self) -> u64 {
        self.0.received_again.get()
    }
    pub fn deleted(&self) -> u64 {
        self.0.deleted.get()
    }
    pub fn in_flight(&self) -> i64 {
        self.0.in_flight.get()
    }
    /// Runs `f`, adding its wall time to `phase` (and to the phase's histogram, if it has one).
    pub fn timed<R>(&self, phase: Phase, f: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = f();
        let elapsed = started.elapsed();
        self.add_busy(phase, elapsed);
        match phase {
            Phase::Module => self.0.module_seconds.observe(elapsed.as_secs_f64()),
            Phase::Commit => self.0.commit_seconds.observe(elapsed.as_secs_f64()),
            Phase::Receive | Phase::Delete => {}
        }
        result
    }
    pub fn add_busy(&self, phase: Phase, elapsed: Duration) {
        self.0.busy.get_or_create(&phase.label()).inc_by(elapsed.as_secs_f64());
    }
    /// Seconds spent in `phase`, summed over threads (so it can exceed the wall time).
    pub fn busy_secs(&self, phase: Phase) -> f64 {
        self.0.busy.get_or_create(&phase.label()).get()
    }

    /// Every metric, named `maskflow_*`, for `/metrics`.
    pub fn registry(&self) -> Registry {
        let m = &self.0;
        let mut r = Registry::with_prefix("maskflow");
        r.register("messages_received", "Messages received from SQS", m.received.clone());
        r.register(
            "messages_received_again",
            "Messages SQS delivered more than once (ApproximateReceiveCount > 1)",
            m.received_again.clone(),
        );
        r.register("rows_written", "Rows committed to user_logins", m.rows.clone());
        r.register(
            "rejections",
            "Messages recorded in user_logins_rejected, by reason",
            m.rejected.clone(),
        );
        r.register(
            "redeliveries_skipped",
            "Messages already in the ledger (redelivered), skipped",
            m.duplicates.clone(),
        );
        r.register("messages_deleted", "Messages deleted from SQS after commit", m.deleted.clone());
        r.register("retries", "Retried calls, by kind", m.retries.clone());
        r.register(
            "sqs_entry_failures",
            "Entries SQS refused inside a successful batch call, by call and code",
            m.entry_failures.clone(),
        );
        r.register(
            "messages_released",
            "Messages handed back to SQS uncommitted (another session holds their ledger entry)",
            m.released.clone(),
        );
        r.register_with_unit(
            "in_flight",
            "Bytes of message bodies the host holds (bounded by --max-in-flight-bytes)",
            Unit::Bytes,
            m.in_flight_bytes.clone(),
        );
        r.register(
            "pollers",
            "SQS receives the host keeps out at once (sized by how full they come back)",
            m.pollers.clone(),
        );
        r.register(
            "messages_in_flight",
            "Messages received and not yet committed",
            m.in_flight.clone(),
        );
        r.register_with_unit(
            "lag",
            "Commit time minus SQS SentTimestamp, per message committed",
            Unit::Seconds,
            m.lag_seconds.clone(),
        );
        r.register_with_unit(
            "batch_commit",
            "Time to commit one batch (waits for an unavailable PostgreSQL included)",
            Unit::Seconds,
            m.commit_seconds.clone(),
        );
        r.register_with_unit(
            "module_call",
            "Time of one module call (one batch)",
            Unit::Seconds,
            m.module_seconds.clone(),
        );
        r.register_with_unit(
            "last_commit_timestamp",
            "Unix time of the last commit",
            Unit::Seconds,
            m.last_commit.clone(),
        );
        r.register_with_unit(
            "phase",
            "Time spent per phase, summed over threads",
            Unit::Seconds,
            m.busy.clone(),
        );
        r
    }

    /// `1000 received (0 more than once), 990 rows, 10 rejected, 0 redelivered (skipped), 1000 deleted in 2.0 s (500 msg/s)`
    pub fn summary(&self, elapsed: Duration) -> String {
        let rate = self.received() as f64 / elapsed.as_secs_f64().max(1e-3);
        format!(
            "{} received ({} more than once), {} rows, {} rejected, {} redelivered (skipped), {} deleted in {:.1} s ({rate:.0} msg/s)",
            self.received(),
            self.received_again(),
            self.rows(),
            self.rejected(),
            self.duplicates(),
            self.deleted(),
            elapsed.as_secs_f64()
        )
    }
}
