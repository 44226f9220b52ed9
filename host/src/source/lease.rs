//! The lease-and-ack task. Every receipt the host holds is registered here the moment it is
//! received, and its visibility timeout is pushed out before it runs out, wherever the message
//! is (in the channel, in the module, in a batch waiting for PostgreSQL); committed receipts
//! are deleted here. Workers only send receipts down a channel: nothing blocks on SQS in them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use super::SqsSource;
use crate::retry::Backoff;
use crate::stats::{Phase, Retry, Stats};

/// Deletes are retried this often before the messages are left to come back (the ledger
/// recognises them then).
const DELETE_ATTEMPTS: u32 = 5;

enum Command {
    Hold(Vec<String>),
    Ack(Vec<String>),
}

/// The handle pollers and workers use; cheap to clone. The task ends, after finishing its
/// deletes, when every handle is dropped.
#[derive(Clone)]
pub struct Leases {
    tx: mpsc::UnboundedSender<Command>,
}

impl Leases {
    /// Starts the task on the current tokio runtime.
    pub fn start(source: SqsSource, visibility: Duration, stats: Stats) -> (Leases, LeaseTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(run(source, rx, visibility, stats));
        (Leases { tx }, LeaseTask(handle))
    }

    /// Just received: keep these hidden until acked or released.
    pub fn hold(&self, receipts: Vec<String>) {
        self.send(Command::Hold(receipts));
    }

    /// Committed: delete these from the queue.
    pub fn ack(&self, receipts: Vec<String>) {
        self.send(Command::Ack(receipts));
    }

    fn send(&self, command: Command) {
        // The task outlives every handle (it ends only when all are dropped), so this cannot
        // fail; if it ever did, the messages would simply come back.
        let _ = self.tx.send(command);
    }
}

/// The running task; wait for it after dropping every [`Leases`] handle.
pub struct LeaseTask(JoinHandle<()>);

impl LeaseTask {
    pub async fn finish(self) {
        if let Err(e) = self.0.await {
            warn!(error = %e, "the lease task failed; unacknowledged messages will be redelivered");
        }
    }
}

async fn run(
    source: SqsSource,
    mut rx: mpsc::UnboundedReceiver<Command>,
    visibility: Duration,
    stats: Stats,
) {
    // Receipt -> when its visibility was last set. Extending at half the timeout, checked
    // eight times per timeout, leaves at least 3/8 of it for the call to land.
    let mut held: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(
        (visibility / 8).clamp(Duration::from_millis(100), Duration::from_secs(5)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut calls = JoinSet::new();
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Hold(receipts)) => {
                    let now = Instant::now();
                    held.extend(receipts.into_iter().map(|r| (r, now)));
                }
                Some(Command::Ack(receipts)) => {
                    forget(&mut held, &receipts);
                    calls.spawn(delete(source.clone(), receipts, stats.clone()));
                }
                None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let due: Vec<String> = held
                    .iter_mut()
                    .filter(|(_, set)| now.duration_since(**set) >= visibility / 2)
                    .map(|(receipt, set)| {
                        *set = now;
                        receipt.clone()
                    })
                    .collect();
                if !due.is_empty() {
                    calls.spawn(extend(source.clone(), due, visibility, stats.clone()));
                }
            }
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
        }
    }
    while calls.join_next().await.is_some() {}
}

fn forget(held: &mut HashMap<String, Instant>, receipts: &[String]) {
    for receipt in receipts {
        held.remove(receipt);
    }
}

async fn extend(source: SqsSource, receipts: Vec<String>, visibility: Duration, stats: Stats) {
    debug!(messages = receipts.len(), "extending visibility");
    if let Err(e) = source.extend_visibility(&receipts, visibility).await {
        // Sent again at the next half-timeout if the host still holds them.
        stats.add_retry(Retry::Extend);
        warn!(error = %e, "cannot extend visibility; messages may be redelivered (the ledger keeps them exactly once)");
    }
}

/// Deletes a committed batch. A delete that fails for good is harmless: the messages come
/// back, and the ledger turns them into no-ops.
async fn delete(source: SqsSource, receipts: Vec<String>, stats: Stats) {
    let mut backoff = Backoff::new();
    for attempt in 1..=DELETE_ATTEMPTS {
        let started = Instant::now();
        let result = source.delete(&receipts).await;
        stats.add_busy(Phase::Delete, started.elapsed());
        match result {
            Ok(refused) => {
                stats.add_deleted(receipts.len() - refused);
                debug!(messages = receipts.len() - refused, "batch deleted");
                return;
            }
            Err(e) if attempt < DELETE_ATTEMPTS => {
                stats.add_retry(Retry::Delete);
                warn!(error = %e, "delete failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                warn!(error = %e, messages = receipts.len(), "committed messages not deleted; they will be redelivered and skipped")
            }
        }
    }
}
