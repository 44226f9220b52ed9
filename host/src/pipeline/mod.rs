//! `maskflow run`: data flows one way, `source -> runtime -> sink`.
//!
//! ```text
//! pollers (async, 1-16: pollers.rs) --Vec<Held>--> channel --> workers (threads): module stage -> commit -> ack
//!     |  hold receipts                                                              |
//!     +------------------------> lease task (async): extend visibility, delete <----+
//! ```
//!
//! Pollers are async tasks (the AWS SDK is async); workers are threads, each with its own wasm
//! instance and PostgreSQL connection (the `postgres` crate blocks), and the only place that
//! decides what happens to a batch ([`worker`]). A message is deleted from SQS only after the
//! transaction that recorded it committed, so every failure ends in redelivery, and the ledger
//! turns a redelivery into a no-op.

mod assemble;
mod batch;
mod budget;
mod outage;
mod pollers;
mod receive;
mod refusals;
mod reload;
mod stage;
mod startup;
mod streak;
mod worker;

pub(crate) use self::budget::default_max_in_flight_bytes;
pub(crate) use self::pollers::PollerBounds;
pub use self::stage::ModuleStage;
pub(crate) use self::stage::{ModuleConfig, PreparedModule};

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use self::batch::Held;
use self::budget::ByteBudget;
use self::pollers::PollerControl;
use self::receive::Poller;
use self::reload::{Reload, Reloader};
use self::worker::Worker;
use crate::error::{Error, Result};
use crate::events::{event, Event};
use crate::keys::KeyConfig;
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::serve::{self, Readiness};
use crate::shutdown::Shutdown;
use crate::sink::{PostgresConfig, PostgresSink};
use crate::source::{Leases, SqsConfig, SqsSource, SQS_BATCH};

/// How often `/readyz`'s answer is refreshed (a kubelet asks every 10 s by default).
const READINESS_PERIOD: Duration = Duration::from_secs(2);

/// Everything `run` needs (built by the CLI layer).
pub(crate) struct RunConfig {
    pub(crate) sqs: SqsConfig,
    pub(crate) postgres: PostgresConfig,
    /// The module and its keys (their fingerprints are checked against `maskflow_keys` at start).
    pub(crate) module: ModuleConfig,
    /// Where the keys came from: read again on SIGHUP.
    pub(crate) keys: KeyConfig,
    /// Budget for reaching SQS and PostgreSQL at start.
    pub(crate) startup_timeout: Duration,
    /// Workers: each with its own wasm instance and PostgreSQL connection.
    pub(crate) concurrency: usize,
    /// How many SQS receives may be out at once (adaptive unless pinned by `--pollers`).
    pub(crate) pollers: PollerBounds,
    /// Messages per transaction.
    pub(crate) batch_size: usize,
    /// How long a worker waits to fill a batch.
    pub(crate) linger: Duration,
    /// SQS visibility timeout of received messages; extended while the host holds them.
    pub(crate) visibility: Duration,
    /// Exit once the queue is empty.
    pub(crate) drain: bool,
    /// Bytes of message bodies held at once (received, not yet committed).
    pub(crate) max_in_flight_bytes: usize,
    /// `/healthz` answers 503 when any loop has not gone round for this long.
    pub(crate) stuck_after: Duration,
    /// Where to serve /metrics, /healthz and /readyz, if anywhere.
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// Period of the stats log line when stderr is not a terminal (zero: none).
    pub(crate) stats_interval: Duration,
}

/// How a run ended.
pub(crate) struct Summary {
    pub(crate) metrics: Metrics,
    pub(crate) elapsed: Duration,
}

pub(crate) fn run(config: RunConfig) -> Result<Summary> {
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
    let module = Arc::new(PreparedModule::prepare(config.module)?);
    let shutdown =
        Shutdown::install(&runtime).map_err(Error::io("cannot install the SIGTERM handler"))?;
    let metrics = Metrics::default().with_columns(module.columns());
    // SIGHUP reads the key source again; from here on it no longer ends the process.
    let reload = Reload {
        keys: config.keys,
        postgres: config.postgres.clone(),
        module: module.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    };
    let reloader = Reloader::start(&runtime, reload)?;
    let deadline = Instant::now() + config.startup_timeout;
    let checked =
        startup::check_sqs(&runtime, &config.sqs, deadline, &shutdown).and_then(|source| {
            let mut probe = PostgresSink::new(&config.postgres, module.columns().to_vec())?;
            let fingerprints = module.keyed().fingerprints.clone();
            startup::check_postgres(&mut probe, &fingerprints, deadline, &shutdown)?;
            Ok((source, probe))
        });
    let (source, probe) = match checked {
        // A signal while waiting for a service to answer is a clean stop: nothing was received.
        Err(e) if e.is_transient() && shutdown.requested() => {
            reloader.stop();
            return Ok(Summary { metrics, elapsed: Duration::ZERO });
        }
        Err(e) => {
            reloader.stop();
            return Err(e);
        }
        Ok(checked) => checked,
    };
    match config.metrics_addr {
        Some(addr) => start_endpoints(
            &runtime,
            addr,
            &metrics,
            &shutdown,
            probe,
            source.clone(),
            config.stuck_after,
        )?,
        None => drop(probe), // the workers open their own connections
    }
    event!(
        info,
        Event::Started,
        queue = source.queue_url(),
        concurrency = config.concurrency,
        batch_size = config.batch_size,
        drain = config.drain,
        "maskflow running"
    );

    let progress = Progress::start(metrics.clone(), config.stats_interval);
    let started = Instant::now();
    let (leases, lease_task) = {
        let _guard = runtime.enter();
        Leases::start(source.clone(), config.visibility, metrics.clone(), shutdown.clone())
    };
    // Each item is one receive (up to 10 messages): room for about two batches, and at most
    // `max_in_flight_bytes` of bodies held anywhere (budget.rs).
    let (tx, rx) = flume::bounded::<Vec<Held>>((config.batch_size * 2).div_ceil(SQS_BATCH));
    let budget = ByteBudget::new(config.max_in_flight_bytes, metrics.clone());
    let batch_bytes =
        (config.max_in_flight_bytes / (2 * config.concurrency)).clamp(256 << 10, 4 << 20);
    let control = PollerControl::new(config.pollers, metrics.clone());
    let pollers: Vec<_> = (0..control.tasks())
        .map(|n| {
            let poller = Poller {
                index: n,
                control: control.clone(),
                source: source.clone(),
                tx: tx.clone(),
                leases: leases.clone(),
                shutdown: shutdown.clone(),
                metrics: metrics.clone(),
                budget: budget.clone(),
                heartbeat: metrics.loops().register(format!("poller-{n}")),
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
                module: &module,
                postgres: &config.postgres,
                batch_size: config.batch_size,
                batch_bytes,
                linger: config.linger,
                shutdown: shutdown.clone(),
                metrics: metrics.clone(),
                heartbeat: metrics.loops().register(name.clone()),
            };
            let failure = failure.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(name.clone())
                .spawn_scoped(scope, move || {
                    // A panic is a bug; it must not leave the others running with its batch
                    // held for ever: the host stops (exit 1) and what it held comes back.
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| worker.run()))
                        .unwrap_or_else(|panic| {
                            let message = panic_text(&*panic).to_owned();
                            Err(Error::Panicked { what: name.clone(), message })
                        });
                    if let Err(e) = result {
                        let (kind, error) = (e.kind().as_str(), e.report());
                        event!(error, Event::StageFailed, stage = name, kind, %error, "worker stopped; its uncommitted messages return to the queue");
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
            Ok(result) => result.map_err(Error::from),
            Err(source) => Err(Error::Task { what: "a poller", source }),
        };
        if let Err(e) = result {
            failure.lock().expect("failure lock").get_or_insert(e);
        }
    }
    reloader.stop();
    // Every handle gone: the lease task finishes the deletes of committed batches, then ends.
    drop(leases);
    let leases_ended = match runtime.block_on(lease_task.finish()) {
        Ok(refused) => refused.map_err(Error::from),
        Err(source) => Err(Error::Task { what: "the lease task", source }),
    };
    if let Err(e) = leases_ended {
        failure.lock().expect("failure lock").get_or_insert(e);
    }
    progress.finish();
    let summary = Summary { metrics: metrics.clone(), elapsed: started.elapsed() };
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
    metrics: &Metrics,
    shutdown: &Shutdown,
    mut postgres: PostgresSink,
    sqs: SqsSource,
    stuck_after: Duration,
) -> Result<()> {
    let readiness = Arc::new(Readiness::default());
    let (registry, loops) = (metrics.registry(), metrics.loops().clone());
    serve::start(runtime, addr, registry, loops, readiness.clone(), shutdown.clone(), stuck_after)?;
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
