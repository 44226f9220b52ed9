//! The inputs every benchmark uses, so their figures describe the same data.

use maskflow_transform::{Config, Key, Message};

/// A fixed key: benchmark masks are reproducible (never use it for real data).
pub fn key() -> Key {
    Key::new("k1", [0x42; maskflow_transform::mask::KEY_LEN]).expect("valid key")
}

pub fn config(cache_size: usize) -> Config {
    let mut config = Config::with_keys(vec![key()]);
    config.cache_size = cache_size;
    config
}

/// Production-shaped events from `maskflow send --generate`: every user, address and device
/// recurs about four times, 2% malformed.
pub fn realistic(n: usize) -> Vec<String> {
    let mut generator = maskflow::Generator::new(17, n, 20);
    (0..n).map(|_| generator.next_body()).collect()
}

/// Valid events whose ip and device id are all different: the mask cache never hits.
pub fn distinct(n: usize) -> Vec<String> {
    (0..n).map(|i| event(i, i)).collect()
}

/// Valid events whose ip and device id are, with probability `percent`%, those of one of the
/// 1,000 events before (a device that logs in again soon), else new: a cache hit rate of about
/// `percent`%, for finding the cache's break-even.
pub fn repeating(n: usize, percent: u32) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let mut values: Vec<usize> = Vec::with_capacity(n);
    for i in 0..n {
        let value = if i > 0 && random(100) < u64::from(percent) {
            values[i - 1 - random(i.min(1000) as u64) as usize]
        } else {
            i
        };
        values.push(value);
    }
    values.iter().enumerate().map(|(i, &v)| event(i, v)).collect()
}

/// Event `i`, with the ip and device id of `value`.
fn event(i: usize, value: usize) -> String {
    let (version, device_type, locale) =
        (["2.3.0", "0.96", "5.4.8"][i % 3], ["android", "ios"][i % 2], ["RU", "US", "DE"][i % 3]);
    serde_json::json!({
        "user_id": format!("{:08x}-6b1e-4c2a-9d7f-{:012x}", i, i * 7919),
        "app_version": version,
        "device_type": device_type,
        "ip": format!("{}.{}.{}.{}", 10 + (value >> 24) % 200, (value >> 16) & 255, (value >> 8) & 255, value & 255),
        "locale": locale,
        "device_id": format!("{:03}-{:02}-{:04}", value / 1_000_000 % 1000, value / 10_000 % 100, value % 10_000),
    })
    .to_string()
}

/// SQS-shaped messages over `bodies` (ids and timestamps as the host passes them).
pub fn messages<'a>(ids: &'a [String], bodies: &'a [String]) -> Vec<Message<'a>> {
    ids.iter()
        .zip(bodies)
        .map(|(id, body)| Message {
            id,
            body: body.as_bytes(),
            sent_timestamp_ms: 1_700_000_000_000,
        })
        .collect()
}

pub fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("bench-{i:08}")).collect()
}

/// The host's tables in `database_url`, made by its own sink (so they are exactly what a host
/// creates), then `TRUNCATE`d: its config (plain TCP, local) and a connection for loading.
pub fn empty_tables(
    database_url: &str,
    truncate: &str,
) -> anyhow::Result<(maskflow::PostgresConfig, postgres::Client)> {
    use std::time::{Duration, Instant};

    use anyhow::Context;
    use maskflow::{PostgresConfig, PostgresSink, SslMode, Timeouts, TlsConfig};

    let config = PostgresConfig {
        client: database_url.parse().context("--database-url")?,
        tls: TlsConfig { mode: SslMode::Disable, root_certs: None, client_cert: None },
        table: "user_logins".into(),
        schema: None,
        timeouts: Timeouts { connect: Duration::from_secs(10), commit: Duration::from_secs(120) },
    };
    let columns =
        maskflow_transform::Mapping::user_logins().columns.iter().map(|c| c.name.clone()).collect();
    let mut sink = PostgresSink::new(&config, columns).map_err(anyhow::Error::msg)?;
    sink.prepare(&[], Instant::now() + Duration::from_secs(60)).context("creating the tables")?;
    let mut client =
        postgres::Client::connect(database_url, postgres::NoTls).context("connecting")?;
    client.batch_execute(&format!("TRUNCATE {truncate}"))?;
    Ok((config, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_means_distinct_and_realistic_repeats() {
        let bodies = distinct(70_000);
        let field = |b: &String, f: &str| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()[f].as_str().unwrap().to_owned()
        };
        for f in ["ip", "device_id"] {
            let set: std::collections::HashSet<_> = bodies.iter().map(|b| field(b, f)).collect();
            assert_eq!(set.len(), bodies.len(), "{f} values repeat");
        }
        let real = realistic(10_000);
        let ips: std::collections::HashSet<_> = real
            .iter()
            .filter_map(|b| {
                serde_json::from_str::<serde_json::Value>(b).ok()?["ip"].as_str().map(String::from)
            })
            .collect();
        assert!(ips.len() < 4_000, "{} distinct ips in 10,000 realistic events", ips.len());
    }
}
