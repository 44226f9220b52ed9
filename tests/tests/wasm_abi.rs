//! The built module is what ABI.md says: no imports, exactly the documented exports and types,
//! and small.

use std::collections::BTreeMap;

use maskflow::EMBEDDED_MODULE;
use maskflow_tests::repo_root;
use wasmtime::{Engine, ExternType, Module, ValType};

fn signature(ty: &ExternType) -> String {
    let names = |tys: &mut dyn Iterator<Item = ValType>| {
        tys.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    match ty {
        ExternType::Func(f) => {
            format!("({}) -> {}", names(&mut f.params()), names(&mut f.results()))
        }
        ExternType::Memory(_) => "memory".into(),
        ExternType::Global(g) => format!("global {}", g.content()),
        other => format!("{other:?}"),
    }
}

#[test]
fn module_has_no_imports_and_exactly_the_documented_exports() {
    let module = Module::new(&Engine::default(), EMBEDDED_MODULE).expect("valid module");
    let imports: Vec<String> =
        module.imports().map(|i| format!("{}.{}", i.module(), i.name())).collect();
    assert!(imports.is_empty(), "the module must import nothing, imports {imports:?}");

    let exports: BTreeMap<String, String> =
        module.exports().map(|e| (e.name().to_owned(), signature(&e.ty()))).collect();
    let expected: BTreeMap<String, String> = [
        ("memory", "memory"),
        ("abi_version", "() -> i32"),
        ("alloc", "(i32) -> i32"),
        ("dealloc", "(i32, i32) -> "),
        ("init", "(i32, i32) -> i64"),
        ("transform_batch", "(i32, i32) -> i64"),
        ("unmask", "(i32, i32) -> i64"),
        // ClickHouse's BUFFERED_V1 UDF protocol (integrations/clickhouse).
        ("clickhouse_create_buffer", "(i32) -> i32"),
        ("clickhouse_destroy_buffer", "(i32) -> "),
        ("maskflow", "(i32, i32) -> i32"),
        ("maskflow_typed", "(i32, i32) -> i32"),
        ("maskflow_batch", "(i32, i32) -> i32"),
        ("maskflow_check", "(i32, i32) -> i32"),
        ("__data_end", "global i32"),
        ("__heap_base", "global i32"),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_owned(), s.to_owned()))
    .collect();
    assert_eq!(exports, expected);

    // ABI.md's export table names the same functions.
    let abi = std::fs::read_to_string(repo_root().join("transform/ABI.md")).unwrap();
    let documented: Vec<&str> = abi
        .lines()
        .skip_while(|l| !l.starts_with("## Exports"))
        .take_while(|l| !l.starts_with("`init` and"))
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| l.split('|').nth(1).unwrap_or("").split('`').skip(1).step_by(2))
        .collect();
    assert_eq!(
        documented.iter().copied().collect::<std::collections::BTreeSet<_>>(),
        expected.keys().map(String::as_str).collect()
    );
}

#[test]
fn module_stays_under_300_kb() {
    assert!(EMBEDDED_MODULE.len() < 300_000, "module is {} bytes", EMBEDDED_MODULE.len());
}
