use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use maskflow_transform::{Message, Outcome};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::pipeline::stage::{ModuleConfig, Stages};

/// `maskflow transform`: NDJSON bodies on stdin -> NDJSON rows on stdout.
pub struct TransformConfig {
    pub module: ModuleConfig,
    /// Rejections (NDJSON) go here instead of stderr.
    pub rejects: Option<PathBuf>,
    /// The sent timestamp given to every message (ms since the epoch); `None`: now.
    pub sent_timestamp_ms: Option<i64>,
    /// Lines per module call.
    pub batch_size: usize,
}

/// Returns (rows, rejections).
pub fn run(config: TransformConfig) -> Result<(u64, u64)> {
    let stages = Stages::prepare(config.module)?;
    let mut stage = stages.stage()?;
    let columns = stages.columns();
    let sent = config.sent_timestamp_ms.unwrap_or_else(now_ms);

    let mut rows_out = BufWriter::new(std::io::stdout().lock());
    let mut rejects_out: Box<dyn Write> = match &config.rejects {
        Some(path) => Box::new(BufWriter::new(
            std::fs::File::create(path)
                .map_err(Error::io(format!("cannot create {}", path.display())))?,
        )),
        None => Box::new(std::io::stderr().lock()),
    };
    let (mut rows, mut rejected, mut line_no) = (0, 0, 0u64);
    let mut lines = std::io::stdin().lock().split(b'\n');
    loop {
        let chunk: Vec<(String, Vec<u8>)> = lines
            .by_ref()
            .take(config.batch_size)
            .map(|l| {
                line_no += 1;
                l.map(|bytes| (format!("line-{line_no}"), bytes))
            })
            .collect::<std::io::Result<_>>()
            .map_err(Error::io("cannot read stdin"))?;
        if chunk.is_empty() {
            break;
        }
        let messages: Vec<Message> =
            chunk.iter().map(|(id, body)| Message { id, body, sent_timestamp_ms: sent }).collect();
        for (message, outcome) in messages.iter().zip(stage.run(&messages)?) {
            let write = match outcome {
                Outcome::Row(values) => {
                    rows += 1;
                    let row: Map<String, Value> = columns
                        .iter()
                        .cloned()
                        .zip(values.into_iter().map(|v| v.map_or(Value::Null, Value::String)))
                        .collect();
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
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
