//! The maskflow SmartModule inside Fluvio's engine: same outcomes as the library, clean init
//! errors, flat memory over a million records. Run by integrations/fluvio/test.

use std::time::{Duration, Instant};

use fluvio_smartengine::DEFAULT_SMARTENGINE_VERSION;
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;
use maskflow_fluvio_test::abi_v1::AbiV1;
use maskflow_fluvio_test::events::{self, run, BATCH};
use maskflow_fluvio_test::{
    abi_v1_module, assert_golden, assert_same, chain, fits_a_delta, golden, input, memory_size, native_outcome, outcomes, test_config_json,
    Msg,
};
use maskflow_transform::{Config, Transformer};
use serde_json::json;

fn native() -> Transformer {
    Config::from_json(&test_config_json()).and_then(Transformer::new).expect("test config")
}

#[test]
fn golden_vectors_match_the_golden_file_and_the_library_cell_for_cell() {
    let config = test_config_json();
    let vectors = golden();
    let bodies: Vec<Vec<u8>> = vectors.iter().map(|v| v.body()).collect();
    let messages: Vec<Msg> =
        vectors.iter().zip(&bodies).map(|(v, body)| Msg { id: &v.message_id, body, sent_timestamp_ms: v.sent_timestamp_ms }).collect();
    let mut library = native();
    // One vector per batch, then as many per batch as Fluvio's timestamp deltas allow (the
    // vectors span 1969 to 9999): batch boundaries and bases must not change an outcome.
    let singles: Vec<usize> = vec![1; messages.len()];
    let mut spans: Vec<usize> = vec![];
    let mut first = 0;
    for (i, m) in messages.iter().enumerate() {
        if !fits_a_delta(m.sent_timestamp_ms - messages[first].sent_timestamp_ms) {
            spans.push(i - first);
            first = i;
        }
    }
    spans.push(messages.len() - first);
    assert!(spans.len() < messages.len() / 4, "most vectors share a batch: {spans:?}");
    for sizes in [singles, spans] {
        let mut engine = chain(&[("config", &config)], None).expect("init");
        let mut checked = 0;
        for size in sizes {
            let (batch, vs) = (&messages[checked..checked + size], &vectors[checked..checked + size]);
            let output = engine.process(input(batch)).expect("process");
            let got = outcomes(&output);
            assert_eq!(got.len(), batch.len(), "one output record per input record");
            for ((out, record), (m, v)) in got.iter().zip(&output.successes).zip(batch.iter().zip(vs)) {
                assert_golden(v, out, &library);
                assert_same(
                    out,
                    &native_outcome(&mut library, m.id, m.body, m.sent_timestamp_ms),
                    &format!("vector {}: engine vs library", v.name),
                );
                assert_eq!(record.key.as_ref().map(|k| k.as_ref()), Some(m.id.as_bytes()), "vector {}: key (message id) kept", v.name);
            }
            checked += size;
        }
        assert_eq!(checked, vectors.len());
    }
    let rejections = vectors.iter().filter(|v| v.expected.get("rejection").is_some()).count();
    assert!(rejections > 0 && rejections < vectors.len(), "the vectors cover rows and rejections");
}

#[test]
fn a_record_without_a_key_or_with_a_binary_key_is_still_transformed() {
    let mut engine = chain(&[("config", &test_config_json())], None).expect("init");
    let body = br#"{"user_id": "u1", "ip": "10.0.0.1"}"#;
    let binary_key = [0xff_u8, 0xfe, 0x00];
    let records = vec![fluvio_smartmodule::Record::new(&body[..]), fluvio_smartmodule::Record::new_key_value(&binary_key[..], &body[..])];
    let mut sm_input = SmartModuleInput::try_from_records(records, DEFAULT_SMARTENGINE_VERSION).expect("encode");
    sm_input.set_base_timestamp(1_700_000_000_000);
    let output = engine.process(sm_input).expect("process");
    let expected = native_outcome(&mut native(), "", body, 1_700_000_000_000);
    assert_eq!(outcomes(&output), vec![expected.clone(), expected]);
    assert_eq!(outcomes(&output)[0]["row"]["create_date"], "2023-11-14");
    assert!(output.successes[0].key.is_none(), "no key in, no key out");
    assert_eq!(output.successes[1].key.as_ref().map(|k| k.as_ref()), Some(&binary_key[..]), "the key is passed through as is");
}

#[test]
fn a_bad_config_is_a_clear_init_error_not_a_trap() {
    let good: serde_json::Value = serde_json::from_str(&test_config_json()).unwrap();
    let key_b64 = good["keys"][0]["key"].as_str().unwrap().to_owned();
    let with = |patch: serde_json::Value| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        c.to_string()
    };
    let short_key = key_b64[..40].to_owned();
    let cases: Vec<(String, Option<String>, &str)> = vec![
        ("no config param".into(), None, "missing SmartModule parameter `config`"),
        ("not JSON".into(), Some("{keys".into()), "invalid config"),
        ("no key".into(), Some(with(json!({"keys": []}))), "no key given"),
        ("short key".into(), Some(with(json!({"keys": [{"id": "k1", "key": short_key}]}))), "invalid key `k1`"),
        (
            "unknown kind".into(),
            Some(with(json!({"mapping": {"columns": [{"name": "a", "path": "a", "kind": "float"}]}}))),
            "unknown variant `float`",
        ),
        (
            "duplicate column".into(),
            Some(with(
                json!({"mapping": {"columns": [{"name": "a", "path": "a", "kind": "text"}, {"name": "a", "path": "b", "kind": "text"}]}}),
            )),
            "column `a` appears twice",
        ),
    ];
    for (name, config, expected) in cases {
        let params: Vec<(&str, &str)> = config.iter().map(|c| ("config", c.as_str())).collect();
        let err = chain(&params, None).err().unwrap_or_else(|| panic!("{name}: init succeeded"));
        let text = format!("{err:#}");
        assert!(text.contains(expected), "{name}: init error should say `{expected}`, got: {text}");
        assert!(!text.contains("wasm trap") && !text.contains("unreachable"), "{name}: trapped instead of an init error: {text}");
        assert!(!text.contains(&key_b64[..16]), "{name}: the init error shows key material: {text}");
    }
}

const MIB: usize = 1 << 20;
const WARM_UP: usize = 10_000;
const RECORDS: usize = 1_000_000;

#[test]
fn a_million_records_through_one_chain_keep_memory_flat() {
    let config = test_config_json();
    let params = [("config", config.as_str())];
    let probe_limit = 64 * MIB;
    let before = memory_size(chain(&params, Some(probe_limit)).expect("init"), probe_limit);
    let mut warm = chain(&params, Some(probe_limit)).expect("init");
    run(&mut warm, WARM_UP);
    let after_warm_up = memory_size(warm, probe_limit);

    // The engine's store limit is the bound: one byte of growth past it fails the run.
    let bound = 2 * after_warm_up;
    assert!(bound <= 16 * MIB, "{after_warm_up} bytes after {WARM_UP} records is not small");
    let mut engine = chain(&params, Some(bound)).expect("init");
    let (in_engine, in_library) = run(&mut engine, RECORDS);
    let after = memory_size(engine, bound);

    let in_abi_v1 = abi_v1_module().map(|wasm| (time_abi_v1(&wasm, &config, false), time_abi_v1(&wasm, &config, true)));

    let rate = |d: Duration| RECORDS as f64 / d.as_secs_f64();
    eprintln!(
        "fluvio engine: linear memory {:.2} MiB after init, {:.2} MiB after {WARM_UP} records, {:.2} MiB after {RECORDS} (bound {:.2} MiB)",
        before as f64 / MIB as f64,
        after_warm_up as f64 / MIB as f64,
        after as f64 / MIB as f64,
        bound as f64 / MIB as f64
    );
    eprintln!(
        "fluvio engine: {:.0} records/s in the engine, {:.0} records/s in the native library (same {RECORDS} records, batches of {BATCH})",
        rate(in_engine),
        rate(in_library)
    );
    match in_abi_v1 {
        Some((plain, fuel)) => eprintln!(
            "ABI v1 module under plain wasmtime 34: {:.0} records/s, {:.0} with fuel metering as in the engine (same records)",
            rate(plain),
            rate(fuel)
        ),
        None => eprintln!("ABI v1 module not built (scripts/build-wasm): no like-for-like figure"),
    }
    assert!(after < bound, "linear memory grew from {after_warm_up} to {after} bytes");
}

/// The same events through the ABI v1 module: time inside the module calls only.
fn time_abi_v1(wasm: &[u8], config: &str, fuel: bool) -> Duration {
    let mut module = AbiV1::new(wasm, config, fuel).expect("ABI v1 init");
    let mut spent = Duration::ZERO;
    for start in (0..RECORDS).step_by(BATCH) {
        let batch = events::batch(start, BATCH);
        let messages: Vec<Msg> = batch.iter().map(|(id, body, ts)| Msg { id, body: body.as_bytes(), sent_timestamp_ms: *ts }).collect();
        let t = Instant::now();
        module.transform(&messages).expect("ABI v1 transform_batch");
        spent += t.elapsed();
    }
    spent
}
