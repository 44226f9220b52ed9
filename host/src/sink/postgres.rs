//! The PostgreSQL sink. Per batch, one transaction:
//!   1. claim the SQS message ids in `maskflow_ledger`: a plain INSERT of all of them, the
//!      common case; if one is already there (a redelivery), roll back and claim with
//!      `ON CONFLICT DO NOTHING RETURNING` instead, which names the new ones (the plain INSERT
//!      claims twice as fast: speculative insertion and RETURNING cost as much as the index);
//!   2. write the rows of the newly claimed ids only with `COPY ... FROM STDIN` (text format:
//!      PostgreSQL's own input functions type the values, and refuse what does not fit; about
//!      twice as fast as one `INSERT ... SELECT FROM unnest(...)`, see docs/benchmarks.md);
//!   3. insert the rejections of the newly claimed ids into `user_logins_rejected`;
//!   4. commit.
//!
//! Only then may the messages be deleted from SQS. A crash before the commit leaves nothing;
//! a crash after it leaves ids that the ledger recognises on redelivery.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use maskflow_transform::Outcome;
use postgres::error::SqlState;
use postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::classify::classify;
use super::copy::push_copy_line;
use super::{schema, tls, CommitStats, Item, PostgresConfig, SinkError};

pub struct PostgresSink {
    config: postgres::Config,
    tls: MakeRustlsConnect,
    schema: Option<String>,
    table: String,
    columns: Vec<String>,
    conn: Option<Connection>,
}

struct Connection {
    client: Client,
    claim_all: Statement,
    claim_new: Statement,
    copy_rows: String,
    insert_rejections: Statement,
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
        let mut client = config.client.clone();
        client.connect_timeout(Duration::from_secs(5)).application_name("maskflow");
        Ok(PostgresSink {
            config: client,
            tls: tls::connector(&config.tls)?,
            schema: config.schema.clone(),
            table: table.clone(),
            columns,
            conn: None,
        })
    }

    /// Where this sink connects, for messages (never the password).
    pub fn endpoint(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(name)) => name.clone(),
            _ => "localhost".into(),
        };
        format!("{host}:{}", self.config.get_ports().first().copied().unwrap_or(5432))
    }

    /// Connects (if not connected), creates the tables if missing and checks their shape.
    pub fn connect(&mut self) -> Result<(), SinkError> {
        if self.conn.is_none() {
            self.conn = Some(self.open(&[])?);
        }
        Ok(())
    }

    /// Whether PostgreSQL answers (`/readyz`): `SELECT 1` on this sink's connection, opened
    /// if needed; a failure drops it.
    pub fn ping(&mut self) -> Result<(), SinkError> {
        self.connect()?;
        let conn = self.conn.as_mut().expect("connected above");
        let answered = conn.client.simple_query("SELECT 1").map(drop).map_err(classify);
        if answered.is_err() {
            self.conn = None;
        }
        answered
    }

    /// The start-up check: connects, prepares the tables, and records or compares the keys'
    /// fingerprints (`(key id, fingerprint)` pairs).
    pub fn prepare(&mut self, key_fingerprints: &[(String, String)]) -> Result<(), SinkError> {
        self.conn = Some(self.open(key_fingerprints)?);
        Ok(())
    }

    fn open(&self, key_fingerprints: &[(String, String)]) -> Result<Connection, SinkError> {
        let mut client = self.config.connect(self.tls.clone()).map_err(classify)?;
        if let Some(schema) = &self.schema {
            // Quoted, so it can be set before CREATE SCHEMA has run.
            client.batch_execute(&format!("SET search_path TO \"{schema}\"")).map_err(classify)?;
        }
        let table = &self.table;
        let mut tx = client.transaction().map_err(classify)?;
        schema::prepare(&mut tx, self.schema.as_deref(), table, &self.columns)?;
        schema::check_keys(&mut tx, key_fingerprints)?;
        tx.commit().map_err(classify)?;
        let names = self.columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        let insert_rejections = format!(
            "INSERT INTO {table}_rejected (message_id, reason, message, encrypted_body)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
        );
        let claim_all = "INSERT INTO maskflow_ledger (message_id, outcome) SELECT * FROM unnest($1::text[], $2::text[])";
        let claim_new =
            format!("{claim_all} ON CONFLICT (message_id) DO NOTHING RETURNING message_id");
        Ok(Connection {
            claim_all: client.prepare(claim_all).map_err(classify)?,
            claim_new: client.prepare(&claim_new).map_err(classify)?,
            copy_rows: format!("COPY {table} ({names}) FROM STDIN"),
            insert_rejections: client.prepare(&insert_rejections).map_err(classify)?,
            client,
        })
    }

    /// Writes a batch in one transaction, exactly once however often it is called (ids already
    /// in the ledger are skipped). On [`SinkError::Unavailable`] the connection is dropped and
    /// the next call reconnects.
    pub fn commit(&mut self, items: &[Item]) -> Result<CommitStats, SinkError> {
        self.connect()?;
        let conn = self.conn.as_mut().expect("connected above");
        let result = commit(conn, items);
        if matches!(result, Err(SinkError::Unavailable(_))) {
            self.conn = None;
        }
        result
    }
}

fn commit(conn: &mut Connection, items: &[Item]) -> Result<CommitStats, SinkError> {
    let ids: Vec<&str> = items.iter().map(|i| i.id).collect();
    let kinds: Vec<&str> =
        items.iter().map(|i| if i.outcome.is_row() { "row" } else { "rejected" }).collect();

    let mut tx = conn.client.transaction().map_err(classify)?;
    // `None`: every id was new. Another host holding one of them uncommitted makes the plain
    // INSERT wait for its outcome, so a unique violation is final.
    let claimed: Option<HashSet<String>> = match tx.execute(&conn.claim_all, &[&ids, &kinds]) {
        Ok(_) => None,
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.rollback().map_err(classify)?;
            tx = conn.client.transaction().map_err(classify)?;
            Some(
                tx.query(&conn.claim_new, &[&ids, &kinds])
                    .map_err(classify)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            )
        }
        Err(e) => return Err(classify(e)),
    };
    let fresh = items.iter().filter(|i| claimed.as_ref().is_none_or(|c| c.contains(i.id)));

    let mut copy = Vec::new();
    let mut rows = 0;
    let (mut r_ids, mut r_reasons, mut r_messages, mut r_bodies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in fresh {
        match item.outcome {
            Outcome::Row(values) => {
                push_copy_line(&mut copy, values);
                rows += 1;
            }
            Outcome::Rejected { reason, message, encrypted_body } => {
                r_ids.push(item.id);
                r_reasons.push(reason.as_str());
                r_messages.push(message.as_str());
                r_bodies.push(encrypted_body.as_str());
            }
        }
    }
    let mut rejected_by_reason = std::collections::BTreeMap::new();
    for reason in &r_reasons {
        *rejected_by_reason.entry(reason.to_string()).or_default() += 1;
    }
    let stats = CommitStats {
        rows,
        rejected: r_ids.len() as u64,
        rejected_by_reason,
        duplicates: claimed.as_ref().map_or(0, |c| items.len() - c.len()) as u64,
    };
    if stats.rows > 0 {
        let mut writer = tx.copy_in(&conn.copy_rows).map_err(classify)?;
        writer.write_all(&copy).map_err(|e| SinkError::Unavailable(format!("COPY: {e}")))?;
        writer.finish().map_err(classify)?;
    }
    if stats.rejected > 0 {
        tx.execute(&conn.insert_rejections, &[&r_ids, &r_reasons, &r_messages, &r_bodies])
            .map_err(classify)?;
    }
    tx.commit().map_err(classify)?;
    Ok(stats)
}
