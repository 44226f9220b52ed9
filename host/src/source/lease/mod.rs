//! The lease-and-ack task. Every receipt the host holds is registered here the moment it is
//! received, and its visibility timeout is pushed out before it runs out, wherever the message
//! is (in the channel, in the module, in a batch waiting for PostgreSQL); committed receipts
//! are deleted here, and receipts the host gives up on are handed back. Workers only send
//! receipts down a channel: nothing blocks on SQS in them.
//!
//! Calls go out 10 receipts each (SQS' limit), concurrently (at most [`MAX_CALLS`] at once);
//! a call that fails is retried alone, and entries SQS refuses inside a successful answer are
//! logged and counted (`maskflow_sqs_entry_failures_total`), retried when SQS says the fault is
//! its own. A call refused for good (`AccessDenied`: a policy without `sqs:DeleteMessage` or
//! `sqs:ChangeMessageVisibility`) stops the host: every committed message would otherwise come
//! back, again and again, until it reached the dead-letter queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

mod calls;

use self::calls::{delete, visibility, CallResult};
use super::{SqsSource, SQS_BATCH};
use crate::events::{event, Event};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::source::SqsError;

/// SQS calls in flight at once.
const MAX_CALLS: usize = 16;

enum Command {
    Hold(Vec<String>),
    Ack(Vec<String>),
    Release(Vec<String>, Duration),
}

/// The handle pollers and workers use; cheap to clone. The task ends, after finishing its
/// calls, when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Leases {
    tx: mpsc::UnboundedSender<Command>,
}

impl Leases {
    /// Starts the task on the current tokio runtime. A call refused for good triggers
    /// `shutdown`, and [`LeaseTask::finish`] returns why.
    pub(crate) fn start(
        source: SqsSource,
        visibility: Duration,
        metrics: Metrics,
        shutdown: Shutdown,
    ) -> (Leases, LeaseTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            source,
            visibility,
            metrics,
            shutdown,
            limit: Arc::new(Semaphore::new(MAX_CALLS)),
        };
        (Leases { tx }, LeaseTask(tokio::spawn(task.run(rx))))
    }

    /// Just received: keep these hidden until acked or released.
    pub(crate) fn hold(&self, receipts: Vec<String>) {
        self.send(Command::Hold(receipts));
    }

    /// Committed: delete these from the queue.
    pub(crate) fn ack(&self, receipts: Vec<String>) {
        self.send(Command::Ack(receipts));
    }

    /// Not committed, and not to be held any longer: visible again to any consumer `after`.
    pub(crate) fn release(&self, receipts: Vec<String>, after: Duration) {
        self.send(Command::Release(receipts, after));
    }

    fn send(&self, command: Command) {
        // The task outlives every handle (it ends only when all are dropped), so this cannot
        // fail; if it ever did, the messages would simply come back.
        let _ = self.tx.send(command);
    }
}

/// The running task; wait for it after dropping every [`Leases`] handle.
pub(crate) struct LeaseTask(JoinHandle<Result<(), SqsError>>);

impl LeaseTask {
    /// Waits for the last calls: the refusal that stopped the host, if the task saw one (the
    /// outer error: the task itself panicked).
    pub(crate) async fn finish(self) -> Result<Result<(), SqsError>, tokio::task::JoinError> {
        self.0.await
    }
}

struct Task {
    source: SqsSource,
    visibility: Duration,
    metrics: Metrics,
    shutdown: Shutdown,
    limit: Arc<Semaphore>,
}

impl Task {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Command>) -> Result<(), SqsError> {
        let heartbeat = self.metrics.loops().register("lease task");
        // Receipt -> when its visibility was last set. Extending at half the timeout, checked
        // eight times per timeout, leaves at least 3/8 of it for the call to land.
        let mut held: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(
            (self.visibility / 8).clamp(Duration::from_millis(100), Duration::from_secs(5)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut calls: JoinSet<CallResult> = JoinSet::new();
        let mut fatal: Option<SqsError> = None;
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Hold(receipts)) => {
                        let now = Instant::now();
                        held.extend(receipts.into_iter().map(|r| (r, now)));
                    }
                    Some(Command::Ack(receipts)) => {
                        forget(&mut held, &receipts);
                        if fatal.is_none() {
                            self.spawn_chunks(&mut calls, receipts, Call::Delete);
                        }
                    }
                    Some(Command::Release(receipts, after)) => {
                        forget(&mut held, &receipts);
                        if fatal.is_none() {
                            self.spawn_chunks(&mut calls, receipts, Call::Visibility(after));
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    heartbeat.beat();
                    let now = Instant::now();
                    let due: Vec<String> = held
                        .iter_mut()
                        .filter(|(_, set)| now.duration_since(**set) >= self.visibility / 2)
                        .map(|(receipt, set)| {
                            *set = now;
                            receipt.clone()
                        })
                        .collect();
                    if !due.is_empty() && fatal.is_none() {
                        tracing::debug!(messages = due.len(), "extending visibility");
                        self.spawn_chunks(&mut calls, due, Call::Visibility(self.visibility));
                    }
                }
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    self.settle(done, &mut held, &mut fatal);
                }
            }
        }
        while let Some(done) = calls.join_next().await {
            self.settle(done, &mut held, &mut fatal);
        }
        // Whatever is still held was never committed (a stop in the middle of an outage, a
        // failed worker): visible again now, rather than when its timeout runs out.
        if !held.is_empty() && fatal.is_none() {
            let receipts: Vec<String> = held.into_keys().collect();
            tracing::debug!(messages = receipts.len(), "handing back uncommitted messages");
            self.spawn_chunks(&mut calls, receipts, Call::Visibility(Duration::ZERO));
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while calls.join_next().await.is_some() {}
            })
            .await;
        }
        fatal.map_or(Ok(()), Err)
    }

    fn spawn_chunks(&self, calls: &mut JoinSet<CallResult>, receipts: Vec<String>, call: Call) {
        for chunk in receipts.chunks(SQS_BATCH) {
            let (source, metrics, limit) =
                (self.source.clone(), self.metrics.clone(), self.limit.clone());
            let chunk = chunk.to_vec();
            calls.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("never closed");
                match call {
                    Call::Delete => delete(&source, chunk, &metrics).await,
                    Call::Visibility(timeout) => {
                        visibility(&source, chunk, timeout, &metrics).await
                    }
                }
            });
        }
    }

    fn settle(
        &self,
        done: std::result::Result<CallResult, tokio::task::JoinError>,
        held: &mut HashMap<String, Instant>,
        fatal: &mut Option<SqsError>,
    ) {
        let error = match done {
            Ok(Ok(refused)) => return forget(held, &refused),
            Ok(Err(e)) => e,
            // A call task that panicked: a bug, which stops the host like any panic.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if fatal.is_none() {
            let report = crate::cause::report(&error);
            let kind = crate::kind::Kind::Config.as_str(); // only a refusal for good gets here
            event!(error, Event::StageFailed, stage = "lease task", kind, error = %report, "stopping: SQS refuses the calls that delete or hide messages");
            self.shutdown.trigger();
            *fatal = Some(error);
        }
    }
}

#[derive(Clone, Copy)]
enum Call {
    Delete,
    /// Set the visibility timeout: to extend a lease, or to hand a message back.
    Visibility(Duration),
}

fn forget(held: &mut HashMap<String, Instant>, receipts: &[String]) {
    for receipt in receipts {
        held.remove(receipt);
    }
}
