//! Where rows go: PostgreSQL, one transaction per batch, with a ledger for exactly-once.
//!
//! The sink is a pure commit: [`PostgresSink::commit`] writes a batch in one transaction or
//! says why not, as a typed [`SinkError`]. It does not retry, wait or isolate: the pipeline's
//! worker decides what happens next.

mod classify;
mod commit;
mod connection;
mod copy;
mod keyring;
mod postgres;
mod prune;
mod rekey;
mod schema;
mod tls;

pub use self::keyring::{key_report, retire, KeyReport, MaskCounts, RetireError};
pub use self::postgres::PostgresSink;
pub use self::prune::prune_ledger;
pub use self::rekey::Rekey;
use maskflow_transform::Outcome;
use std::collections::BTreeMap;

/// Reason code of a message PostgreSQL refused although the module accepted it.
pub const SINK_REFUSED: &str = "sink_refused";
/// Reason code of a message the module failed on by itself (trap, deadline, memory cap).
pub const MODULE_FAILED: &str = "module_failed";
/// Rejections the host makes itself, which the ledger records by reason: a run of them with
/// nothing else in between means a stage fails on everything (`pipeline::worker`).
pub const HOST_REASONS: [&str; 2] = [SINK_REFUSED, MODULE_FAILED];

/// Where and what to write (built by the CLI layer).
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub client: tokio_postgres::Config,
    pub tls: TlsConfig,
    /// Target table; `user_logins` is created with its fixed DDL if missing.
    pub table: String,
    /// Schema of every table (created if missing); `None`: the connection's search_path.
    pub schema: Option<String>,
    pub timeouts: Timeouts,
}

/// Bounds on every wait for PostgreSQL (`connection.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening a connection: TCP, TLS, authentication, the session check.
    pub connect: std::time::Duration,
    /// One commit transaction, client side and server side (`statement_timeout`).
    pub commit: std::time::Duration,
}

/// libpq's TLS settings (see `tls.rs` for what each mode checks).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub mode: SslMode,
    pub root_certs: Option<RootCerts>,
    pub client_cert: Option<ClientCert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    File(std::path::PathBuf),
    /// The operating system's trusted CAs (`sslrootcert=system`).
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// One message for the sink: its SQS id, and its outcome.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub id: &'a str,
    pub outcome: &'a Outcome,
}

/// What one commit did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitStats {
    pub rows: u64,
    pub rejected: u64,
    /// `rejected` by reason code (a small fixed set: ABI.md's reasons and `sink_refused`).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Already in the ledger: redelivered messages, skipped.
    pub duplicates: u64,
    /// Message ids left out because another open transaction holds their ledger entries (a
    /// host that froze in the middle of a commit): not committed, not to be acknowledged.
    pub blocked: Vec<String>,
    /// The sessions holding them, for the log.
    pub blocked_by: Option<String>,
}

impl std::ops::AddAssign for CommitStats {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.rejected += o.rejected;
        self.duplicates += o.duplicates;
        for (reason, n) in o.rejected_by_reason {
            *self.rejected_by_reason.entry(reason).or_default() += n;
        }
        self.blocked.extend(o.blocked);
        self.blocked_by = o.blocked_by.or(self.blocked_by.take());
    }
}

/// Why a commit did not happen. Nothing of the batch is committed in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// PostgreSQL refused the data (SQLSTATE class 22 or 23): some row of the batch is bad.
    /// The text names the SQLSTATE, never the value (PostgreSQL's messages can quote it).
    #[error("PostgreSQL refused the data: {0}")]
    Refused(String),
    /// Connection lost, refused or silent, server starting, shutting down or read-only, a lock
    /// or serialization conflict: the same commit may succeed later.
    #[error("PostgreSQL unavailable: {0}")]
    Transient(String),
    /// Anything else (a missing table, permissions): retrying will not help.
    #[error("PostgreSQL: {0}")]
    Fatal(String),
}

impl From<SinkError> for crate::Error {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Refused(m) => crate::Error::Stopped(m),
            SinkError::Transient(m) => {
                crate::Error::Transient(format!("PostgreSQL unavailable: {m}"))
            }
            SinkError::Fatal(m) => crate::Error::Config(format!("PostgreSQL: {m}")),
        }
    }
}
