//! Pollers: async tasks that long-poll SQS, hand every receipt to the lease task at once,
//! reserve the receive's bytes in the memory budget, and send the messages down the bounded
//! channel to the workers, one receive (up to 10) per send: a hand-off wakes a worker thread,
//! so one per message cost more CPU than the message.

use std::time::{Duration, Instant};

use super::batch::Held;
use super::budget::ByteBudget;
use super::pollers::PollerControl;
use crate::events::{event, Event};
use crate::health::Heartbeat;
use crate::metrics::{Metrics, Phase, Retry};
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::source::{Leases, SqsError, SqsSource};

pub(crate) struct Poller {
    /// Which poller: it receives while `control` admits its index.
    pub(crate) index: usize,
    pub(crate) control: PollerControl,
    pub(crate) source: SqsSource,
    pub(crate) tx: flume::Sender<Vec<Held>>,
    pub(crate) leases: Leases,
    pub(crate) shutdown: Shutdown,
    pub(crate) metrics: Metrics,
    pub(crate) budget: ByteBudget,
    pub(crate) heartbeat: Heartbeat,
    pub(crate) visibility: Duration,
    /// Stop once the queue is empty.
    pub(crate) drain: bool,
    /// How long an error that waiting should not heal (permissions, a deleted queue) may
    /// last while running before it stops the host: IAM changes take a while to propagate.
    pub(crate) grace: Duration,
}

impl Poller {
    /// Ends when shutdown is requested, the queue is drained (`--drain`), or on an error that
    /// waiting cannot heal (permissions revoked, the queue deleted), which stops the host.
    pub(crate) async fn run(self) -> Result<(), SqsError> {
        // In drain mode a short wait tells "empty" quickly; otherwise long polling keeps calls cheap.
        let wait = Duration::from_secs(if self.drain { 1 } else { 20 });
        let mut backoff = Backoff::new();
        let mut failing_since: Option<Instant> = None;
        while !self.shutdown.requested() {
            self.heartbeat.beat();
            if !self.control.admits(self.index) {
                let admitted = tokio::select! {
                    admitted = self.heartbeat.while_waiting(self.control.wait_turn(self.index)) => admitted,
                    _ = self.shutdown.wait() => false,
                };
                if !admitted {
                    break;
                }
                continue;
            }
            // A long poll is a wait with a bound (the SDK's operation timeout), not a hang: it
            // beats. What the heartbeat catches here is an async thread that stopped running.
            let receive = std::pin::pin!(self.heartbeat.while_waiting(async {
                let started = Instant::now();
                let r = self.source.receive(wait, self.visibility).await;
                self.metrics.add_busy(Phase::Receive, started.elapsed());
                r
            }));
            let mut receive = receive;
            let received = tokio::select! {
                r = receive.as_mut() => r,
                _ = self.shutdown.wait() => {
                    // SQS answers at once when messages are visible, so a receive still out a
                    // second after the stop found none. What one brings meanwhile is handed
                    // back now, not after the visibility timeout.
                    if let Ok(Ok(batch)) = tokio::time::timeout(Duration::from_secs(1), receive).await {
                        let receipts: Vec<String> = batch.into_iter().map(|m| m.receipt).collect();
                        if !receipts.is_empty() {
                            self.leases.release(receipts, Duration::ZERO);
                        }
                    }
                    break;
                }
            };
            match received {
                // Empty means nothing visible and nothing in flight anywhere (ours are done by
                // the time the channel is; another host's may still fail and come back).
                Ok(batch) if batch.is_empty() && self.drain => {
                    self.control.after_receive(0, true);
                    match self.source.approximate_depth().await {
                        Ok((0, 0)) => {
                            self.control.finish(); // parked pollers too
                            break;
                        }
                        Ok(_) => continue,
                        Err(e) => {
                            let error = crate::cause::report(&e);
                            event!(warn, Event::Retrying, retry = Retry::Receive.as_str(), %error, "cannot read the queue depth");
                        }
                    }
                }
                Ok(batch) => {
                    backoff = Backoff::new();
                    failing_since = None;
                    self.metrics.messages_received.inc_by(batch.len() as u64);
                    event!(debug, Event::BatchReceived, messages = batch.len(), "batch received");
                    let again = batch.iter().filter(|m| m.receive_count > 1).count();
                    if again > 0 {
                        self.metrics.messages_received_again.inc_by(again as u64);
                        let most = batch.iter().map(|m| m.receive_count).max().unwrap_or(0);
                        event!(
                            info,
                            Event::Redelivered,
                            messages = again,
                            max_receive_count = most,
                            "SQS delivered messages again (the ledger skips any already committed)"
                        );
                    }
                    self.leases.hold(batch.iter().map(|m| m.receipt.clone()).collect());
                    self.control.after_receive(batch.len(), !self.tx.is_full());
                    // A long poll that found nothing wakes no worker.
                    if batch.is_empty() {
                        continue;
                    }
                    // Waiting for room (the budget, the channel) is backpressure, not a hang.
                    let sizes: Vec<usize> = batch.iter().map(|m| m.body.len()).collect();
                    let shares = self.heartbeat.while_waiting(self.budget.reserve(&sizes)).await;
                    let held: Vec<Held> = batch
                        .into_iter()
                        .zip(shares)
                        .map(|(message, share)| Held { message, share: Some(share) })
                        .collect();
                    if self.heartbeat.while_waiting(self.tx.send_async(held)).await.is_err() {
                        return Ok(()); // workers are gone (fatal error); what we hold returns to the queue
                    }
                }
                Err(e)
                    if e.is_fatal()
                        && failing_since.get_or_insert_with(Instant::now).elapsed()
                            > self.grace =>
                {
                    self.shutdown.trigger();
                    return Err(e);
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    self.metrics.retried(Retry::Receive);
                    let (error, retry_in_ms) = (crate::cause::report(&e), wait.as_millis() as u64);
                    event!(warn, Event::Retrying, retry = Retry::Receive.as_str(), retry_in_ms, %error, "SQS receive failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.wait() => break,
                    }
                }
            }
        }
        Ok(())
    }
}
