//! The mask cache switches itself off below its break-even hit rate and back on when values
//! repeat again (transform/src/cache.rs), and that never changes an outcome: the same messages
//! give byte-identical rows and rejections with the cache always on, adaptive, or off.

use maskflow_transform::{CacheStats, Config, Key, Message, Transformer};

fn transformer(cache_size: usize, adaptive: bool) -> Transformer {
    let mut config = Config::with_keys(vec![Key::new("k1", [42; 64]).unwrap()]);
    config.cache_size = cache_size;
    let mut t = Transformer::new(config).unwrap();
    // Adaptive is the default: left alone, so that these tests check the default.
    if !adaptive {
        t.set_cache_adaptive(false);
    }
    t
}

/// A valid event whose ip and device id are those of `n` (different `n`, different values).
fn event(n: u64, user: u64) -> String {
    format!(
        r#"{{"user_id": "u{user}", "app_version": "2.3.0", "device_type": "ios", "ip": "10.{}.{}.{}", "locale": "RU", "device_id": "d-{n:08x}"}}"#,
        (n >> 16) & 255,
        (n >> 8) & 255,
        n & 255
    )
}

/// xorshift64*: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn distinct(from: u64, count: u64) -> Vec<String> {
    (from..from + count).map(|n| event(n, n)).collect()
}

/// Events whose values come from a pool of `pool` (a burst of redeliveries, one busy device).
fn repeats(rng: &mut Rng, pool: u64, count: u64) -> Vec<String> {
    (0..count).map(|i| event(1 << 40 | rng.below(pool), i)).collect()
}

/// Runs `bodies` through `t` and returns what the caches did meanwhile.
fn run(t: &mut Transformer, bodies: &[String]) -> CacheStats {
    let before = t.cache_stats();
    for (i, body) in bodies.iter().enumerate() {
        let message = Message { id: "m", body: body.as_bytes(), sent_timestamp_ms: i as i64 };
        t.transform(&message).expect("a valid event");
    }
    let after = t.cache_stats();
    CacheStats {
        hits: after.hits - before.hits,
        lookups: after.lookups - before.lookups,
        bypassed: after.bypassed - before.bypassed,
    }
}

#[test]
fn switches_off_on_distinct_values_and_back_on_when_they_repeat() {
    // Two masked columns: every event makes two lookups (or bypasses).
    let distinct = distinct(0, 100_000);
    let mut always = transformer(4096, false);
    let s = run(&mut always, &distinct);
    assert_eq!((s.hits, s.lookups, s.bypassed), (0, 200_000, 0), "always on: {s:?}");

    let mut adaptive = transformer(4096, true);
    let s = run(&mut adaptive, &distinct);
    assert_eq!(s.lookups + s.bypassed, 200_000, "{s:?}");
    assert_eq!(s.hits, 0);
    // Off after the first window, then one probe window in 16.
    assert!(s.lookups < 200_000 / 8, "the cache stayed on over distinct values: {s:?}");

    // The same transformer, now on data that repeats: it comes back within 16 windows per
    // column and then hits.
    let burst = repeats(&mut Rng(7), 200, 100_000);
    let s = run(&mut adaptive, &burst);
    assert_eq!(s.lookups + s.bypassed, 200_000, "{s:?}");
    assert!(s.bypassed <= 2 * 15 * 4096, "{s:?}");
    assert!(s.lookups > 200_000 / 3, "the cache did not come back: {s:?}");
    assert!(s.hit_rate() > 0.8, "{s:?}");

    // Repetitive data from the start: never off.
    let mut fresh = transformer(4096, true);
    let s = run(&mut fresh, &burst);
    assert_eq!((s.lookups, s.bypassed), (200_000, 0), "{s:?}");
    assert!(s.hit_rate() > 0.8, "{s:?}");
}

#[test]
fn outputs_are_the_same_with_the_cache_always_on_adaptive_or_off() {
    // Phases of distinct values, bursts of repeats and a mix (repeats of recent values, new
    // ones, invalid bodies), so that the adaptive cache switches off and on several times.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut bodies = Vec::new();
    let mut next = 0;
    for phase in 0..9u64 {
        match phase % 3 {
            0 => {
                bodies.extend(distinct(next, 30_000));
                next += 30_000;
            }
            1 => bodies.extend(repeats(&mut rng, 50 + phase * 100, 25_000)),
            _ => {
                for i in 0..25_000u64 {
                    bodies.push(match rng.below(10) {
                        0..=2 => event(next.saturating_sub(1 + rng.below(3000)), i),
                        3 => format!(r#"{{"user_id": "u{i}", "ip": "10.0.0.{}"}}"#, rng.below(300)),
                        4 => format!(r#"{{"user_id": "u{i}", "device_id": "  d-{i:x}  "}}"#),
                        5 => r#"{"ip": "10.0.0.1"}"#.to_owned(),
                        _ => {
                            next += 1;
                            event(next, i)
                        }
                    });
                }
            }
        }
    }
    let mut always = transformer(4096, false);
    let mut adaptive = transformer(4096, true);
    let mut small = transformer(64, true);
    let mut off = transformer(0, true);
    let outcome = |t: &mut Transformer, message: &Message| match t.transform(message) {
        Ok(row) => Ok(row.values().map(|v| v.map(str::to_owned)).collect::<Vec<_>>()),
        Err(r) => Err((r.reason.code(), r.message, r.encrypted_body)),
    };
    for (i, body) in bodies.iter().enumerate() {
        let message = Message { id: "m", body: body.as_bytes(), sent_timestamp_ms: i as i64 };
        let expected = outcome(&mut off, &message);
        assert_eq!(outcome(&mut always, &message), expected, "always on, message {i}");
        assert_eq!(outcome(&mut adaptive, &message), expected, "adaptive, message {i}");
        assert_eq!(outcome(&mut small, &message), expected, "adaptive, 64 slots, message {i}");
    }
    // The adaptive caches were both off and on (hitting) over these messages.
    for t in [&adaptive, &small] {
        let s = t.cache_stats();
        assert!(s.bypassed > 0 && s.hits > 0, "{s:?}");
    }
    assert_eq!(always.cache_stats().bypassed, 0);
    assert_eq!(off.cache_stats(), CacheStats::default());
}
