//! `maskflow replay`'s database side: reads selected rejections a batch at a time, and writes
//! back what the current module made of them, one short transaction per batch.
//!
//! Exactly once, beside running hosts and across kills:
//!   - a rejection becomes a row in the transaction that deletes it: the `DELETE ... RETURNING`
//!     is the claim, and only the ids it returns get a row. A replay killed anywhere has either
//!     committed a batch whole or not at all, and a rerun no longer selects what it replayed;
//!     even two replays at once (which the lock below refuses) could not both claim one id;
//!   - the ledger entry of a replayed message is updated (its outcome; `processed_at` kept, so
//!     the hosts' streak check does not read old messages as new ones), and made again from
//!     `rejected_at` if `maskflow prune` has dropped it: a late redelivery then finds it and is
//!     skipped, never written twice;
//!   - hosts never touch an existing rejection: a redelivered message is stopped by its ledger
//!     entry, which this transaction holds for an instant at most.
//!
//! One replay at a time per database (a session advisory lock): two would count and report the
//! same rejections.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use maskflow_transform::Outcome;

use super::commit::{copy_in, LOCK_WAIT};
use super::connection::{open_for_command, Connection};
use super::keyring::ident;
use super::ledger::LedgerOutcome;
use super::rejected::{params, Selection};
use super::{schema, Item, PostgresConfig, PostgresError};

const LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('maskflow replay'))";
/// How long a new replay waits for a killed one's session to end before it gives up.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// One selected rejection.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub(crate) id: String,
    pub(crate) reason: String,
    pub(crate) sealed: String,
    /// The SQS `SentTimestamp` kept with it (ms since the epoch); `None` if it was recorded
    /// before `sent_at` was kept.
    pub(crate) sent_ms: Option<i64>,
    /// When it was recorded (ms since the epoch): the stand-in for a missing sent time.
    pub(crate) rejected_ms: i64,
}

/// What one batch's transaction did (or, rolled back, would have done).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Rows written: rejections that now pass, deleted from the rejections.
    pub(crate) rows: u64,
    /// Ids of the rows written.
    pub(crate) landed: HashSet<String>,
    /// Rejections still rejected whose reason or message changed (updated in place).
    pub(crate) changed: u64,
    /// Selected, but gone by the time of the transaction (another process replayed them).
    pub(crate) gone: u64,
}

/// Why a replay could not start.
#[derive(Debug)]
pub(crate) enum Opened {
    Ready(Box<Replay>),
    /// Another `maskflow replay` holds this database's replay lock.
    Busy,
}

pub(crate) struct Replay {
    conn: Connection,
    rejected: String,
    copy_rows: String,
    /// Budget of one transaction.
    step: Duration,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay").field("rejected", &self.rejected).finish_non_exhaustive()
    }
}

impl Replay {
    /// Connects, takes the replay lock, and prepares the tables as a host does at start
    /// (created if missing, `sent_at` added to an older database, shape and key fingerprints
    /// checked).
    pub(crate) fn open(
        config: &PostgresConfig,
        columns: &[String],
        fingerprints: &[(String, String)],
    ) -> Result<Opened, PostgresError> {
        let conn = open_for_command(config, "maskflow replay")?;
        let deadline = Instant::now() + config.timeouts.commit;
        let patience = Instant::now() + LOCK_PATIENCE;
        while !conn.wait(deadline, conn.client().query_one(LOCK, &[]))?.get::<_, bool>(0) {
            if Instant::now() > patience {
                return Ok(Opened::Busy);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        schema::prepare(&conn, deadline, config.schema.as_deref(), &config.table, columns)?;
        schema::check_keys(&conn, deadline, fingerprints)?;
        let names = columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        Ok(Opened::Ready(Box::new(Replay {
            conn,
            rejected: ident(&format!("{}_rejected", config.table)),
            copy_rows: format!("COPY {} ({names}) FROM STDIN", ident(&config.table)),
            step: config.timeouts.commit,
        })))
    }

    /// How many rejections `selection` selects, and how many of them have no sent time.
    pub(crate) fn count(&self, selection: &Selection) -> Result<(u64, u64), PostgresError> {
        let deadline = Instant::now() + self.step.max(Duration::from_secs(300));
        let params = params(selection);
        let sql = format!(
            "SELECT count(*), count(*) FILTER (WHERE t.sent_at IS NULL) FROM {} t WHERE {}",
            self.rejected,
            Selection::condition(1)
        );
        let row =
            self.conn.wait(deadline, self.conn.client().query_one(&sql, &params.as_refs()))?;
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }

    /// The next selected rejections by message id after `after`: at most `limit` of them, and
    /// no more than `max_bytes` of sealed bodies (one at least), so memory stays flat whatever
    /// the bodies' size.
    pub(crate) fn next(
        &self,
        selection: &Selection,
        after: &str,
        limit: i64,
        max_bytes: i64,
    ) -> Result<Vec<Rejected>, PostgresError> {
        let deadline = Instant::now() + self.step;
        let params = params(selection);
        let mut params = params.as_refs();
        params.extend([&after as &(dyn tokio_postgres::types::ToSql + Sync), &limit, &max_bytes]);
        let sql = format!(
            "SELECT message_id, reason, encrypted_body, sent_at, rejected_at FROM (
               SELECT t.*, sum(octet_length(t.encrypted_body)) OVER (ORDER BY t.message_id) AS upto
               FROM (SELECT * FROM {} t WHERE t.message_id > $4 AND {} ORDER BY t.message_id LIMIT $5) t
             ) b WHERE b.upto - octet_length(b.encrypted_body) < $6 ORDER BY message_id",
            self.rejected,
            Selection::condition(1)
        );
        let rows = self.conn.wait(deadline, self.conn.client().query(&sql, &params))?;
        Ok(rows
            .iter()
            .map(|r| Rejected {
                id: r.get(0),
                reason: r.get(1),
                sealed: r.get(2),
                sent_ms: r.get::<_, Option<SystemTime>>(3).map(epoch_ms),
                rejected_ms: epoch_ms(r.get(4)),
            })
            .collect())
    }

    /// In one transaction: the items whose outcome is a row are written and their rejections
    /// deleted; those still rejected get their new reason and message if these changed; the
    /// ledger follows both. `commit: false` rolls it all back (`--dry-run`). A row PostgreSQL
    /// refuses fails the whole transaction with [`super::PgKind::Refused`]: the caller halves.
    pub(crate) fn apply(&self, items: &[Item], commit: bool) -> Result<Applied, PostgresError> {
        let deadline = Instant::now() + self.step;
        self.conn.begin(deadline, LOCK_WAIT)?;
        let result = self.statements(deadline, items, commit);
        if result.is_err() || !commit {
            let _ = self.conn.rollback();
        }
        result
    }

    fn statements(
        &self,
        deadline: Instant,
        items: &[Item],
        commit: bool,
    ) -> Result<Applied, PostgresError> {
        let (conn, client) = (&self.conn, self.conn.client());
        let rows: Vec<&str> =
            items.iter().filter(|i| i.outcome.is_row()).map(|item| item.id).collect();
        let mut applied = Applied::default();
        if !rows.is_empty() {
            let landed = conn.wait(
                deadline,
                client.query(
                    &format!(
                        "WITH gone AS (DELETE FROM {} t WHERE t.message_id = ANY($1)
                                       RETURNING t.message_id, t.rejected_at)
                         INSERT INTO maskflow_ledger (message_id, outcome, processed_at)
                         SELECT message_id, 'row', rejected_at FROM gone
                         ON CONFLICT (message_id) DO UPDATE SET outcome = excluded.outcome
                         RETURNING message_id",
                        self.rejected
                    ),
                    &[&rows],
                ),
            )?;
            applied.landed = landed.iter().map(|r| r.get(0)).collect();
            let mut copy = Vec::new();
            for item in items.iter().filter(|i| applied.landed.contains(i.id)) {
                if let Outcome::Row(values) = item.outcome {
                    super::copy::push_copy_line(&mut copy, values);
                }
            }
            applied.rows = applied.landed.len() as u64;
            applied.gone = (rows.len() - applied.landed.len()) as u64;
            if !copy.is_empty() {
                copy_in(conn, deadline, &self.copy_rows, copy)?;
            }
        }
        let (mut ids, mut reasons, mut messages, mut outcomes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for item in items {
            if let Outcome::Rejected { reason, message, .. } = item.outcome {
                ids.push(item.id);
                reasons.push(reason.code());
                messages.push(message.as_str());
                outcomes.push(LedgerOutcome::of(item.outcome).as_str());
            }
        }
        if !ids.is_empty() {
            let changed = conn.wait(
                deadline,
                client.query(
                    &format!(
                        "WITH changed AS (
                           UPDATE {} AS t SET reason = v.reason, message = v.message
                           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                                AS v(id, reason, message, outcome)
                           WHERE t.message_id = v.id AND (t.reason <> v.reason OR t.message <> v.message)
                           RETURNING t.message_id, t.rejected_at, v.outcome)
                         INSERT INTO maskflow_ledger (message_id, outcome, processed_at)
                         SELECT message_id, outcome, rejected_at FROM changed
                         ON CONFLICT (message_id) DO UPDATE SET outcome = excluded.outcome
                         RETURNING message_id",
                        self.rejected
                    ),
                    &[&ids, &reasons, &messages, &outcomes],
                ),
            )?;
            applied.changed = changed.len() as u64;
        }
        if commit {
            conn.batch(deadline, "COMMIT")?;
        }
        Ok(applied)
    }
}

fn epoch_ms(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}
