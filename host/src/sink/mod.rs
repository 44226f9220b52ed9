//! Where rows go: PostgreSQL, one transaction per batch, with a ledger for exactly-once.
//!
//! The sink is a pure commit: [`PostgresSink::commit`] writes a batch in one transaction or
//! says why not, as a typed [`PostgresError`]. It does not retry, wait or isolate: the pipeline's
//! worker decides what happens next.

mod claim;
mod classify;
mod commit;
mod connection;
mod copy;
mod error;
mod keyring;
mod ledger;
mod postgres;
mod prune;
mod rejected;
mod rekey;
mod replay;
mod schema;
mod tls;

pub(crate) use self::commit::Guard;
pub use self::error::{PgKind, PostgresError, ServerError};
pub use self::keyring::RetireError;
pub(crate) use self::keyring::{key_report, retire, MaskCounts};
pub(crate) use self::ledger::LedgerOutcome;
pub use self::postgres::PostgresSink;
pub(crate) use self::prune::prune_ledger;
pub(crate) use self::rejected::Selection;
pub(crate) use self::rejected::{list as list_rejections, report as report_rejections};
pub(crate) use self::rejected::{Listed, Report};
pub(crate) use self::rekey::Rekey;
pub(crate) use self::replay::{Applied, Opened, Rejected, Replay};
use maskflow_transform::{Outcome, Reason};
use std::collections::BTreeMap;

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

/// One message for the sink: its SQS id, its SQS `SentTimestamp` (ms since the epoch; kept with
/// a rejection, so that a replay gives it the `create_date` of its send day), and its outcome.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub id: &'a str,
    pub sent_timestamp_ms: i64,
    pub outcome: &'a Outcome,
}

/// What one commit did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitStats {
    pub rows: u64,
    pub rejected: u64,
    /// `rejected` by reason (a small fixed set: ABI.md's reasons and the host's own).
    pub rejected_by_reason: BTreeMap<Reason, u64>,
    /// Already in the ledger: redelivered messages, skipped.
    pub redeliveries_skipped: u64,
    /// Message ids left out because another open transaction holds their ledger entries (a
    /// host that froze in the middle of a commit): not committed, not to be acknowledged.
    pub blocked: Vec<String>,
    /// The sessions holding them, for the log.
    pub blocked_by: Option<String>,
    /// NULLs written, per column of the rows (in the module's column order): a renamed
    /// optional field shows here, not as rejections.
    pub null_values: Vec<u64>,
}

impl std::ops::AddAssign for CommitStats {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.rejected += o.rejected;
        self.redeliveries_skipped += o.redeliveries_skipped;
        for (reason, n) in o.rejected_by_reason {
            *self.rejected_by_reason.entry(reason).or_default() += n;
        }
        self.blocked.extend(o.blocked);
        self.blocked_by = o.blocked_by.or(self.blocked_by.take());
        add_counts(&mut self.null_values, &o.null_values);
    }
}

/// Adds `more` to `counts`, column by column.
fn add_counts(counts: &mut Vec<u64>, more: &[u64]) {
    if counts.len() < more.len() {
        counts.resize(more.len(), 0);
    }
    counts.iter_mut().zip(more).for_each(|(n, m)| *n += m);
}
