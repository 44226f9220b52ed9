//! Before the first receive: everything a bad setting could break is checked, within a
//! bounded budget (`--startup-timeout`). A setting to fix fails at once; what does not answer
//! within the budget is fatal, naming the endpoint. Either way no message has been received,
//! so a bad deployment never raises receive counts towards a dead-letter queue.

use std::time::Instant;

use tracing::info;

use crate::error::{Error, Result};
use crate::events::{event, Event};
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::sink::PostgresSink;
use crate::source::{SqsConfig, SqsError, SqsSource};

/// Retries transient failures of `attempt` until `deadline`; then it is [`Error::Unreachable`].
pub(crate) fn within_budget<T>(
    what: &str,
    deadline: Instant,
    shutdown: &Shutdown,
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut backoff = Backoff::new();
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(e) if e.is_transient() && !shutdown.requested() => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Unreachable { service: what.to_owned(), last: Box::new(e) });
                }
                let wait = backoff.next_delay().min(left);
                let (error, retry_in_ms) = (e.report(), wait.as_millis() as u64);
                event!(warn, Event::StartupWaiting, service = what, retry_in_ms, %error, "{what} unavailable at start; waiting");
                std::thread::sleep(wait);
            }
            Err(e) => return Err(e),
        }
    }
}

/// SQS: the queue resolves and answers GetQueueAttributes.
pub(crate) fn check_sqs(
    runtime: &tokio::runtime::Runtime,
    config: &SqsConfig,
    deadline: Instant,
    shutdown: &Shutdown,
) -> Result<SqsSource> {
    let source = within_budget("SQS", deadline, shutdown, || {
        runtime
            .block_on(by(deadline, "the queue's URL", SqsSource::connect(config, false)))
            .map_err(Error::from)
    })?;
    let redrive = within_budget(source.endpoint(), deadline, shutdown, || {
        runtime
            .block_on(by(deadline, "the queue's attributes", source.check()))
            .map_err(Error::from)
    })?;
    match redrive {
        Some(policy) => info!(redrive_policy = %policy, "the queue has a dead-letter queue"),
        None => info!("the queue has no redrive policy: a message that never commits is retried until it expires"),
    }
    Ok(source)
}

/// `call`, cut off at `deadline` as a transient failure: an endpoint that accepts the
/// connection and never answers must not outlast the budget.
async fn by<T>(
    deadline: Instant,
    what: &str,
    call: impl std::future::Future<Output = Result<T, SqsError>>,
) -> Result<T, SqsError> {
    match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(result) => result,
        Err(_) => {
            Err(SqsError::transient(format!("{what}: no complete answer before the deadline")))
        }
    }
}

/// PostgreSQL: reachable, tables ready and of the right shape, keys' fingerprints known.
pub(crate) fn check_postgres(
    sink: &mut PostgresSink,
    key_fingerprints: &[(String, String)],
    deadline: Instant,
    shutdown: &Shutdown,
) -> Result<()> {
    let what = format!("PostgreSQL at {}", sink.endpoint());
    within_budget(&what, deadline, shutdown, || {
        sink.prepare(key_fingerprints, deadline).map_err(Error::from)
    })
}
