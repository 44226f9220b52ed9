//! The commit protocol. Per batch, one transaction:
//!   1. claim the SQS message ids in `maskflow_ledger`: a plain INSERT of all of them, the
//!      common case; if one is already there (a redelivery), roll back and claim with
//!      `ON CONFLICT DO NOTHING RETURNING` instead, which names the new ones (the plain INSERT
//!      claims twice as fast: speculative insertion and RETURNING cost as much as the index);
//!   2. write the rows of the newly claimed ids only with `COPY ... FROM STDIN` (text format:
//!      PostgreSQL's own input functions type the values, and refuse what does not fit; about
//!      twice as fast as one `INSERT ... SELECT FROM unnest(...)`, see docs/benchmarks.md);
//!   3. insert the rejections of the newly claimed ids into `<table>_rejected`;
//!   4. commit.
//!
//! Only then may the messages be deleted from SQS. A crash before the commit leaves nothing;
//! a crash after it leaves ids that the ledger recognises on redelivery. A commit whose answer
//! never arrived is the same case: retried, its ids are found claimed.
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
use tokio_postgres::error::SqlState;

use tokio_postgres::Statement;

use super::classify::classify;
use super::connection::Connection;
use super::ledger::LedgerOutcome;
use super::{CommitStats, Item, PostgresError, Timeouts};
use crate::isolate::{bisect, Attempt, Merge};

/// How long a statement waits for a lock before the commit looks at what holds it.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// How long each claim waits while the held ids are being isolated.
const ISOLATION_LOCK_WAIT: Duration = Duration::from_millis(100);

/// A connection with the statements the commit uses, prepared once.
pub(super) struct Session {
    pub(crate) conn: Connection,
    claim_all: Statement,
    claim_new: Statement,
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

pub(super) fn commit(
    s: &Session,
    items: &[Item],
    timeouts: &Timeouts,
) -> Result<CommitStats, PostgresError> {
    let deadline = Instant::now() + timeouts.commit;
    let conn = &s.conn;
    let ids: Vec<&str> = items.iter().map(|i| i.id).collect();
    let kinds: Vec<&str> = items.iter().map(|i| LedgerOutcome::of(i.outcome).as_str()).collect();

    conn.begin(deadline, LOCK_WAIT)?;
    let claim = claim(s, deadline, &ids, &kinds)?;
    let fresh = items.iter().filter(|i| claim.is_new(i.id));

    let mut copy = Vec::new();
    let mut rows = 0;
    let (mut r_ids, mut r_reasons, mut r_messages, mut r_bodies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in fresh {
        match item.outcome {
            Outcome::Row(values) => {
                super::copy::push_copy_line(&mut copy, values);
                rows += 1;
            }
            Outcome::Rejected { reason, message, encrypted_body } => {
                r_ids.push(item.id);
                r_reasons.push(reason.code());
                r_messages.push(message.as_str());
                r_bodies.push(encrypted_body.as_str());
            }
        }
    }
    if rows > 0 {
        let sink = conn.wait(deadline, conn.client().copy_in::<_, Bytes>(&s.copy_rows))?;
        conn.wait(deadline, async move {
            let mut sink = std::pin::pin!(sink);
            sink.send(Bytes::from(copy)).await?;
            sink.as_mut().finish().await
        })?;
    }
    let recorded = match r_ids.is_empty() {
        true => 0,
        false => conn.wait(
            deadline,
            conn.client()
                .execute(&s.insert_rejections, &[&r_ids, &r_reasons, &r_messages, &r_bodies]),
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
    Ok(CommitStats {
        rows,
        rejected: recorded,
        rejected_by_reason,
        // Redelivered: in the ledger already (or, for a rejection, in its table already).
        redeliveries_skipped: (claimed - new) as u64 + (r_ids.len() as u64 - recorded),
        blocked: claim.blocked,
        blocked_by: claim.blocked_by,
    })
}

/// The ids this transaction claimed.
#[derive(Default)]
struct Claim {
    /// `None`: every id not blocked was new. `Some`: only these were (the rest redelivered).
    new: Option<HashSet<String>>,
    /// Held by another open transaction: not claimed, not to be acknowledged.
    blocked: Vec<String>,
    /// What held them, for the log.
    blocked_by: Option<String>,
}

impl Claim {
    fn is_new(&self, id: &str) -> bool {
        !self.blocked.iter().any(|b| b == id) && self.new.as_ref().is_none_or(|n| n.contains(id))
    }
}

impl Merge for Claim {
    fn merge(&mut self, other: Self) {
        let new = self.new.get_or_insert_with(HashSet::new);
        new.extend(other.new.unwrap_or_default());
        self.blocked.extend(other.blocked);
    }
}

fn claim(
    s: &Session,
    deadline: Instant,
    ids: &[&str],
    kinds: &[&str],
) -> Result<Claim, PostgresError> {
    let conn = &s.conn;
    let first = conn.wait_raw(deadline, conn.client().execute(&s.claim_all, &[&ids, &kinds]))?;
    let retry = match first {
        Ok(_) => return Ok(Claim::default()),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => false,
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => true,
        Err(e) => return Err(classify(e)),
    };
    conn.rollback()?;
    if !retry {
        conn.begin(deadline, LOCK_WAIT)?;
        let claimed =
            conn.wait_raw(deadline, conn.client().query(&s.claim_new, &[&ids, &kinds]))?;
        match claimed {
            Ok(rows) => {
                let new = rows.iter().map(|r| r.get(0)).collect();
                return Ok(Claim { new: Some(new), ..Claim::default() });
            }
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => conn.rollback()?,
            Err(e) => return Err(classify(e)),
        }
    }
    claim_isolating(s, deadline, ids, kinds)
}

/// The claim timed out on a lock: if the ledger table itself is locked, the batch waits;
/// otherwise some ids are held by other transactions, and halving the claim (each half under
/// a savepoint, waiting briefly) finds them and claims the rest.
fn claim_isolating(
    s: &Session,
    deadline: Instant,
    ids: &[&str],
    kinds: &[&str],
) -> Result<Claim, PostgresError> {
    let conn = &s.conn;
    let holders = lock_holders(conn, deadline, "maskflow_ledger")?;
    conn.begin(deadline, ISOLATION_LOCK_WAIT)?;
    let table = conn.wait_raw(
        deadline,
        conn.client().batch_execute("LOCK TABLE maskflow_ledger IN ROW EXCLUSIVE MODE NOWAIT"),
    )?;
    match table {
        Ok(()) => {}
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            return Err(PostgresError::transient(format!(
                "table maskflow_ledger is locked by another session ({holders}); waiting"
            )))
        }
        Err(e) => return Err(classify(e)),
    }
    let pairs: Vec<(&str, &str)> = ids.iter().copied().zip(kinds.iter().copied()).collect();
    let attempt = &mut |conn: &mut &Connection, slice: &[(&str, &str)]| {
        let (ids, kinds): (Vec<&str>, Vec<&str>) = slice.iter().copied().unzip();
        let claimed = conn.batch(deadline, "SAVEPOINT claim").and_then(|()| {
            conn.wait_raw(deadline, conn.client().query(&s.claim_new, &[&ids, &kinds]))
        });
        match claimed {
            Ok(Ok(rows)) => match conn.batch(deadline, "RELEASE SAVEPOINT claim") {
                Ok(()) => Attempt::Done(Claim {
                    new: Some(rows.iter().map(|r| r.get(0)).collect()),
                    ..Claim::default()
                }),
                Err(e) => Attempt::Stop(e),
            },
            Ok(Err(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                match conn.batch(deadline, "ROLLBACK TO SAVEPOINT claim") {
                    Ok(()) => Attempt::Bisect(String::new()),
                    Err(e) => Attempt::Stop(e),
                }
            }
            Ok(Err(e)) => Attempt::Stop(classify(e)),
            Err(e) => Attempt::Stop(e),
        }
    };
    let alone = &mut |_: &mut &Connection, (id, _): &(&str, &str), _: String| {
        Ok(Claim { new: Some(HashSet::new()), blocked: vec![id.to_string()], blocked_by: None })
    };
    let mut claim = bisect(&mut &s.conn, &pairs, attempt, alone)?;
    // The rest of the transaction waits for locks as long as a normal one.
    conn.batch(deadline, &format!("SET LOCAL lock_timeout = {}", LOCK_WAIT.as_millis()))?;
    claim.blocked_by = Some(holders);
    Ok(claim)
}

/// The sessions that have held a lock on `relation` for more than a second, oldest first: what
/// a lock wait is waiting for, for the log (process ids and states, never query texts).
fn lock_holders(
    conn: &Connection,
    deadline: Instant,
    relation: &str,
) -> Result<String, PostgresError> {
    let row = conn.wait(
        deadline,
        conn.client().query_one(
            "SELECT coalesce(string_agg(format('pid %s (%s, %s, transaction open for %s s)', a.pid,
                        coalesce(nullif(a.application_name, ''), 'no application_name'),
                        a.state, extract(epoch FROM now() - a.xact_start)::int), '; '
                        ORDER BY a.xact_start), 'no session holds it for more than a second')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.relation = to_regclass($1) AND l.granted AND a.pid <> pg_backend_pid()
               AND a.xact_start < now() - interval '1 second'",
            &[&relation],
        ),
    )?;
    Ok(row.get(0))
}
