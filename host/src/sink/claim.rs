//! Claiming a batch's message ids in `maskflow_ledger`: the step of the commit that makes it
//! exactly once (see `commit.rs`). A plain INSERT of every id is the common case; if one is
//! already there (a redelivery), the claim is made again with `ON CONFLICT DO NOTHING
//! RETURNING`, which names the new ones; ids another open transaction holds are found by
//! halving under savepoints and left out.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use super::classify::classify;
use super::commit::{Session, LOCK_WAIT};
use super::connection::Connection;
use super::PostgresError;
use crate::isolate::{bisect, Attempt, Merge};

/// How long each claim waits while the held ids are being isolated.
const ISOLATION_LOCK_WAIT: Duration = Duration::from_millis(100);

/// The ids this transaction claimed.
#[derive(Default)]
pub(super) struct Claim {
    /// `None`: every id not blocked was new. `Some`: only these were (the rest redelivered).
    pub(super) new: Option<HashSet<String>>,
    /// Held by another open transaction: not claimed, not to be acknowledged.
    pub(super) blocked: Vec<String>,
    /// What held them, for the log.
    pub(super) blocked_by: Option<String>,
}

impl Claim {
    pub(super) fn is_new(&self, id: &str) -> bool {
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

pub(super) fn claim(
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
