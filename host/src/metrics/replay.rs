//! `maskflow replay`'s own series, served by `--metrics-addr` while it runs (the hosts' series
//! are not touched by a replay: it is not a host).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::labels::{ReasonLabel, SkippedLabels};
use super::series::{register, series};
use crate::commands::replay::Unsealable;
use crate::health::Loops;

series! {
    ReplaySeries;
    /// Rejections selected for the replay
    replay_selected: Gauge = Gauge::default(),
    /// Rejections read and judged by the module so far
    replay_done: Counter = Counter::default(),
    /// Rows written from rejections that now pass (their rejections deleted)
    replay_rows: Counter = Counter::default(),
    /// Rejections still rejected, by their reason now
    replay_still_rejected: Family<ReasonLabel, Counter> = Family::default(),
    /// Rejections skipped because their body does not unseal, by key id and why
    replay_skipped: Family<SkippedLabels, Counter> = Family::default(),
    /// Rejections recorded before their sent time was kept (rejected_at gave create_date)
    replay_sent_time_fallback: Counter = Counter::default(),
}

/// The replay's series; `Clone` shares them.
#[derive(Clone)]
pub(crate) struct ReplayMetrics(std::sync::Arc<(ReplaySeries, Loops)>);

impl Default for ReplayMetrics {
    fn default() -> Self {
        ReplayMetrics(std::sync::Arc::new((ReplaySeries::new(), Loops::default())))
    }
}

impl std::ops::Deref for ReplayMetrics {
    type Target = ReplaySeries;

    fn deref(&self) -> &ReplaySeries {
        &self.0 .0
    }
}

impl ReplayMetrics {
    /// Every series, named `maskflow_*`, for `/metrics`.
    pub(crate) fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("maskflow");
        self.0 .0.register(&mut registry);
        registry
    }

    /// The replay's loop (`/healthz`).
    pub(crate) fn loops(&self) -> &Loops {
        &self.0 .1
    }

    pub(crate) fn still_rejected(&self, reason: &'static str, n: u64) {
        self.replay_still_rejected.get_or_create(&ReasonLabel { reason }).inc_by(n);
    }

    pub(crate) fn skipped(&self, key_id: &str, why: Unsealable) {
        let labels = SkippedLabels { key_id: key_id.to_owned(), why };
        self.replay_skipped.get_or_create(&labels).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replays_series_are_served_under_their_names() {
        let metrics = ReplayMetrics::default();
        metrics.replay_rows.inc_by(3);
        metrics.still_rejected("missing_field", 2);
        metrics.skipped("k0", Unsealable::KeyNotLoaded);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry()).unwrap();
        for line in [
            "maskflow_replay_rows_total 3",
            "maskflow_replay_still_rejected_total{reason=\"missing_field\"} 2",
            "maskflow_replay_skipped_total{key_id=\"k0\",why=\"key_not_loaded\"} 1",
            "maskflow_replay_selected 0",
        ] {
            assert!(text.contains(line), "{line} not served: {text}");
        }
    }
}
