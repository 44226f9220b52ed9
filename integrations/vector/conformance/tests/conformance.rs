//! The VRL twin (`integrations/vector/maskflow.vrl` + `integrations/vector/rejected.vrl`) against the transform module:
//! every golden vector must give the module's outcome exactly (row cells, or reason, message
//! and encrypted body), and generated inputs must agree with the module's own library. Where
//! they may not, the difference is listed in `KNOWN_DIFFERENCES` (and in integrations/vector/README.md),
//! checked to still exist, and checked to be the safe way round: the twin rejects, never
//! writes a row the module would not write. No difference is silent.

use std::collections::BTreeMap;

use maskflow_transform::{Config, Key, Message, OutcomeJson as ModuleOutcome, Transformer};
use maskflow_vrl_conformance::*;
use serde_json::{json, Value as Json};

/// Every reason code the module has (ABI.md) plus the host's `module_failed`, which the twin
/// uses for its own failures (a missing key, an unexpected VRL error).
const REASONS: &[&str] = &[
    "body_too_large",
    "body_not_utf8",
    "body_not_json",
    "body_not_object",
    "nesting_too_deep",
    "duplicate_key",
    "invalid_timestamp",
    "missing_field",
    "wrong_type",
    "invalid_character",
    "value_too_long",
    "invalid_ip",
    "invalid_version",
    "mask_too_long",
    "module_failed",
];

/// Reasons about the body's structure, which the module finds while it reads the body and
/// the twin finds after `parse_json` read all of it.
const STRUCTURAL: &[&str] =
    &["body_not_json", "body_not_object", "nesting_too_deep", "duplicate_key"];

/// An input on which the twin and the module differ, on purpose and the safe way round.
struct KnownDifference {
    name: &'static str,
    body: fn() -> String,
    module_reason: &'static str,
    twin_reason: &'static str,
    why: &'static str,
}

fn nested(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// Listed in integrations/vector/README.md ("Known differences"), in this order.
const KNOWN_DIFFERENCES: &[KnownDifference] = &[
    KnownDifference {
        name: "duplicate_key_then_invalid_json",
        body: || r#"{"user_id": "a", "user_id": "b", "ip": "#.to_owned(),
        module_reason: "duplicate_key",
        twin_reason: "body_not_json",
        why: "invalid JSON with an earlier structural problem: the module reports the first problem in \
              document order as it reads; parse_json reads the whole body first, so the twin only learns \
              that the body is not JSON. Both reject; the encrypted body is the same.",
    },
    KnownDifference {
        name: "deep_nesting_then_invalid_json",
        body: || format!(r#"{{"user_id": "u", "a": {}"#, "[".repeat(40)),
        module_reason: "nesting_too_deep",
        twin_reason: "body_not_json",
        why: "as above: the module stops at level 33, before it reaches the syntax error.",
    },
    KnownDifference {
        name: "duplicate_key_before_deep_nesting",
        body: || format!(r#"{{"user_id": "a", "user_id": "b", "deep": {}}}"#, nested(40)),
        module_reason: "duplicate_key",
        twin_reason: "nesting_too_deep",
        why: "valid JSON with two structural problems: the module names the first in document order, the \
              twin always checks nesting before duplicate keys. Both reject.",
    },
];

fn module_outcome(transformer: &mut Transformer, body: &[u8], sent_timestamp_ms: i64) -> Json {
    let message = Message { id: "m", body, sent_timestamp_ms };
    let columns = transformer.columns().to_vec();
    match transformer.transform(&message) {
        Ok(row) => serde_json::to_value(ModuleOutcome::Row { columns: &columns, row }),
        Err(rejection) => serde_json::to_value(ModuleOutcome::Rejection(&rejection)),
    }
    .expect("outcome serialises")
}

fn module() -> Transformer {
    let keys = Key::parse_key_file(&test_key_text()).expect("test key");
    Transformer::new(Config::with_keys(keys)).expect("transformer")
}

/// Recovers a mask or encrypted body with the module's own `unmask`: the clear bytes and the
/// column (`raw_body` for an encrypted body) whose nonce it was made under.
fn unmask(text: &str) -> Option<(String, Vec<u8>)> {
    thread_local!(static MODULE: Transformer = module());
    MODULE.with(|m| m.unmask(text).ok().map(|u| (u.column, u.value)))
}

fn reason(outcome: &Json) -> Option<&str> {
    outcome.pointer("/rejection/reason").and_then(Json::as_str)
}

/// The twin's outcome, with the checks every outcome must pass whatever it is: a rejection
/// carries a known reason, a value-free message and the body encrypted (it decrypts to the
/// body); a row has exactly the seven columns and masks in the masked ones.
fn checked_outcome(
    pipeline: &Pipeline,
    name: &str,
    body: &[u8],
    sent_timestamp_ms: i64,
) -> Outcome {
    let outcome = pipeline.outcome(body, sent_timestamp_ms);
    if let Some(row) = &outcome.rejected_row {
        let reason =
            reason(&outcome.json).unwrap_or_else(|| panic!("{name}: rejection without a reason"));
        assert!(REASONS.contains(&reason), "{name}: unknown reason {reason}");
        assert_eq!(
            outcome.dropped_how,
            Some("abort"),
            "{name}: the twin raised an error instead of rejecting"
        );
        let encrypted = outcome
            .json
            .pointer("/rejection/encrypted_body")
            .and_then(Json::as_str)
            .expect("encrypted body");
        assert!(encrypted.starts_with("k1."), "{name}: encrypted body {encrypted}");
        assert_eq!(
            unmask(encrypted),
            Some(("raw_body".to_owned(), body.to_vec())),
            "{name}: encrypted body does not decrypt to the body"
        );
        let id = row.get("message_id").and_then(|v| v.as_bytes()).expect("message_id");
        assert!(
            id.starts_with(b"vector-") && id.len() == "vector-".len() + 36,
            "{name}: message_id {id:?}"
        );
        assert!(
            matches!(row.get("rejected_at"), Some(vrl::value::Value::Timestamp(_))),
            "{name}: rejected_at"
        );
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["encrypted_body", "message", "message_id", "reason", "rejected_at"],
            "{name}"
        );
    } else {
        let row =
            outcome.json["row"].as_object().unwrap_or_else(|| panic!("{name}: {}", outcome.json));
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "app_version",
                "create_date",
                "device_type",
                "locale",
                "masked_device_id",
                "masked_ip",
                "user_id"
            ],
            "{name}"
        );
        for column in ["masked_ip", "masked_device_id"] {
            if let Some(mask) = row[column].as_str() {
                let recovered = unmask(mask).map(|(domain, _)| domain);
                assert_eq!(
                    recovered.as_deref(),
                    Some(column),
                    "{name}: {column} is not a mask of that column: {mask}"
                );
            }
        }
    }
    outcome
}

/// The golden file stores no huge encrypted body (null): compare after checking it decrypts.
fn comparable(expected: &Json, actual: &Json) -> (Json, Json) {
    let (mut expected, mut actual) = (expected.clone(), actual.clone());
    if expected.pointer("/rejection/encrypted_body") == Some(&Json::Null)
        && actual.get("rejection").is_some()
    {
        actual["rejection"]["encrypted_body"] = Json::Null;
    }
    if let Some(row) = expected.get_mut("row").and_then(Json::as_object_mut) {
        // The golden rows are in the module's column order; the comparison is by name.
        *row = row.clone().into_iter().collect::<BTreeMap<_, _>>().into_iter().collect();
    }
    (expected, actual)
}

#[test]
fn both_programs_compile_without_warnings_and_only_abort() {
    for schema in [Schema::Any, Schema::AwsSqs] {
        let twin = twin(schema);
        assert!(
            twin.warnings.trim().is_empty(),
            "maskflow.vrl ({schema:?}) warns:\n{}",
            twin.warnings
        );
        assert!(
            !twin.program.info().fallible,
            "maskflow.vrl must be infallible: it rejects only with abort"
        );
        assert!(twin.program.info().abortable);
        let shaper = shaper(schema);
        assert!(
            shaper.warnings.trim().is_empty(),
            "rejected.vrl ({schema:?}) warns:\n{}",
            shaper.warnings
        );
        assert!(
            !shaper.program.info().fallible,
            "rejected.vrl must be infallible: its input holds the clear body"
        );
        assert!(
            !shaper.program.info().abortable,
            "rejected.vrl must never abort: its input holds the clear body"
        );
    }
}

#[test]
fn programs_are_ascii_without_quotes_in_comments() {
    // The lexers of vrl before 0.37 (Vector 0.60 and older) panic on, or fail to lex, some
    // comment lines inside blocks holding non-ASCII or quote characters.
    for file in ["maskflow.vrl", "rejected.vrl"] {
        let text = std::fs::read_to_string(vector_dir().join(file)).unwrap();
        for (i, line) in text.lines().enumerate() {
            assert!(line.is_ascii(), "{file}:{}: not ASCII", i + 1);
            if line.trim_start().starts_with('#') {
                assert!(!line.contains(['"', '\'']), "{file}:{}: quote in a comment", i + 1);
            } else {
                assert!(!line.contains(" #"), "{file}:{}: keep comments on their own lines", i + 1);
                // No `f!(..)`: an error it raised would reach the dropped output as `error`,
                // and on an infallible call it is a warning (an error before vrl 0.22).
                let bang = line.char_indices().any(|(j, c)| {
                    c == '!'
                        && line[j + 1..].starts_with('(')
                        && line[..j].ends_with(|p: char| p.is_ascii_alphanumeric() || p == '_')
                });
                assert!(!bang, "{file}:{}: no `!` function calls", i + 1);
            }
        }
    }
}

#[test]
fn golden_vectors_give_the_modules_outcome() {
    let golden = golden();
    assert!(golden.len() >= 70, "only {} golden vectors", golden.len());
    let any = Pipeline::new(Schema::Any);
    let typed = Pipeline::new(Schema::AwsSqs);
    let mut identical = 0;
    for v in &golden {
        let outcome = checked_outcome(&any, &v.name, &v.body(), v.sent_timestamp_ms);
        // Vector types the event when schema support is on: the outcome must not change.
        assert_eq!(
            typed.outcome(&v.body(), v.sent_timestamp_ms).json,
            outcome.json,
            "{}: outcome depends on the schema setting",
            v.name
        );
        if let Some(known) = KNOWN_DIFFERENCES.iter().find(|k| k.name == v.name) {
            assert_ne!(
                comparable(&v.expected, &outcome.json).0,
                comparable(&v.expected, &outcome.json).1,
                "{}: listed as a known difference but identical: remove it",
                v.name
            );
            assert_eq!(reason(&outcome.json), Some(known.twin_reason), "{}: {}", v.name, known.why);
            continue;
        }
        let (expected, actual) = comparable(&v.expected, &outcome.json);
        assert_eq!(actual, expected, "golden vector {} (not a known difference)", v.name);
        identical += 1;
    }
    eprintln!(
        "golden vectors: {identical} of {} identical to the module, {} known differences",
        golden.len(),
        golden.len() - identical
    );
}

#[test]
fn known_differences_still_differ_and_the_twin_rejects() {
    let pipeline = Pipeline::new(Schema::Any);
    let mut module = module();
    for known in KNOWN_DIFFERENCES {
        let body = (known.body)();
        let expected = module_outcome(&mut module, body.as_bytes(), 1_700_000_000_000);
        assert_eq!(
            reason(&expected).unwrap_or(""),
            known.module_reason,
            "{}: the module changed",
            known.name
        );
        let outcome = checked_outcome(&pipeline, known.name, body.as_bytes(), 1_700_000_000_000);
        assert_ne!(
            outcome.json, expected,
            "{}: no longer differs: remove it from the list and the README",
            known.name
        );
        // The safe way round: the twin rejects (it never writes a row the module refuses).
        assert_eq!(reason(&outcome.json), Some(known.twin_reason), "{}: {}", known.name, known.why);
        assert_eq!(
            outcome.json["rejection"]["encrypted_body"],
            expected
                .pointer("/rejection/encrypted_body")
                .cloned()
                .unwrap_or_else(|| outcome.json["rejection"]["encrypted_body"].clone()),
            "{}",
            known.name
        );
    }
    let readme = std::fs::read_to_string(vector_dir().join("README.md"))
        .expect("integrations/vector/README.md");
    for known in KNOWN_DIFFERENCES {
        assert!(
            readme.contains(known.name),
            "integrations/vector/README.md does not list the known difference {}",
            known.name
        );
    }
}

#[test]
fn masks_recover_the_normalised_values() {
    let golden = golden();
    let row = |name: &str| {
        golden.iter().find(|v| v.name == name).and_then(|v| v.expected.get("row")).cloned().unwrap()
    };
    let pipeline = Pipeline::new(Schema::Any);
    let sample = golden.iter().find(|v| v.name == "sample_event").unwrap();
    let outcome = pipeline.outcome(&sample.body(), sample.sent_timestamp_ms).json;
    assert_eq!(outcome["row"]["masked_ip"], row("sample_event")["masked_ip"]);
    let clear = |mask: &Json| {
        unmask(mask.as_str().unwrap())
            .map(|(column, value)| (column, String::from_utf8(value).unwrap()))
    };
    assert_eq!(
        clear(&outcome["row"]["masked_ip"]),
        Some(("masked_ip".into(), "199.172.111.135".into()))
    );
    assert_eq!(
        clear(&outcome["row"]["masked_device_id"]),
        Some(("masked_device_id".into(), "593-47-5928".into()))
    );
}

#[test]
fn a_missing_or_bad_key_rejects_without_writing_anything_in_clear() {
    use_test_key();
    let twin = twin(Schema::Any);
    let shaper = shaper(Schema::Any);
    let body = br#"{"user_id": "u", "ip": "10.0.0.1"}"#;
    // The programs read MASKFLOW_KEY through get_env_var; swap the source text instead of the
    // process environment (other tests read it concurrently).
    for bad in ["", "k1:AAAA", "K1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="] {
        let source = std::fs::read_to_string(vector_dir().join("maskflow.vrl")).unwrap();
        let patched = source.replace(r#"get_env_var("MASKFLOW_KEY") ?? """#, &format!("{bad:?}"));
        assert_ne!(patched, source);
        let program = compile_source(&patched, Schema::Any).unwrap().program;
        let Remapped::Dropped { how, message, event } = run(&program, sqs_event(body, 0)) else { panic!("key {bad:?}: a row without a key") };
        assert_eq!((how, message.split(':').next().unwrap()), ("abort", "module_failed"));
        let source = std::fs::read_to_string(vector_dir().join("rejected.vrl")).unwrap();
        let patched = source.replace(r#"get_env_var("MASKFLOW_KEY") ?? """#, &format!("{bad:?}"));
        let shaped = run(&compile_source(&patched, Schema::Any).unwrap().program, event);
        let Remapped::Event(vrl::value::Value::Object(row)) = shaped else { panic!("rejected.vrl must produce a row") };
        assert_eq!(row.get("encrypted_body"), Some(&vrl::value::Value::Null), "no key: no encrypted body (the NOT NULL column refuses the row)");
        assert!(!format!("{row:?}").contains("10.0.0.1"), "clear body in the rejected row");
    }
    // With the real key, the programs as written mask.
    assert!(matches!(run(&twin.program, sqs_event(body, 0)), Remapped::Event(_)));
    let _ = shaper;
}

// ------------------------------------------------------------------------------------------
// Differential test: generated inputs through the twin and through the module's library.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so a failure names a reproducible case number.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TEXTS: &[&str] = &[
    r#""u-1""#,
    r#""  padded  ""#,
    r#""""#,
    r#""   ""#,
    r#""\t\n""#,
    "null",
    r#""用户-ü-🚀""#,
    r#""a\u0000b""#,
    r#""\u0000""#,
    r#""\u00e9t\u00e9""#,
    r#""tab\there""#,
    r#""\u2003wide space\u2003""#,
    r#""\u00a0nbsp\u00a0""#,
    "12",
    "-3",
    "1.5",
    "1e400",
    "true",
    "false",
    "{}",
    r#"{"a": 1}"#,
    "[]",
    r#"["x"]"#,
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    r#""9223372036854775808""#,
    r#""12345678901234567890""#,
    r#""'; DROP TABLE user_logins; --""#,
];

const IPS: &[&str] = &[
    r#""199.172.111.135""#,
    r#""  10.0.0.1 ""#,
    r#""::1""#,
    r#""::""#,
    r#""2001:DB8:0:0::1""#,
    r#""2001:0db8:0000:0000:0000:0000:0000:0001""#,
    r#""::ffff:10.0.0.1""#,
    r#""::FFFF:0a00:0001""#,
    r#""::ffff:1""#,
    r#""::1.2.3.4""#,
    r#""64:ff9b::1.2.3.4""#,
    r#""fe80::1%eth0""#,
    r#""[::1]""#,
    r#""1.2.3.4:80""#,
    r#""010.0.0.1""#,
    r#""10.1""#,
    r#""256.1.1.1""#,
    r#""1.2.3.4.5""#,
    r#""abc""#,
    r#""0.0.0.0""#,
    r#""255.255.255.255""#,
    r#""1:2:3:4:5:6:7:8""#,
    r#""1::2:3:4:5:6:7""#,
    r#""::ffff:0:0""#,
    r#""2001:db8::ffff:1.2.3.4""#,
    r#""1.2.3.4 ""#,
    r#""\u0031.2.3.4""#,
    "3232235777",
    "null",
    r#""""#,
    "true",
];

const VERSIONS: &[&str] = &[
    r#""2.3.0""#,
    r#""0.96""#,
    r#""2.00""#,
    r#""7""#,
    r#""0007.0007.0007""#,
    r#""2146.999.999""#,
    r#""2147""#,
    r#""2146.1000""#,
    r#""1.2.3.4""#,
    r#""1..2""#,
    r#""1.2.""#,
    r#"".1""#,
    r#""v1.2""#,
    r#""1.2-beta""#,
    r#"" 1.2 ""#,
    r#""1e3""#,
    r#""١.٢""#,
    r#""-1.0""#,
    r#""12345""#,
    r#""""#,
    "null",
    "2",
    "2.0",
    "0.96",
    "2.10",
    "7.31",
    "1e3",
    "-0.0",
    "-0",
    "1.5e-7",
    "2146.5",
    "3.14159",
    "2146",
    "2147",
    "-1",
    "18446744073709551615",
    "9223372036854775808",
    "1e300",
    "0.0001",
    "0.00001",
    "1.999",
    "true",
    "[]",
    "{}",
];

fn repeat_quoted(c: &str, n: usize) -> String {
    format!("\"{}\"", c.repeat(n))
}

/// One generated body: the six fields in a random order, each from its pool or absent, and
/// sometimes extra or broken structure around them.
fn generated_body(rng: &mut Rng) -> Vec<u8> {
    let long = |rng: &mut Rng, limit: usize| {
        let c = rng.pick(&["x", "é", "日", "🚀"]);
        let n = limit + rng.below(3) - 1;
        repeat_quoted(c, n)
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    let choose = |rng: &mut Rng, pool: &[&str]| -> Option<String> {
        (rng.below(8) != 0).then(|| rng.pick(pool).to_owned())
    };
    if let Some(v) = if rng.below(10) == 0 { Some(long(rng, 128)) } else { choose(rng, TEXTS) } {
        fields.push(("user_id".into(), v));
    }
    if let Some(v) = if rng.below(10) == 0 { Some(long(rng, 32)) } else { choose(rng, TEXTS) } {
        fields.push(("device_type".into(), v));
    }
    if let Some(v) = choose(rng, IPS) {
        fields.push(("ip".into(), v));
    }
    // Masks: 3 + ceil(4 * (n + 16) / 3) characters, so 173 bytes fit in 256 and 174 do not.
    if let Some(v) = if rng.below(10) == 0 {
        Some(repeat_quoted(rng.pick(&["d", "é"]), 172 + rng.below(4)))
    } else {
        choose(rng, TEXTS)
    } {
        fields.push(("device_id".into(), v));
    }
    if let Some(v) = if rng.below(10) == 0 { Some(long(rng, 32)) } else { choose(rng, TEXTS) } {
        fields.push(("locale".into(), v));
    }
    if let Some(v) = choose(rng, VERSIONS) {
        fields.push(("app_version".into(), v));
    }
    match rng.below(14) {
        0 => fields.push(("extra".into(), r#"{"nested": [1, {"a": null}], "s": "{[,:"}"#.into())),
        1 => fields.push(("deep".into(), nested(30 + rng.below(4)))),
        2 => fields.push(("deeper".into(), nested(126 + rng.below(6)))),
        3 if !fields.is_empty() => {
            let i = rng.below(fields.len());
            fields.push(fields[i].clone()); // a duplicate key
        }
        4 => fields.push(("x".into(), r#"{"k": 1, "k": 2}"#.into())),
        5 => fields.push(("x".into(), r#"[{"k": 1}, {"k": 1}]"#.into())),
        6 => fields.push(("user\\u005fid".into(), r#""escaped key""#.into())),
        7 => fields.push(("s".into(), r#"["a,", ": not a key", "{", ":"]"#.into())),
        8 => fields.push(("x".into(), r#"[[{"k": 1, "k": 2}]]"#.into())),
        9 => fields.push(("x".into(), r#"[[{"k": 1}], [{"k": 1}], {"": {"": 0}}]"#.into())),
        _ => {}
    }
    for i in (1..fields.len()).rev() {
        let j = rng.below(i + 1);
        fields.swap(i, j);
    }
    let sep = rng.pick(&[", ", ",", " ,\n\t"]);
    let body = format!(
        "{{{}}}",
        fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect::<Vec<_>>().join(sep)
    );
    let broken = match rng.below(25) {
        // Cut anywhere, also inside a multi-byte character (body_not_utf8).
        0 => return body.as_bytes()[..rng.below(body.len())].to_vec(),
        1 => format!("{body} x"),
        2 => format!("\u{feff}{body}"),
        3 => format!(" \n{body}\t"),
        4 => rng
            .pick(&[
                "[1, 2",
                "[",
                "42",
                "42 x",
                "01",
                "1.",
                "1.5.",
                "-",
                "tru",
                "true x",
                r#""abc"#,
                r#""abc" x"#,
                r#""\ud800""#,
                r#""\ud83d\ude80" x"#,
                r#""\udc00""#,
                "nul",
                "null",
                "",
                " ",
            ])
            .to_owned(),
        5 => format!("{}{}", "[".repeat(100 + rng.below(60)), "]".repeat(rng.below(2) * 200)),
        6 => format!(r#"{{"user_id": "u", "a": {}"#, "[".repeat(100 + rng.below(60))),
        _ => body,
    };
    broken.into_bytes()
}

#[test]
fn generated_inputs_agree_with_the_module() {
    let pipeline = Pipeline::new(Schema::Any);
    let mut module = module();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let cases = 6000;
    let (mut identical, mut structural_order) = (0, 0);
    let timestamps =
        [1_700_000_000_000, 0, -1, 253_402_300_799_999, 253_402_300_800_000, 951_782_400_000];
    for case in 0..cases {
        let body = generated_body(&mut rng);
        let ts = if rng.below(20) == 0 {
            timestamps[rng.below(timestamps.len())]
        } else {
            1_700_000_000_000
        };
        let expected = module_outcome(&mut module, &body, ts);
        let actual = checked_outcome(&pipeline, &format!("case {case}"), &body, ts).json;
        if actual == expected {
            identical += 1;
            continue;
        }
        // The one class of difference generated inputs may show (KNOWN_DIFFERENCES 1-3): two
        // structural problems, reported in a different order. Both reject the same body.
        let (module_reason, twin_reason) =
            (reason(&expected).unwrap_or("row"), reason(&actual).unwrap_or("row"));
        assert!(
            STRUCTURAL.contains(&module_reason) && STRUCTURAL.contains(&twin_reason),
            "case {case}: the twin differs from the module\n  body     {:?}\n  module   {expected}\n  twin     {actual}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            actual["rejection"]["encrypted_body"], expected["rejection"]["encrypted_body"],
            "case {case}"
        );
        structural_order += 1;
        if std::env::var_os("MASKFLOW_SHOW_DIFFERENCES").is_some() {
            eprintln!(
                "case {case}: module {module_reason}, twin {twin_reason}: {:.160}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    eprintln!("generated inputs: {identical} of {cases} identical, {structural_order} with two structural problems named in another order");
    assert!(
        identical * 10 > cases * 9,
        "the generator makes too many broken bodies to test the columns"
    );
    let _ = json!(null);
}
