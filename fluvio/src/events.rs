//! Synthetic login events for the long runs, made on the fly so a million cost no memory here.

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
