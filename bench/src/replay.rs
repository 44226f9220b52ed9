//! `maskflow replay`'s input for its benchmark: `--rejections` rejections as a host records them
//! after a producer renamed `user_id` to `userId` (all `missing_field`), sealed under the key
//! file's masking key, each with its SentTimestamp and its ledger entry; and the mapping that
//! reads the new name (the fix), written to `--mapping-out`. `scripts/bench` then times the
//! `maskflow` binary replaying them (bench/run.py, section `replay`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use maskflow_transform::{Config, Key, Mapping, Message, Transformer};
use serde_json::Value;

use crate::data;

/// The rejections' SQS time: 2020-09-13 (replayed rows carry that `create_date`).
const SENT_MS: i64 = 1_600_000_000_000;

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Database to use; its user_logins, user_logins_rejected and maskflow_ledger tables are
    /// TRUNCATED. Use a scratch database.
    #[arg(long, env = "MASKFLOW_BENCH_DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 100_000)]
    rejections: usize,
    /// The key file the replay is given (its first key seals).
    #[arg(long)]
    key_file: PathBuf,
    /// Where to write the mapping that reads `userId`.
    #[arg(long)]
    mapping_out: PathBuf,
}

/// Prints one JSON line: `{"rejections", "seconds"}`.
pub fn seed(args: &SeedArgs) -> Result<()> {
    let started = Instant::now();
    let (_, mut client) = data::empty_tables(
        &args.database_url,
        "user_logins, user_logins_rejected, maskflow_ledger",
    )?;

    let text = std::fs::read_to_string(&args.key_file).context("--key-file")?;
    let keys = Key::parse_key_file(&text).map_err(anyhow::Error::msg)?;
    let mut transformer = Transformer::new(Config::with_keys(keys))?;
    let mut generator = maskflow::Generator::new(23, args.rejections, 0);
    let mut rejected = client.copy_in(
        "COPY user_logins_rejected (message_id, reason, message, encrypted_body, sent_at) FROM STDIN",
    )?;
    let mut ids = String::new();
    let sent = "2020-09-13 12:26:40+00";
    for i in 0..args.rejections {
        let mut event: serde_json::Map<String, Value> =
            serde_json::from_str(&generator.next_body())?;
        let user = event.remove("user_id").context("a generated event has a user_id")?;
        event.insert("userId".into(), user);
        let body = Value::Object(event).to_string();
        let message = Message { id: "b", body: body.as_bytes(), sent_timestamp_ms: SENT_MS };
        let rejection = transformer.transform(&message).err().context("renamed: rejected")?;
        let id = format!("bench-{i:09}");
        let (reason, text) = (rejection.reason.code(), &rejection.message);
        writeln!(rejected, "{id}\t{reason}\t{text}\t{}\t{sent}", rejection.encrypted_body)?;
        ids.push_str(&id);
        ids.push('\n');
    }
    rejected.finish()?;
    let mut ledger = client.copy_in("COPY maskflow_ledger (message_id, outcome) FROM STDIN")?;
    for id in ids.lines() {
        writeln!(ledger, "{id}\trejected")?;
    }
    ledger.finish()?;
    // One statement each: VACUUM cannot run inside the transaction a multi-statement query is.
    client.batch_execute("VACUUM ANALYZE user_logins_rejected, maskflow_ledger")?;
    client.batch_execute("CHECKPOINT")?;
    let n: i64 = client
        .query_one("SELECT count(*) FROM user_logins_rejected WHERE reason = 'missing_field'", &[])?
        .get(0);
    ensure!(n as usize == args.rejections, "{n} rejections seeded of {}", args.rejections);

    let mut mapping = Mapping::user_logins();
    mapping.columns[0].path = Some("userId".into());
    std::fs::write(&args.mapping_out, serde_json::to_string_pretty(&mapping)?)?;
    let line = serde_json::json!({"rejections": n, "seconds": started.elapsed().as_secs_f64()});
    println!("{line}");
    Ok(())
}
