//! `maskflow transform`: NDJSON bodies on stdin -> NDJSON rows on stdout, as a streaming stage.
//!
//! A reader thread takes lines as they arrive; the module runs on what has arrived once the
//! batch is full or `linger` has passed since its first line, and the output is flushed after
//! every batch, so a line's row is out at most `linger` (plus one module call) after the line
//! came in, however slowly the input trickles.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use maskflow_transform::{Message, Outcome};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::pipeline::{ModuleConfig, PreparedModule};

/// `maskflow transform`'s settings (built by `crate::cli`).
pub(crate) struct TransformConfig {
    pub(crate) module: ModuleConfig,
    pub(crate) rejects: Rejects,
    /// The sent timestamp of lines without one (ms since the epoch); `None`: the time they arrive.
    pub(crate) sent_timestamp_ms: Option<i64>,
    /// A top-level JSON field holding each line's sent timestamp (ms since the epoch, or an
    /// RFC 3339 string).
    pub(crate) sent_timestamp_field: Option<String>,
    /// Lines per module call, at most.
    pub(crate) batch_size: usize,
    /// How long the first line of a batch waits for more.
    pub(crate) linger: Duration,
}

/// Where rejections go.
pub(crate) enum Rejects {
    /// Interleaved with the rows on stdout, as `{"rejected": {id, reason, message, encrypted_body}}`.
    Stdout,
    /// NDJSON lines `{id, reason, message, encrypted_body}` in this file.
    File(PathBuf),
}

/// Returns (rows, rejections).
pub(crate) fn run(config: TransformConfig) -> Result<(u64, u64)> {
    let module = PreparedModule::prepare(config.module)?;
    let mut stage = module.stage()?;
    let columns = module.columns();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut rejects_file = match &config.rejects {
        Rejects::File(path) => Some(BufWriter::new(
            std::fs::File::create(path)
                .map_err(Error::io(format!("cannot create {}", path.display())))?,
        )),
        Rejects::Stdout => None,
    };

    // The reader thread: lines (with their arrival time) as they come; the channel closes at EOF.
    let (tx, rx) = flume::bounded::<std::io::Result<(Vec<u8>, i64)>>(config.batch_size * 2);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().split(b'\n') {
            if tx.send(line.map(|l| (l, now_ms()))).is_err() {
                break;
            }
        }
    });

    let (mut rows, mut rejected, mut line_no) = (0u64, 0u64, 0u64);
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + config.linger;
        let mut chunk = vec![first];
        while chunk.len() < config.batch_size {
            match rx.recv_deadline(deadline) {
                Ok(line) => chunk.push(line),
                Err(_) => break,
            }
        }
        let mut lines = Vec::with_capacity(chunk.len());
        for line in chunk {
            let (body, arrived) = line.map_err(Error::io("cannot read stdin"))?;
            line_no += 1;
            let sent = config.sent_timestamp_field.as_deref().and_then(|f| timestamp_in(&body, f));
            let sent = sent.or(config.sent_timestamp_ms).unwrap_or(arrived);
            lines.push((format!("line-{line_no}"), body, sent));
        }
        let messages: Vec<Message> = lines
            .iter()
            .map(|(id, body, sent)| Message { id, body, sent_timestamp_ms: *sent })
            .collect();
        for (message, outcome) in messages.iter().zip(stage.run(&messages)?) {
            let written = match outcome {
                Outcome::Row(values) => {
                    rows += 1;
                    let row: Map<String, Value> = columns
                        .iter()
                        .cloned()
                        .zip(values.into_iter().map(|v| v.map_or(Value::Null, Value::String)))
                        .collect();
                    writeln!(out, "{}", Value::Object(row))
                }
                Outcome::Rejected { reason, message: text, encrypted_body } => {
                    rejected += 1;
                    let record = json!({"id": message.id, "reason": reason, "message": text, "encrypted_body": encrypted_body});
                    match &mut rejects_file {
                        Some(file) => writeln!(file, "{record}"),
                        None => writeln!(out, "{}", json!({ "rejected": record })),
                    }
                }
            };
            written.map_err(Error::io("cannot write output"))?;
        }
        out.flush().map_err(Error::io("cannot write stdout"))?;
        if let Some(file) = &mut rejects_file {
            file.flush().map_err(Error::io("cannot write rejections"))?;
        }
    }
    Ok((rows, rejected))
}

/// The line's timestamp field, if it is a JSON object with one that reads as a time: ms since
/// the epoch (a number) or an RFC 3339 string. Anything else: `None` (the default applies;
/// the module still judges the line).
fn timestamp_in(body: &[u8], field: &str) -> Option<i64> {
    let Value::Object(mut object) = serde_json::from_slice(body).ok()? else { return None };
    match object.remove(field)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let t = humantime::parse_rfc3339_weak(&s).ok()?;
            Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
        }
        _ => None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::timestamp_in;

    #[test]
    fn timestamps_come_from_numbers_and_rfc3339_strings_only() {
        assert_eq!(timestamp_in(br#"{"t": 1700000000123}"#, "t"), Some(1_700_000_000_123));
        assert_eq!(timestamp_in(br#"{"t": "2023-11-14T22:13:20Z"}"#, "t"), Some(1_700_000_000_000));
        assert_eq!(timestamp_in(br#"{"t": "yesterday"}"#, "t"), None);
        assert_eq!(timestamp_in(br#"{"u": 1}"#, "t"), None);
        assert_eq!(timestamp_in(b"not json", "t"), None);
        assert_eq!(timestamp_in(br#"[1]"#, "t"), None);
    }
}
