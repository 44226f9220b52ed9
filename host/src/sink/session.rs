//! A connection with the commit's statements prepared once, and how long those statements wait
//! for a lock. Shared by the commit (`commit.rs`), its claim (`claim.rs`) and replay's
//! transactions (`replay.rs`).

use std::time::{Duration, Instant};

use tokio_postgres::Statement;

use super::connection::Connection;
use super::PostgresError;

/// How long a statement waits for a lock before the commit looks at what holds it.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(2);

/// A connection with the statements the commit uses, prepared once.
pub(super) struct Session {
    pub(crate) conn: Connection,
    pub(super) claim_all: Statement,
    pub(super) claim_new: Statement,
    pub(super) copy_rows: String,
    pub(super) insert_rejections: Statement,
}

impl Session {
    /// Prepares the commit's statements for rows of `columns` into `table`, within `budget`.
    pub(crate) fn prepare(
        conn: Connection,
        table: &str,
        columns: &[String],
        budget: Duration,
    ) -> Result<Session, PostgresError> {
        let deadline = Instant::now() + budget;
        let names = columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        // A rejection already recorded (a redelivery after its ledger entry was pruned) is
        // the same message: keeping the first record is exactly once. The sent time travels as
        // ms since the epoch and becomes a timestamp exactly (no floating point on the way).
        let insert_rejections = format!(
            "INSERT INTO {table}_rejected (message_id, reason, message, encrypted_body, sent_at)
             SELECT m, r, t, b, 'epoch'::timestamptz + s * interval '1 millisecond'
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) AS v(m, r, t, b, s)
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
