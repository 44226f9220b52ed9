//! The run's metrics, each defined once: the field's name is the served name
//! (`maskflow_<field>`, plus `_total` for counters), its doc comment is the help text, its type
//! the metric type, its label set a typed struct. One set, read by the summary, the progress
//! and stats lines and `/metrics` (OpenMetrics text via `prometheus-client`). README
//! "Metrics" lists them; `tests/tests/operations.rs` checks that every one is served.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use maskflow_transform::Reason;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

mod labels;
mod replay;
mod series;

pub(crate) use self::labels::{BatchCall, KeyReload, Phase, Released, Retry};
use self::labels::{
    ColumnLabel, EntryFailureLabels, KeyIdLabel, KeyReloadLabel, PhaseLabel, ReasonLabel,
    ReleasedLabel, RetryLabel,
};
pub(crate) use self::replay::ReplayMetrics;
use self::series::{register, series};
use crate::health::Loops;
use crate::sink::CommitStats;

series! {
    Series;
    /// Messages received from SQS
    messages_received: Counter = Counter::default(),
    /// Messages SQS delivered more than once (ApproximateReceiveCount > 1)
    messages_received_again: Counter = Counter::default(),
    /// Rows committed to user_logins
    rows_written: Counter = Counter::default(),
    /// Messages recorded in user_logins_rejected, by reason
    rejections: Family<ReasonLabel, Counter> = Family::default(),
    /// NULLs written in rows committed, by column (a renamed optional field shows here)
    null_values: Family<ColumnLabel, Counter> = Family::default(),
    /// Messages already in the ledger (redelivered), skipped
    redeliveries_skipped: Counter = Counter::default(),
    /// Messages deleted from SQS after commit
    messages_deleted: Counter = Counter::default(),
    /// Retried calls, by kind
    retries: Family<RetryLabel, Counter> = Family::default(),
    /// Entries SQS refused inside a successful batch call, by call and code
    sqs_entry_failures: Family<EntryFailureLabels, Counter> = Family::default(),
    /// Messages handed back to SQS uncommitted (another session holds their ledger entry)
    messages_released: Family<ReleasedLabel, Counter> = Family::default(),
    /// Bytes of message bodies the host holds (bounded by --max-in-flight-bytes)
    in_flight_bytes: Gauge = Gauge::default(); unit Bytes,
    /// SQS receives the host keeps out at once (sized by how full they come back)
    pollers: Gauge = Gauge::default(),
    /// Messages received and not yet committed or handed back
    messages_in_flight: Gauge = Gauge::default(),
    /// Commit time minus SQS SentTimestamp, per message committed
    // 10 ms to about 1.5 hours: a backlog being caught up shows as lag too.
    lag_seconds: Histogram = Histogram::new(exponential_buckets(0.01, 2.0, 20)); unit Seconds,
    /// Time to commit one batch (waits for an unavailable PostgreSQL included)
    batch_commit_seconds: Histogram = Histogram::new(exponential_buckets(0.001, 2.0, 16)); unit Seconds,
    /// Time of one module call (one batch)
    module_call_seconds: Histogram = Histogram::new(exponential_buckets(0.000_05, 2.0, 16)); unit Seconds,
    /// Unix time of the last commit
    last_commit_timestamp_seconds: Gauge<f64, AtomicU64> = Gauge::default(); unit Seconds,
    /// Unix time the host started (a host that never committed is told from one that stopped)
    start_time_seconds: Gauge<f64, AtomicU64> = Gauge::default(); unit Seconds,
    /// Time spent per phase, summed over threads
    phase_seconds: Family<PhaseLabel, Counter<f64, AtomicU64>> = Family::default(); unit Seconds,
    /// Key source reloads (SIGHUP), by outcome: applied, unchanged, failed (the running keys stay)
    key_reloads: Family<KeyReloadLabel, Counter> = Family::default(),
    /// 1 for the id of the key that masks now (README "Key sources": rotation)
    masking_key: Family<KeyIdLabel, Gauge> = Family::default(),
}

/// The run's metrics and loops; cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics(Arc<Inner>);

struct Inner {
    series: Series,
    /// Rejections of every reason: the summary's count (the family has no sum).
    rejected: Counter,
    /// `null_values` of each column, in the module's column order ([`Metrics::with_columns`]).
    nulls: std::sync::OnceLock<Vec<Counter>>,
    /// Every loop's heartbeat (`/healthz`).
    loops: Loops,
}

impl Default for Metrics {
    fn default() -> Self {
        let series = Series::new();
        // Series that alerts and dashboards watch exist from the start, at 0: an absent series
        // reads as "no data", not as "none happened".
        for kind in Retry::ALL {
            let _ = series.retries.get_or_create(&RetryLabel { kind });
        }
        let _ = series.messages_released.get_or_create(&ReleasedLabel { why: Released::Locked });
        for reason in Reason::ALL.into_iter().chain(Reason::HOST) {
            let _ = series.rejections.get_or_create(&ReasonLabel { reason: reason.code() });
        }
        for outcome in KeyReload::ALL {
            let _ = series.key_reloads.get_or_create(&KeyReloadLabel { outcome });
        }
        series.start_time_seconds.set(unix_now().as_secs_f64());
        Metrics(Arc::new(Inner {
            series,
            rejected: Counter::default(),
            nulls: std::sync::OnceLock::new(),
            loops: Loops::default(),
        }))
    }
}

impl std::ops::Deref for Metrics {
    type Target = Series;

    fn deref(&self) -> &Series {
        &self.0.series
    }
}

impl Metrics {
    /// Every series, named `maskflow_*`, for `/metrics`.
    pub(crate) fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("maskflow");
        self.0.series.register(&mut registry);
        registry
    }

    /// The host's loops and their heartbeats (`/healthz`).
    pub(crate) fn loops(&self) -> &Loops {
        &self.0.loops
    }

    /// The rows' columns, in the module's order: each column's `null_values` series exists from
    /// the start, at 0 (the NULL-share alert divides by the rows written).
    pub(crate) fn with_columns(self, columns: &[String]) -> Self {
        let counters = columns
            .iter()
            .map(|column| {
                self.null_values.get_or_create(&ColumnLabel { column: column.clone() }).clone()
            })
            .collect();
        let _ = self.0.nulls.set(counters);
        self
    }

    /// What a commit wrote.
    pub(crate) fn add_written(&self, w: &CommitStats) {
        self.rows_written.inc_by(w.rows);
        if let Some(nulls) = self.0.nulls.get() {
            nulls.iter().zip(&w.null_values).for_each(|(counter, n)| _ = counter.inc_by(*n));
        }
        self.0.rejected.inc_by(w.rejected);
        for (reason, n) in &w.rejected_by_reason {
            self.rejections.get_or_create(&ReasonLabel { reason: reason.code() }).inc_by(*n);
        }
        self.redeliveries_skipped.inc_by(w.redeliveries_skipped);
        self.last_commit_timestamp_seconds.set(unix_now().as_secs_f64());
    }

    /// Observes each committed message's lag: now minus its SQS `SentTimestamp` (ms).
    pub(crate) fn observe_lag(&self, sent_ms: impl Iterator<Item = i64>) {
        let now_ms = unix_now().as_millis() as i64;
        for sent in sent_ms.filter(|&ms| ms > 0) {
            self.lag_seconds.observe((now_ms - sent).max(0) as f64 / 1000.0);
        }
    }

    pub(crate) fn retried(&self, kind: Retry) {
        self.retries.get_or_create(&RetryLabel { kind }).inc();
    }

    pub(crate) fn entry_failed(&self, call: BatchCall, code: &str) {
        let labels = EntryFailureLabels { call, code: code.to_owned() };
        self.sqs_entry_failures.get_or_create(&labels).inc();
    }

    pub(crate) fn key_reloaded(&self, outcome: KeyReload) {
        self.key_reloads.get_or_create(&KeyReloadLabel { outcome }).inc();
    }

    /// `id` masks now, and `previous` (if another) no longer does.
    pub(crate) fn set_masking_key(&self, id: &str, previous: Option<&str>) {
        if let Some(previous) = previous.filter(|p| *p != id) {
            self.masking_key.remove(&KeyIdLabel { key_id: previous.to_owned() });
        }
        self.masking_key.get_or_create(&KeyIdLabel { key_id: id.to_owned() }).set(1);
    }

    pub(crate) fn released(&self, why: Released, n: usize) {
        self.messages_released.get_or_create(&ReleasedLabel { why }).inc_by(n as u64);
    }

    /// Runs `f`, adding its wall time to `phase` (and to the phase's histogram, if it has one).
    pub(crate) fn timed<R>(&self, phase: Phase, f: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = f();
        let elapsed = started.elapsed();
        self.add_busy(phase, elapsed);
        match phase {
            Phase::Module => self.module_call_seconds.observe(elapsed.as_secs_f64()),
            Phase::Commit => self.batch_commit_seconds.observe(elapsed.as_secs_f64()),
            Phase::Receive | Phase::Delete => {}
        }
        result
    }

    pub(crate) fn add_busy(&self, phase: Phase, elapsed: Duration) {
        self.phase_seconds.get_or_create(&PhaseLabel { phase }).inc_by(elapsed.as_secs_f64());
    }

    /// Seconds spent in `phase`, summed over threads (so it can exceed the wall time).
    pub(crate) fn busy_secs(&self, phase: Phase) -> f64 {
        self.phase_seconds.get_or_create(&PhaseLabel { phase }).get()
    }

    /// Rejections of every reason.
    pub(crate) fn rejected(&self) -> u64 {
        self.0.rejected.get()
    }

    /// `1000 received (0 more than once), 990 rows, 10 rejected, 0 redelivered (skipped), 1000 deleted in 2.0 s (500 msg/s)`
    pub(crate) fn summary(&self, elapsed: Duration) -> String {
        let received = self.messages_received.get();
        let rate = received as f64 / elapsed.as_secs_f64().max(1e-3);
        let mut text = String::new();
        let _ = write!(
            text,
            "{received} received ({} more than once), {} rows, {} rejected, {} redelivered (skipped), {} deleted in {:.1} s ({rate:.0} msg/s)",
            self.messages_received_again.get(),
            self.rows_written.get(),
            self.rejected(),
            self.redeliveries_skipped.get(),
            self.messages_deleted.get(),
            elapsed.as_secs_f64()
        );
        text
    }
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_served_under_its_field_name() {
        let metrics = Metrics::default().with_columns(&["user_id".into(), "masked_ip".into()]);
        metrics.rejections.get_or_create(&ReasonLabel { reason: Reason::InvalidIp.code() }).inc();
        metrics.entry_failed(BatchCall::Delete, "InternalError");
        metrics.add_busy(Phase::Module, Duration::from_millis(1));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry()).unwrap();
        let names = [
            "maskflow_messages_received_total",
            "maskflow_rejections_total{reason=\"invalid_ip\"}",
            "maskflow_null_values_total{column=\"masked_ip\"}",
            "maskflow_retries_total{kind=\"postgres\"}",
            "maskflow_sqs_entry_failures_total{call=\"delete\",code=\"InternalError\"}",
            "maskflow_messages_released_total{why=\"locked\"}",
            "maskflow_in_flight_bytes",
            "maskflow_lag_seconds_bucket",
            "maskflow_last_commit_timestamp_seconds",
            "maskflow_phase_seconds_total{phase=\"module\"}",
            "maskflow_key_reloads_total{outcome=\"failed\"}",
        ];
        for name in names {
            let served = [format!("\n{name} "), format!("\n{name}{{")];
            assert!(served.iter().any(|s| text.contains(s)), "{name} not served: {text}");
        }
        assert!(
            text.contains("# HELP maskflow_rows_written Rows committed to user_logins"),
            "{text}"
        );
    }

    #[test]
    fn nulls_are_counted_per_column_by_the_columns_order() {
        let metrics = Metrics::default().with_columns(&["user_id".into(), "masked_ip".into()]);
        metrics.add_written(&CommitStats {
            rows: 3,
            null_values: vec![0, 2],
            ..Default::default()
        });
        metrics.add_written(&CommitStats {
            rows: 1,
            null_values: vec![0, 1],
            ..Default::default()
        });
        let count = |column: &str| {
            metrics.null_values.get_or_create(&ColumnLabel { column: column.into() }).get()
        };
        assert_eq!((count("user_id"), count("masked_ip")), (0, 3));
    }
}
