//! The SQS calls of the lease task: deletes of committed messages (retried), visibility
//! changes (extensions and hand-backs, not retried: the next tick sends them again), and what
//! SQS refuses for good (`AccessDenied`), which stops the host.

use std::time::{Duration, Instant};

use crate::events::{event, Event};
use crate::metrics::{BatchCall, Metrics, Phase, Retry};
use crate::retry::Backoff;
use crate::source::{EntryFailure, SqsError, SqsSource};

/// Deletes are retried this often before the messages are left to come back (the ledger
/// recognises them then).
const DELETE_ATTEMPTS: u32 = 5;

/// What a finished call asks of the task: receipts to stop holding.
pub(super) type CallResult = Result<Vec<String>, SqsError>;

/// Deletes one chunk of committed messages, retrying what fails. Giving up is harmless: the
/// messages come back and the ledger turns them into no-ops. Only a refusal for good is an
/// error, and it stops the host.
pub(super) async fn delete(
    source: &SqsSource,
    mut receipts: Vec<String>,
    metrics: &Metrics,
) -> CallResult {
    let mut backoff = Backoff::new();
    for attempt in 1..=DELETE_ATTEMPTS {
        let started = Instant::now();
        let result = source.delete_batch(&receipts).await;
        metrics.add_busy(Phase::Delete, started.elapsed());
        match result {
            Ok(failures) => {
                let deleted = receipts.len() - failures.len();
                metrics.messages_deleted.inc_by(deleted as u64);
                event!(debug, Event::BatchDeleted, messages = deleted, "batch deleted");
                receipts = retryable(failures, BatchCall::Delete, metrics);
                if receipts.is_empty() {
                    return Ok(Vec::new());
                }
            }
            Err(e) if e.is_fatal() => return Err(refused_for_good(e)),
            Err(e) => {
                let error = crate::cause::report(&e);
                event!(warn, Event::Retrying, retry = Retry::Delete.as_str(), %error, "delete failed; retrying");
            }
        }
        if attempt < DELETE_ATTEMPTS {
            metrics.retried(Retry::Delete);
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    event!(
        warn,
        Event::DeleteAbandoned,
        messages = receipts.len(),
        "committed messages not deleted; they will be redelivered and skipped"
    );
    Ok(Vec::new())
}

/// Sets one chunk's visibility timeout. A failed call is not retried here: an extension is
/// sent again at the next half-timeout, and a message handed back comes back at its timeout
/// anyway. Entries SQS refuses for good are no longer held (the message comes back; the ledger
/// keeps it exactly once).
pub(super) async fn visibility(
    source: &SqsSource,
    receipts: Vec<String>,
    timeout: Duration,
    metrics: &Metrics,
) -> CallResult {
    match source.change_visibility_batch(&receipts, timeout).await {
        Ok(failures) => {
            let for_good = failures.iter().filter(|f| f.sender_fault).map(|f| f.receipt.clone());
            let for_good = for_good.collect();
            retryable(failures, BatchCall::ChangeVisibility, metrics);
            Ok(for_good)
        }
        Err(e) if e.is_fatal() => Err(refused_for_good(e)),
        Err(e) => {
            metrics.retried(Retry::Extend);
            let error = crate::cause::report(&e);
            event!(warn, Event::Retrying, retry = Retry::Extend.as_str(), %error, "cannot change visibility; messages may be redelivered (the ledger keeps them exactly once)");
            Ok(Vec::new())
        }
    }
}

/// Logs and counts refused entries; returns the receipts worth sending again (SQS' own fault).
fn retryable(failures: Vec<EntryFailure>, call: BatchCall, metrics: &Metrics) -> Vec<String> {
    failures
        .into_iter()
        .filter_map(|f| {
            metrics.entry_failed(call, &f.code);
            event!(
                warn,
                Event::EntryRefused,
                call = call.as_str(),
                code = %f.code,
                sender_fault = f.sender_fault,
                "SQS refused an entry of a batch call; the message may be redelivered (the ledger keeps it exactly once)"
            );
            (!f.sender_fault).then_some(f.receipt)
        })
        .collect()
}

fn refused_for_good(e: SqsError) -> SqsError {
    e.with_hint(
        "Without sqs:DeleteMessage and sqs:ChangeMessageVisibility every message the host \
         commits comes back until it reaches the dead-letter queue: fix the IAM policy, then restart",
    )
}
