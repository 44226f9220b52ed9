//! Whatever arrives, the transform answers with exactly one row or one rejection, never a
//! panic, and never with clear PII in a rejection. 100,000 cases by default
//! (`PROPTEST_CASES` overrides).

use maskflow_transform::{Config, Key, Message, Transformer};
use proptest::prelude::*;

thread_local! {
    /// One transformer per test thread, reused across cases (as a worker reuses it).
    static TRANSFORMER: std::cell::RefCell<Transformer> =
        std::cell::RefCell::new(Transformer::new(Config::with_keys(vec![Key::new("k1", [42; 64]).unwrap()])).unwrap());
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(100_000)
}

/// JSON-ish values: the fields the mapping reads, with values of every type and shape.
fn value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        "\\PC{0,40}".prop_map(serde_json::Value::from),
        "[0-9]{1,5}(\\.[0-9]{1,5}){0,3}".prop_map(serde_json::Value::from),
        "[0-9a-fA-F:.%]{0,45}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("user_id"),
        Just("ip"),
        Just("device_id"),
        Just("device_type"),
        Just("locale"),
        Just("app_version"),
        Just("other")
    ];
    prop::collection::vec((field, value()), 0..8).prop_map(|fields| {
        let body: Vec<String> =
            fields.iter().map(|(k, v)| format!("{}: {v}", serde_json::Value::from(*k))).collect();
        format!("{{{}}}", body.join(", ")) // may repeat keys on purpose
    })
}

fn check(body: &[u8], sent: i64) -> Result<(), TestCaseError> {
    TRANSFORMER.with(|t| check_with(&mut t.borrow_mut(), body, sent))
}

fn check_with(t: &mut Transformer, body: &[u8], sent: i64) -> Result<(), TestCaseError> {
    let message = Message { id: "m", body, sent_timestamp_ms: sent };
    match t.transform(&message) {
        Ok(row) => prop_assert_eq!(row.len(), 7),
        Err(rejection) => {
            prop_assert!(rejection.encrypted_body.starts_with("k1."));
            prop_assert!(!rejection.message.is_empty());
            // The message names fields and rules only: none of the body's strings leak into it.
            if let Ok(serde_json::Value::Object(fields)) =
                serde_json::from_slice::<serde_json::Value>(body)
            {
                for v in fields.values().filter_map(|v| v.as_str()).filter(|s| s.trim().len() >= 4)
                {
                    prop_assert!(
                        !rejection.message.contains(v.trim()),
                        "value {:?} leaked into {:?}",
                        v,
                        rejection.message
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn structured_events_give_one_outcome(body in event(), sent in prop_oneof![Just(1_700_000_000_000i64), any::<i64>()]) {
        check(body.as_bytes(), sent)?;
    }

    #[test]
    fn arbitrary_bytes_give_one_outcome(body in prop::collection::vec(any::<u8>(), 0..300)) {
        check(&body, 1_700_000_000_000)?;
    }
}
