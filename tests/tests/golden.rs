//! Every runtime must turn every golden vector into the same outcome. Here: the native library
//! and the wasm module under wasmtime (Node: integrations/node/test; VRL:
//! integrations/vector/conformance; the other engines: integrations/).

use maskflow::{ModuleLimits, WasmModule, EMBEDDED_MODULE};
use maskflow_tests::{cases, golden, native_outcome, test_config, test_keys, Vector};
use maskflow_transform::Outcome;
use maskflow_transform::{Message, Reason, Transformer};
use serde_json::{json, Value};

/// Compares an outcome with the vector's expectation; a `null` expected encrypted body (a huge
/// one, not stored) is checked by unmasking it back to the body instead.
fn assert_matches(v: &Vector, actual: &Value) {
    let mut expected = v.expected.clone();
    let mut actual = actual.clone();
    if expected.pointer("/rejection/encrypted_body") == Some(&Value::Null) {
        let encrypted = actual
            .pointer("/rejection/encrypted_body")
            .and_then(Value::as_str)
            .expect("an encrypted body")
            .to_owned();
        let clear =
            Transformer::new(test_config()).unwrap().unmask(&encrypted).expect("unmask body");
        assert_eq!(
            clear.value,
            v.body(),
            "{}: encrypted body does not decrypt to the body",
            v.name
        );
        expected["rejection"]["encrypted_body"] = Value::Null;
        actual["rejection"]["encrypted_body"] = Value::Null;
    }
    assert_eq!(actual, expected, "vector {}", v.name);
}

#[test]
fn golden_file_is_generated_from_the_current_cases() {
    let (cases, golden) = (cases(), golden());
    assert_eq!(
        cases.len(),
        golden.len(),
        "run `cargo run -p maskflow-tests --bin gen-vectors` and review the diff"
    );
    for (c, g) in cases.iter().zip(&golden) {
        assert_eq!(
            (&c.name, c.body(), c.sent_timestamp_ms),
            (&g.name, g.body(), g.sent_timestamp_ms)
        );
    }
}

#[test]
fn docs_catalogue_is_in_step_with_the_vectors() {
    let docs =
        std::fs::read_to_string(maskflow_tests::repo_root().join("docs/bad-inputs.md")).unwrap();
    assert_eq!(
        docs,
        maskflow_tests::render_catalogue(&golden()),
        "run `cargo run -p maskflow-tests --bin gen-vectors`"
    );
}

#[test]
fn docs_reliability_counts_are_the_vectors_counts() {
    let path = maskflow_tests::repo_root().join("docs/reliability.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let golden = golden();
    let counts = maskflow_tests::bad_inputs_counts(&golden);
    assert!(doc.contains(&format!("| {counts} |")), "docs/reliability.md should say: {counts}");
    assert_eq!(
        doc,
        maskflow_tests::with_bad_inputs_counts(&doc, &golden),
        "run `cargo run -p maskflow-tests --bin gen-vectors`"
    );
}

#[test]
fn vectors_cover_rows_and_every_reason_code() {
    let golden = golden();
    assert!(golden.iter().filter(|v| v.expected_row().is_some()).count() >= 25);
    for reason in Reason::ALL {
        assert!(
            golden.iter().any(|v| v.expected_reason() == Some(reason.code())),
            "no vector for {}",
            reason.code()
        );
    }
}

#[test]
fn native_library_matches_golden_vectors() {
    let mut transformer = Transformer::new(test_config()).unwrap();
    for v in golden() {
        assert_matches(&v, &native_outcome(&mut transformer, &v));
    }
}

#[test]
fn masks_recover_the_normalised_inputs_and_repeat_for_equal_inputs() {
    let transformer = Transformer::new(test_config()).unwrap();
    let golden = golden();
    let row = |name: &str| {
        golden.iter().find(|v| v.name == name).and_then(Vector::expected_row).cloned().unwrap()
    };
    let sample = row("sample_event");
    let unmask = |v: &Value| {
        String::from_utf8(transformer.unmask(v.as_str().unwrap()).unwrap().value).unwrap()
    };
    assert_eq!(unmask(&sample["masked_ip"]), "199.172.111.135");
    assert_eq!(unmask(&sample["masked_device_id"]), "593-47-5928");
    assert_eq!(row("ipv4_mapped_collapses_to_ipv4")["masked_ip"], sample["masked_ip"]);
    assert_eq!(row("whitespace_trimmed")["masked_ip"], sample["masked_ip"]);
    assert_eq!(row("same_device_other_user")["masked_device_id"], sample["masked_device_id"]);
    assert_eq!(
        row("ipv6_canonicalised")["masked_ip"],
        row("ipv6_full_form_same_mask")["masked_ip"]
    );
    assert_ne!(row("other_device_other_ip")["masked_ip"], sample["masked_ip"]);
    assert_eq!(unmask(&row("ipv6_canonicalised")["masked_ip"]), "2001:db8::1");
}

#[test]
fn wasm_module_under_wasmtime_matches_golden_vectors() {
    let limits =
        ModuleLimits { memory_bytes: 64 << 20, call_timeout: std::time::Duration::from_secs(30) };
    let config = serde_json::to_string(&test_config()).unwrap();
    let module = WasmModule::compile(EMBEDDED_MODULE, limits, &config, None).unwrap();
    let mut instance = module.instantiate().unwrap();
    let columns = instance.columns().to_vec();
    let golden = golden();
    let bodies: Vec<Vec<u8>> = golden.iter().map(Vector::body).collect();
    let messages: Vec<Message> = golden
        .iter()
        .zip(&bodies)
        .map(|(v, body)| Message {
            id: &v.message_id,
            body,
            sent_timestamp_ms: v.sent_timestamp_ms,
        })
        .collect();
    // One batch with all of them, then one by one: batching must not change any outcome.
    let batched = instance.transform(&messages).unwrap();
    for (i, v) in golden.iter().enumerate() {
        let single = instance.transform(&messages[i..=i]).unwrap().remove(0);
        assert_eq!(single, batched[i], "{}: batch and single call differ", v.name);
        let actual = match &batched[i] {
            Outcome::Row(values) => {
                json!({"row": columns.iter().cloned().zip(values.iter().map(|v| json!(v))).collect::<serde_json::Map<_, _>>()})
            }
            Outcome::Rejected { reason, message, encrypted_body } => {
                json!({"rejection": {"reason": reason, "message": message, "encrypted_body": encrypted_body}})
            }
        };
        assert_matches(v, &actual);
    }
    assert_eq!(test_keys().len(), 1);
}
