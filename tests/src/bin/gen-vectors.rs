//! Regenerates tests/vectors/golden.jsonl from cases.jsonl with the native library and the
//! fixed test key. Run after a deliberate change of the rules, then review the diff by eye:
//!   cargo run -p maskflow-tests --bin gen-vectors

use std::io::Write;

use maskflow_tests::{cases, native_outcome, repo_root, test_config};
use maskflow_transform::Transformer;

fn main() {
    let mut transformer = Transformer::new(test_config()).expect("transformer");
    let path = repo_root().join("tests/vectors/golden.jsonl");
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&path).expect("create golden.jsonl"));
    let raw =
        std::fs::read_to_string(repo_root().join("tests/vectors/cases.jsonl")).expect("cases");
    for (vector, line) in cases().iter().zip(raw.lines().filter(|l| !l.trim().is_empty())) {
        let mut case: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).expect("case");
        let mut expected = native_outcome(&mut transformer, vector);
        // A huge body's ciphertext would bloat the file; tests unmask it instead.
        if let Some(body) = expected.pointer_mut("/rejection/encrypted_body") {
            if body.as_str().is_some_and(|b| b.len() > 4096) {
                *body = serde_json::Value::Null;
            }
        }
        case.insert("expected".into(), expected);
        writeln!(out, "{}", serde_json::Value::Object(case)).expect("write");
    }
    drop(out);
    let docs = repo_root().join("docs/bad-inputs.md");
    std::fs::write(&docs, maskflow_tests::render_catalogue(&maskflow_tests::golden()))
        .expect("write docs/bad-inputs.md");
    let reliability = repo_root().join("docs/reliability.md");
    let doc = std::fs::read_to_string(&reliability).expect("read docs/reliability.md");
    std::fs::write(
        &reliability,
        maskflow_tests::with_bad_inputs_counts(&doc, &maskflow_tests::golden()),
    )
    .expect("write docs/reliability.md");
    eprintln!("wrote {}, {} and {}", path.display(), docs.display(), reliability.display());
}
