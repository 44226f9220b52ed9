//! Synthetic login events shaped like production's: repeated devices and addresses (duplicates
//! are what masking must preserve), `locale` often null, versions in the forms seen in the
//! wild, and a set share of malformed messages of several kinds.

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

const DEVICE_TYPES: [&str; 3] = ["android", "ios", "android"];
const LOCALES: [&str; 8] = ["RU", "US", "DE", "FR", "BR", "IN", "JP", "GB"];
const VERSIONS: [&str; 8] = ["0.96", "2.00", "7.31", "5.4.8", "2.3.0", "3.1", "0.2.6", "6.5.2"];
/// Messages that are not valid login events, one of each kind in turn.
const MALFORMED: [&str; 6] = [
    r#"{"foo": "oops_wrong_msg_type", "bar": "123"}"#,
    r#"{"user_id": "5f1c", "ip": "999.1.2.3", "device_id": "111-22-3333"}"#,
    r#"{"user_id": "5f1d", "app_version": "1.2.3.4"}"#,
    r#"{"user_id": "5f1e", "device_type": 7}"#,
    r#"{"user_id": "#,
    r#"["not", "an", "object"]"#,
];

pub struct Generator {
    rng: SmallRng,
    users: Vec<String>,
    ips: Vec<String>,
    devices: Vec<String>,
    malformed_per_mille: u32,
    malformed_seen: usize,
}

impl Generator {
    /// About `n` distinct events' worth of users, with each user, address and device recurring.
    pub fn new(seed: u64, n: usize, malformed_per_mille: u32) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let pool = (n / 4).max(4);
        let users = (0..pool).map(|_| uuid(&mut rng)).collect();
        let ips = (0..pool)
            .map(|_| {
                format!(
                    "{}.{}.{}.{}",
                    rng.random_range(1..224),
                    rng.random_range(0..256),
                    rng.random_range(0..256),
                    rng.random_range(1..255)
                )
            })
            .collect();
        let devices = (0..pool)
            .map(|_| {
                format!(
                    "{:03}-{:02}-{:04}",
                    rng.random_range(0..1000),
                    rng.random_range(0..100),
                    rng.random_range(0..10000)
                )
            })
            .collect();
        Generator { rng, users, ips, devices, malformed_per_mille, malformed_seen: 0 }
    }

    /// The next message body.
    pub fn next_body(&mut self) -> String {
        if self.rng.random_range(0..1000) < self.malformed_per_mille {
            self.malformed_seen += 1;
            return MALFORMED[self.malformed_seen % MALFORMED.len()].to_owned();
        }
        let rng = &mut self.rng;
        let locale = if rng.random_bool(0.4) { None } else { LOCALES.choose(rng).copied() };
        json!({
            "user_id": self.users.choose(rng),
            "app_version": VERSIONS.choose(rng),
            "device_type": DEVICE_TYPES.choose(rng),
            "ip": self.ips.choose(rng),
            "locale": locale,
            "device_id": self.devices.choose(rng),
        })
        .to_string()
    }
}

fn uuid(rng: &mut SmallRng) -> String {
    let b: [u8; 16] = rng.random();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{}-{}-4{}-{}-{}", h(0..4), h(4..6), &h(6..8)[1..], h(8..10), h(10..16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_repeating_and_partly_malformed() {
        let bodies: Vec<String> = {
            let mut g = Generator::new(7, 1000, 20);
            (0..1000).map(|_| g.next_body()).collect()
        };
        let again: Vec<String> = {
            let mut g = Generator::new(7, 1000, 20);
            (0..1000).map(|_| g.next_body()).collect()
        };
        assert_eq!(bodies, again, "same seed, same messages");
        let malformed = bodies.iter().filter(|b| MALFORMED.contains(&b.as_str())).count();
        assert!((5..=50).contains(&malformed), "about 2% malformed, got {malformed}");
        let ips: std::collections::HashSet<_> = bodies
            .iter()
            .filter_map(|b| {
                serde_json::from_str::<serde_json::Value>(b)
                    .ok()?
                    .get("ip")?
                    .as_str()
                    .map(String::from)
            })
            .collect();
        assert!(ips.len() < 300, "addresses repeat: {} distinct in 1000", ips.len());
    }
}
