//! `maskflow transform`: NDJSON bodies on stdin -> NDJSON rows on stdout, as a streaming stage.
//!
//! A reader thread takes lines as they arrive; the module runs on what has arrived once the
//! batch is full or `linger` has passed since its first line, and the output is flushed after
//! every batch, so a line's row is out at most `linger` (plus one module call) after the line
//! came in, however slowly the input trickles.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod sent;

use maskflow_transform::{Message, Outcome, Reason};
use serde_json::{json, Map, Value};

use self::sent::SentTime;
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
        // Each line's sent time, or the rejection of a line whose time field cannot be read
        // (it never reaches the module: there is no time to give it).
        let mut lines = Vec::with_capacity(chunk.len());
        let mut unreadable = Vec::new();
        for line in chunk {
            let (body, arrived) = line.map_err(Error::io("cannot read stdin"))?;
            line_no += 1;
            let field = config.sent_timestamp_field.as_deref();
            let sent = match field.map_or(SentTime::Absent, |f| sent::read(&body, f)) {
                SentTime::At(ms) => ms,
                SentTime::Absent => config.sent_timestamp_ms.unwrap_or(arrived),
                SentTime::Unreadable(why) => {
                    let field = field.unwrap_or_default();
                    unreadable.push((
                        lines.len(),
                        Outcome::Rejected {
                            reason: Reason::InvalidTimestamp,
                            message: format!("field `{field}`: {why}"),
                            encrypted_body: stage.sealer().seal(&body),
                        },
                    ));
                    0 // not sent to the module (below)
                }
            };
            lines.push((format!("line-{line_no}"), body, sent));
        }
        let readable: Vec<Message> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| !unreadable.iter().any(|(at, _)| at == i))
            .map(|(_, (id, body, sent))| Message { id, body, sent_timestamp_ms: *sent })
            .collect();
        let mut transformed = stage.run(&readable)?.into_iter();
        let mut unreadable = unreadable.into_iter().peekable();
        let outcomes = (0..lines.len()).map(|i| match unreadable.next_if(|(at, _)| *at == i) {
            Some((_, rejection)) => rejection,
            None => transformed.next().expect("one outcome per message sent to the module"),
        });
        for ((id, ..), outcome) in lines.iter().zip(outcomes) {
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
                    let record = json!({"id": id, "reason": reason, "message": text, "encrypted_body": encrypted_body});
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
