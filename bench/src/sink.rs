//! PostgreSQL write paths, side by side: the host's (`PostgresSink::write`: ledger claim, rows
//! by COPY, rejections, commit) against one-row INSERTs, multi-row `INSERT ... VALUES` and
//! `INSERT ... SELECT FROM unnest(...)` (the host's previous path) in one transaction per
//! batch, and a bare COPY as the upper bound. Only the host's path also records every message
//! id in the ledger (exactly-once).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use maskflow::{Item, PostgresConfig, PostgresSink, SslMode, Timeouts, TlsConfig};
use maskflow_transform::Outcome;
use maskflow_transform::Transformer;
use postgres::types::ToSql;
use postgres::{Client, NoTls};

use crate::data;

const COLUMNS: &str =
    "user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date";
/// What every path but the host's binds: text, cast as the host casts (to the base types).
const CASTS: [&str; 7] =
    ["::text", "::text", "::text", "::text", "::text", "::text::integer", "::text::date"];
/// PostgreSQL's limit on bind parameters per statement (65,535), in whole rows.
const MAX_ROWS_PER_VALUES: usize = 65_535 / 7;

#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Database to write into; its user_logins, user_logins_rejected and maskflow_ledger tables
    /// are TRUNCATED. Use a scratch database.
    #[arg(long, env = "MASKFLOW_BENCH_DATABASE_URL")]
    database_url: String,
    /// Rows written per measurement.
    #[arg(long, default_value_t = 30_000)]
    rows: usize,
    /// Measurements per path and batch size; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    batch_sizes: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Host,
    SingleRow,
    MultiRow,
    Unnest,
    Copy,
}

impl Path {
    const ALL: [Path; 5] = [Path::Host, Path::SingleRow, Path::MultiRow, Path::Unnest, Path::Copy];
    fn name(self) -> &'static str {
        match self {
            Path::Host => "host (ledger + COPY)",
            Path::SingleRow => "single-row INSERT",
            Path::MultiRow => "multi-row INSERT",
            Path::Unnest => "unnest INSERT",
            Path::Copy => "COPY (no ledger)",
        }
    }
}

/// Prints one JSON line per path and batch size: `{"path", "batch", "rows", "rows_per_s"}`.
pub fn run(args: &SinkArgs) -> Result<()> {
    let rows = realistic_rows(args.rows);
    // The host's sink takes outcomes: build them once, outside the timed loop.
    let outcomes: Vec<Outcome> = rows.iter().map(|r| Outcome::Row(r.clone())).collect();
    let columns: Vec<String> = COLUMNS.split(", ").map(str::to_owned).collect();
    let config = PostgresConfig {
        client: args.database_url.parse().context("--database-url")?,
        // Plaintext on 127.0.0.1, like the other write paths measured here.
        tls: TlsConfig { mode: SslMode::Disable, root_certs: None, client_cert: None },
        table: "user_logins".into(),
        schema: None,
        timeouts: Timeouts { connect: Duration::from_secs(10), commit: Duration::from_secs(60) },
    };
    let mut host = PostgresSink::new(&config, columns).map_err(anyhow::Error::msg)?;
    // Creates the tables, as `maskflow run` does at start.
    host.prepare(&[], Instant::now() + Duration::from_secs(60))
        .context("preparing the host's sink")?;
    let mut client = Client::connect(&args.database_url, NoTls)
        .context("connecting to the benchmark database")?;
    for &batch in &args.batch_sizes {
        for path in Path::ALL {
            let mut rates = Vec::new();
            for round in 0..args.repeat {
                client.batch_execute(
                    "TRUNCATE user_logins, user_logins_rejected, maskflow_ledger; CHECKPOINT",
                )?;
                let ids: Vec<String> =
                    (0..rows.len()).map(|i| format!("{batch}-{round}-{i}")).collect();
                let started = Instant::now();
                for ((chunk, chunk_outcomes), chunk_ids) in
                    rows.chunks(batch).zip(outcomes.chunks(batch)).zip(ids.chunks(batch))
                {
                    match path {
                        Path::Host => write_host(&mut host, chunk_outcomes, chunk_ids)?,
                        Path::SingleRow => write_single(&mut client, chunk)?,
                        Path::MultiRow => write_multi(&mut client, chunk)?,
                        Path::Unnest => write_unnest(&mut client, chunk)?,
                        Path::Copy => write_copy(&mut client, chunk)?,
                    }
                }
                rates.push(rows.len() as f64 / started.elapsed().as_secs_f64());
                let landed: i64 = client.query_one("SELECT count(*) FROM user_logins", &[])?.get(0);
                ensure!(
                    landed as usize == rows.len(),
                    "{}: {landed} rows landed of {}",
                    path.name(),
                    rows.len()
                );
            }
            rates.sort_by(f64::total_cmp);
            let line = serde_json::json!({"path": path.name(), "batch": batch, "rows": rows.len(), "rows_per_s": rates[rates.len() / 2]});
            println!("{line}");
        }
    }
    Ok(())
}

/// `n` rows as the module makes them from production-shaped events.
fn realistic_rows(n: usize) -> Vec<Vec<Option<String>>> {
    let mut transformer = Transformer::new(data::config(4096)).expect("bench config");
    let ids = data::ids(n * 2);
    let bodies = data::realistic(n * 2);
    data::messages(&ids, &bodies)
        .iter()
        .filter_map(|m| {
            transformer
                .transform(m)
                .ok()
                .map(|row| (0..7).map(|i| row.get(i).map(str::to_owned)).collect())
        })
        .take(n)
        .collect()
}

fn write_host(sink: &mut PostgresSink, outcomes: &[Outcome], ids: &[String]) -> Result<()> {
    let items: Vec<Item> = ids
        .iter()
        .zip(outcomes)
        .map(|(id, outcome)| Item { id, sent_timestamp_ms: 0, outcome })
        .collect();
    let stats = sink.commit(&items)?;
    ensure!(
        stats.rows as usize == outcomes.len(),
        "the host's sink wrote {} of {} rows",
        stats.rows,
        outcomes.len()
    );
    Ok(())
}

fn params(rows: &[Vec<Option<String>>]) -> Vec<&(dyn ToSql + Sync)> {
    rows.iter().flatten().map(|cell| cell as &(dyn ToSql + Sync)).collect()
}

fn placeholders(rows: usize) -> String {
    (0..rows)
        .map(|r| {
            format!(
                "({})",
                (0..7)
                    .map(|c| format!("${}{}", r * 7 + c + 1, CASTS[c]))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_single(client: &mut Client, rows: &[Vec<Option<String>>]) -> Result<()> {
    let mut tx = client.transaction()?;
    let insert =
        tx.prepare(&format!("INSERT INTO user_logins ({COLUMNS}) VALUES {}", placeholders(1)))?;
    for row in rows {
        tx.execute(&insert, &params(std::slice::from_ref(row)))?;
    }
    Ok(tx.commit()?)
}

fn write_multi(client: &mut Client, rows: &[Vec<Option<String>>]) -> Result<()> {
    let mut tx = client.transaction()?;
    for chunk in rows.chunks(MAX_ROWS_PER_VALUES) {
        tx.execute(
            &format!("INSERT INTO user_logins ({COLUMNS}) VALUES {}", placeholders(chunk.len())),
            &params(chunk),
        )?;
    }
    Ok(tx.commit()?)
}

fn write_unnest(client: &mut Client, rows: &[Vec<Option<String>>]) -> Result<()> {
    let columns: Vec<Vec<Option<&str>>> =
        (0..7).map(|c| rows.iter().map(|r| r[c].as_deref()).collect()).collect();
    let arrays = (1..=7).map(|i| format!("${i}::text[]")).collect::<Vec<_>>().join(", ");
    let casts = COLUMNS
        .split(", ")
        .zip(CASTS)
        .map(|(name, cast)| format!("{name}{}", &cast[6..]))
        .collect::<Vec<_>>()
        .join(", ");
    let params: Vec<&(dyn ToSql + Sync)> =
        columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
    let mut tx = client.transaction()?;
    tx.execute(&format!("INSERT INTO user_logins ({COLUMNS}) SELECT {casts} FROM unnest({arrays}) AS t({COLUMNS})"), &params)?;
    Ok(tx.commit()?)
}

fn write_copy(client: &mut Client, rows: &[Vec<Option<String>>]) -> Result<()> {
    use std::io::Write;
    let mut tx = client.transaction()?;
    let mut writer = tx.copy_in(&format!("COPY user_logins ({COLUMNS}) FROM STDIN"))?;
    let mut line = String::new();
    for row in rows {
        line.clear();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            match cell {
                // Masks, ids and versions never hold tabs, newlines or backslashes; escape anyway.
                Some(v) => line
                    .push_str(&v.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n")),
                None => line.push_str("\\N"),
            }
        }
        line.push('\n');
        writer.write_all(line.as_bytes())?;
    }
    writer.finish()?;
    Ok(tx.commit()?)
}
