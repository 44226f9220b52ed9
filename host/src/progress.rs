//! Counters shared by the pipeline, the live progress line (on a terminal) and the summary.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::sink::CommitStats;

#[derive(Clone, Default)]
pub struct Stats(Arc<Counters>);

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    rows: AtomicU64,
    rejected: AtomicU64,
    duplicates: AtomicU64,
    received_again: AtomicU64,
    deleted: AtomicU64,
    in_flight: AtomicI64,
    /// Nanoseconds spent in each [`Phase`], summed over pollers, workers and the lease task.
    busy_ns: [AtomicU64; 4],
}

/// Where a message's time goes, for the summary and `scripts/bench`'s profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// ReceiveMessage calls, long-poll waits included.
    Receive = 0,
    /// The wasm module (and the host's framing around it).
    Module = 1,
    /// The PostgreSQL transaction: ledger, rows, rejections, commit.
    Commit = 2,
    /// DeleteMessageBatch calls after the commit.
    Delete = 3,
}

impl Stats {
    pub fn add_received(&self, n: usize) {
        self.0.received.fetch_add(n as u64, Ordering::Relaxed);
    }
    /// Messages SQS delivered more than once (`ApproximateReceiveCount` > 1).
    pub fn add_received_again(&self, n: usize) {
        self.0.received_again.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_written(&self, w: CommitStats) {
        self.0.rows.fetch_add(w.rows, Ordering::Relaxed);
        self.0.rejected.fetch_add(w.rejected, Ordering::Relaxed);
        self.0.duplicates.fetch_add(w.duplicates, Ordering::Relaxed);
    }
    pub fn add_deleted(&self, n: usize) {
        self.0.deleted.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_in_flight(&self, n: i64) {
        self.0.in_flight.fetch_add(n, Ordering::Relaxed);
    }
    pub fn received(&self) -> u64 {
        self.0.received.load(Ordering::Relaxed)
    }
    pub fn rows(&self) -> u64 {
        self.0.rows.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.0.rejected.load(Ordering::Relaxed)
    }
    pub fn duplicates(&self) -> u64 {
        self.0.duplicates.load(Ordering::Relaxed)
    }
    pub fn received_again(&self) -> u64 {
        self.0.received_again.load(Ordering::Relaxed)
    }
    pub fn deleted(&self) -> u64 {
        self.0.deleted.load(Ordering::Relaxed)
    }
    pub fn in_flight(&self) -> i64 {
        self.0.in_flight.load(Ordering::Relaxed)
    }
    /// Runs `f`, adding its wall time to `phase`.
    pub fn timed<R>(&self, phase: Phase, f: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = f();
        self.add_busy(phase, started.elapsed());
        result
    }
    pub fn add_busy(&self, phase: Phase, elapsed: Duration) {
        self.0.busy_ns[phase as usize].fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
    /// Seconds spent in `phase`, summed over threads (so it can exceed the wall time).
    pub fn busy_secs(&self, phase: Phase) -> f64 {
        self.0.busy_ns[phase as usize].load(Ordering::Relaxed) as f64 / 1e9
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

/// The bar, when stderr is a terminal; log lines are printed around it (see `bar_suspend`).
static BAR: OnceLock<ProgressBar> = OnceLock::new();

pub struct Progress {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(stats: Stats) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress { stop: None, thread: None };
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
                let rate = stats.received() as f64 / started.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "{rate:.0} msg/s | {} rows | {} rejected | {} in flight",
                    stats.rows(),
                    stats.rejected(),
                    stats.in_flight()
                ));
                bar.tick();
            }
            bar.finish_and_clear();
        });
        Progress { stop: Some(stop), thread: Some(thread) }
    }

    pub fn finish(mut self) {
        if let (Some(stop), Some(thread)) = (self.stop.take(), self.thread.take()) {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// Runs `f` (a log write) with the progress bar hidden, so lines and bar do not mix.
pub fn bar_suspend<R>(f: impl FnOnce() -> R) -> R {
    match BAR.get() {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}
