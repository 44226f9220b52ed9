//! `maskflow run`: SQS pollers -> batches -> wasm transform -> PostgreSQL -> delete from SQS.
//!
//! Pollers are async tasks (the AWS SDK is async); workers are threads, each with its own wasm
//! instance and PostgreSQL connection (the `postgres` crate blocks). A message is deleted from
//! SQS only after the transaction that recorded it committed, so every failure ends in
//! redelivery, and the ledger turns a redelivery into a no-op.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maskflow_transform::{Message, Transformer};
use tokio::runtime::Handle;
use tracing::{error, info, warn};

use crate::error::{Error, Result};
use crate::progress::{Progress, Stage, Stats};
use crate::retry::Backoff;
use crate::sink::{PostgresArgs, PostgresSink, SinkItem};
use crate::source::{Received, SqsArgs, SqsSource};
use crate::transform::{ModuleArgs, TransformStage, WasmModule};

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sqs: SqsArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub module: ModuleArgs,
    /// Parallel pipelines: each is one SQS poller and one worker (wasm instance + connection).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Messages per transaction (several SQS receives are grouped into one batch).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// How long a worker waits to fill a batch before writing what it has.
    #[arg(long, default_value_t = 100)]
    pub linger_ms: u64,
    /// SQS visibility timeout of received messages; extended while a batch is still being written.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=43_200))]
    pub visibility_timeout_secs: u64,
    /// Exit once the queue is empty, instead of running until SIGINT/SIGTERM.
    #[arg(long)]
    pub drain: bool,
}

/// How a run ended.
pub struct Summary {
    pub stats: Stats,
    pub elapsed: Duration,
}

pub fn run(args: RunArgs) -> Result<Summary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    let (config, config_json) = args.module.transform_config()?;
    let module = WasmModule::compile(&args.module.module_bytes()?, args.module.limits(), &config_json)?;
    let columns = module.instantiate()?.columns().to_vec(); // fail fast on a bad module or config

    let shutdown = Shutdown::install(&runtime)?;
    let source = runtime.block_on(connect_source(&args.sqs, &shutdown))?;
    info!(queue = source.queue_url(), concurrency = args.concurrency, batch_size = args.batch_size, drain = args.drain, "maskflow running");

    let stats = Stats::default();
    let progress = Progress::start(stats.clone());
    let started = Instant::now();
    let (tx, rx) = flume::bounded::<Received>(args.batch_size as usize * 2);
    let pollers: Vec<_> = (0..args.concurrency)
        .map(|_| runtime.spawn(poll(source.clone(), tx.clone(), args.clone(), shutdown.clone(), stats.clone())))
        .collect();
    drop(tx); // the channel closes when the last poller ends

    let failure: Arc<Mutex<Option<Error>>> = Arc::default();
    std::thread::scope(|scope| {
        for n in 0..args.concurrency {
            let worker = Worker {
                rx: rx.clone(),
                source: source.clone(),
                runtime: runtime.handle().clone(),
                args: &args,
                shutdown: shutdown.clone(),
                stats: stats.clone(),
            };
            let (module, config, columns, failure) = (module.clone(), config.clone(), columns.clone(), failure.clone());
            std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn_scoped(scope, move || {
                    let result = Transformer::new(config).map_err(Error::from).and_then(|sealer| worker.run(module, sealer, columns));
                    if let Err(e) = result {
                        error!(error = %e, "worker stopped; its uncommitted messages return to the queue");
                        worker.shutdown.trigger();
                        failure.lock().expect("failure lock").get_or_insert(e);
                    }
                })
                .expect("spawn worker thread");
        }
    });
    for poller in pollers {
        let _ = runtime.block_on(poller);
    }
    progress.finish();
    let summary = Summary { stats: stats.clone(), elapsed: started.elapsed() };
    let failure = failure.lock().expect("failure lock").take();
    failure.map_or(Ok(summary), Err)
}

/// Resolves the queue, waiting out an SQS that is not up yet.
async fn connect_source(args: &SqsArgs, shutdown: &Shutdown) -> Result<SqsSource> {
    let mut backoff = Backoff::new();
    loop {
        match SqsSource::connect(args, false).await {
            Ok(source) => return Ok(source),
            Err(e) if !shutdown.requested() => {
                let wait = backoff.next_delay();
                warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "SQS unavailable; waiting");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn poll(source: SqsSource, tx: flume::Sender<Received>, args: RunArgs, shutdown: Shutdown, stats: Stats) {
    // In drain mode a short wait tells "empty" quickly; otherwise long polling keeps calls cheap.
    let wait = Duration::from_secs(if args.drain { 1 } else { 20 });
    let visibility = Duration::from_secs(args.visibility_timeout_secs);
    let mut backoff = Backoff::new();
    while !shutdown.requested() {
        let received = tokio::select! {
            r = async {
                let started = Instant::now();
                let r = source.receive(wait, visibility).await;
                stats.add_busy(Stage::Receive, started.elapsed());
                r
            } => r,
            _ = shutdown.wait() => break, // an abandoned receive's messages reappear after the timeout
        };
        match received {
            // Empty means nothing visible and nothing in flight anywhere (ours are done by the
            // time the channel is; another host's may still fail and come back).
            Ok(batch) if batch.is_empty() && args.drain => match source.approximate_depth().await {
                Ok((0, 0)) => break,
                Ok(_) => continue,
                Err(e) => warn!(error = %e, "cannot read the queue depth"),
            },
            Ok(batch) => {
                backoff = Backoff::new();
                stats.add_received(batch.len());
                for message in batch {
                    if tx.send_async(message).await.is_err() {
                        return; // workers are gone (fatal error); what we hold returns to the queue
                    }
                }
            }
            Err(e) => {
                let wait = backoff.next_delay();
                warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "SQS receive failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait() => break,
                }
            }
        }
    }
}

struct Worker<'a> {
    rx: flume::Receiver<Received>,
    source: SqsSource,
    runtime: Handle,
    args: &'a RunArgs,
    shutdown: Shutdown,
    stats: Stats,
}

impl Worker<'_> {
    fn run(&self, module: WasmModule, sealer: Transformer, columns: Vec<String>) -> Result<()> {
        let mut stage = TransformStage::new(module, sealer)?;
        let give_up = || self.shutdown.requested();
        let mut sink = PostgresSink::connect(&self.args.postgres, columns, &give_up)?;
        while let Some(batch) = self.next_batch() {
            self.process(batch, &mut stage, &mut sink)?;
        }
        Ok(())
    }

    /// Up to `--batch-size` messages, waiting at most `--linger-ms` after the first; `None`
    /// once the pollers have stopped and the channel is drained.
    fn next_batch(&self) -> Option<Batch> {
        let first = loop {
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(m) => break m,
                Err(flume::RecvTimeoutError::Timeout) => continue,
                Err(flume::RecvTimeoutError::Disconnected) => return None,
            }
        };
        let mut batch = Batch::new(first);
        let deadline = Instant::now() + Duration::from_millis(self.args.linger_ms);
        while batch.len() < self.args.batch_size as usize {
            match self.rx.recv_deadline(deadline) {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    fn process(&self, batch: Batch, stage: &mut TransformStage, sink: &mut PostgresSink) -> Result<()> {
        self.stats.add_in_flight(batch.len() as i64);
        let messages: Vec<Message> =
            batch.messages.iter().map(|m| Message { id: &m.id, body: m.body.as_bytes(), sent_timestamp_ms: m.sent_timestamp_ms }).collect();
        let outcomes = self.stats.timed(Stage::Transform, || stage.run(&messages))?;
        let items: Vec<SinkItem> =
            messages.iter().zip(&outcomes).map(|(m, outcome)| SinkItem { id: m.id, body: m.body, outcome }).collect();

        let visibility = Duration::from_secs(self.args.visibility_timeout_secs);
        let mut last_extended = batch.received_at;
        let mut keep_alive = || {
            if last_extended.elapsed() > visibility / 2 {
                let receipts = batch.receipts();
                match self.runtime.block_on(self.source.extend_visibility(&receipts, visibility)) {
                    Ok(()) => last_extended = Instant::now(),
                    Err(e) => warn!(error = %e, "cannot extend visibility; the batch may be redelivered (the ledger keeps it exactly once)"),
                }
            }
        };
        let give_up = || self.shutdown.requested();
        let written = self.stats.timed(Stage::Write, || sink.write(&items, &|body| stage.encrypt_body(body), &mut keep_alive, &give_up))?;
        self.stats.add_written(written);
        crash_point("after-commit");
        self.stats.timed(Stage::Delete, || self.delete(&batch));
        self.stats.add_in_flight(-(batch.len() as i64));
        Ok(())
    }

    /// Deletes a committed batch. A delete that fails for good is harmless: the messages come
    /// back, and the ledger turns them into no-ops.
    fn delete(&self, batch: &Batch) {
        let receipts = batch.receipts();
        let mut backoff = Backoff::new();
        for attempt in 1..=5 {
            match self.runtime.block_on(self.source.delete(&receipts)) {
                Ok(refused) => {
                    self.stats.add_deleted(receipts.len() - refused);
                    return;
                }
                Err(e) if attempt < 5 && !self.shutdown.requested() => {
                    warn!(error = %e, "delete failed; retrying");
                    std::thread::sleep(backoff.next_delay());
                }
                Err(e) => {
                    warn!(error = %e, messages = receipts.len(), "committed messages not deleted; they will be redelivered and skipped");
                    return;
                }
            }
        }
    }
}

/// Test hook: `MASKFLOW_CRASH_AT=after-commit` aborts the process at that point, the worst
/// moment for exactly-once (committed, not deleted). Used by the redelivery tests.
fn crash_point(name: &str) {
    static CRASH_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if CRASH_AT.get_or_init(|| std::env::var("MASKFLOW_CRASH_AT").ok()).as_deref() == Some(name) {
        warn!("MASKFLOW_CRASH_AT={name}: aborting on purpose");
        std::process::abort();
    }
}

/// Messages of one transaction. A message received twice (redelivered while still queued
/// here) is kept once, with every receipt handle for the delete.
struct Batch {
    messages: Vec<Received>,
    extra_receipts: Vec<String>,
    index: HashMap<String, usize>,
    received_at: Instant,
}

impl Batch {
    fn new(first: Received) -> Self {
        let mut batch = Batch { messages: Vec::new(), extra_receipts: Vec::new(), index: HashMap::new(), received_at: Instant::now() };
        batch.push(first);
        batch
    }

    fn push(&mut self, m: Received) {
        if self.index.contains_key(&m.id) {
            self.extra_receipts.push(m.receipt);
        } else {
            self.index.insert(m.id.clone(), self.messages.len());
            self.messages.push(m);
        }
    }

    fn len(&self) -> usize {
        self.messages.len() + self.extra_receipts.len()
    }

    fn receipts(&self) -> Vec<&str> {
        self.messages.iter().map(|m| m.receipt.as_str()).chain(self.extra_receipts.iter().map(String::as_str)).collect()
    }
}

/// SIGINT/SIGTERM: stop receiving, finish and commit what is in flight, delete it, exit 0.
/// A second signal exits at once (nothing is lost: uncommitted messages are redelivered).
#[derive(Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Shutdown {
    fn install(runtime: &tokio::runtime::Runtime) -> Result<Self> {
        let shutdown = Shutdown { flag: Arc::default(), notify: Arc::default() };
        let on_signal = shutdown.clone();
        let _guard = runtime.enter();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Error::io("cannot install the SIGTERM handler"))?;
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
                info!("signal received: finishing the batches in flight, then exiting");
                on_signal.trigger();
            }
        });
        Ok(shutdown)
    }

    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    async fn wait(&self) {
        let notified = self.notify.notified();
        if !self.requested() {
            notified.await;
        }
    }
}
