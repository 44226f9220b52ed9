//! How many receives are out at once, sized by what SQS answers (AIMD, as TCP and the AWS
//! SDKs' adaptive retry do): a full receive (10 messages) means the queue has more than the
//! pollers take, so one more poller joins, as long as the workers keep up (the channel has
//! room); an empty receive means the queue is drained, so the pollers halve. A receive costs a
//! round trip whatever it brings, so on a network 20 ms away two pollers cap a host at a few
//! hundred messages per second while sixteen fill the workers; when the queue is idle, one
//! long poll at a time keeps empty receives (billed) at their floor.
//!
//! Every poller task is spawned at start; those above the active count park until a full
//! receive calls them in (or the run ends). `--pollers N` pins the count.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::source::SQS_BATCH;

/// The bounds of the active count: `min == max` pins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PollerBounds {
    pub(crate) min: usize,
    pub(crate) start: usize,
    pub(crate) max: usize,
}

impl PollerBounds {
    /// Default: start at `concurrency`, grow to 16 (beyond, measured 20 ms from SQS, nothing
    /// more came through: docs/benchmarks.md), shrink to 1.
    pub(crate) fn adaptive(concurrency: usize) -> Self {
        PollerBounds { min: 1, start: concurrency.clamp(1, 16), max: 16 }
    }

    pub(crate) fn pinned(n: usize) -> Self {
        PollerBounds { min: n, start: n, max: n }
    }
}

#[derive(Clone)]
pub(crate) struct PollerControl(Arc<Inner>);

struct Inner {
    bounds: PollerBounds,
    active: AtomicUsize,
    /// Set when the run ends (drained, stopped): parked pollers leave.
    done: AtomicBool,
    wake: Notify,
    metrics: Metrics,
}

impl PollerControl {
    pub(crate) fn new(bounds: PollerBounds, metrics: Metrics) -> Self {
        metrics.pollers.set(bounds.start as i64);
        PollerControl(Arc::new(Inner {
            bounds,
            active: AtomicUsize::new(bounds.start),
            done: AtomicBool::new(false),
            wake: Notify::new(),
            metrics,
        }))
    }

    /// Poller tasks to spawn: one per possible active poller.
    pub(crate) fn tasks(&self) -> usize {
        self.0.bounds.max
    }

    /// Whether poller `index` (0-based) may receive now.
    pub(crate) fn admits(&self, index: usize) -> bool {
        index < self.0.active.load(Ordering::Relaxed)
    }

    /// Waits until poller `index` is admitted; false if the run ended meanwhile.
    pub(crate) async fn wait_turn(&self, index: usize) -> bool {
        loop {
            let woken = self.0.wake.notified();
            if self.0.done.load(Ordering::Relaxed) {
                return false;
            }
            if self.admits(index) {
                return true;
            }
            woken.await;
        }
    }

    /// Adjusts the active count after a receive of `got` messages; `room`: whether the workers
    /// keep up (growing while they do not would only hold more messages).
    pub(crate) fn after_receive(&self, got: usize, room: bool) {
        let bounds = self.0.bounds;
        let update = |active: usize| match got {
            0 => Some((active / 2).max(bounds.min)),
            SQS_BATCH if room => Some((active + 1).min(bounds.max)),
            _ => None,
        };
        let before = self.0.active.fetch_update(Ordering::Relaxed, Ordering::Relaxed, update);
        if let Ok(before) = before {
            let now = update(before).unwrap_or(before);
            if now != before {
                self.0.metrics.pollers.set(now as i64);
                self.0.wake.notify_waiters();
            }
        }
    }

    /// The run is over (drained, stopped, failed): parked pollers leave.
    pub(crate) fn finish(&self) {
        self.0.done.store(true, Ordering::Relaxed);
        self.0.wake.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(control: &PollerControl) -> usize {
        (0..control.tasks()).filter(|&i| control.admits(i)).count()
    }

    #[test]
    fn full_receives_add_pollers_up_to_the_bound_and_empty_ones_halve_them() {
        let control = PollerControl::new(PollerBounds::adaptive(2), Metrics::default());
        assert_eq!(active(&control), 2);
        for _ in 0..5 {
            control.after_receive(SQS_BATCH, true);
        }
        assert_eq!(active(&control), 7, "one more per full receive");
        control.after_receive(SQS_BATCH, false);
        control.after_receive(4, true);
        assert_eq!(
            active(&control),
            7,
            "no growth while the workers lag, nor on a partial receive"
        );
        for _ in 0..40 {
            control.after_receive(SQS_BATCH, true);
        }
        assert_eq!(active(&control), 16, "bounded");
        control.after_receive(0, true);
        assert_eq!(active(&control), 8, "halved on an empty receive");
        for _ in 0..10 {
            control.after_receive(0, true);
        }
        assert_eq!(active(&control), 1, "down to one long poll");
    }

    #[test]
    fn a_pinned_count_does_not_move() {
        let control = PollerControl::new(PollerBounds::pinned(3), Metrics::default());
        control.after_receive(SQS_BATCH, true);
        control.after_receive(0, true);
        assert_eq!(active(&control), 3);
        assert_eq!(control.tasks(), 3);
    }

    #[tokio::test]
    async fn a_parked_poller_is_called_in_by_growth_and_let_go_at_the_end() {
        let control = PollerControl::new(PollerBounds::adaptive(1), Metrics::default());
        let parked = tokio::spawn({
            let control = control.clone();
            async move { control.wait_turn(1).await }
        });
        tokio::task::yield_now().await;
        control.after_receive(SQS_BATCH, true);
        assert!(parked.await.unwrap(), "admitted");
        let late = tokio::spawn({
            let control = control.clone();
            async move { control.wait_turn(5).await }
        });
        tokio::task::yield_now().await;
        control.finish();
        assert!(!late.await.unwrap(), "let go when the run ends");
    }
}
