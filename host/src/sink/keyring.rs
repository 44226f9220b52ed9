//! What the database knows of the keys: the fingerprints in `maskflow_keys`, and how many masks
//! each key id still has in the masked columns and the rejections' sealed bodies
//! (`maskflow keys`, `maskflow keys retire`, `maskflow rekey`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::connection::Connection;
use super::{PostgresConfig, PostgresError};

/// Masks per key id, per place (`user_logins.masked_ip`, ..., `user_logins_rejected.encrypted_body`).
pub(crate) type MaskCounts = BTreeMap<String, BTreeMap<String, i64>>;

pub(super) use super::connection::open_for_command as open;

/// A table or column name as SQL (they come from the mapping and `--table`, checked there).
pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The places masks live: each masked column of `table`, and `{table}_rejected.encrypted_body`.
pub(super) fn places(table: &str, columns: &[String]) -> Vec<String> {
    let mut places: Vec<String> = columns.iter().map(|c| format!("{table}.{c}")).collect();
    places.push(format!("{table}_rejected.encrypted_body"));
    places
}

/// Counts masks by key id (the text before the first `.`) in every place: one scan of each table.
pub(super) fn count_masks(
    conn: &Connection,
    deadline: Instant,
    table: &str,
    columns: &[String],
) -> Result<MaskCounts, PostgresError> {
    let values: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("({i}, split_part({}, '.', 1))", ident(c)))
        .collect();
    let rows = conn.wait(
        deadline,
        conn.client().query(
            &format!(
                "SELECT v.c, v.k, count(*) FROM {} t, LATERAL (VALUES {}) AS v(c, k)
                 WHERE v.k IS NOT NULL GROUP BY 1, 2
                 UNION ALL
                 SELECT {}, split_part(encrypted_body, '.', 1), count(*) FROM {} GROUP BY 2",
                ident(table),
                values.join(", "),
                columns.len(),
                ident(&format!("{table}_rejected")),
            ),
            &[],
        ),
    )?;
    let places = places(table, columns);
    let mut counts = MaskCounts::new();
    for row in rows {
        let (place, key, n): (i32, String, i64) = (row.get(0), row.get(1), row.get(2));
        *counts.entry(key).or_default().entry(places[place as usize].clone()).or_default() += n;
    }
    Ok(counts)
}

/// The fingerprints recorded in `maskflow_keys` (none if the table does not exist yet).
pub(super) fn recorded(
    conn: &Connection,
    deadline: Instant,
) -> Result<Vec<(String, String)>, PostgresError> {
    let exists: bool = conn
        .wait(
            deadline,
            conn.client().query_one("SELECT to_regclass('maskflow_keys') IS NOT NULL", &[]),
        )?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(conn
        .wait(
            deadline,
            conn.client().query(
                "SELECT key_id, fingerprint FROM maskflow_keys ORDER BY first_used, key_id",
                &[],
            ),
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// What `maskflow keys` shows.
pub(crate) struct KeyReport {
    /// `maskflow_keys`: (key id, fingerprint).
    pub(crate) recorded: Vec<(String, String)>,
    pub(crate) counts: MaskCounts,
    pub(crate) places: Vec<String>,
}

/// Reads the fingerprints and counts every mask by key id.
pub(crate) fn key_report(
    config: &PostgresConfig,
    columns: &[String],
) -> Result<KeyReport, PostgresError> {
    let conn = open(config, "maskflow keys")?;
    let deadline = Instant::now() + config.timeouts.commit.max(Duration::from_secs(300));
    let recorded = recorded(&conn, deadline)?;
    let counts = count_masks(&conn, deadline, &config.table, columns)?;
    Ok(KeyReport { recorded, counts, places: places(&config.table, columns) })
}

/// Refuses when masks under `key_id` remain.
fn in_use(counts: &MaskCounts, key_id: &str) -> Result<(), RetireError> {
    match counts.get(key_id).filter(|c| c.values().any(|&n| n > 0)) {
        Some(remaining) => Err(RetireError::InUse {
            key: key_id.to_owned(),
            remaining: remaining.iter().map(|(p, n)| (p.clone(), *n)).collect(),
        }),
        None => Ok(()),
    }
}

/// Why a key could not be retired.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error(transparent)]
    Sink(#[from] PostgresError),
    /// Masks under the key remain: (place, count).
    #[error(
        "refused: masks under `{key}` remain ({}). Rekey them first (`maskflow rekey --to <masking key>`); `maskflow keys` shows what is left",
        .remaining.iter().map(|(p, n)| format!("{p}: {n}")).collect::<Vec<_>>().join(", ")
    )]
    InUse { key: String, remaining: Vec<(String, i64)> },
    #[error("key `{key}` is not recorded in maskflow_keys (already retired, or never used here)")]
    Unknown { key: String },
}

/// Drops `key_id`'s fingerprint, refusing while any mask under it remains. A first count takes
/// no lock, so the usual refusal (the rekey has not finished) never holds up the hosts' writes;
/// only when it finds none are the tables share-locked for a second count and the delete, so
/// that no row under the key can be committed in between. Writes that meet that lock wait, and
/// retry after their lock timeout: they heal by themselves once the count is done.
pub(crate) fn retire(
    config: &PostgresConfig,
    columns: &[String],
    key_id: &str,
) -> Result<(), RetireError> {
    let conn = open(config, "maskflow keys retire")?;
    let deadline = Instant::now() + config.timeouts.commit.max(Duration::from_secs(300));
    in_use(&count_masks(&conn, deadline, &config.table, columns)?, key_id)?;
    conn.begin(deadline, config.timeouts.commit)?;
    let result = (|| {
        conn.batch(
            deadline,
            &format!(
                "LOCK TABLE {}, {} IN SHARE MODE",
                ident(&config.table),
                ident(&format!("{}_rejected", config.table))
            ),
        )?;
        in_use(&count_masks(&conn, deadline, &config.table, columns)?, key_id)?;
        let deleted = conn.wait(
            deadline,
            conn.client().execute("DELETE FROM maskflow_keys WHERE key_id = $1", &[&key_id]),
        )?;
        if deleted == 0 {
            return Err(RetireError::Unknown { key: key_id.to_owned() });
        }
        conn.batch(deadline, "COMMIT")?;
        Ok(())
    })();
    if result.is_err() {
        let _ = conn.rollback();
    }
    result
}
