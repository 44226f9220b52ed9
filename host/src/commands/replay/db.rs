//! The replay's connection, opened again after an outage: a call that fails in a way that heals
//! is retried with capped backoff on a new connection (which takes the replay lock again), for
//! at most [`PATIENCE`]; then the failure is the replay's (exit 4).

use std::time::{Duration, Instant};

use super::error::ReplayError;
use crate::error::Result;
use crate::events::{event, Event};
use crate::retry::Backoff;
use crate::sink::{Opened, PgKind, PostgresConfig, PostgresError, Replay};

/// How long an unavailable PostgreSQL is waited for, from the first failure of a call.
const PATIENCE: Duration = Duration::from_secs(120);

pub(super) struct Database<'a> {
    config: &'a PostgresConfig,
    columns: Vec<String>,
    fingerprints: Vec<(String, String)>,
    session: Option<Box<Replay>>,
}

impl<'a> Database<'a> {
    pub(super) fn open(
        config: &'a PostgresConfig,
        columns: Vec<String>,
        fingerprints: Vec<(String, String)>,
    ) -> Result<Self> {
        let mut db = Database { config, columns, fingerprints, session: None };
        db.call(|_| Ok(()))??;
        Ok(db)
    }

    /// Runs `f` on the session, connecting first if needed. Transient failures are retried;
    /// a refusal is handed back as it is (for the caller to isolate); anything else is the
    /// replay's error.
    pub(super) fn call<T>(
        &mut self,
        mut f: impl FnMut(&Replay) -> Result<T, PostgresError>,
    ) -> Result<Result<T, PostgresError>> {
        let mut backoff = Backoff::new();
        let mut since: Option<Instant> = None;
        loop {
            let result = match &self.session {
                Some(session) => f(session),
                None => match Replay::open(self.config, &self.columns, &self.fingerprints) {
                    Ok(Opened::Ready(session)) => {
                        self.session = Some(session);
                        continue;
                    }
                    Ok(Opened::Busy) => return Err(ReplayError::Busy.into()),
                    Err(e) => Err(e),
                },
            };
            let e = match result {
                Ok(value) => return Ok(Ok(value)),
                Err(e) if e.is(PgKind::Refused) => return Ok(Err(e)),
                Err(e) if e.is(PgKind::Transient) => e,
                Err(e) => return Err(e.into()),
            };
            self.session = None;
            if since.get_or_insert_with(Instant::now).elapsed() > PATIENCE {
                return Err(e.into());
            }
            let wait = backoff.next_delay();
            let (error, retry_in_ms) = (crate::error::report(&e), wait.as_millis() as u64);
            event!(warn, Event::Retrying, retry = "postgres", retry_in_ms, %error, "PostgreSQL unavailable; the replay waits");
            std::thread::sleep(wait);
        }
    }
}
