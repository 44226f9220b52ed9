//! Shared test support: golden vectors, the test key, and the real services started by
//! `scripts/services start` (PostgreSQL and LocalStack's SQS, KMS and Secrets Manager on
//! 127.0.0.1).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use maskflow_transform::{Config, Key};
use serde::Deserialize;
use serde_json::Value;

pub mod aws_keys;
pub mod faults;
pub mod hostile;
pub mod key_files;
pub mod proxy;
pub mod run;
pub mod services;
pub use services::Services;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

pub fn test_key_file() -> PathBuf {
    repo_root().join("tests/vectors/test.key")
}

pub fn test_keys() -> Vec<Key> {
    Key::parse_key_file(&std::fs::read_to_string(test_key_file()).expect("test key"))
        .expect("valid test key")
}

pub fn test_config() -> Config {
    Config::with_keys(test_keys())
}

/// One golden vector: an SQS message and what every runtime must make of it.
#[derive(Debug, Clone, Deserialize)]
pub struct Vector {
    pub name: String,
    pub message_id: String,
    pub sent_timestamp_ms: i64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
    /// Pads `body` with trailing spaces (still valid JSON) to this many bytes.
    #[serde(default)]
    pad_body_to: Option<usize>,
    /// `{"row": {...}}` or `{"rejection": {"reason", "message", "encrypted_body"}}`.
    #[serde(default)]
    pub expected: Value,
}

impl Vector {
    pub fn body(&self) -> Vec<u8> {
        let mut body = match (&self.body, &self.body_base64) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(b64)) => {
                base64::engine::general_purpose::STANDARD.decode(b64).expect("valid body_base64")
            }
            (None, None) => panic!("vector {} has no body", self.name),
        };
        if let Some(n) = self.pad_body_to {
            body.resize(n, b' ');
        }
        body
    }

    pub fn expected_reason(&self) -> Option<&str> {
        self.expected.pointer("/rejection/reason").and_then(Value::as_str)
    }

    pub fn expected_row(&self) -> Option<&serde_json::Map<String, Value>> {
        self.expected.get("row").and_then(Value::as_object)
    }
}

fn read_jsonl(name: &str) -> Vec<Vector> {
    let path = repo_root().join("tests/vectors").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid vector line"))
        .collect()
}

/// The hand-written inputs (`cases.jsonl`).
pub fn cases() -> Vec<Vector> {
    read_jsonl("cases.jsonl")
}

/// The reviewed, committed golden vectors (`golden.jsonl`).
pub fn golden() -> Vec<Vector> {
    read_jsonl("golden.jsonl")
}

/// What the native library makes of a vector, in the golden JSON shape.
pub fn native_outcome(transformer: &mut maskflow_transform::Transformer, v: &Vector) -> Value {
    let body = v.body();
    let message = maskflow_transform::Message {
        id: &v.message_id,
        body: &body,
        sent_timestamp_ms: v.sent_timestamp_ms,
    };
    let columns = transformer.columns().to_vec();
    let outcome = match transformer.transform(&message) {
        Ok(row) => {
            serde_json::to_value(maskflow_transform::OutcomeJson::Row { columns: &columns, row })
        }
        Err(rejection) => {
            serde_json::to_value(maskflow_transform::OutcomeJson::Rejection(&rejection))
        }
    };
    outcome.expect("outcome serialises")
}

/// A TCP port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET url`: (status, body); `None` while nothing listens yet.
pub fn get(url: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent.get(url).call().ok()?;
    Some((response.status().as_u16(), response.body_mut().read_to_string().unwrap()))
}

/// The `maskflow` binary of this build (cargo puts it beside the test binaries' directory).
pub fn maskflow_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MASKFLOW_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("maskflow");
    assert!(bin.exists(), "{} is missing: build it first (`cargo build --release -p maskflow-host`, scripts/test does)", bin.display());
    bin
}

/// The host built with fail points (`cargo build --release -p maskflow-host --features
/// failpoints`, copied to `maskflow-failpoints` beside `maskflow`: `scripts/build-failpoints`,
/// which scripts/test runs). The shipped binary has none.
pub fn maskflow_failpoints_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MASKFLOW_FAILPOINTS_BIN") {
        return bin.into();
    }
    let bin = maskflow_bin().with_file_name("maskflow-failpoints");
    assert!(
        bin.exists(),
        "{} is missing: build it with scripts/build-failpoints (scripts/test does)",
        bin.display()
    );
    bin
}

/// Environment for running `maskflow` against the services, with the test key.
pub fn maskflow_env(
    services: &Services,
    database_url: &str,
    queue_url: &str,
) -> HashMap<String, String> {
    let mut env = services.env.clone();
    env.insert("DATABASE_URL".into(), database_url.into());
    env.insert("MASKFLOW_QUEUE_URL".into(), queue_url.into());
    // The key's text: the committed test key file is world-readable, which `--key-file` refuses.
    env.insert("MASKFLOW_KEY".into(), std::fs::read_to_string(test_key_file()).expect("test key"));
    env
}

/// docs/bad-inputs.md: the catalogue of inputs and their outcomes, rendered from the golden
/// vectors (gen-vectors writes it; a test keeps it in step).
pub fn render_catalogue(vectors: &[Vector]) -> String {
    let mut out = String::from(
        "# Input catalogue: what maskflow does with each kind of message\n\n\
         Generated from `tests/vectors/golden.jsonl` by `cargo run -p maskflow-tests --bin gen-vectors`; \
         do not edit by hand. Every row is checked by the native library, the wasm module under \
         wasmtime and the Node binding (tests/tests/golden.rs, integrations/node/test), and end \
         to end through LocalStack's SQS and PostgreSQL (tests/tests/e2e.rs) except where SQS \
         cannot carry the message (marked *not sendable*: empty, not UTF-8, over 256 KiB) or the outcome \
         depends on the vector's own timestamp (SQS stamps its own).\n\n\
         | # | input | outcome | rule |\n|---|---|---|---|\n",
    );
    for (i, v) in vectors.iter().enumerate() {
        let (outcome, rule) = match v.expected_reason() {
            Some(reason) => {
                let message =
                    v.expected.pointer("/rejection/message").and_then(Value::as_str).unwrap_or("");
                (format!("rejected: `{reason}`"), message.replace('|', "\\|"))
            }
            None => ("row".to_owned(), String::new()),
        };
        let body = v.body();
        let sendable =
            !body.is_empty() && std::str::from_utf8(&body).is_ok() && body.len() <= 256 * 1024;
        let note = if sendable { "" } else { " (*not sendable*)" };
        out.push_str(&format!(
            "| {} | {}{note} | {outcome} | {rule} |\n",
            i + 1,
            v.name.replace('_', " ")
        ));
    }
    let rejected = vectors.iter().filter(|v| v.expected_reason().is_some()).count();
    out.push_str(&format!(
        "\n{} inputs: {} rows, {rejected} rejections.\n",
        vectors.len(),
        vectors.len() - rejected
    ));
    out
}

/// Whether the end-to-end test can carry a vector: SQS refuses empty, non-UTF-8 and
/// over-256-KiB bodies, and stamps its own SentTimestamp (so an `invalid_timestamp` outcome
/// cannot be reproduced).
pub fn end_to_end(v: &Vector) -> bool {
    let body = v.body();
    !body.is_empty()
        && std::str::from_utf8(&body).is_ok()
        && body.len() <= 256 * 1024
        && v.expected_reason() != Some("invalid_timestamp")
}

/// docs/reliability.md's "bad inputs" row, last cell: counted from the vectors, never typed.
pub fn bad_inputs_counts(vectors: &[Vector]) -> String {
    let rejected: Vec<&str> = vectors.iter().filter_map(Vector::expected_reason).collect();
    let reasons: std::collections::BTreeSet<&str> = rejected.iter().copied().collect();
    format!(
        "{} inputs ({} rejections of {} reason codes, {} rows) checked in 3 runtimes, {} of them end to end",
        vectors.len(),
        rejected.len(),
        reasons.len(),
        vectors.iter().filter(|v| v.expected_row().is_some()).count(),
        vectors.iter().filter(|v| end_to_end(v)).count()
    )
}

/// `doc` (docs/reliability.md) with its "bad inputs" row's counts replaced by
/// [`bad_inputs_counts`] (gen-vectors writes it; golden.rs checks it).
pub fn with_bad_inputs_counts(doc: &str, vectors: &[Vector]) -> String {
    let mut out = String::with_capacity(doc.len());
    for line in doc.split_inclusive('\n') {
        match (line.starts_with("| bad inputs |"), line.trim_end().strip_suffix('|')) {
            (true, Some(row)) => {
                let cells = &row[..row.rfind('|').expect("a table row") + 1];
                out.push_str(&format!("{cells} {} |\n", bad_inputs_counts(vectors)));
            }
            _ => out.push_str(line),
        }
    }
    out
}
