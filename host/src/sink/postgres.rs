//! The PostgreSQL sink: a session (one connection and its prepared statements), opened on
//! first use and dropped when it failed in a way that leaves its state unknown. The commit
//! protocol itself is in `commit.rs`.

use std::time::Instant;

use tokio_postgres::Statement;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::commit::commit;
use super::connection::Connection;
use super::{schema, tls, CommitStats, Item, PostgresConfig, SinkError, Timeouts};

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

/// A connection with the statements the commit uses, prepared once.
pub(super) struct Session {
    pub conn: Connection,
    pub claim_all: Statement,
    pub claim_new: Statement,
    pub copy_rows: String,
    pub insert_rejections: Statement,
}

impl PostgresSink {
    /// A sink for rows with these `columns` (the module's output); connects on first use.
    pub fn new(config: &PostgresConfig, columns: Vec<String>) -> Result<Self, SinkError> {
        let table = &config.table;
        if !table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(SinkError::Fatal(format!(
                "--table `{table}`: use lower-case letters, digits and _"
            )));
        }
        if columns.is_empty() {
            return Err(SinkError::Fatal("the module declares no output columns".into()));
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
    pub fn connect(&mut self) -> Result<(), SinkError> {
        if self.session.is_none() {
            let conn = self.open()?;
            self.session = Some(self.statements(conn)?);
        }
        Ok(())
    }

    /// Whether PostgreSQL answers (`/readyz`): `SELECT 1` within the connect budget on this
    /// sink's connection, opened if needed; a failure drops it.
    pub fn ping(&mut self) -> Result<(), SinkError> {
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
    ) -> Result<(), SinkError> {
        self.session = None;
        let left = deadline.saturating_duration_since(Instant::now());
        let conn = self.open_within(self.timeouts.connect.min(left))?;
        let deadline = deadline.min(Instant::now() + self.timeouts.commit);
        schema::prepare(&conn, deadline, self.schema.as_deref(), &self.table, &self.columns)?;
        schema::check_keys(&conn, deadline, key_fingerprints)?;
        self.session = Some(self.statements(conn)?);
        Ok(())
    }

    /// Writes a batch in one transaction, exactly once however often it is called (ids already
    /// in the ledger are skipped; ids another transaction holds are left out and named in
    /// [`CommitStats::blocked`]). After [`SinkError::Transient`] the connection is dropped and
    /// the next call reconnects.
    pub fn commit(&mut self, items: &[Item]) -> Result<CommitStats, SinkError> {
        self.connect()?;
        let timeouts = self.timeouts;
        self.with_session(|s| commit(s, items, &timeouts))
    }

    /// The outcomes of the last `n` messages committed by any host, newest first (`row`,
    /// `rejected`, or a host reason code such as `sink_refused`): what the fleet has been
    /// doing, for deciding whether a refusal is one bad row or a table refusing everything.
    pub fn recent_outcomes(&mut self, n: i64) -> Result<Vec<String>, SinkError> {
        self.connect()?;
        let deadline = Instant::now() + self.timeouts.commit;
        self.with_session(|s| {
            let rows = s.conn.wait(
                deadline,
                s.conn.client().query(
                    "SELECT outcome FROM maskflow_ledger ORDER BY processed_at DESC LIMIT $1",
                    &[&n],
                ),
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Runs `f` on the session; a transient failure drops the session, any other failure
    /// rolls back whatever transaction `f` left open (and drops the session if that fails).
    fn with_session<T>(
        &mut self,
        f: impl FnOnce(&Session) -> Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        let session = self.session.as_ref().expect("connected by the caller");
        let result = f(session);
        match &result {
            Err(SinkError::Transient(_)) => self.session = None,
            Err(_) if session.conn.rollback().is_err() => self.session = None,
            _ => {}
        }
        result
    }

    fn open(&self) -> Result<Connection, SinkError> {
        self.open_within(self.timeouts.connect)
    }

    fn open_within(&self, budget: std::time::Duration) -> Result<Connection, SinkError> {
        let conn = Connection::open(&self.config, &self.tls, &self.endpoint, budget)?;
        if let Some(schema) = &self.schema {
            // Quoted, so it can be set before CREATE SCHEMA has run.
            let deadline = Instant::now() + budget;
            conn.batch(deadline, &format!("SET search_path TO \"{schema}\""))?;
        }
        Ok(conn)
    }

    fn statements(&self, conn: Connection) -> Result<Session, SinkError> {
        let deadline = Instant::now() + self.timeouts.connect;
        let table = &self.table;
        let names = self.columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        // A rejection already recorded (a redelivery after its ledger entry was pruned) is
        // the same message: keeping the first record is exactly once.
        let insert_rejections = format!(
            "INSERT INTO {table}_rejected (message_id, reason, message, encrypted_body)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
             ON CONFLICT (message_id) DO NOTHING"
        );
        let claim_all = "INSERT INTO maskflow_ledger (message_id, outcome) SELECT * FROM unnest($1::text[], $2::text[])";
        let claim_new =
            format!("{claim_all} ON CONFLICT (message_id) DO NOTHING RETURNING message_id");
        let prepare = |sql: &str| conn.wait(deadline, conn.client().prepare(sql));
        Ok(Session {
            claim_all: prepare(claim_all)?,
            claim_new: prepare(&claim_new)?,
            insert_rejections: prepare(&insert_rejections)?,
            copy_rows: format!("COPY {table} ({names}) FROM STDIN"),
            conn,
        })
    }
}

/// `host:port` of the first host (never the password).
pub(super) fn endpoint(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
        _ => "localhost".into(),
    };
    format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432))
}

/// Opens a connection for a one-off command (`prune`, `keys`, `rekey`), named `name` in
/// `pg_stat_activity`, with `search_path` set to the configured schema.
pub(super) fn open_for_command(
    config: &PostgresConfig,
    name: &str,
) -> Result<Connection, SinkError> {
    let mut client = config.client.clone();
    client.application_name(name);
    let endpoint = endpoint(&config.client);
    let conn = Connection::open(
        &client,
        &tls::connector(&config.tls)?,
        &endpoint,
        config.timeouts.connect,
    )?;
    if let Some(schema) = &config.schema {
        conn.batch(
            Instant::now() + config.timeouts.connect,
            &format!("SET search_path TO \"{schema}\""),
        )?;
    }
    Ok(conn)
}
