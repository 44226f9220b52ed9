use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use maskflow_transform::Message;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::transform::{ModuleArgs, Outcome, TransformStage, WasmModule};

/// NDJSON message bodies on stdin -> NDJSON rows on stdout, through the same wasm module as
/// `run`. For shell pipelines and other stream processors' exec stages.
#[derive(Debug, Clone, clap::Args)]
pub struct TransformArgs {
    #[command(flatten)]
    pub module: ModuleArgs,
    /// Write rejections (NDJSON) here instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,
    /// The sent timestamp given to every message (ms since the epoch); default: now.
    #[arg(long, value_name = "MS")]
    pub sent_timestamp_ms: Option<i64>,
    /// Lines per module call.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
}

/// Returns (rows, rejections).
pub fn run(args: TransformArgs) -> Result<(u64, u64)> {
    let (config, config_json) = args.module.transform_config()?;
    let module = WasmModule::compile(&args.module.module_bytes()?, args.module.limits(), &config_json)?;
    let columns = module.instantiate()?.columns().to_vec();
    let mut stage = TransformStage::new(module, maskflow_transform::Transformer::new(config)?)?;
    let sent = args.sent_timestamp_ms.unwrap_or_else(now_ms);

    let mut rows_out = BufWriter::new(std::io::stdout().lock());
    let mut rejects_out: Box<dyn Write> = match &args.rejects {
        Some(path) => Box::new(BufWriter::new(std::fs::File::create(path).map_err(Error::io(format!("cannot create {}", path.display())))?)),
        None => Box::new(std::io::stderr().lock()),
    };
    let (mut rows, mut rejected, mut line_no) = (0, 0, 0u64);
    let mut lines = std::io::stdin().lock().split(b'\n');
    loop {
        let chunk: Vec<(String, Vec<u8>)> = lines
            .by_ref()
            .take(args.batch_size)
            .map(|l| {
                line_no += 1;
                l.map(|bytes| (format!("line-{line_no}"), bytes))
            })
            .collect::<std::io::Result<_>>()
            .map_err(Error::io("cannot read stdin"))?;
        if chunk.is_empty() {
            break;
        }
        let messages: Vec<Message> = chunk.iter().map(|(id, body)| Message { id, body, sent_timestamp_ms: sent }).collect();
        for (message, outcome) in messages.iter().zip(stage.run(&messages)?) {
            let write = match outcome {
                Outcome::Row(values) => {
                    rows += 1;
                    let row: Map<String, Value> = columns.iter().cloned().zip(values.into_iter().map(|v| v.map_or(Value::Null, Value::String))).collect();
                    writeln!(rows_out, "{}", Value::Object(row))
                }
                Outcome::Rejected { reason, message: text, encrypted_body } => {
                    rejected += 1;
                    let line = json!({"id": message.id, "reason": reason, "message": text, "encrypted_body": encrypted_body});
                    writeln!(rejects_out, "{line}")
                }
            };
            write.map_err(Error::io("cannot write output"))?;
        }
    }
    rows_out.flush().map_err(Error::io("cannot write stdout"))?;
    rejects_out.flush().map_err(Error::io("cannot write rejections"))?;
    Ok((rows, rejected))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
