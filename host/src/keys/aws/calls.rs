//! AWS calls of a key source, all within one deadline (`--startup-timeout`): each attempt is cut
//! at the deadline, trouble that heals (throttling, timeouts) is retried with backoff until
//! then, and a setting to fix fails at once. Every failed attempt is a `key_source_failed`
//! event; past the deadline it is `Error::Unreachable` (exit 4).

use std::future::Future;
use std::time::Instant;

use super::error::{AwsKeyError, AwsService};
use crate::error::{Error, Result};
use crate::events::{event, Event};
use crate::keys::KeyError;
use crate::retry::Backoff;

/// A small runtime of its own (the SDK is async; key sources are read before the run's
/// runtime exists, by one-off commands, and on SIGHUP from a thread of their own).
/// What a failed call was for: `KeyError::Aws` naming the key source, or `KeyError::Wrap`.
pub(crate) type Wrap<'a> = &'a dyn Fn(AwsKeyError) -> KeyError;

pub(crate) struct Calls {
    runtime: tokio::runtime::Runtime,
    deadline: Instant,
}

impl Calls {
    pub(crate) fn new(deadline: Instant) -> Result<Calls> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("cannot start a runtime for the key source's AWS calls"))?;
        Ok(Calls { runtime, deadline })
    }

    /// `future` to completion, or `None` at the deadline.
    pub(crate) fn by_deadline<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        let deadline = self.deadline.into();
        self.runtime.block_on(async { tokio::time::timeout_at(deadline, future).await.ok() })
    }

    /// Calls `attempt` until it succeeds, fails with a setting to fix, or the deadline passes.
    /// `wrap` says what the call was for (`KeyError::Aws` naming the key source, or the
    /// wrapping of a new key); `target` names what was asked for in the exit-4 message.
    pub(crate) fn retry<T, F, Fut>(
        &self,
        wrap: Wrap<'_>,
        service: AwsService,
        call: &'static str,
        target: &str,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsKeyError>>,
    {
        let mut backoff = Backoff::new();
        // The last answer the service gave: what an exit 4 reports, rather than the deadline
        // cutting the attempt after it.
        let mut answered: Option<AwsKeyError> = None;
        loop {
            let error = match self.by_deadline(attempt()) {
                Some(Ok(value)) => return Ok(value),
                Some(Err(e)) => e,
                None => AwsKeyError::no_answer(service, call, target.to_owned()),
            };
            // A retry only if the wait leaves time for it: past the budget, the last answer
            // (throttling, say) is the one reported, not a doomed attempt's.
            let left = self.deadline.saturating_duration_since(Instant::now());
            let wait = backoff.next_delay();
            let retry_in = (error.is_transient() && wait < left).then_some(wait);
            event!(
                warn,
                Event::KeySourceFailed,
                source = service.as_str(),
                call,
                code = error.code(),
                needs = error.needs(),
                transient = error.is_transient(),
                retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
                error = %crate::error::report(&error),
                "{} {call} failed{}",
                service.name(),
                if retry_in.is_some() { "; retrying" } else { "" }
            );
            match retry_in {
                Some(wait) => {
                    if error.code().is_some() {
                        answered = Some(error);
                    }
                    std::thread::sleep(wait)
                }
                None if error.is_transient() => {
                    // Waited out: what heals is given the whole budget (exit 4 past it).
                    std::thread::sleep(left);
                    let last = match (error.code(), answered) {
                        (None, Some(answered)) => answered,
                        _ => error,
                    };
                    return Err(Error::Unreachable {
                        service: format!("{} ({target})", service.name()),
                        last: Box::new(wrap(last).into()),
                    });
                }
                None => return Err(wrap(error).into()),
            }
        }
    }
}
