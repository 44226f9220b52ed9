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
//! Only then does the caller delete the messages from SQS. A crash before the commit leaves
//! nothing; a crash after it leaves ids that the ledger recognises on redelivery.

use std::io::Write;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, NoTls, Statement};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::retry::Backoff;
use crate::transform::Outcome;

/// The target table, exactly as specified; created if missing, never altered.
const USER_LOGINS_DDL: &str = "CREATE TABLE IF NOT EXISTS user_logins(
    user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
    masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date)";
const LEDGER_DDL: &str = "CREATE TABLE IF NOT EXISTS maskflow_ledger(
    message_id text PRIMARY KEY, outcome text NOT NULL, processed_at timestamptz NOT NULL DEFAULT now())";
const REJECTED_DDL: &str = "CREATE TABLE IF NOT EXISTS {table}_rejected(
    message_id text PRIMARY KEY, reason text NOT NULL, message text NOT NULL,
    encrypted_body text NOT NULL, rejected_at timestamptz NOT NULL DEFAULT now())";

/// Reason code of a message PostgreSQL refused although the module accepted it.
pub const SINK_REFUSED: &str = "sink_refused";

#[derive(Debug, Clone, clap::Args)]
pub struct PostgresArgs {
    /// PostgreSQL connection (libpq URL or `key=value` string). Without it, the standard
    /// PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE variables are used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Target table; `user_logins` is created with its fixed DDL if missing.
    #[arg(long, default_value = "user_logins")]
    pub table: String,
}

impl PostgresArgs {
    fn config(&self) -> Result<postgres::Config> {
        let text = match &self.database_url {
            Some(url) => url.clone(),
            None => ["host", "port", "user", "password", "dbname"]
                .iter()
                .zip(["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"])
                .filter_map(|(key, var)| std::env::var(var).ok().map(|v| format!("{key}='{}'", v.replace('\'', "\\'"))))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let mut config: postgres::Config =
            text.parse().map_err(|e| Error::Usage(format!("invalid --database-url / DATABASE_URL: {e}")))?;
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_user().is_none() {
            config.user(&std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
        }
        config.connect_timeout(Duration::from_secs(5)).application_name("maskflow");
        Ok(config)
    }
}

/// One message for the sink: its SQS id, its body (for a `sink_refused` rejection) and outcome.
pub struct SinkItem<'a> {
    pub id: &'a str,
    pub body: &'a [u8],
    pub outcome: &'a Outcome,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub rows: u64,
    pub rejected: u64,
    /// Already in the ledger: redelivered messages, skipped.
    pub duplicates: u64,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.rejected += o.rejected;
        self.duplicates += o.duplicates;
    }
}

enum Failure {
    /// Connection lost, server starting or shutting down, serialization conflict: retry.
    Unavailable(String),
    /// PostgreSQL refused the data (SQLSTATE class 22 or 23): isolate the message.
    Refused(String),
    /// Anything else (a missing table, permissions): stop.
    Fatal(String),
}

pub struct PostgresSink {
    config: postgres::Config,
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
    /// Connects (retrying until `give_up` says so), creates the tables if missing and checks
    /// that `columns` (the module's output) exist in the target table.
    pub fn connect(args: &PostgresArgs, columns: Vec<String>, give_up: &dyn Fn() -> bool) -> Result<Self> {
        if !args.table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(Error::Usage(format!("--table `{}`: use lower-case letters, digits and _", args.table)));
        }
        if columns.is_empty() {
            return Err(Error::Module("the module declares no output columns".into()));
        }
        let mut sink = PostgresSink { config: args.config()?, table: args.table.clone(), columns, conn: None };
        sink.ensure_connected(give_up)?;
        Ok(sink)
    }

    fn ensure_connected(&mut self, give_up: &dyn Fn() -> bool) -> Result<&mut Connection> {
        let mut backoff = Backoff::new();
        while self.conn.is_none() {
            match self.open() {
                Ok(conn) => self.conn = Some(conn),
                Err(Failure::Unavailable(e)) if !give_up() => {
                    let wait = backoff.next_delay();
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "PostgreSQL unavailable; retrying");
                    std::thread::sleep(wait);
                }
                Err(Failure::Unavailable(e) | Failure::Refused(e) | Failure::Fatal(e)) => return Err(Error::Postgres(e)),
            }
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    fn open(&self) -> Result<Connection, Failure> {
        let mut client = self.config.connect(NoTls).map_err(classify)?;
        let table = &self.table;
        let mut tx = client.transaction().map_err(classify)?;
        // Two hosts starting at once must not race on CREATE TABLE.
        tx.batch_execute("SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock(hashtext('maskflow schema'))")
            .map_err(classify)?;
        if table == "user_logins" {
            tx.batch_execute(USER_LOGINS_DDL).map_err(classify)?;
        }
        tx.batch_execute(LEDGER_DDL).map_err(classify)?;
        tx.batch_execute(&REJECTED_DDL.replace("{table}", table)).map_err(classify)?;
        let existing: Vec<String> = tx
            .query(
                "SELECT a.attname::text FROM pg_attribute a
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table],
            )
            .map_err(classify)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.commit().map_err(classify)?;
        if existing.is_empty() {
            return Err(Failure::Fatal(format!("table `{table}` does not exist; create it or use --table user_logins")));
        }

        if let Some(name) = self.columns.iter().find(|name| !existing.contains(name)) {
            return Err(Failure::Fatal(format!("table `{table}` has no column `{name}`, which the module produces; check the mapping")));
        }
        let names = self.columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        let copy_rows = format!("COPY {table} ({names}) FROM STDIN");
        let insert_rejections = format!(
            "INSERT INTO {table}_rejected (message_id, reason, message, encrypted_body)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
        );
        let claim_all = "INSERT INTO maskflow_ledger (message_id, outcome) SELECT * FROM unnest($1::text[], $2::text[])";
        let claim_new = format!("{claim_all} ON CONFLICT (message_id) DO NOTHING RETURNING message_id");
        Ok(Connection {
            claim_all: client.prepare(claim_all).map_err(classify)?,
            claim_new: client.prepare(&claim_new).map_err(classify)?,
            copy_rows,
            insert_rejections: client.prepare(&insert_rejections).map_err(classify)?,
            client,
        })
    }

    /// Writes a batch exactly once, however often it is called. Retries while PostgreSQL is
    /// unavailable (calling `keep_alive` between tries, so SQS keeps the messages hidden),
    /// isolates messages PostgreSQL refuses (rejected as `sink_refused`, with `seal` encrypting
    /// their bodies), and gives up only when `give_up` says so or on a fatal error.
    pub fn write(
        &mut self,
        items: &[SinkItem],
        seal: &dyn Fn(&[u8]) -> String,
        keep_alive: &mut dyn FnMut(),
        give_up: &dyn Fn() -> bool,
    ) -> Result<WriteStats> {
        let mut backoff = Backoff::new();
        loop {
            match self.write_isolating(items, seal) {
                Ok(stats) => return Ok(stats),
                Err(Failure::Unavailable(e)) if !give_up() => {
                    self.conn = None;
                    let wait = backoff.next_delay();
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "PostgreSQL unavailable; batch not committed, retrying");
                    keep_alive();
                    std::thread::sleep(wait);
                    self.ensure_connected(give_up)?;
                }
                Err(Failure::Unavailable(e) | Failure::Refused(e) | Failure::Fatal(e)) => return Err(Error::Postgres(e)),
            }
        }
    }

    fn write_isolating(&mut self, items: &[SinkItem], seal: &dyn Fn(&[u8]) -> String) -> Result<WriteStats, Failure> {
        match self.write_once(items) {
            Err(Failure::Refused(_)) if items.len() > 1 => {
                let (left, right) = items.split_at(items.len() / 2);
                let mut stats = self.write_isolating(left, seal)?;
                stats += self.write_isolating(right, seal)?;
                Ok(stats)
            }
            Err(Failure::Refused(why)) => {
                let item = &items[0];
                info!(message_id = item.id, reason = %why, "PostgreSQL refused a row the module accepted; rejecting it as {SINK_REFUSED}");
                let outcome = Outcome::Rejected {
                    reason: SINK_REFUSED.into(),
                    message: format!("PostgreSQL refused the row: {why}"),
                    encrypted_body: seal(item.body),
                };
                self.write_once(&[SinkItem { id: item.id, body: item.body, outcome: &outcome }])
            }
            other => other,
        }
    }

    fn write_once(&mut self, items: &[SinkItem]) -> Result<WriteStats, Failure> {
        let conn = self.conn.as_mut().ok_or_else(|| Failure::Unavailable("not connected".into()))?;
        let ids: Vec<&str> = items.iter().map(|i| i.id).collect();
        let kinds: Vec<&str> = items.iter().map(|i| if matches!(i.outcome, Outcome::Row(_)) { "row" } else { "rejected" }).collect();

        let mut tx = conn.client.transaction().map_err(classify)?;
        // `None`: every id was new. Another host holding one of them uncommitted makes the plain
        // INSERT wait for its outcome, so a unique violation is final.
        let claimed: Option<std::collections::HashSet<String>> = match tx.execute(&conn.claim_all, &[&ids, &kinds]) {
            Ok(_) => None,
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tx.rollback().map_err(classify)?;
                tx = conn.client.transaction().map_err(classify)?;
                Some(tx.query(&conn.claim_new, &[&ids, &kinds]).map_err(classify)?.iter().map(|r| r.get(0)).collect())
            }
            Err(e) => return Err(classify(e)),
        };
        let fresh = || items.iter().filter(|i| claimed.as_ref().is_none_or(|c| c.contains(i.id)));

        let mut copy = Vec::new();
        let mut rows = 0;
        let (mut r_ids, mut r_reasons, mut r_messages, mut r_bodies) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for item in fresh() {
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
        let stats = WriteStats {
            rows,
            rejected: r_ids.len() as u64,
            duplicates: claimed.as_ref().map_or(0, |c| items.len() - c.len()) as u64,
        };
        if stats.rows > 0 {
            let mut writer = tx.copy_in(&conn.copy_rows).map_err(classify)?;
            writer.write_all(&copy).map_err(|e| Failure::Unavailable(format!("COPY: {e}")))?;
            writer.finish().map_err(classify)?;
        }
        if stats.rejected > 0 {
            tx.execute(&conn.insert_rejections, &[&r_ids, &r_reasons, &r_messages, &r_bodies]).map_err(classify)?;
        }
        tx.commit().map_err(classify)?;
        Ok(stats)
    }
}

/// Appends one row in COPY's text format: tab-separated, `\N` for NULL, and backslash, tab,
/// newline and carriage return escaped (values are arbitrary text from the message).
fn push_copy_line(out: &mut Vec<u8>, values: &[Option<String>]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        let Some(text) = value else {
            out.extend_from_slice(b"\\N");
            continue;
        };
        for &b in text.as_bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
    }
    out.push(b'\n');
}

/// Sorts an error into retry, isolate or stop. The text never includes PostgreSQL's message
/// for data errors, which can quote the offending value.
fn classify(e: postgres::Error) -> Failure {
    let Some(db) = e.as_db_error() else {
        return Failure::Unavailable(e.to_string());
    };
    let code = db.code();
    match &code.code()[..2] {
        "22" | "23" => {
            let what = match *code {
                SqlState::STRING_DATA_RIGHT_TRUNCATION => "value too long for the column",
                SqlState::INVALID_TEXT_REPRESENTATION => "value not valid for the column's type",
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE => "number out of range",
                SqlState::DATETIME_FIELD_OVERFLOW => "date out of range",
                SqlState::CHARACTER_NOT_IN_REPERTOIRE | SqlState::UNTRANSLATABLE_CHARACTER => "character not allowed",
                SqlState::NOT_NULL_VIOLATION => "NULL in a NOT NULL column",
                SqlState::CHECK_VIOLATION => "check constraint violated",
                SqlState::UNIQUE_VIOLATION => "unique constraint violated",
                _ => "data refused",
            };
            let column = db.column().map(|c| format!(" (column `{c}`)")).unwrap_or_default();
            Failure::Refused(format!("SQLSTATE {}: {what}{column}", code.code()))
        }
        "08" | "40" | "53" | "57" | "58" => Failure::Unavailable(format!("SQLSTATE {}: {}", code.code(), db.message())),
        _ => Failure::Fatal(format!("SQLSTATE {}: {}", code.code(), db.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::push_copy_line;

    #[test]
    fn copy_lines_escape_what_copy_would_misread() {
        let mut out = Vec::new();
        push_copy_line(&mut out, &[Some("a\tb\nc\rd\\e\\.".into()), None, Some(String::new()), Some("k1.x-Y_z".into())]);
        assert_eq!(out, b"a\\tb\\nc\\rd\\\\e\\\\.\t\\N\t\tk1.x-Y_z\n");
    }
}
