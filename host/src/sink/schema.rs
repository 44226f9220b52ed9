//! The tables: created if missing (the target only if it is `user_logins`, with its fixed DDL),
//! and checked before anything is written: a `user_logins` of another shape, or a column that
//! would refuse every row, is a configuration error, not a reason to reject every message.

use std::time::{Duration, Instant};

use super::connection::Connection;
use super::PostgresError;
use crate::events::{event, Event};

/// The target table, exactly as specified; created if missing, never altered.
const USER_LOGINS_DDL: &str = "CREATE TABLE IF NOT EXISTS user_logins(
    user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
    masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date)";
/// `user_logins`' columns as `format_type` names them.
const USER_LOGINS_TYPES: [(&str, &str); 7] = [
    ("user_id", "character varying(128)"),
    ("device_type", "character varying(32)"),
    ("masked_ip", "character varying(256)"),
    ("masked_device_id", "character varying(256)"),
    ("locale", "character varying(32)"),
    ("app_version", "integer"),
    ("create_date", "date"),
];
const LEDGER_DDL: &str = "CREATE TABLE IF NOT EXISTS maskflow_ledger(
    message_id text PRIMARY KEY, outcome text NOT NULL, processed_at timestamptz NOT NULL DEFAULT now())";
/// `maskflow prune` deletes by age.
const LEDGER_INDEX_DDL: &str =
    "CREATE INDEX IF NOT EXISTS maskflow_ledger_processed_at ON maskflow_ledger (processed_at)";
const REJECTED_DDL: &str = "CREATE TABLE IF NOT EXISTS {table}_rejected(
    message_id text PRIMARY KEY, reason text NOT NULL, message text NOT NULL,
    encrypted_body text NOT NULL, rejected_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz)";
/// Columns added to maskflow's own tables after their first release, as (table suffix, column,
/// DDL). Each is nullable without a default: adding it changes the catalog only (no rewrite, no
/// scan), so an existing database is upgraded in place while hosts keep writing. Rows written
/// before the change hold NULL there.
const ADDED_COLUMNS: [(&str, &str, &str); 1] = [(
    // The message's SQS SentTimestamp, kept so that `maskflow replay` gives a replayed row the
    // `create_date` of its send day (NULL: recorded before this column; `rejected_at` stands in).
    "_rejected",
    "sent_at",
    "ALTER TABLE {table}_rejected ADD COLUMN IF NOT EXISTS sent_at timestamptz",
)];
/// One fingerprint per key id (never the key): a different key under a known id is refused.
const KEYS_DDL: &str = "CREATE TABLE IF NOT EXISTS maskflow_keys(
    key_id text PRIMARY KEY, fingerprint text NOT NULL, first_used timestamptz NOT NULL DEFAULT now())";

/// Waits for a lock during set-up at most this long. DDL on a table that exists queues behind
/// any open transaction on it and everything queues behind the DDL: set-up only runs DDL for
/// what is missing, and never waits long.
const SETUP_LOCK_WAIT: Duration = Duration::from_secs(1);

/// Creates what is missing and checks what exists. The catalog is read first and only what is
/// missing is created (in one transaction, serialised between hosts starting at once), so a
/// host (re)starting next to a long transaction takes no lock that others would queue behind.
pub(crate) fn prepare(
    conn: &Connection,
    deadline: Instant,
    schema: Option<&str>,
    table: &str,
    columns: &[String],
) -> Result<(), PostgresError> {
    let rejected = format!("{table}_rejected");
    let wanted: Vec<(&str, String)> = [
        (table, if table == "user_logins" { USER_LOGINS_DDL.to_owned() } else { String::new() }),
        ("maskflow_ledger", LEDGER_DDL.to_owned()),
        ("maskflow_ledger_processed_at", LEDGER_INDEX_DDL.to_owned()),
        (rejected.as_str(), REJECTED_DDL.replace("{table}", table)),
        ("maskflow_keys", KEYS_DDL.to_owned()),
    ]
    .into_iter()
    .collect();
    let names: Vec<&str> = wanted.iter().map(|(name, _)| *name).collect();
    let present: Vec<bool> = conn
        .wait(
            deadline,
            conn.client().query_one(
                "SELECT array_agg(to_regclass(n) IS NOT NULL ORDER BY i) FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i)",
                &[&names],
            ),
        )?
        .get(0);
    let missing: Vec<&String> = wanted
        .iter()
        .zip(&present)
        .filter(|((_, ddl), present)| !**present && !ddl.is_empty())
        .map(|((_, ddl), _)| ddl)
        .collect();
    if !missing.is_empty() {
        conn.begin(deadline, SETUP_LOCK_WAIT)?;
        let mut sql = String::from(
            "SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock(hashtext('maskflow schema'));",
        );
        if let Some(schema) = schema {
            sql += &format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";");
        }
        for ddl in missing {
            sql += ddl;
            sql += ";";
        }
        sql += "COMMIT";
        if let Err(e) = conn.batch(deadline, &sql) {
            let _ = conn.rollback();
            return Err(e);
        }
    }
    add_missing_columns(conn, deadline, table)?;
    check_shape(conn, deadline, table, columns)
}

/// Adds the [`ADDED_COLUMNS`] a database created by an older host lacks. The catalog is read
/// first, so an upgraded database takes no lock at all. `ALTER TABLE` needs the table to itself
/// for an instant: it waits at most [`SETUP_LOCK_WAIT`] for that (writers queue behind it no
/// longer), and a wait that times out is transient, retried within the start-up budget.
fn add_missing_columns(
    conn: &Connection,
    deadline: Instant,
    table: &str,
) -> Result<(), PostgresError> {
    let wanted: Vec<(String, &str, String)> = ADDED_COLUMNS
        .iter()
        .map(|(suffix, column, ddl)| {
            (format!("{table}{suffix}"), *column, ddl.replace("{table}", table))
        })
        .collect();
    let tables: Vec<&str> = wanted.iter().map(|(t, ..)| t.as_str()).collect();
    let columns: Vec<&str> = wanted.iter().map(|(_, c, _)| *c).collect();
    let present: Vec<bool> = conn
        .wait(
            deadline,
            conn.client().query_one(
                "SELECT array_agg(EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass(t)
                    AND a.attname = c AND NOT a.attisdropped) ORDER BY i)
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(t, c, i)",
                &[&tables, &columns],
            ),
        )?
        .get(0);
    let missing: Vec<&(String, &str, String)> =
        wanted.iter().zip(&present).filter(|(_, present)| !**present).map(|(w, _)| w).collect();
    if missing.is_empty() {
        return Ok(());
    }
    conn.begin(deadline, SETUP_LOCK_WAIT)?;
    let ddl: Vec<&str> = missing.iter().map(|(.., ddl)| ddl.as_str()).collect();
    let sql = format!(
        "SET LOCAL client_min_messages = warning; \
         SELECT pg_advisory_xact_lock(hashtext('maskflow schema')); {}; COMMIT",
        ddl.join("; ")
    );
    if let Err(e) = conn.batch(deadline, &sql) {
        let _ = conn.rollback();
        return Err(e);
    }
    for (table, column, _) in missing {
        event!(info, Event::SchemaUpgraded, table, column, "added a column to an older table");
    }
    Ok(())
}

/// `maskflow prune` needs the ledger's index on `processed_at`: created if missing (hosts older
/// than the index did not make it), never waiting long for the lock it takes.
pub(crate) fn ensure_ledger_index(
    conn: &Connection,
    deadline: Instant,
) -> Result<(), PostgresError> {
    let present: bool = conn
        .wait(
            deadline,
            conn.client()
                .query_one("SELECT to_regclass('maskflow_ledger_processed_at') IS NOT NULL", &[]),
        )?
        .get(0);
    if !present {
        conn.begin(deadline, SETUP_LOCK_WAIT)?;
        if let Err(e) = conn.batch(deadline, &format!("{LEDGER_INDEX_DDL}; COMMIT")) {
            let _ = conn.rollback();
            return Err(e);
        }
    }
    Ok(())
}

/// Every column the module writes exists (with `user_logins`' exact types), and no other
/// column needs a value.
fn check_shape(
    conn: &Connection,
    deadline: Instant,
    table: &str,
    columns: &[String],
) -> Result<(), PostgresError> {
    let existing: Vec<(String, String, bool)> = conn
        .wait(
            deadline,
            conn.client().query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull AND NOT a.atthasdef
                 FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table],
            ),
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let fatal = |what: String| Err(PostgresError::fatal(format!("table `{table}` {what}")));
    if existing.is_empty() {
        return fatal("does not exist; create it or use --table user_logins".into());
    }
    for name in columns {
        let Some((_, found, _)) = existing.iter().find(|(n, ..)| n == name) else {
            return fatal(format!(
                "has no column `{name}`, which the module produces; check the mapping"
            ));
        };
        let expected = USER_LOGINS_TYPES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        if let Some(expected) = expected.filter(|_| table == "user_logins") {
            if found != expected {
                return fatal(format!(
                    "has column `{name}` of type {found}, not {expected} as the DDL in README says: \
                     fix the table, or write to another one with --table and --mapping"
                ));
            }
        }
    }
    if let Some((name, ..)) =
        existing.iter().find(|(name, _, required)| *required && !columns.contains(name))
    {
        return fatal(format!(
            "has a NOT NULL column `{name}` without a default, which the module does not write: every row would be refused"
        ));
    }
    Ok(())
}

/// Records each key's fingerprint on first use; a different key under a known id is fatal.
/// Known ids are only read, so a host restarting writes nothing here.
pub(crate) fn check_keys(
    conn: &Connection,
    deadline: Instant,
    keys: &[(String, String)],
) -> Result<(), PostgresError> {
    let ids: Vec<&str> = keys.iter().map(|(id, _)| id.as_str()).collect();
    let fingerprints: Vec<&str> = keys.iter().map(|(_, f)| f.as_str()).collect();
    let known = |conn: &Connection| -> Result<Vec<(String, String)>, PostgresError> {
        Ok(conn
            .wait(
                deadline,
                conn.client().query(
                    "SELECT key_id, fingerprint FROM maskflow_keys WHERE key_id = ANY($1)",
                    &[&ids],
                ),
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    };
    let mut recorded = known(conn)?;
    if recorded.len() < keys.len() {
        conn.begin(deadline, SETUP_LOCK_WAIT)?;
        let inserted = conn.wait(
            deadline,
            conn.client().execute(
                "INSERT INTO maskflow_keys (key_id, fingerprint) SELECT * FROM unnest($1::text[], $2::text[])
                 ON CONFLICT (key_id) DO NOTHING",
                &[&ids, &fingerprints],
            ),
        );
        match inserted.and_then(|_| conn.batch(deadline, "COMMIT")) {
            Ok(()) => recorded = known(conn)?,
            Err(e) => {
                let _ = conn.rollback();
                return Err(e);
            }
        }
    }
    for (id, fingerprint) in keys {
        let known = recorded.iter().find(|(k, _)| k == id).map(|(_, f)| f);
        if known.is_some_and(|known| known != fingerprint) {
            return Err(PostgresError::fatal(format!(
                "key `{id}` is not the key `{id}` that wrote this database (its fingerprint in maskflow_keys differs): \
                 masks would stop matching. Use the original key file, or give a new key a new id \
                 (`maskflow keygen --id k2`) and put it first"
            )));
        }
    }
    Ok(())
}
