//! The flat-object scanner (transform/src/flat.rs) is only a fast path: every body must give
//! exactly the outcome it gives through the serde_json path alone, byte for byte (row cells,
//! reason, message, encrypted body). Two transformers, one with the scanner turned off, over
//! generated bodies: flat events, hostile ones (escapes, unicode, duplicates, whitespace,
//! numbers of every form, nesting), truncated and mutated. `PROPTEST_CASES` overrides the
//! 20,000 cases.

use maskflow_transform::{Config, Key, Message, Transformer};
use proptest::prelude::*;

thread_local! {
    static PAIR: std::cell::RefCell<(Transformer, Transformer)> = std::cell::RefCell::new({
        let config = || Config::with_keys(vec![Key::new("k1", [42; 64]).unwrap()]);
        let fast = Transformer::new(config()).unwrap();
        let mut serde_only = Transformer::new(config()).unwrap();
        serde_only.set_flat_scan(false);
        (fast, serde_only)
    });
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(20_000)
}

fn outcome(t: &mut Transformer, body: &[u8], sent: i64) -> Result<Vec<Option<String>>, String> {
    match t.transform(&Message { id: "m", body, sent_timestamp_ms: sent }) {
        Ok(row) => Ok(row.values().map(|v| v.map(str::to_owned)).collect()),
        Err(r) => Err(format!("{} | {} | {}", r.reason.code(), r.message, r.encrypted_body)),
    }
}

fn same(body: &[u8], sent: i64) -> Result<(), TestCaseError> {
    PAIR.with(|pair| {
        let (fast, serde_only) = &mut *pair.borrow_mut();
        let (a, b) = (outcome(fast, body, sent), outcome(serde_only, body, sent));
        prop_assert_eq!(a, b, "body {:?}", String::from_utf8_lossy(body));
        Ok(())
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![
            Just("user_id"), Just("ip"), Just("device_id"), Just("device_type"), Just("locale"),
            Just("app_version"),
        ].prop_map(|k| format!("\"{k}\"")),
        1 => prop_oneof![Just("\"user\\u005fid\""), Just("\"i\\u0070\""), Just("\"ip\\n\"")].prop_map(str::to_owned),
        1 => "\"[a-z_]{0,8}\"",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\"[ -!#-\\[\\]-~]{0,24}\"",
        2 => prop_oneof![
            Just("\"199.172.111.135\""), Just("\"  10.0.0.1\\t\""), Just("\"::FFFF:0a00:0001\""),
            Just("\"2001:DB8:0:0::1\""), Just("\"010.0.0.1\""), Just("\"2.3.0\""), Just("\"0.96\""),
            Just("\"1.2.3.4\""), Just("\"\""), Just("\" \""), Just("\"\\u0000\""), Just("\"a\\u0000\""),
            Just("\"\u{a0}x\u{3000}\""), Just("\"é😀\""), Just("\"\\ud83d\\ude00\""), Just("\"\\ud800\""),
            Just("\"\\\"q\\\\\""),
        ].prop_map(str::to_owned),
        1 => "\"\\PC{0,30}\"",
        2 => "-?(0|[1-9][0-9]{0,21})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?",
        1 => prop_oneof![
            Just("-0"), Just("01"), Just("1."), Just(".5"), Just("+1"), Just("2146"), Just("2147"),
            Just("18446744073709551616"), Just("-9223372036854775809"), Just("1e400"), Just("0.96"),
            Just("2.0"), Just("1E2"), Just("null"), Just("true"), Just("false"), Just("nul"),
            Just("{}"), Just("[]"), Just("{\"id\": 1}"), Just("[1, [2]]"),
        ].prop_map(str::to_owned),
    ]
}

fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![8 => Just(""), 3 => Just(" "), 1 => Just("\n\t\r"), 1 => Just("\u{a0}"), 1 => Just("\u{b}")]
}

fn body() -> impl Strategy<Value = String> {
    let field = (ws(), key(), ws(), ws(), value(), ws())
        .prop_map(|(a, k, b, c, v, d)| format!("{a}{k}{b}:{c}{v}{d}"));
    (
        prop::collection::vec(field, 0..9),
        ws(),
        ws(),
        prop_oneof![8 => Just(""), 1 => Just(","), 1 => Just("x")],
    )
        .prop_map(|(fields, lead, tail, junk)| {
            format!("{lead}{{{}}}{tail}{junk}", fields.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scanner_and_serde_path_give_the_same_outcome(
        body in body(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        sent in prop_oneof![8 => Just(1_700_000_000_000i64), 1 => Just(-1i64), 1 => any::<i64>()],
    ) {
        let bytes = body.as_bytes();
        same(bytes, sent)?;
        same(&bytes[..cut.index(bytes.len() + 1)], sent)?;
        let mut mutated = bytes.to_vec();
        if !mutated.is_empty() {
            mutated[at.index(bytes.len())] = byte;
        }
        same(&mutated, sent)?;
    }
}

#[test]
fn realistic_events_agree() {
    let bodies = [
        r#"{"user_id": "424cdd21-063a-43a7-b91b-7ca1a833afae", "app_version": "2.3.0", "device_type": "android", "ip": "199.172.111.135", "locale": "RU", "device_id": "593-47-5928"}"#,
        r#"{"user_id":"u","ip":"::ffff:10.0.0.1","locale":null,"app_version":7}"#,
        r#"{"user_id": "5f1c", "ip": "999.1.2.3", "device_id": "111-22-3333"}"#,
        r#"{"user_id": "5f1e", "device_type": 7}"#,
        r#"{"user_id": "#,
        r#"["not", "an", "object"]"#,
        r#"{"foo": "oops_wrong_msg_type", "bar": "123"}"#,
    ];
    for body in bodies {
        same(body.as_bytes(), 1_700_000_000_000).unwrap();
    }
}
