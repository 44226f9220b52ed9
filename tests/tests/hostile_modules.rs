//! A module that traps, loops, hoards memory or speaks another ABI cannot hang or crash the
//! host: each is refused or contained with a clear error, and nothing is rejected by mistake.

use std::time::{Duration, Instant};

use maskflow::pipeline::stage::ModuleStage;
use maskflow::runtime::{ModuleLimits, Outcome, WasmModule};
use maskflow_tests::{hostile, test_config, test_keys};
use maskflow_transform::{BodySealer, Message, Transformer};

const LIMITS: ModuleLimits =
    ModuleLimits { memory_bytes: 16 << 20, call_timeout: Duration::from_millis(300) };

fn compile(bytes: &[u8]) -> maskflow::Result<WasmModule> {
    WasmModule::compile(bytes, LIMITS, &serde_json::to_string(&test_config()).unwrap())
}

fn stage(bytes: &[u8]) -> ModuleStage {
    ModuleStage::new(compile(bytes).unwrap(), BodySealer::new(&test_keys()).unwrap()).unwrap()
}

fn messages<'a>(bodies: &'a [&'a str]) -> Vec<Message<'a>> {
    bodies.iter().map(|b| Message { id: b, body: b.as_bytes(), sent_timestamp_ms: 0 }).collect()
}

#[test]
fn a_trapping_module_stops_the_pipeline_instead_of_rejecting_everything() {
    let err = stage(&hostile::traps()).run(&messages(&["a", "b", "c"])).unwrap_err().to_string();
    assert!(
        err.contains("failed on every message") && err.contains("nothing was deleted"),
        "{err}"
    );
}

#[test]
fn a_looping_module_is_interrupted_at_its_deadline() {
    let started = Instant::now();
    let err = stage(&hostile::loops_forever()).run(&messages(&["a"])).unwrap_err().to_string();
    assert!(err.contains("failed on every message"), "{err}");
    // Two attempts of 300 ms each, plus compilation slack.
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn a_memory_hungry_module_hits_the_cap_and_traps() {
    let module = compile(&hostile::grows_memory_without_bound()).unwrap();
    let mut instance = module.instantiate().unwrap();
    let err = instance.transform(&messages(&["a"])).unwrap_err().to_string();
    assert!(err.contains("trapped"), "{err}");
}

#[test]
fn a_module_of_another_abi_version_is_refused() {
    let err =
        compile(&hostile::wrong_abi_version()).unwrap().instantiate().err().unwrap().to_string();
    assert!(err.contains("ABI version 2"), "{err}");
}

#[test]
fn a_module_with_imports_is_refused() {
    let err = compile(&hostile::imports_a_function()).err().unwrap().to_string();
    assert!(err.contains("imports `env.log`"), "{err}");
}

#[test]
fn garbage_is_not_a_module() {
    let err = compile(b"definitely not wasm").err().unwrap().to_string();
    assert!(err.contains("not a valid WebAssembly module"), "{err}");
}

#[test]
fn a_message_the_module_fails_on_is_isolated_and_the_rest_go_through() {
    let mut stage = stage(&hostile::traps_on_poison());
    let bodies = ["one", "two", "three", "po!son", "five", "six"];
    let outcomes = stage.run(&messages(&bodies)).unwrap();
    assert_eq!(outcomes.len(), bodies.len());
    for (body, outcome) in bodies.iter().zip(&outcomes) {
        let Outcome::Rejected { reason, encrypted_body, .. } = outcome else {
            panic!("{body}: {outcome:?}")
        };
        if body.contains('!') {
            assert_eq!(reason, "module_failed");
            let clear = Transformer::new(test_config()).unwrap().unmask(encrypted_body).unwrap();
            assert_eq!(
                clear.value,
                body.as_bytes(),
                "the failed message's body is kept, encrypted"
            );
        } else {
            assert_eq!(reason, "x", "{body} went through the module");
        }
    }
}
