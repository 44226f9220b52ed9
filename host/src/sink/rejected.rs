//! What `<table>_rejected` holds, for `maskflow rejections`: counts by reason, by day and by the
//! key id of the sealed body, and the rejections themselves (message id, reason, message:
//! never a body, which stays sealed, nor a clear value, which messages never hold).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::connection::{open_for_command, Connection};
use super::keyring::ident;
use super::{PostgresConfig, PostgresError};

/// Which rejections a command looks at (built by the CLI layer). Times are `rejected_at`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    /// Reason codes; empty: every reason.
    pub(crate) reasons: Vec<String>,
    /// Rejected at or after this.
    pub(crate) since: Option<SystemTime>,
    /// Rejected before this.
    pub(crate) until: Option<SystemTime>,
}

impl Selection {
    /// The condition on `<table>_rejected t` for this selection, with its parameters as `$n`
    /// from `first`: (reasons, since, until).
    pub(super) fn condition(first: usize) -> String {
        let (r, s, u) = (first, first + 1, first + 2);
        format!(
            "(cardinality(${r}::text[]) = 0 OR t.reason = ANY(${r}))
             AND (${s}::timestamptz IS NULL OR t.rejected_at >= ${s})
             AND (${u}::timestamptz IS NULL OR t.rejected_at < ${u})"
        )
    }
}

/// Counts of one group: how many, the oldest and newest `rejected_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) count: i64,
    pub(crate) oldest: SystemTime,
    pub(crate) newest: SystemTime,
}

/// `maskflow rejections` without `--limit`.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) by_reason: BTreeMap<String, Counts>,
    /// (UTC day of `rejected_at`, reason) -> count.
    pub(crate) by_day: BTreeMap<(String, String), i64>,
    /// Key id of the sealed body -> count.
    pub(crate) by_key: BTreeMap<String, i64>,
    /// Recorded before `sent_at` was kept: a replay gives them the day of `rejected_at`.
    pub(crate) without_sent_time: i64,
}

/// One rejection as `maskflow rejections --limit N` lists it.
#[derive(Debug)]
pub(crate) struct Listed {
    pub(crate) message_id: String,
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) rejected_at: SystemTime,
    pub(crate) sent_at: Option<SystemTime>,
}

/// Reads the counts of the selected rejections (three grouped scans of the table).
pub(crate) fn report(
    config: &PostgresConfig,
    selection: &Selection,
) -> Result<Report, PostgresError> {
    let conn = open_for_command(config, "maskflow rejections")?;
    let deadline = Instant::now() + config.timeouts.commit.max(Duration::from_secs(300));
    let table = ident(&format!("{}_rejected", config.table));
    let Some(sent_at) = sent_at(&conn, deadline, &config.table)? else {
        return Ok(Report::default());
    };
    let params = params(selection);
    let params = params.as_refs();
    let filter = Selection::condition(1);
    let query = |sql: String| conn.wait(deadline, conn.client().query(&sql, &params));
    let mut report = Report::default();
    for row in query(format!(
        "SELECT t.reason, count(*), min(t.rejected_at), max(t.rejected_at),
                count(*) FILTER (WHERE {sent_at} IS NULL)
         FROM {table} t WHERE {filter} GROUP BY t.reason"
    ))? {
        let counts = Counts { count: row.get(1), oldest: row.get(2), newest: row.get(3) };
        report.without_sent_time += row.get::<_, i64>(4);
        report.by_reason.insert(row.get(0), counts);
    }
    for row in query(format!(
        "SELECT to_char(t.rejected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), t.reason, count(*)
         FROM {table} t WHERE {filter} GROUP BY 1, 2"
    ))? {
        report.by_day.insert((row.get(0), row.get(1)), row.get(2));
    }
    for row in query(format!(
        "SELECT split_part(t.encrypted_body, '.', 1), count(*) FROM {table} t WHERE {filter} GROUP BY 1"
    ))? {
        report.by_key.insert(row.get(0), row.get(1));
    }
    Ok(report)
}

/// The oldest `limit` selected rejections (by `rejected_at`, then message id).
pub(crate) fn list(
    config: &PostgresConfig,
    selection: &Selection,
    limit: i64,
) -> Result<Vec<Listed>, PostgresError> {
    let conn = open_for_command(config, "maskflow rejections")?;
    let deadline = Instant::now() + config.timeouts.commit.max(Duration::from_secs(300));
    let Some(sent_at) = sent_at(&conn, deadline, &config.table)? else {
        return Ok(Vec::new());
    };
    let table = ident(&format!("{}_rejected", config.table));
    let params = params(selection);
    let mut params = params.as_refs();
    params.push(&limit);
    let sql = format!(
        "SELECT t.message_id, t.reason, t.message, t.rejected_at, {sent_at} FROM {table} t
         WHERE {} ORDER BY t.rejected_at, t.message_id LIMIT $4",
        Selection::condition(1)
    );
    let rows = conn.wait(deadline, conn.client().query(&sql, &params))?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            message_id: r.get(0),
            reason: r.get(1),
            message: r.get(2),
            rejected_at: r.get(3),
            sent_at: r.get(4),
        })
        .collect())
}

/// The selection's parameters, in [`Selection::condition`]'s order.
pub(super) struct Params {
    reasons: Vec<String>,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
}

impl Params {
    pub(super) fn as_refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        vec![&self.reasons, &self.since, &self.until]
    }
}

pub(super) fn params(selection: &Selection) -> Params {
    Params { reasons: selection.reasons.clone(), since: selection.since, until: selection.until }
}

/// `sent_at` as SQL on `<table>_rejected t`, or `None` if the table does not exist. A table made
/// by an older host lacks the column until a host of this version starts: all NULL until then.
fn sent_at(
    conn: &Connection,
    deadline: Instant,
    table: &str,
) -> Result<Option<&'static str>, PostgresError> {
    let sql = "SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass($1) AND attname = 'sent_at' AND NOT attisdropped)";
    let rejected = format!("{table}_rejected");
    let row = conn.wait(deadline, conn.client().query_one(sql, &[&rejected]))?;
    Ok(match (row.get(0), row.get(1)) {
        (false, _) => None,
        (true, true) => Some("t.sent_at"),
        (true, false) => Some("NULL::timestamptz"),
    })
}
