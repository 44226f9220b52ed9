//! `/healthz`'s view: every loop of the host (each poller, each worker, the lease task)
//! registers a [`Heartbeat`] and beats it each time round, waits included (an outage being
//! waited out, a full channel, the memory budget). One loop that stops beating is a host that
//! is stuck, whatever the others do; a loop that ended (its heartbeat dropped) is not watched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub(crate) struct Loops {
    started: Instant,
    slots: Arc<Mutex<Vec<Weak<Slot>>>>,
}

struct Slot {
    name: String,
    /// Milliseconds since `started` of the last beat.
    last_ms: AtomicU64,
}

impl Default for Loops {
    fn default() -> Self {
        Loops { started: Instant::now(), slots: Arc::default() }
    }
}

impl Loops {
    /// A heartbeat for the loop `name`, watched until it is dropped.
    pub(crate) fn register(&self, name: impl Into<String>) -> Heartbeat {
        let slot = Arc::new(Slot { name: name.into(), last_ms: AtomicU64::new(0) });
        let mut slots = self.slots.lock().expect("heartbeats lock");
        slots.retain(|s| s.strong_count() > 0);
        slots.push(Arc::downgrade(&slot));
        let heartbeat = Heartbeat { slot, started: self.started };
        heartbeat.beat();
        heartbeat
    }

    /// The loops that have not beaten for longer than `after`, with how long.
    pub(crate) fn stuck(&self, after: Duration) -> Vec<(String, Duration)> {
        let now = self.started.elapsed();
        let slots = self.slots.lock().expect("heartbeats lock");
        slots
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|slot| {
                let since =
                    now.saturating_sub(Duration::from_millis(slot.last_ms.load(Ordering::Relaxed)));
                (since > after).then(|| (slot.name.clone(), since))
            })
            .collect()
    }
}

/// One loop's heartbeat; cheap to beat.
pub(crate) struct Heartbeat {
    slot: Arc<Slot>,
    started: Instant,
}

impl Heartbeat {
    pub(crate) fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.slot.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Awaits `future`, beating every second meanwhile: waiting for room (backpressure) is
    /// going round, not being stuck.
    pub(crate) async fn while_waiting<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        loop {
            match tokio::time::timeout(Duration::from_secs(1), future.as_mut()).await {
                Ok(value) => return value,
                Err(_) => self.beat(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_silent_loop_is_stuck_whatever_the_others_do_and_ended_loops_are_not_watched() {
        let loops = Loops::default();
        let busy = loops.register("poller-0");
        let silent = loops.register("worker-1");
        let ended = loops.register("worker-2");
        drop(ended);
        std::thread::sleep(Duration::from_millis(60));
        busy.beat();
        let stuck = loops.stuck(Duration::from_millis(30));
        assert_eq!(stuck.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["worker-1"]);
        assert!(stuck[0].1 >= Duration::from_millis(60));
        silent.beat();
        assert!(loops.stuck(Duration::from_millis(30)).is_empty());
    }
}
