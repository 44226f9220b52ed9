//! The PostgreSQL sink: a session (one connection and its prepared statements), opened on
//! first use and dropped when it failed in a way that leaves its state unknown. The commit
//! protocol itself is in `commit.rs`.

use std::time::Instant;

use tokio_postgres_rustls::MakeRustlsConnect;

use super::commit::{commit, commit_guarded, Guard, Session};
use super::connection::{endpoint, Connection};
use super::{schema, tls, CommitStats, Item, PgKind, PostgresConfig, PostgresError, Timeouts};

pub struct PostgresSink {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    schema: Option<String>,
    table: String,
    columns: Vec<String>,
    timeouts: Timeouts,
    endpoint: String,
    session: Option<Session>,
}

impl PostgresSink {
    /// A sink for rows with these `columns` (the module's output); connects on first use.
    pub fn new(config: &PostgresConfig, columns: Vec<String>) -> Result<Self, PostgresError> {
        let table = &config.table;
        if !table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(PostgresError::fatal(format!(
                "--table `{table}`: use lower-case letters, digits and _"
            )));
        }
        if columns.is_empty() {
            return Err(PostgresError::fatal("the module declares no output columns"));
        }
        Ok(PostgresSink {
            endpoint: endpoint(&config.client),
            config: config.client.clone(),
            tls: tls::connector(&config.tls)?,
            schema: config.schema.clone(),
            table: table.clone(),
            columns,
            timeouts: config.timeouts,
            session: None,
        })
    }

    /// Where this sink connects, for messages (never the password).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Connects (if not connected) and prepares the statements. Tables are not touched here:
    /// that is [`PostgresSink::prepare`]'s job, at start.
    pub fn connect(&mut self) -> Result<(), PostgresError> {
        if self.session.is_none() {
            let conn = self.open()?;
            self.session =
                Some(Session::prepare(conn, &self.table, &self.columns, self.timeouts.connect)?);
        }
        Ok(())
    }

    /// Whether PostgreSQL answers (`/readyz`): `SELECT 1` within the connect budget on this
    /// sink's connection, opened if needed; a failure drops it.
    pub fn ping(&mut self) -> Result<(), PostgresError> {
        self.connect()?;
        let deadline = Instant::now() + self.timeouts.connect;
        self.with_session(|s| s.conn.batch(deadline, "SELECT 1"))
    }

    /// The start-up check, all of it by `deadline`: connects, creates what is missing, checks
    /// the tables' shape, and records or compares the keys' fingerprints (`(key id,
    /// fingerprint)` pairs).
    pub fn prepare(
        &mut self,
        key_fingerprints: &[(String, String)],
        deadline: Instant,
    ) -> Result<(), PostgresError> {
        self.session = None;
        let left = deadline.saturating_duration_since(Instant::now());
        let conn = self.open_within(self.timeouts.connect.min(left))?;
        let deadline = deadline.min(Instant::now() + self.timeouts.commit);
        schema::prepare(&conn, deadline, self.schema.as_deref(), &self.table, &self.columns)?;
        schema::check_keys(&conn, deadline, key_fingerprints)?;
        self.session =
            Some(Session::prepare(conn, &self.table, &self.columns, self.timeouts.connect)?);
        Ok(())
    }

    /// Writes a batch in one transaction, exactly once however often it is called (ids already
    /// in the ledger are skipped; ids another transaction holds are left out and named in
    /// [`CommitStats::blocked`]). After [`PostgresError::Transient`] the connection is dropped and
    /// the next call reconnects.
    pub fn commit(&mut self, items: &[Item]) -> Result<CommitStats, PostgresError> {
        self.connect()?;
        let timeouts = self.timeouts;
        self.with_session(|s| commit(s, items, &timeouts))
    }

    /// [`PostgresSink::commit`], if `guard` allows it given the fleet's latest outcomes (read
    /// in the same transaction, serialised with every other guarded commit of the database);
    /// `None`, with nothing written, if it does not.
    pub(crate) fn commit_guarded(
        &mut self,
        items: &[Item],
        guard: &Guard,
    ) -> Result<Option<CommitStats>, PostgresError> {
        self.connect()?;
        let timeouts = self.timeouts;
        self.with_session(|s| commit_guarded(s, items, &timeouts, guard))
    }

    /// Runs `f` on the session; a transient failure drops the session, any other failure
    /// rolls back whatever transaction `f` left open (and drops the session if that fails).
    fn with_session<T>(
        &mut self,
        f: impl FnOnce(&Session) -> Result<T, PostgresError>,
    ) -> Result<T, PostgresError> {
        let session = self.session.as_ref().expect("connected by the caller");
        let result = f(session);
        match &result {
            Err(e) if e.is(PgKind::Transient) => self.session = None,
            Err(_) if session.conn.rollback().is_err() => self.session = None,
            _ => {}
        }
        result
    }

    fn open(&self) -> Result<Connection, PostgresError> {
        self.open_within(self.timeouts.connect)
    }

    fn open_within(&self, budget: std::time::Duration) -> Result<Connection, PostgresError> {
        let conn = Connection::open(&self.config, &self.tls, &self.endpoint, budget)?;
        if let Some(schema) = &self.schema {
            // Quoted, so it can be set before CREATE SCHEMA has run.
            let deadline = Instant::now() + budget;
            conn.batch(deadline, &format!("SET search_path TO \"{schema}\""))?;
        }
        Ok(conn)
    }
}
