//! What a run shows while it runs: a live line when stderr is a terminal, else a stats log
//! line every `--stats-interval` (so a container's log says the host is alive and working).

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::events::{event, Event};
use crate::metrics::Metrics;
use indicatif::{ProgressBar, ProgressStyle};

/// The bar, when stderr is a terminal; log lines are printed around it (see `bar_suspend`).
static BAR: OnceLock<ProgressBar> = OnceLock::new();

pub(crate) struct Progress {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// `interval`: the stats line's period off a terminal (zero: none).
    pub(crate) fn start(metrics: Metrics, interval: Duration) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::log_lines(metrics, interval);
        }
        let bar = BAR.get_or_init(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
            );
            bar
        });
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while stopped.recv_timeout(Duration::from_millis(250)).is_err() {
                let received = metrics.messages_received.get();
                let rate = received as f64 / started.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "{rate:.0} msg/s | {} rows | {} rejected | {} in flight",
                    metrics.rows_written.get(),
                    metrics.rejected(),
                    metrics.messages_in_flight.get()
                ));
                bar.tick();
            }
            bar.finish_and_clear();
        });
        Progress { stop: Some(stop), thread: Some(thread) }
    }

    fn log_lines(metrics: Metrics, interval: Duration) -> Self {
        if interval.is_zero() {
            return Progress { stop: None, thread: None };
        }
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while stopped.recv_timeout(interval).is_err() {
                event!(
                    info,
                    Event::Stats,
                    received = metrics.messages_received.get(),
                    rows = metrics.rows_written.get(),
                    rejected = metrics.rejected(),
                    deleted = metrics.messages_deleted.get(),
                    in_flight = metrics.messages_in_flight.get(),
                    "{}",
                    metrics.summary(started.elapsed())
                );
            }
        });
        Progress { stop: Some(stop), thread: Some(thread) }
    }

    pub(crate) fn finish(mut self) {
        if let (Some(stop), Some(thread)) = (self.stop.take(), self.thread.take()) {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// Runs `f` (a log write) with the progress bar hidden, so lines and bar do not mix.
pub(crate) fn bar_suspend<R>(f: impl FnOnce() -> R) -> R {
    match BAR.get() {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}
