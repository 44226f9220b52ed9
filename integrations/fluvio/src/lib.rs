//! Drives the maskflow SmartModule through Fluvio's own engine (`fluvio-smartengine`, the crate
//! the SPU embeds and `smdk test` wraps), and compares it with the native library.
//!
//! The module is `target/wasm-smartmodule/maskflow_smartmodule.wasm` (scripts/build-wasm
//! --smartmodule), or `$MASKFLOW_SMARTMODULE`. integrations/fluvio/test builds it and runs the tests.

use std::path::{Path, PathBuf};

use anyhow::Result;
use base64::Engine as _;
use fluvio_smartengine::{
    EngineError, SmartEngine, SmartModuleChainBuilder, SmartModuleChainInstance, SmartModuleConfig, DEFAULT_SMARTENGINE_VERSION,
};
use fluvio_smartmodule::dataplane::smartmodule::{SmartModuleInput, SmartModuleOutput};
use fluvio_smartmodule::Record;
use maskflow_transform::{Config, Key, Message, OutcomeJson, Transformer};
use serde::Deserialize;
use serde_json::Value;

pub mod abi_v1;
pub mod cluster;
pub mod consumer;
pub mod events;
pub mod reference;
pub mod topic;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("repo root").to_path_buf()
}

/// Where the built SmartModule is: `$MASKFLOW_SMARTMODULE`, else scripts/build-wasm's output.
pub fn smartmodule_path() -> PathBuf {
    std::env::var_os("MASKFLOW_SMARTMODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/wasm-smartmodule/maskflow_smartmodule.wasm"))
}

/// The built SmartModule's bytes.
pub fn smartmodule() -> Vec<u8> {
    let path = smartmodule_path();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; build it with scripts/build-wasm --smartmodule", path.display()))
}

/// The ABI v1 module (scripts/build-wasm), if built: `$MASKFLOW_ABI_MODULE` or the default path.
pub fn abi_v1_module() -> Option<Vec<u8>> {
    let path = std::env::var_os("MASKFLOW_ABI_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/wasm-module/maskflow_transform.wasm"));
    std::fs::read(path).ok()
}

/// The golden vectors' config (fixed test key, default mapping), as the `config` param's JSON.
pub fn test_config_json() -> String {
    let text = std::fs::read_to_string(repo_root().join("tests/vectors/test.key")).expect("test key");
    let keys = Key::parse_key_file(&text).expect("valid test key");
    serde_json::to_string(&Config::with_keys(keys)).expect("config serialises")
}

/// One golden vector (the fields of tests/src/lib.rs's `Vector` that this test needs).
#[derive(Debug, Clone, Deserialize)]
pub struct Vector {
    pub name: String,
    pub message_id: String,
    pub sent_timestamp_ms: i64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
    #[serde(default)]
    pad_body_to: Option<usize>,
    pub expected: Value,
}

impl Vector {
    pub fn body(&self) -> Vec<u8> {
        let mut body = match (&self.body, &self.body_base64) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).expect("valid body_base64"),
            (None, None) => panic!("vector {} has no body", self.name),
        };
        if let Some(n) = self.pad_body_to {
            body.resize(n, b' ');
        }
        body
    }
}

pub fn golden() -> Vec<Vector> {
    let text = std::fs::read_to_string(repo_root().join("tests/vectors/golden.jsonl")).expect("golden.jsonl");
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("valid vector line")).collect()
}

/// What the native library makes of one message, in the golden JSON shape.
pub fn native_outcome(transformer: &mut Transformer, id: &str, body: &[u8], sent_timestamp_ms: i64) -> Value {
    let columns = transformer.columns().to_vec();
    let outcome = match transformer.transform(&Message { id, body, sent_timestamp_ms }) {
        Ok(row) => serde_json::to_value(OutcomeJson::Row { columns: &columns, row }),
        Err(rejection) => serde_json::to_value(OutcomeJson::Rejection(&rejection)),
    };
    outcome.expect("outcome serialises")
}

/// Checks `actual` against a vector's expected outcome. A `null` expected encrypted body (a huge
/// one, not stored in golden.jsonl) is checked by unmasking the actual one back to the body.
pub fn assert_golden(v: &Vector, actual: &Value, transformer: &Transformer) {
    let mut expected = v.expected.clone();
    let mut actual = actual.clone();
    if expected.pointer("/rejection/encrypted_body") == Some(&Value::Null) {
        let encrypted =
            actual.pointer("/rejection/encrypted_body").and_then(Value::as_str).unwrap_or_else(|| panic!("{}: no encrypted body", v.name));
        let clear = transformer.unmask(encrypted).unwrap_or_else(|e| panic!("{}: unmask the body: {e}", v.name));
        assert!(clear.value == v.body(), "{}: the encrypted body does not decrypt to the body", v.name);
        expected["rejection"]["encrypted_body"] = Value::Null;
        actual["rejection"]["encrypted_body"] = Value::Null;
    }
    assert_same(&actual, &expected, &format!("vector {}: engine vs golden.jsonl", v.name));
}

/// `assert_eq!` for outcomes that names the differing cells and shortens long values.
pub fn assert_same(actual: &Value, expected: &Value, what: &str) {
    if actual == expected {
        return;
    }
    let short = |v: Option<&Value>| {
        let text = v.map_or("(absent)".to_owned(), Value::to_string);
        if text.len() > 120 {
            format!("{}... ({} chars)", &text[..120], text.len())
        } else {
            text
        }
    };
    let mut diffs = vec![];
    for kind in ["row", "rejection"] {
        let (a, e) = (actual.get(kind).and_then(Value::as_object), expected.get(kind).and_then(Value::as_object));
        let keys: std::collections::BTreeSet<&String> = a.into_iter().chain(e).flat_map(|m| m.keys()).collect();
        for k in keys {
            let (av, ev) = (a.and_then(|m| m.get(k)), e.and_then(|m| m.get(k)));
            if av != ev {
                diffs.push(format!("{kind}.{k}: got {} expected {}", short(av), short(ev)));
            }
        }
    }
    panic!("{what}: outcomes differ\n  {}", diffs.join("\n  "));
}

/// A one-module chain of the SmartModule with these init params, initialised by the engine.
/// `memory_limit`: the engine's store limit (its default is 1 GB).
pub fn chain(params: &[(&str, &str)], memory_limit: Option<usize>) -> Result<SmartModuleChainInstance> {
    let mut config = SmartModuleConfig::builder();
    config.smartmodule_names(vec!["maskflow".to_owned()]);
    for (k, v) in params {
        config.param(*k, *v);
    }
    let mut builder = SmartModuleChainBuilder::default();
    builder.add_smart_module(config.build()?, smartmodule());
    if let Some(limit) = memory_limit {
        builder.set_store_memory_limit(limit);
    }
    builder.initialize(&SmartEngine::new())
}

/// The message as a Fluvio record: key = message id, value = body, timestamp = sent time.
pub struct Msg<'a> {
    pub id: &'a str,
    pub body: &'a [u8],
    pub sent_timestamp_ms: i64,
}

/// One engine batch, as the SPU hands it over: timestamps are deltas from the batch's first.
pub fn input(messages: &[Msg]) -> SmartModuleInput {
    let base = messages.first().map_or(0, |m| m.sent_timestamp_ms);
    let records = messages
        .iter()
        .map(|m| {
            let delta = m.sent_timestamp_ms - base;
            assert!(fits_a_delta(delta), "Fluvio's encoding would garble a timestamp delta of {delta} ms");
            let mut r = Record::new_key_value(m.id, m.body);
            r.preamble.set_timestamp_delta(delta);
            r
        })
        .collect();
    let mut input = SmartModuleInput::try_from_records(records, DEFAULT_SMARTENGINE_VERSION).expect("records encode");
    input.set_base_timestamp(base);
    input
}

/// fluvio-protocol 0.50.1 garbles a record's timestamp delta of 2^31 ms (24.8 days) or more
/// either way (README.md, "Timestamps"): a real producer batch spans far less.
pub fn fits_a_delta(delta: i64) -> bool {
    i32::try_from(delta).is_ok()
}

/// Each output record's value as JSON (the module writes `{"row"...}` / `{"rejection"...}`).
pub fn outcomes(output: &SmartModuleOutput) -> Vec<Value> {
    assert!(output.error.is_none(), "the module reported a SmartModule error: {:?}", output.error.as_ref().map(|e| &e.hint));
    output.successes.iter().map(|r| serde_json::from_slice(r.value.as_ref()).expect("output value is JSON")).collect()
}

/// The instance's linear memory size, read through the engine's own store limit: a record as
/// large as the limit cannot fit, the engine refuses to grow memory and reports the size it
/// had. Destroys the chain (the refused growth traps), so it is the last thing a chain does.
pub fn memory_size(mut chain: SmartModuleChainInstance, limit: usize) -> usize {
    let huge = vec![b' '; limit];
    let err = chain.process(input(&[Msg { id: "probe", body: &huge, sent_timestamp_ms: 0 }])).expect_err("a limit-sized record fits");
    match err.chain().find_map(|e| e.downcast_ref::<EngineError>()) {
        Some(EngineError::StoreMemoryExceeded { current, .. }) => *current,
        _ => panic!("expected the store limit to refuse the probe, got: {err:#}"),
    }
}
