//! `maskflow run`: data flows one way, `source -> runtime -> sink`.
//!
//! ```text
//! pollers (async, 1-16: pollers.rs) --Vec<Envelope>--> channel --> workers (threads): module stage -> commit -> ack
//!     |  hold receipts                                                              |
//!     +------------------------> lease task (async): extend visibility, delete <----+
//! ```
//!
//! Pollers are async tasks (the AWS SDK is async); workers are threads, each with its own wasm
//! instance and PostgreSQL connection (the `postgres` crate blocks), and the only place that
//! decides what happens to a batch ([`worker`]). A message is deleted from SQS only after the
//! transaction that recorded it committed, so every failure ends in redelivery, and the ledger
//! turns a redelivery into a no-op.

pub mod batch;
pub mod budget;
pub mod pollers;
mod receive;
pub mod shutdown;
pub mod stage;
mod startup;
mod streak;
mod worker;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info};

use self::batch::Envelope;
use self::budget::ByteBudget;
use self::pollers::{PollerBounds, PollerControl};
use self::receive::Poller;
use self::shutdown::Shutdown;
use self::stage::{ModuleConfig, Stages};
use self::worker::Worker;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::serve::{self, Readiness};
use crate::sink::{PostgresConfig, PostgresSink};
use crate::source::{Leases, SqsConfig, SqsSource, SQS_BATCH};
use crate::stats::Stats;

/// How often `/readyz`'s answer is refreshed (a kubelet asks every 10 s by default).
const READINESS_PERIOD: Duration = Duration::from_secs(2);

/// Everything `run` needs (built by the CLI layer).
pub struct RunConfig {
    pub sqs: SqsConfig,
    pub postgres: PostgresConfig,
    pub module: ModuleConfig,
    /// `(key id, fingerprint)` of every key, checked against `maskflow_keys` at start.
    pub key_fingerprints: Vec<(String, String)>,
    /// Budget for reaching SQS and PostgreSQL at start.
    pub startup_timeout: Duration,
    /// Workers: each with its own wasm instance and PostgreSQL connection.
    pub concurrency: usize,
    /// How many SQS receives may be out at once (adaptive unless pinned by `--pollers`).
    pub pollers: PollerBounds,
    /// Messages per transaction.
    pub batch_size: usize,
    /// How long a worker waits to fill a batch.
    pub linger: Duration,
    /// SQS visibility timeout of received messages; extended while the host holds them.
    pub visibility: Duration,
    /// Exit once the queue is empty.
    pub drain: bool,
    /// Bytes of message bodies held at once (received, not yet committed).
    pub max_in_flight_bytes: usize,
    /// `/healthz` answers 503 when any loop has not gone round for this long.
    pub stuck_after: Duration,
    /// Where to serve /metrics, /healthz and /readyz, if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Period of the stats log line when stderr is not a terminal (zero: none).
    pub stats_interval: Duration,
}

/// How a run ended.
pub struct Summary {
    pub stats: Stats,
    pub elapsed: Duration,
}

pub fn run(config: RunConfig) -> Result<Summary> {
    // The async side only waits on SQS and parses its answers (about 40 µs of CPU per message,
    // docs/benchmarks.md): one thread per four pollers. More threads than that cost more in
    // wake-ups and work stealing between them than they save.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.pollers.max.div_ceil(4).clamp(1, cores))
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    // Nothing is received before every setting has been checked (startup.rs).
    let stages = Stages::prepare(config.module)?;
    let shutdown = Shutdown::install(&runtime)?;
    let stats = Stats::default();
    let deadline = Instant::now() + config.startup_timeout;
    let checked =
        startup::check_sqs(&runtime, &config.sqs, deadline, &shutdown).and_then(|source| {
            let mut probe = PostgresSink::new(&config.postgres, stages.columns().to_vec())?;
            startup::check_postgres(&mut probe, &config.key_fingerprints, deadline, &shutdown)?;
            Ok((source, probe))
        });
    let (source, probe) = match checked {
        // A signal while waiting for a service to answer is a clean stop: nothing was received.
        Err(e) if e.is_transient() && shutdown.requested() => {
            return Ok(Summary { stats, elapsed: Duration::ZERO })
        }
        other => other?,
    };
    match config.metrics_addr {
        Some(addr) => start_endpoints(
            &runtime,
            addr,
            &stats,
            &shutdown,
            probe,
            source.clone(),
            config.stuck_after,
        )?,
        None => drop(probe), // the workers open their own connections
    }
    info!(
        queue = source.queue_url(),
        concurrency = config.concurrency,
        batch_size = config.batch_size,
        drain = config.drain,
        "maskflow running"
    );

    let progress = Progress::start(stats.clone(), config.stats_interval);
    let started = Instant::now();
    let (leases, lease_task) = {
        let _guard = runtime.enter();
        Leases::start(source.clone(), config.visibility, stats.clone(), shutdown.clone())
    };
    // Each item is one receive (up to 10 messages): room for about two batches, and at most
    // `max_in_flight_bytes` of bodies held anywhere (budget.rs).
    let (tx, rx) = flume::bounded::<Vec<Envelope>>((config.batch_size * 2).div_ceil(SQS_BATCH));
    let budget = ByteBudget::new(config.max_in_flight_bytes, stats.clone());
    let batch_bytes =
        (config.max_in_flight_bytes / (2 * config.concurrency)).clamp(256 << 10, 4 << 20);
    let control = PollerControl::new(config.pollers, stats.clone());
    let pollers: Vec<_> = (0..control.tasks())
        .map(|n| {
            let poller = Poller {
                index: n,
                control: control.clone(),
                source: source.clone(),
                tx: tx.clone(),
                leases: leases.clone(),
                shutdown: shutdown.clone(),
                stats: stats.clone(),
                budget: budget.clone(),
                heartbeat: stats.loops().register(format!("poller-{n}")),
                visibility: config.visibility,
                drain: config.drain,
                grace: config.startup_timeout,
            };
            runtime.spawn(poller.run())
        })
        .collect();
    drop(tx); // the channel closes when the last poller ends

    let failure: Arc<Mutex<Option<Error>>> = Arc::default();
    std::thread::scope(|scope| {
        for n in 0..config.concurrency {
            let name = format!("worker-{n}");
            let worker = Worker {
                rx: rx.clone(),
                leases: leases.clone(),
                stages: &stages,
                postgres: &config.postgres,
                batch_size: config.batch_size,
                batch_bytes,
                linger: config.linger,
                shutdown: shutdown.clone(),
                stats: stats.clone(),
                heartbeat: stats.loops().register(name.clone()),
            };
            let failure = failure.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(name.clone())
                .spawn_scoped(scope, move || {
                    // A panic is a bug; it must not leave the others running with its batch
                    // held for ever: the host stops (exit 1) and what it held comes back.
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| worker.run()))
                        .unwrap_or_else(|panic| Err(Error::Internal(format!("{name} panicked: {}", panic_text(&*panic)))));
                    if let Err(e) = result {
                        error!(error = %e, "worker stopped; its uncommitted messages return to the queue");
                        shutdown.trigger();
                        failure.lock().expect("failure lock").get_or_insert(e);
                    }
                })
                .expect("spawn worker thread");
        }
        drop(rx); // once the workers are gone, a poller's send fails instead of waiting forever
    });
    for poller in pollers {
        let result = match runtime.block_on(poller) {
            Ok(result) => result,
            Err(e) => Err(Error::Internal(format!("a poller failed: {e}"))),
        };
        if let Err(e) = result {
            failure.lock().expect("failure lock").get_or_insert(e);
        }
    }
    // Every handle gone: the lease task finishes the deletes of committed batches, then ends.
    drop(leases);
    if let Err(e) = runtime.block_on(lease_task.finish()) {
        failure.lock().expect("failure lock").get_or_insert(e);
    }
    progress.finish();
    let summary = Summary { stats: stats.clone(), elapsed: started.elapsed() };
    let failure = failure.lock().expect("failure lock").take();
    failure.map_or(Ok(summary), Err)
}

/// A panic's message, if it has one (`panic!` with a string or a format).
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// `--metrics-addr`: the endpoints, and the readiness probe, which keeps the start-up check's
/// PostgreSQL connection.
fn start_endpoints(
    runtime: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    stats: &Stats,
    shutdown: &Shutdown,
    mut postgres: PostgresSink,
    sqs: SqsSource,
    stuck_after: Duration,
) -> Result<()> {
    let readiness = Arc::new(Readiness::default());
    serve::start(runtime, addr, stats.clone(), readiness.clone(), shutdown.clone(), stuck_after)?;
    let handle = runtime.handle().clone();
    readiness.probe_every(
        READINESS_PERIOD,
        shutdown.clone(),
        move || postgres.ping().is_ok(),
        move || {
            let depth =
                async { tokio::time::timeout(READINESS_PERIOD * 2, sqs.approximate_depth()).await };
            matches!(handle.block_on(depth), Ok(Ok(_)))
        },
    );
    Ok(())
}
