//! The commit protocol. Per batch, one transaction:
//!   1. claim the SQS message ids in `maskflow_ledger` (`claim.rs`): a plain INSERT of all of
//!      them, the common case; if one is already there (a redelivery), roll back and claim with
//!      `ON CONFLICT DO NOTHING RETURNING` instead, which names the new ones (the plain INSERT
//!      claims twice as fast: speculative insertion and RETURNING cost as much as the index);
//!   2. write the rows of the newly claimed ids only with `COPY ... FROM STDIN` (text format:
//!      PostgreSQL's own input functions type the values, and refuse what does not fit; about
//!      twice as fast as one `INSERT ... SELECT FROM unnest(...)`, see docs/benchmarks.md);
//!   3. insert the rejections of the newly claimed ids into `<table>_rejected`, each with its
//!      SQS `SentTimestamp` (`sent_at`: what `maskflow replay` gives the message back);
//!   4. commit.
//!
//! Only then may the messages be deleted from SQS. A crash before the commit leaves nothing;
//! a crash after it leaves ids that the ledger recognises on redelivery. A commit whose answer
//! never arrived is the same case: retried, its ids are found claimed.
//!
//! A *guarded* commit (the host's own rejections: `module_failed`, `sink_refused`) also asks,
//! inside its transaction and under a lock every guarded commit of the database takes, whether
//! the fleet's latest outcomes still allow it ([`Guard`]): two workers, or two hosts, can then
//! never both record a refusal on the strength of the same reading of the ledger.
//!
//! Locks. Claiming an id that another open transaction has just claimed waits for that
//! transaction. Normally it ends within milliseconds; a host that froze or lost its network in
//! the middle of a commit holds it until the server aborts it (our own transactions ask the
//! server to abort them when idle or slow: `Connection::begin`). So a claim waits at most
//! [`LOCK_WAIT`]; then the ids that are held are found by halving the claim under savepoints,
//! and left out of this commit ([`CommitStats::blocked`]); the rest of the batch commits.
//! A lock on a whole table (LOCK TABLE, ALTER TABLE) is not isolated: the batch waits for it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use maskflow_transform::Outcome;
use tokio_postgres::Statement;

use super::claim::claim;
use super::connection::Connection;
use super::ledger::LedgerOutcome;
use super::{CommitStats, Item, PostgresError, Timeouts};

/// How long a statement waits for a lock before the commit looks at what holds it.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(2);

/// A connection with the statements the commit uses, prepared once.
pub(super) struct Session {
    pub(crate) conn: Connection,
    pub(super) claim_all: Statement,
    pub(super) claim_new: Statement,
    copy_rows: String,
    insert_rejections: Statement,
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

/// What a guarded commit checks before it writes: the latest `look_back` outcomes of the ledger
/// (newest first, this batch's own ids left out), read under a lock that every guarded commit
/// of the database takes, and held until this one commits.
pub(crate) struct Guard<'g> {
    pub(crate) look_back: i64,
    /// Whether the batch may be recorded, given those outcomes.
    pub(crate) allows: &'g dyn Fn(&[LedgerOutcome]) -> bool,
}

/// Serialises guarded commits between workers and hosts: one key for the whole database.
const GUARD_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('maskflow host rejections'))";

pub(super) fn commit(
    s: &Session,
    items: &[Item],
    timeouts: &Timeouts,
) -> Result<CommitStats, PostgresError> {
    match transaction(s, items, timeouts, None)? {
        Some(stats) => Ok(stats),
        None => unreachable!("only a guard declines a commit"),
    }
}

/// [`commit`] if `guard` allows it; `None` (and nothing written) if it does not.
pub(super) fn commit_guarded(
    s: &Session,
    items: &[Item],
    timeouts: &Timeouts,
    guard: &Guard,
) -> Result<Option<CommitStats>, PostgresError> {
    transaction(s, items, timeouts, Some(guard))
}

fn transaction(
    s: &Session,
    items: &[Item],
    timeouts: &Timeouts,
    guard: Option<&Guard>,
) -> Result<Option<CommitStats>, PostgresError> {
    let deadline = Instant::now() + timeouts.commit;
    let conn = &s.conn;
    let ids: Vec<&str> = items.iter().map(|i| i.id).collect();
    let kinds: Vec<&str> = items.iter().map(|i| LedgerOutcome::of(i.outcome).as_str()).collect();

    conn.begin(deadline, LOCK_WAIT)?;
    let claim = claim(s, deadline, &ids, &kinds)?;
    if let Some(guard) = guard {
        if !allowed(conn, deadline, guard, &ids)? {
            conn.rollback()?;
            return Ok(None);
        }
    }
    let fresh = items.iter().filter(|i| claim.is_new(i.id));

    let mut copy = Vec::new();
    let (mut rows, mut null_values) = (0, Vec::new());
    let (mut r_ids, mut r_reasons, mut r_messages, mut r_bodies, mut r_sent) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in fresh {
        match item.outcome {
            Outcome::Row(values) => {
                super::copy::push_copy_line(&mut copy, values);
                count_nulls(&mut null_values, values);
                rows += 1;
            }
            Outcome::Rejected { reason, message, encrypted_body } => {
                r_ids.push(item.id);
                r_reasons.push(reason.code());
                r_messages.push(message.as_str());
                r_bodies.push(encrypted_body.as_str());
                r_sent.push(item.sent_timestamp_ms);
            }
        }
    }
    if rows > 0 {
        copy_in(conn, deadline, &s.copy_rows, copy)?;
    }
    let recorded = match r_ids.is_empty() {
        true => 0,
        false => conn.wait(
            deadline,
            conn.client().execute(
                &s.insert_rejections,
                &[&r_ids, &r_reasons, &r_messages, &r_bodies, &r_sent],
            ),
        )?,
    };
    conn.batch(deadline, "COMMIT")?;

    let mut rejected_by_reason = std::collections::BTreeMap::new();
    for item in items.iter().filter(|i| claim.is_new(i.id)) {
        if let Outcome::Rejected { reason, .. } = item.outcome {
            *rejected_by_reason.entry(*reason).or_default() += 1;
        }
    }
    let claimed = items.len() - claim.blocked.len();
    let new = claim.new.as_ref().map_or(claimed, HashSet::len);
    Ok(Some(CommitStats {
        rows,
        rejected: recorded,
        rejected_by_reason,
        // Redelivered: in the ledger already (or, for a rejection, in its table already).
        redeliveries_skipped: (claimed - new) as u64 + (r_ids.len() as u64 - recorded),
        blocked: claim.blocked,
        blocked_by: claim.blocked_by,
        null_values,
    }))
}

/// Takes the guard's lock and asks it about the latest outcomes of other messages.
fn allowed(
    conn: &Connection,
    deadline: Instant,
    guard: &Guard,
    own: &[&str],
) -> Result<bool, PostgresError> {
    conn.batch(deadline, GUARD_LOCK)?;
    let rows = conn.wait(
        deadline,
        conn.client().query(
            "SELECT outcome FROM maskflow_ledger WHERE NOT (message_id = ANY($2))
             ORDER BY processed_at DESC LIMIT $1",
            &[&guard.look_back, &own],
        ),
    )?;
    let recent: Vec<LedgerOutcome> =
        rows.iter().map(|r| LedgerOutcome::from_ledger(r.get(0))).collect();
    Ok((guard.allows)(&recent))
}

/// Streams COPY text into `sql` (`COPY table (...) FROM STDIN`).
pub(super) fn copy_in(
    conn: &Connection,
    deadline: Instant,
    sql: &str,
    copy: Vec<u8>,
) -> Result<(), PostgresError> {
    let sink = conn.wait(deadline, conn.client().copy_in::<_, Bytes>(sql))?;
    conn.wait(deadline, async move {
        let mut sink = std::pin::pin!(sink);
        sink.send(Bytes::from(copy)).await?;
        sink.as_mut().finish().await
    })?;
    Ok(())
}

/// Adds a row's NULLs to the per-column counts.
fn count_nulls(counts: &mut Vec<u64>, values: &[Option<String>]) {
    if counts.len() < values.len() {
        counts.resize(values.len(), 0);
    }
    for (count, value) in counts.iter_mut().zip(values) {
        *count += u64::from(value.is_none());
    }
}
