//! Synthetic login events for the long runs, made on the fly so a million cost no memory here,
//! and the loop that drives them through a chain.

use std::time::{Duration, Instant};

use fluvio_smartengine::SmartModuleChainInstance;

use crate::{assert_same, input, native_outcome, outcomes, test_config_json, Msg};

/// Records per engine call: a plausible SPU batch.
pub const BATCH: usize = 1_000;

/// Event `i`: every ip and device id distinct (the mask caches keep missing, the worst case for
/// a leak to hide behind), and 2% malformed so the rejection path runs too.
pub fn body(i: usize) -> String {
    if i % 50 == 7 {
        return format!("{{\"user_id\": \"u{i}\", \"ip\": \"999.1.2.{i}\"}}");
    }
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
}

pub fn id(i: usize) -> String {
    format!("msg-{i:08}")
}

/// Sent times a second apart from 2023-11-14, so `create_date` changes across a run.
pub fn sent_timestamp_ms(i: usize) -> i64 {
    1_700_000_000_000 + i as i64 * 1000
}

/// Events `start..start+n` as (id, body, sent time).
pub fn batch(start: usize, n: usize) -> Vec<(String, String, i64)> {
    (start..start + n).map(|i| (id(i), body(i), sent_timestamp_ms(i))).collect()
}

/// Runs events `0..n` through `engine` in batches; checks every 100th batch cell for cell
/// against the library and returns the time spent inside the engine and inside the library.
pub fn run(engine: &mut SmartModuleChainInstance, n: usize) -> (Duration, Duration) {
    let mut library =
        maskflow_transform::Config::from_json(&test_config_json()).and_then(maskflow_transform::Transformer::new).expect("test config");
    let (mut in_engine, mut in_library) = (Duration::ZERO, Duration::ZERO);
    for start in (0..n).step_by(BATCH) {
        let batch = batch(start, BATCH.min(n - start));
        let messages: Vec<Msg> = batch.iter().map(|(id, body, ts)| Msg { id, body: body.as_bytes(), sent_timestamp_ms: *ts }).collect();
        let sm_input = input(&messages);
        let t = Instant::now();
        let output = engine.process(sm_input).unwrap_or_else(|e| panic!("after {start} records: {e:#}"));
        in_engine += t.elapsed();
        assert_eq!(output.successes.len(), messages.len(), "one output per input");
        let t = Instant::now();
        let expected: Vec<_> = messages.iter().map(|m| native_outcome(&mut library, m.id, m.body, m.sent_timestamp_ms)).collect();
        in_library += t.elapsed();
        if (start / BATCH).is_multiple_of(100) {
            for (i, (got, want)) in outcomes(&output).iter().zip(&expected).enumerate() {
                assert_same(got, want, &format!("record {}: engine vs library", start + i));
            }
        }
    }
    (in_engine, in_library)
}
