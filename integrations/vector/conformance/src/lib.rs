//! Runs the Vector pipeline's VRL programs (`integrations/vector/maskflow.vrl`, `integrations/vector/rejected.vrl`) the
//! way Vector's `remap` transform runs them, with the `vrl` crate Vector embeds, so that tests
//! can hold their outcomes against the golden vectors of the transform module.
//!
//! What Vector does and this harness copies (vector `src/transforms/remap.rs`):
//! - the event of the `aws_sqs` source (legacy log namespace, `decoding.codec: bytes`) is
//!   `{message: <body bytes>, timestamp: <SentTimestamp>, source_type: "aws_sqs"}`;
//! - a program that ends normally replaces the event with what it left in `.`;
//! - with `drop_on_abort` (the default) and `reroute_dropped`, an aborted or failed event goes
//!   to the `dropped` output *unmodified*, annotated with `.metadata.dropped = {reason: "abort"
//!   | "error", message, component_id, component_type, component_kind}`, where `message` is
//!   the last user error note of the error, else its text (for `abort "x"`: `x`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use vrl::compiler::state::{ExternalEnv, RuntimeState};
use vrl::compiler::{CompileConfig, Context, Program, TargetValue, TimeZone};
use vrl::diagnostic::{DiagnosticMessage, Formatter, Note};
use vrl::prelude::{Collection, ExpressionError, Kind};
use vrl::value::{Secrets, Value};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(3).expect("repo root").to_path_buf()
}

pub fn vector_dir() -> PathBuf {
    repo_root().join("integrations/vector")
}

/// The test key file's text (`tests/vectors/test.key`), which `MASKFLOW_KEY` holds in tests.
pub fn test_key_text() -> String {
    std::fs::read_to_string(repo_root().join("tests/vectors/test.key"))
        .expect("tests/vectors/test.key")
}

/// Sets `MASKFLOW_KEY` (the programs read it with `get_env_var`) to the test key file's text,
/// once per test process, before any test reads the environment.
pub fn use_test_key() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        // SAFETY (edition 2021: not `unsafe` yet): every test of this crate calls this before
        // it reads the environment, and `Once` makes the others wait until the write is done.
        std::env::set_var("MASKFLOW_KEY", test_key_text());
    });
}

// ------------------------------------------------------------------------------------------
// Golden vectors (format: tests/src/lib.rs `Vector`, written by `gen-vectors`)

pub use maskflow_tests::{golden, Vector};

// ------------------------------------------------------------------------------------------
// Compiling

/// How Vector may type the event the program sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `schema.enabled: false` (Vector's default): an object with any fields.
    Any,
    /// `schema.enabled: true`: the aws_sqs source's legacy-namespace definition (`message`
    /// bytes, `timestamp` a timestamp or absent, `source_type` bytes).
    AwsSqs,
}

pub struct Compiled {
    pub program: Program,
    /// Compiler warnings, formatted; Vector logs them at start-up.
    pub warnings: String,
}

/// Compiles a VRL file with the whole standard library this crate builds (see Cargo.toml: the
/// base functions plus the crypto and env groups, as in Vector's release builds).
pub fn compile(path: &Path, schema: Schema) -> Result<Compiled, String> {
    let source = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    compile_source(&source, schema)
}

pub fn compile_source(source: &str, schema: Schema) -> Result<Compiled, String> {
    let functions = vrl::stdlib::all();
    let external = match schema {
        Schema::Any => ExternalEnv::default(),
        Schema::AwsSqs => {
            let fields = BTreeMap::from([
                ("message".into(), Kind::bytes()),
                ("timestamp".into(), Kind::timestamp().or_undefined()),
                ("source_type".into(), Kind::bytes()),
            ]);
            ExternalEnv::new_with_kind(
                Kind::object(Collection::from(fields)),
                Kind::object(Collection::any()),
            )
        }
    };
    match vrl::compiler::compile_with_external(
        source,
        &functions,
        &external,
        CompileConfig::default(),
    ) {
        Ok(result) => Ok(Compiled {
            program: result.program,
            warnings: Formatter::new(source, result.warnings).to_string(),
        }),
        Err(diagnostics) => Err(Formatter::new(source, diagnostics).to_string()),
    }
}

pub fn twin(schema: Schema) -> Compiled {
    compile(&vector_dir().join("maskflow.vrl"), schema)
        .unwrap_or_else(|e| panic!("integrations/vector/maskflow.vrl does not compile:\n{e}"))
}

pub fn shaper(schema: Schema) -> Compiled {
    compile(&vector_dir().join("rejected.vrl"), schema)
        .unwrap_or_else(|e| panic!("integrations/vector/rejected.vrl does not compile:\n{e}"))
}

// ------------------------------------------------------------------------------------------
// Running

/// What the remap transform does with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Remapped {
    /// The program ended: the new event.
    Event(Value),
    /// Aborted or failed: the original event, annotated as Vector annotates it.
    Dropped { how: &'static str, message: String, event: Value },
}

/// The event Vector's aws_sqs source makes of an SQS message.
pub fn sqs_event(body: &[u8], sent_timestamp_ms: i64) -> Value {
    let sent: DateTime<Utc> =
        DateTime::from_timestamp_millis(sent_timestamp_ms).expect("timestamp in chrono's range");
    let mut event = BTreeMap::new();
    event.insert("message".into(), Value::Bytes(body.to_vec().into()));
    event.insert("timestamp".into(), Value::Timestamp(sent));
    event.insert("source_type".into(), Value::from("aws_sqs"));
    Value::Object(event.into_iter().collect())
}

pub fn run(program: &Program, event: Value) -> Remapped {
    let original = event.clone();
    let mut target = TargetValue {
        value: event,
        metadata: Value::Object(Default::default()),
        secrets: Secrets::default(),
    };
    let mut state = RuntimeState::default();
    let timezone = TimeZone::default();
    let mut ctx = Context::new(&mut target, &mut state, &timezone);
    match program.resolve(&mut ctx) {
        Ok(_) => Remapped::Event(target.value),
        Err(error) => {
            let how =
                if matches!(error, ExpressionError::Abort { .. }) { "abort" } else { "error" };
            let message = dropped_message(&error);
            let mut event = original;
            let dropped = object([
                ("reason", Value::from(how)),
                ("message", Value::from(message.clone())),
                ("component_id", Value::from("maskflow")),
                ("component_type", Value::from("remap")),
                ("component_kind", Value::from("transform")),
            ]);
            let metadata = object([("dropped", dropped)]);
            if let Value::Object(map) = &mut event {
                map.insert("metadata".into(), metadata);
            }
            Remapped::Dropped { how, message, event }
        }
    }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// `Remap::dropped_data`'s message.
fn dropped_message(error: &ExpressionError) -> String {
    error
        .notes()
        .iter()
        .rfind(|note| matches!(note, Note::UserErrorMessage(_)))
        .map(ToString::to_string)
        .unwrap_or_else(|| error.to_string())
}

/// The pipeline's outcome for one message, in the golden JSON shape: `{"row": {...}}` (cells as
/// PostgreSQL input text, as the module reports them) or `{"rejection": {...}}`.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub json: Json,
    /// The full rejected-table row (`message_id`, `rejected_at` too), for rejections.
    pub rejected_row: Option<BTreeMap<String, Value>>,
    /// How the main program ended when it did not produce a row: `abort` or `error`.
    pub dropped_how: Option<&'static str>,
}

pub struct Pipeline {
    pub twin: Compiled,
    pub shaper: Compiled,
}

impl Pipeline {
    pub fn new(schema: Schema) -> Pipeline {
        use_test_key();
        Pipeline { twin: twin(schema), shaper: shaper(Schema::Any) }
    }

    pub fn outcome(&self, body: &[u8], sent_timestamp_ms: i64) -> Outcome {
        match run(&self.twin.program, sqs_event(body, sent_timestamp_ms)) {
            Remapped::Event(row) => Outcome {
                json: serde_json::json!({ "row": row_as_text(&row) }),
                rejected_row: None,
                dropped_how: None,
            },
            Remapped::Dropped { how, event, .. } => {
                let shaped = match run(&self.shaper.program, event) {
                    Remapped::Event(Value::Object(map)) => {
                        map.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>()
                    }
                    other => panic!("rejected.vrl must always produce an object, got {other:?}"),
                };
                let text = |name: &str| match shaped.get(name) {
                    Some(Value::Null) | None => Json::Null,
                    Some(v) if v.as_bytes().is_some() => {
                        Json::String(String::from_utf8_lossy(v.as_bytes().unwrap()).into_owned())
                    }
                    Some(other) => panic!("rejected row field {name} is not text: {other:?}"),
                };
                let json = serde_json::json!({ "rejection": {
                    "reason": text("reason"), "message": text("message"), "encrypted_body": text("encrypted_body"),
                }});
                Outcome { json, rejected_row: Some(shaped), dropped_how: Some(how) }
            }
        }
    }
}

/// The row as the golden file has it: each column as PostgreSQL input text, or null.
pub fn row_as_text(row: &Value) -> Json {
    let Value::Object(map) = row else { panic!("the program left a non-object event: {row:?}") };
    let cells = map
        .iter()
        .map(|(name, value)| {
            let cell = match value {
                Value::Null => Json::Null,
                Value::Integer(i) => Json::String(i.to_string()),
                v if v.as_bytes().is_some() => Json::String(
                    String::from_utf8(v.as_bytes().unwrap().to_vec()).expect("UTF-8 cell"),
                ),
                other => panic!("column {name}: unexpected VRL value {other:?}"),
            };
            (name.to_string(), cell)
        })
        .collect::<serde_json::Map<_, _>>();
    Json::Object(cells)
}
