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
    let mut generator = maskflow::commands::send::Generator::new(17, n, 20);
    (0..n).map(|_| generator.next_body()).collect()
}

/// Valid events whose ip and device id are all different: the mask cache never hits.
pub fn distinct(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (version, device_type, locale) = (["2.3.0", "0.96", "5.4.8"][i % 3], ["android", "ios"][i % 2], ["RU", "US", "DE"][i % 3]);
            serde_json::json!({
                "user_id": format!("{:08x}-6b1e-4c2a-9d7f-{:012x}", i, i * 7919),
                "app_version": version,
                "device_type": device_type,
                "ip": format!("{}.{}.{}.{}", 10 + (i >> 24) % 200, (i >> 16) & 255, (i >> 8) & 255, i & 255),
                "locale": locale,
                "device_id": format!("{:03}-{:02}-{:04}", i / 1_000_000 % 1000, i / 10_000 % 100, i % 10_000),
            })
            .to_string()
        })
        .collect()
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
