//! A module that traps, loops, hoards memory or speaks another ABI cannot hang or crash the
//! host: each is refused or contained with a clear error, and nothing is rejected by mistake.

use std::time::{Duration, Instant};

use maskflow::{
    Error, Failure, Kind, ModuleError, ModuleLimits, ModuleStage, Step, Stop, WasmModule,
};
use maskflow_tests::{hostile, test_config, test_keys};
use maskflow_transform::wire::FailureKind;
use maskflow_transform::{BodySealer, Message, Outcome, Reason, Transformer};

const LIMITS: ModuleLimits =
    ModuleLimits { memory_bytes: 16 << 20, call_timeout: Duration::from_millis(300) };

fn compile(bytes: &[u8]) -> Result<WasmModule, ModuleError> {
    WasmModule::compile(bytes, LIMITS, &serde_json::to_string(&test_config()).unwrap(), None)
}

fn stage(bytes: &[u8]) -> ModuleStage {
    ModuleStage::new(compile(bytes).unwrap(), BodySealer::new(&test_keys()).unwrap()).unwrap()
}

fn messages<'a>(bodies: &'a [&'a str]) -> Vec<Message<'a>> {
    bodies.iter().map(|b| Message { id: b, body: b.as_bytes(), sent_timestamp_ms: 0 }).collect()
}

#[test]
fn a_trapping_module_stops_the_pipeline_instead_of_rejecting_everything() {
    let err = stage(&hostile::traps()).run(&messages(&["a", "b", "c"])).unwrap_err();
    assert_eq!(err.kind(), Kind::Stopped, "{err}");
    let Error::Stopped(Stop::ModuleNeverWorked { failed, last: Some(last) }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*failed, 3, "every message was tried alone");
    assert!(matches!(last.failure(), Failure::Trap(_)), "{last:?}");
    assert!(err.to_string().contains("nothing was deleted"), "{err}");
}

#[test]
fn a_looping_module_is_interrupted_at_its_deadline() {
    let started = Instant::now();
    let err = stage(&hostile::loops_forever()).run(&messages(&["a"])).unwrap_err();
    let Error::Stopped(Stop::ModuleNeverWorked { last: Some(last), .. }) = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(last.failure(), Failure::Deadline), "{last:?}");
    // Two attempts of 300 ms each, plus compilation slack.
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn a_memory_hungry_module_hits_the_cap_and_traps() {
    let module = compile(&hostile::grows_memory_without_bound()).unwrap();
    let mut instance = module.instantiate().unwrap();
    let err = instance.transform(&messages(&["a"])).unwrap_err();
    assert!(matches!(err.failure(), Failure::Trap(_)), "{err:?}");
    assert_eq!((err.step(), err.kind()), (Step::Transform, Kind::Stopped), "a call, not a setting");
}

const PAGE: usize = 64 << 10;

/// 128 MiB: over the 16 MiB cap of these tests and the host's 64 MB default, far under the
/// 4 GiB wasmtime allows a module declaring `(memory 2 65536)` when no limiter is set.
const HUNGRY_PAGES: u32 = 2048;

/// What the module answers for one message under a memory cap of `memory_bytes`.
fn grow_to_hungry_pages_under(memory_bytes: usize) -> Result<Vec<Outcome>, ModuleError> {
    let limits = ModuleLimits { memory_bytes, ..LIMITS };
    let module = WasmModule::compile(
        &hostile::grows_memory_to(HUNGRY_PAGES),
        limits,
        &serde_json::to_string(&test_config()).unwrap(),
        None,
    )
    .unwrap();
    module.instantiate().unwrap().transform(&messages(&["a"]))
}

#[test]
fn the_memory_cap_is_what_stops_a_module_that_would_otherwise_succeed() {
    // Without a binding cap (1 GiB) the module gets its 128 MiB and answers.
    let outcomes = grow_to_hungry_pages_under(1 << 30).expect("128 MiB is allowed under 1 GiB");
    assert!(
        matches!(&outcomes[..], [Outcome::Rejected { reason, .. }] if *reason == Reason::WrongType),
        "{outcomes:?}"
    );
    // With the cap, memory.grow is refused exactly at the cap: the module reports its size.
    for cap_mb in [16, 40] {
        let err = grow_to_hungry_pages_under(cap_mb << 20).unwrap_err();
        let pages = (cap_mb << 20) / PAGE;
        let Failure::Reported(failure) = err.failure() else { panic!("{err:?}") };
        assert_eq!(failure.kind, FailureKind::Other, "the hostile module's status 1");
        assert_eq!(
            &failure.message,
            &format!("memory.grow refused at {pages} pages"),
            "a {cap_mb} MiB cap should stop the module at {pages} pages"
        );
    }
}

/// The same through the CLI: `--module-memory-mb` reaches the limiter, and the default (64 MB)
/// binds too.
#[test]
fn module_memory_mb_caps_the_module_in_the_cli() {
    let module = std::env::temp_dir().join(format!(
        "maskflow-grows-{}-{}.wasm",
        HUNGRY_PAGES,
        std::process::id()
    ));
    std::fs::write(&module, hostile::grows_memory_to(HUNGRY_PAGES)).unwrap();
    let transform = |memory_mb: Option<&str>| {
        let mut cmd = std::process::Command::new(maskflow_tests::maskflow_bin());
        cmd.args(["transform", "--module", module.to_str().unwrap()])
            .env("MASKFLOW_KEY", std::fs::read_to_string(maskflow_tests::test_key_file()).unwrap())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(mb) = memory_mb {
            cmd.args(["--module-memory-mb", mb]);
        }
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"{}\n").unwrap();
        let out = child.wait_with_output().unwrap();
        // Rejections come out on stdout (tagged), errors on stderr.
        let output = [out.stdout, out.stderr].concat();
        (out.status.success(), String::from_utf8_lossy(&output).into_owned())
    };
    let (ok, stderr) = transform(Some("1024"));
    assert!(ok && stderr.contains(r#""reason":"wrong_type""#), "1024 MB lets it through: {stderr}");
    for (flag, pages) in [(Some("16"), 256), (None, 1024)] {
        let (ok, stderr) = transform(flag);
        assert!(!ok, "--module-memory-mb {flag:?} should stop the module: {stderr}");
        assert!(
            stderr.contains(&format!("memory.grow refused at {pages} pages")),
            "--module-memory-mb {flag:?}: {stderr}"
        );
    }
}

/// A table is capped like memory: `table.grow` fails inside the module at
/// `MAX_TABLE_ELEMENTS`, so a module growing one is stopped like one growing memory.
#[test]
fn a_module_growing_a_table_is_stopped_at_the_table_cap() {
    use maskflow::MAX_TABLE_ELEMENTS;
    let run = |target: u32| {
        compile(&hostile::grows_table_to(target))
            .unwrap()
            .instantiate()
            .unwrap()
            .transform(&messages(&["a"]))
    };
    // Under the cap the module gets its table and answers: the cap is what stops it below.
    let outcomes = run(MAX_TABLE_ELEMENTS as u32).expect("a table at the cap is allowed");
    assert!(
        matches!(&outcomes[..], [Outcome::Rejected { reason, .. }] if *reason == Reason::WrongType)
    );
    // 1,000,000 elements (8 MB of host memory) would be granted without the cap.
    let err = run(1_000_000).unwrap_err().to_string();
    assert!(err.contains(&format!("table.grow refused at {MAX_TABLE_ELEMENTS} elements")), "{err}");
    // Growing without bound ends in a trap, and the pipeline stops, as for memory.
    let err = compile(&hostile::grows_table_without_bound())
        .unwrap()
        .instantiate()
        .unwrap()
        .transform(&messages(&["a"]))
        .unwrap_err();
    assert!(matches!(err.failure(), Failure::Trap(_)), "{err:?}");
    let err = stage(&hostile::grows_table_without_bound()).run(&messages(&["a", "b"])).unwrap_err();
    assert!(matches!(err, Error::Stopped(Stop::ModuleNeverWorked { failed: 2, .. })), "{err:?}");
}

#[test]
fn a_module_of_another_abi_version_is_refused() {
    let err = compile(&hostile::wrong_abi_version()).unwrap().instantiate().err().unwrap();
    assert!(matches!(err.failure(), Failure::AbiVersion { found: 2, expected: 1 }), "{err:?}");
    assert_eq!(err.kind(), Kind::Config, "a setting to fix: --module");
}

#[test]
fn a_module_with_imports_is_refused() {
    let err = compile(&hostile::imports_a_function()).err().unwrap();
    let Failure::Imports { module, name } = err.failure() else { panic!("{err:?}") };
    assert_eq!((module.as_str(), name.as_str()), ("env", "log"));
}

#[test]
fn garbage_is_not_a_module() {
    let err = compile(b"definitely not wasm").err().unwrap();
    assert!(matches!(err.failure(), Failure::Invalid(_)), "{err:?}");
    assert_eq!((err.step(), err.kind()), (Step::Compile, Kind::Config));
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
            assert_eq!(*reason, Reason::ModuleFailed);
            let clear = Transformer::new(test_config()).unwrap().unmask(encrypted_body).unwrap();
            assert_eq!(
                clear.value,
                body.as_bytes(),
                "the failed message's body is kept, encrypted"
            );
        } else {
            assert_eq!(*reason, Reason::WrongType, "{body} went through the module");
        }
    }
}
