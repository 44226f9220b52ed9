//! `maskflow rekey`'s speed: `--rows` production-shaped rows (and their rejections, about 2%)
//! masked under k1 are re-masked under k2 by the host's own rekey (`commands::rekey::run`, the
//! code `maskflow rekey` runs), timed from its start to its last commit.

use std::io::Write;
use std::time::Instant;

use anyhow::{ensure, Result};
use maskflow::Generator;
use maskflow::{rekey, RekeyConfig};
use maskflow_transform::{Config, Key, Mapping, Message, Transformer};
use postgres::Client;

use crate::data;

#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// Database to use; its user_logins, user_logins_rejected and maskflow_keys tables are
    /// TRUNCATED. Use a scratch database.
    #[arg(long, env = "MASKFLOW_BENCH_DATABASE_URL")]
    database_url: String,
    /// Rows masked under the old key (with `maskflow send --generate`'s repetition: each ip and
    /// device id recurs about 4 times, so a quarter of the rows are distinct values).
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// `maskflow rekey --pages-per-step`.
    #[arg(long, default_value_t = 1024)]
    pages_per_step: i64,
}

/// Prints one JSON line: `{"rows", "rejections", "distinct", "seconds", "rows_per_s"}`.
pub fn run(args: &RekeyArgs) -> Result<()> {
    let (config, mut client) =
        data::empty_tables(&args.database_url, "user_logins, user_logins_rejected, maskflow_keys")?;
    let (k1, k2) = (data::key(), Key::new("k2", [0x24; 64]).expect("valid key"));
    let rejections = load(&mut client, &k1, args.rows)?;
    client.batch_execute("VACUUM ANALYZE user_logins")?;
    client.batch_execute("CHECKPOINT")?;

    let started = Instant::now();
    let summary = rekey(RekeyConfig {
        postgres: config,
        keys: vec![k2, k1],
        mapping: Mapping::user_logins(),
        to: "k2".into(),
        from: None,
        dry_run: false,
        pages_per_step: args.pages_per_step,
        max_passes: 5,
    })
    .map_err(|e| anyhow::anyhow!("rekey: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let left: i64 = client
        .query_one("SELECT count(*) FROM user_logins WHERE masked_ip LIKE 'k1.%' OR masked_device_id LIKE 'k1.%'", &[])?
        .get(0);
    ensure!(
        left == 0 && summary.rows as usize == args.rows,
        "rekey left {left} rows, changed {}",
        summary.rows
    );
    let line = serde_json::json!({"rows": args.rows, "rejections": rejections, "distinct": summary.distinct,
        "seconds": seconds, "rows_per_s": args.rows as f64 / seconds});
    println!("{line}");
    Ok(())
}

/// COPYs `rows` rows made under `key`, and inserts the rejections met on the way; returns
/// how many rejections.
fn load(client: &mut Client, key: &Key, rows: usize) -> Result<usize> {
    let mut transformer = Transformer::new(Config::with_keys(vec![key.clone()]))?;
    let mut generator = Generator::new(17, rows, 20);
    let mut writer = client.copy_in("COPY user_logins FROM STDIN")?;
    let (mut written, mut rejected) = (0, Vec::new());
    let mut line = String::new();
    while written < rows {
        let body = generator.next_body();
        let message =
            Message { id: "b", body: body.as_bytes(), sent_timestamp_ms: 1_700_000_000_000 };
        match transformer.transform(&message) {
            Ok(row) => {
                line.clear();
                for (i, value) in row.values().enumerate() {
                    line.push_str(if i == 0 { "" } else { "\t" });
                    line.push_str(value.unwrap_or("\\N"));
                }
                line.push('\n');
                writer.write_all(line.as_bytes())?;
                written += 1;
            }
            Err(rejection) => rejected.push(rejection.encrypted_body),
        }
    }
    writer.finish()?;
    let ids: Vec<String> = (0..rejected.len()).map(|i| format!("bench-{i:08}")).collect();
    client.execute(
        "INSERT INTO user_logins_rejected (message_id, reason, message, encrypted_body)
         SELECT id, 'bench', 'bench', body FROM unnest($1::text[], $2::text[]) AS t(id, body)",
        &[&ids, &rejected],
    )?;
    Ok(rejected.len())
}
