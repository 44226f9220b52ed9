//! Waiting out an unavailable PostgreSQL inside a worker: the call is retried with capped
//! backoff for as long as it fails in a way that heals, and given up as soon as shutdown is
//! requested (what is not committed comes back to the queue; the host exits as after any
//! clean stop).

use crate::error::Result;
use crate::events::{event, Event};
use crate::health::Heartbeat;
use crate::metrics::{Metrics, Retry};
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::sink::{PgKind, PostgresError};

/// How a wait ended.
#[must_use]
pub(crate) enum Waited<T> {
    Done(T),
    /// Shutdown was requested while PostgreSQL was away.
    Shutdown,
}

/// What a worker needs to wait.
pub(crate) struct Patience<'a> {
    pub(crate) shutdown: &'a Shutdown,
    pub(crate) metrics: &'a Metrics,
    pub(crate) heartbeat: &'a Heartbeat,
}

impl Patience<'_> {
    /// Runs `f` until it does not fail with [`PgKind::Transient`]. Other errors are returned.
    pub(crate) fn wait<T>(
        &self,
        what: &'static str,
        mut f: impl FnMut() -> Result<T, PostgresError>,
    ) -> Result<Waited<T>> {
        let mut backoff = Backoff::new();
        loop {
            match f() {
                Err(e) if e.is(PgKind::Transient) && self.shutdown.requested() => {
                    return Ok(Waited::Shutdown)
                }
                Err(e) if e.is(PgKind::Transient) => {
                    let wait = backoff.next_delay();
                    self.metrics.retried(Retry::Postgres);
                    self.heartbeat.beat(); // waiting out an outage is not being stuck
                    let error = crate::cause::report(&e);
                    let retry_in_ms = wait.as_millis() as u64;
                    event!(warn, Event::Retrying, retry = Retry::Postgres.as_str(), retry_in_ms, %error, "{what}");
                    self.shutdown.sleep(wait);
                }
                other => return Ok(Waited::Done(other?)),
            }
        }
    }
}
