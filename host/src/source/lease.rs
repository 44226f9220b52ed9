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
use tracing::{debug, warn};

use super::sqs::EntryFailure;
use super::{SqsSource, SQS_BATCH};
use crate::error::{Error, Result};
use crate::pipeline::shutdown::Shutdown;
use crate::retry::Backoff;
use crate::stats::{Phase, Retry, Stats};

/// Deletes are retried this often before the messages are left to come back (the ledger
/// recognises them then).
const DELETE_ATTEMPTS: u32 = 5;
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
pub struct Leases {
    tx: mpsc::UnboundedSender<Command>,
}

impl Leases {
    /// Starts the task on the current tokio runtime. A call refused for good triggers
    /// `shutdown`, and [`LeaseTask::finish`] returns why.
    pub fn start(
        source: SqsSource,
        visibility: Duration,
        stats: Stats,
        shutdown: Shutdown,
    ) -> (Leases, LeaseTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            source,
            visibility,
            stats,
            shutdown,
            limit: Arc::new(Semaphore::new(MAX_CALLS)),
        };
        (Leases { tx }, LeaseTask(tokio::spawn(task.run(rx))))
    }

    /// Just received: keep these hidden until acked or released.
    pub fn hold(&self, receipts: Vec<String>) {
        self.send(Command::Hold(receipts));
    }

    /// Committed: delete these from the queue.
    pub fn ack(&self, receipts: Vec<String>) {
        self.send(Command::Ack(receipts));
    }

    /// Not committed, and not to be held any longer: visible again to any consumer `after`.
    pub fn release(&self, receipts: Vec<String>, after: Duration) {
        self.send(Command::Release(receipts, after));
    }

    fn send(&self, command: Command) {
        // The task outlives every handle (it ends only when all are dropped), so this cannot
        // fail; if it ever did, the messages would simply come back.
        let _ = self.tx.send(command);
    }
}

/// The running task; wait for it after dropping every [`Leases`] handle.
pub struct LeaseTask(JoinHandle<Result<()>>);

impl LeaseTask {
    /// Waits for the last calls; the error that stopped the host, if the task saw one.
    pub async fn finish(self) -> Result<()> {
        match self.0.await {
            Ok(result) => result,
            Err(e) => Err(Error::Internal(format!("the lease task failed: {e}"))),
        }
    }
}

struct Task {
    source: SqsSource,
    visibility: Duration,
    stats: Stats,
    shutdown: Shutdown,
    limit: Arc<Semaphore>,
}

/// What a finished call asks of the task: receipts to stop holding.
type CallResult = Result<Vec<String>>;

impl Task {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Command>) -> Result<()> {
        let heartbeat = self.stats.loops().register("lease task");
        // Receipt -> when its visibility was last set. Extending at half the timeout, checked
        // eight times per timeout, leaves at least 3/8 of it for the call to land.
        let mut held: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(
            (self.visibility / 8).clamp(Duration::from_millis(100), Duration::from_secs(5)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut calls: JoinSet<CallResult> = JoinSet::new();
        let mut fatal: Option<Error> = None;
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
                        debug!(messages = due.len(), "extending visibility");
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
            debug!(messages = receipts.len(), "handing back uncommitted messages");
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
            let (source, stats, limit) =
                (self.source.clone(), self.stats.clone(), self.limit.clone());
            let chunk = chunk.to_vec();
            calls.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("never closed");
                match call {
                    Call::Delete => delete(&source, chunk, &stats).await,
                    Call::Visibility(timeout) => visibility(&source, chunk, timeout, &stats).await,
                }
            });
        }
    }

    fn settle(
        &self,
        done: std::result::Result<CallResult, tokio::task::JoinError>,
        held: &mut HashMap<String, Instant>,
        fatal: &mut Option<Error>,
    ) {
        let error = match done {
            Ok(Ok(refused)) => return forget(held, &refused),
            Ok(Err(e)) => e,
            Err(e) => Error::Internal(format!("an SQS call task failed: {e}")),
        };
        if fatal.is_none() {
            warn!(error = %error, "stopping: SQS refuses the calls that delete or hide messages");
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

/// Deletes one chunk of committed messages, retrying what fails. Giving up is harmless: the
/// messages come back and the ledger turns them into no-ops. Only a refusal for good is an
/// error, and it stops the host.
async fn delete(source: &SqsSource, mut receipts: Vec<String>, stats: &Stats) -> CallResult {
    let mut backoff = Backoff::new();
    for attempt in 1..=DELETE_ATTEMPTS {
        let started = Instant::now();
        let result = source.delete_batch(&receipts).await;
        stats.add_busy(Phase::Delete, started.elapsed());
        match result {
            Ok(failures) => {
                stats.add_deleted(receipts.len() - failures.len());
                debug!(messages = receipts.len() - failures.len(), "batch deleted");
                receipts = retryable(failures, "delete", stats);
                if receipts.is_empty() {
                    return Ok(Vec::new());
                }
            }
            Err(e) if !e.is_transient() => return Err(refused_for_good(e)),
            Err(e) => warn!(error = %e, "delete failed; retrying"),
        }
        if attempt < DELETE_ATTEMPTS {
            stats.add_retry(Retry::Delete);
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    warn!(
        messages = receipts.len(),
        "committed messages not deleted; they will be redelivered and skipped"
    );
    Ok(Vec::new())
}

/// Sets one chunk's visibility timeout. A failed call is not retried here: an extension is
/// sent again at the next half-timeout, and a message handed back comes back at its timeout
/// anyway. Entries SQS refuses for good are no longer held (the message comes back; the ledger
/// keeps it exactly once).
async fn visibility(
    source: &SqsSource,
    receipts: Vec<String>,
    timeout: Duration,
    stats: &Stats,
) -> CallResult {
    match source.change_visibility_batch(&receipts, timeout).await {
        Ok(failures) => {
            let for_good = failures.iter().filter(|f| f.sender_fault).map(|f| f.receipt.clone());
            let for_good = for_good.collect();
            retryable(failures, "change_visibility", stats);
            Ok(for_good)
        }
        Err(e) if !e.is_transient() => Err(refused_for_good(e)),
        Err(e) => {
            stats.add_retry(Retry::Extend);
            warn!(error = %e, "cannot change visibility; messages may be redelivered (the ledger keeps them exactly once)");
            Ok(Vec::new())
        }
    }
}

/// Logs and counts refused entries; returns the receipts worth sending again (SQS' own fault).
fn retryable(failures: Vec<EntryFailure>, call: &str, stats: &Stats) -> Vec<String> {
    failures
        .into_iter()
        .filter_map(|f| {
            stats.add_entry_failure(call, &f.code);
            warn!(
                call,
                code = %f.code,
                sender_fault = f.sender_fault,
                "SQS refused an entry of a batch call; the message may be redelivered (the ledger keeps it exactly once)"
            );
            (!f.sender_fault).then_some(f.receipt)
        })
        .collect()
}

fn refused_for_good(e: Error) -> Error {
    Error::Config(format!(
        "{e}. Without sqs:DeleteMessage and sqs:ChangeMessageVisibility every message the host \
         commits comes back until it reaches the dead-letter queue: fix the IAM policy, then restart"
    ))
}
