//! The tables: created if missing (the target only if it is `user_logins`, with its fixed DDL),
//! and checked before anything is written: a `user_logins` of another shape, or a column that
//! would refuse every row, is a configuration error, not a reason to reject every message.

use postgres::Transaction;

use super::classify::classify;
use super::SinkError;

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
pub const LEDGER_INDEX_DDL: &str =
    "CREATE INDEX IF NOT EXISTS maskflow_ledger_processed_at ON maskflow_ledger (processed_at)";
const REJECTED_DDL: &str = "CREATE TABLE IF NOT EXISTS {table}_rejected(
    message_id text PRIMARY KEY, reason text NOT NULL, message text NOT NULL,
    encrypted_body text NOT NULL, rejected_at timestamptz NOT NULL DEFAULT now())";
/// One fingerprint per key id (never the key): a different key under a known id is refused.
const KEYS_DDL: &str = "CREATE TABLE IF NOT EXISTS maskflow_keys(
    key_id text PRIMARY KEY, fingerprint text NOT NULL, first_used timestamptz NOT NULL DEFAULT now())";

/// Creates what is missing and checks what exists, in one transaction.
pub fn prepare(
    tx: &mut Transaction,
    schema: Option<&str>,
    table: &str,
    columns: &[String],
) -> Result<(), SinkError> {
    // Two hosts starting at once must not race on CREATE TABLE.
    tx.batch_execute("SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock(hashtext('maskflow schema'))")
        .map_err(classify)?;
    if let Some(schema) = schema {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).map_err(classify)?;
    }
    if table == "user_logins" {
        tx.batch_execute(USER_LOGINS_DDL).map_err(classify)?;
    }
    for ddl in [LEDGER_DDL, LEDGER_INDEX_DDL, &REJECTED_DDL.replace("{table}", table), KEYS_DDL] {
        tx.batch_execute(ddl).map_err(classify)?;
    }
    check_shape(tx, table, columns)
}

/// Every column the module writes exists (with `user_logins`' exact types), and no other
/// column needs a value.
fn check_shape(tx: &mut Transaction, table: &str, columns: &[String]) -> Result<(), SinkError> {
    let existing: Vec<(String, String, bool)> = tx
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull AND NOT a.atthasdef
             FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table],
        )
        .map_err(classify)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let fatal = |what: String| Err(SinkError::Fatal(format!("table `{table}` {what}")));
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
pub fn check_keys(tx: &mut Transaction, keys: &[(String, String)]) -> Result<(), SinkError> {
    for (id, fingerprint) in keys {
        tx.execute(
            "INSERT INTO maskflow_keys (key_id, fingerprint) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
            &[id, fingerprint],
        )
        .map_err(classify)?;
        let known: String = tx
            .query_one("SELECT fingerprint FROM maskflow_keys WHERE key_id = $1", &[id])
            .map_err(classify)?
            .get(0);
        if &known != fingerprint {
            return Err(SinkError::Fatal(format!(
                "key `{id}` is not the key `{id}` that wrote this database (its fingerprint in maskflow_keys differs): \
                 masks would stop matching. Use the original key file, or give a new key a new id \
                 (`maskflow keygen --id k2`) and put it first"
            )));
        }
    }
    Ok(())
}
