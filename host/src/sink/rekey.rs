//! `maskflow rekey`'s database side: re-masks the masked columns by ranges of pages and
//! re-seals rejected bodies by batches of message ids, each step its own short transaction.
//!
//! Why this shape:
//!   - masks repeat, so each distinct old mask is re-masked once: a step first reads the
//!     distinct old masks of its page range that no earlier step mapped, has the caller
//!     re-mask them, adds them to a session-local map (a temp table), then updates the range
//!     with a lookup in that map: every row is read twice and written once, in the server;
//!   - a step touches one range of pages (a TID range scan), so a transaction is bounded
//!     whatever the table's size, and commits before the next begins;
//!   - a step only changes masks under a `from` key, and changes them to the `to` key: a
//!     rerun after a kill skips what is done and changes nothing twice;
//!   - rows are only ever updated in place by value; inserts of a `maskflow run` meanwhile
//!     take no lock the steps wait on. Rows committed under an old key by a host still on it
//!     are not in the map: they stay, and the caller's next pass picks them up.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::connection::Connection;
use super::keyring::{count_masks, ident, open, MaskCounts};
use super::{schema, PostgresConfig, PostgresError};

/// Serialises rekeys of one database: two at once would each map and update the same rows.
const LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('maskflow rekey'))";

pub(crate) struct Rekey {
    conn: Connection,
    table: String,
    columns: Vec<String>,
    from: Vec<String>,
    /// Budget of one step's transaction (and of its lock waits).
    step: Duration,
    /// Old masks that did not unmask: left as they are, reported, never looked up again.
    pub(crate) unreadable: HashSet<String>,
}

impl Rekey {
    /// Connects, takes the rekey lock, checks the keys' fingerprints (recording new ones, as a
    /// host does), and makes the session's map.
    pub(crate) fn open(
        config: &PostgresConfig,
        columns: Vec<String>,
        fingerprints: &[(String, String)],
    ) -> Result<Rekey, PostgresError> {
        let conn = open(config, "maskflow rekey")?;
        let deadline = Instant::now() + config.timeouts.commit;
        // A killed rekey's session ends once its server process notices: wait a little for it.
        while !conn.wait(deadline, conn.client().query_one(LOCK, &[]))?.get::<_, bool>(0) {
            if Instant::now() + Duration::from_millis(200) > deadline {
                return Err(PostgresError::fatal(
                    "another `maskflow rekey` is running on this database; wait for it (or stop it)",
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        schema::check_keys(&conn, deadline, fingerprints)?;
        conn.batch(
            deadline,
            "CREATE TEMP TABLE IF NOT EXISTS maskflow_rekey_map(old text PRIMARY KEY, new text NOT NULL)",
        )?;
        Ok(Rekey {
            conn,
            table: config.table.clone(),
            columns,
            from: Vec::new(),
            step: config.timeouts.commit.max(Duration::from_secs(60)),
            unreadable: HashSet::new(),
        })
    }

    /// The key ids whose masks are to change.
    pub(crate) fn set_from(&mut self, from: Vec<String>) {
        self.from = from;
    }

    /// Masks per key id per place (one scan of each table).
    pub(crate) fn counts(&self) -> Result<MaskCounts, PostgresError> {
        let deadline = Instant::now() + self.step.max(Duration::from_secs(300));
        count_masks(&self.conn, deadline, &self.table, &self.columns)
    }

    /// The table's size in pages now: the end of a pass over it.
    pub(crate) fn pages(&self) -> Result<i64, PostgresError> {
        let deadline = Instant::now() + self.step;
        let sql = "SELECT (pg_relation_size(to_regclass($1)) / current_setting('block_size')::bigint)::bigint";
        Ok(self
            .conn
            .wait(deadline, self.conn.client().query_one(sql, &[&ident(&self.table)]))?
            .get(0))
    }

    /// Re-masks pages `[first, end)`: returns the rows changed. `remask` gives an old mask's
    /// new mask, or `None` if it does not unmask (it is then left, and counted unreadable).
    pub(crate) fn step(
        &mut self,
        first: i64,
        end: i64,
        remask: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<u64, PostgresError> {
        let deadline = Instant::now() + self.step;
        let range = format!("t.ctid >= '({first},0)'::tid AND t.ctid < '({end},0)'::tid");
        let table = ident(&self.table);
        let unmapped: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "SELECT t.{c} FROM {table} t WHERE {range} AND {old}
                     AND NOT EXISTS (SELECT 1 FROM maskflow_rekey_map m WHERE m.old = t.{c})",
                    c = ident(c),
                    old = old_in(c)
                )
            })
            .collect();
        let distinct = format!("SELECT DISTINCT * FROM ({}) AS u", unmapped.join(" UNION ALL "));
        let sets: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{c} = COALESCE((SELECT m.new FROM maskflow_rekey_map m WHERE m.old = t.{c}), t.{c})",
                    c = ident(c)
                )
            })
            .collect();
        let any_old: Vec<String> = self.columns.iter().map(|c| old_in(c)).collect();
        let update = format!(
            "UPDATE {table} AS t SET {} WHERE {range} AND ({})",
            sets.join(", "),
            any_old.join(" OR ")
        );
        self.conn.begin(deadline, self.step)?;
        let result = self.step_statements(deadline, &distinct, &update, remask);
        if result.is_err() {
            let _ = self.conn.rollback();
        }
        result
    }

    /// [`Rekey::step`]'s transaction, from its first statement to its commit.
    fn step_statements(
        &mut self,
        deadline: Instant,
        distinct: &str,
        update: &str,
        remask: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<u64, PostgresError> {
        let client = self.conn.client();
        let rows = self.conn.wait(deadline, client.query(distinct, &[&self.from]))?;
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for row in rows {
            let mask: String = row.get(0);
            if self.unreadable.contains(&mask) {
                continue;
            }
            match remask(&mask) {
                Some(remasked) => {
                    old.push(mask);
                    new.push(remasked);
                }
                None => {
                    self.unreadable.insert(mask);
                }
            }
        }
        if !old.is_empty() {
            self.conn.wait(
                deadline,
                client.execute(
                    "INSERT INTO maskflow_rekey_map SELECT * FROM unnest($1::text[], $2::text[])
                     ON CONFLICT (old) DO NOTHING",
                    &[&old, &new],
                ),
            )?;
        }
        let changed = self.conn.wait(deadline, client.execute(update, &[&self.from]))?;
        self.conn.batch(deadline, "COMMIT")?;
        Ok(changed)
    }

    /// Re-seals up to `limit` rejected bodies under a from key whose message id sorts after
    /// `after`. Returns (the last message id seen, bodies changed), or `None` when none is
    /// left after `after`. Each body is replaced only if it is still the one read.
    pub(crate) fn reseal(
        &mut self,
        after: &str,
        limit: i64,
        reseal: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Option<(String, u64)>, PostgresError> {
        let deadline = Instant::now() + self.step;
        let rejected = ident(&format!("{}_rejected", self.table));
        let rows = self.conn.wait(
            deadline,
            self.conn.client().query(
                &format!(
                    "SELECT message_id, encrypted_body FROM {rejected} t
                     WHERE message_id > $2 AND split_part(t.encrypted_body, '.', 1) = ANY($1)
                     ORDER BY message_id LIMIT $3"
                ),
                &[&self.from, &after, &limit],
            ),
        )?;
        let Some(last) = rows.last().map(|r| r.get::<_, String>(0)) else { return Ok(None) };
        let (mut ids, mut old, mut new) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            let body: String = row.get(1);
            match reseal(&body) {
                Some(sealed) => {
                    ids.push(row.get::<_, String>(0));
                    old.push(body);
                    new.push(sealed);
                }
                None => {
                    self.unreadable.insert(body);
                }
            }
        }
        let update = format!(
            "UPDATE {rejected} AS t SET encrypted_body = v.new
             FROM unnest($1::text[], $2::text[], $3::text[]) AS v(id, old, new)
             WHERE t.message_id = v.id AND t.encrypted_body = v.old"
        );
        self.conn.begin(deadline, self.step)?;
        let changed = self
            .conn
            .wait(deadline, self.conn.client().execute(&update, &[&ids, &old, &new]))
            .and_then(|changed| self.conn.batch(deadline, "COMMIT").map(|()| changed));
        if changed.is_err() {
            let _ = self.conn.rollback();
        }
        let changed = changed?;
        Ok(Some((last, changed)))
    }
}

/// "`t.column` is a mask under a from key (`$1`)", as SQL.
fn old_in(column: &str) -> String {
    format!("split_part(t.{}, '.', 1) = ANY($1)", ident(column))
}
