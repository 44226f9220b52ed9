//! SIGINT/SIGTERM: stop receiving, finish and commit what is in flight, delete it, exit 0.
//! A second signal exits at once (nothing is lost: uncommitted messages are redelivered).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::warn;

use crate::events::{event, Event};

#[derive(Clone, Default)]
pub(crate) struct Shutdown {
    flag: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Shutdown {
    /// Installs the signal handlers on `runtime`.
    pub(crate) fn install(runtime: &tokio::runtime::Runtime) -> std::io::Result<Self> {
        let shutdown = Shutdown::default();
        let on_signal = shutdown.clone();
        let _guard = runtime.enter();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        runtime.spawn(async move {
            for count in 1.. {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                if count > 1 {
                    warn!("second signal: exiting now; uncommitted messages return to the queue");
                    std::process::exit(130);
                }
                event!(
                    info,
                    Event::Stopping,
                    "signal received: finishing the batches in flight, then exiting"
                );
                on_signal.trigger();
            }
        });
        Ok(shutdown)
    }

    pub(crate) fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(crate) fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps `duration` on this thread, or less if shutdown is requested meanwhile.
    pub(crate) fn sleep(&self, duration: std::time::Duration) {
        let until = std::time::Instant::now() + duration;
        while !self.requested() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
        }
    }

    /// Resolves once shutdown is requested.
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        if !self.requested() {
            notified.await;
        }
    }
}
