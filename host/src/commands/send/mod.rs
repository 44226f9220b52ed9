//! `maskflow send`: loads messages into the queue (creating it if missing), from a file or
//! from the synthetic generator next door.

mod generate;
mod lines;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::task::JoinSet;

pub use self::generate::Generator;
pub(crate) use self::lines::LineSet;
use crate::error::{Error, Result};
use crate::source::{SqsConfig, SqsError, SqsSource, SQS_BATCH};

pub(crate) struct SendConfig {
    pub(crate) sqs: SqsConfig,
    pub(crate) input: SendInput,
    /// Print the bodies as NDJSON on stdout instead of sending them.
    pub(crate) print: bool,
    /// SendMessageBatch calls in flight at once.
    pub(crate) parallel: usize,
    /// Only these lines (`--from-line`, `--lines`); all when `None`.
    pub(crate) lines: Option<LineSet>,
}

pub(crate) enum SendInput {
    /// A JSON array of events, or NDJSON (each line sent as it is, malformed lines included).
    File(PathBuf),
    Generate {
        count: usize,
        seed: u64,
        malformed_per_mille: u32,
    },
}

/// Returns how many messages were sent. A send that stops part-way reports the lines sent and
/// the flag that sends exactly the others (`lines::report`), then returns the error.
pub(crate) fn run(config: SendConfig) -> Result<usize> {
    let numbered: Vec<(usize, String)> = match &config.input {
        SendInput::File(path) => read_bodies(path)?,
        &SendInput::Generate { count, seed, malformed_per_mille } => {
            let mut generator = Generator::new(seed, count, malformed_per_mille);
            (1..=count).map(|n| (n, generator.next_body())).collect()
        }
    };
    let all: BTreeSet<usize> = numbered.iter().map(|(n, _)| *n).collect();
    let bodies: Vec<(usize, String)> = match &config.lines {
        Some(set) => numbered.into_iter().filter(|(n, _)| set.contains(*n)).collect(),
        None => numbered,
    };
    if config.print {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for (_, body) in &bodies {
            writeln!(out, "{body}").map_err(Error::io("cannot write stdout"))?;
        }
        out.flush().map_err(Error::io("cannot write stdout"))?;
        return Ok(bodies.len());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    let mut sent = BTreeSet::new();
    let outcome = runtime.block_on(send_all(&config, &bodies, &mut sent));
    let queue_url = match outcome {
        Ok(queue_url) => queue_url,
        Err(e) => {
            let unsent = bodies.iter().map(|(n, _)| *n).filter(|n| !sent.contains(n)).collect();
            eprintln!("maskflow: sending stopped: {}", lines::report(&sent, &unsent, &all));
            return Err(e);
        }
    };
    eprintln!("maskflow: sent {} messages to {queue_url}", bodies.len());
    Ok(bodies.len())
}

/// Sends `bodies` in batches, `parallel` calls at once, adding each line SQS accepted to `sent`.
/// At the first failure (a call, or entries failed inside an answer) no further batch starts;
/// those in flight finish and are counted; the first error is returned.
async fn send_all(
    config: &SendConfig,
    bodies: &[(usize, String)],
    sent: &mut BTreeSet<usize>,
) -> Result<String> {
    let source = SqsSource::connect(&config.sqs, true).await?;
    let mut in_flight = JoinSet::new();
    let mut first_error = None;
    let mut record = |done: (Vec<usize>, Result<Vec<usize>, SqsError>),
                      first_error: &mut Option<Error>| {
        let (lines, result) = done;
        match result {
            Ok(failed) => {
                sent.extend(
                    lines.iter().enumerate().filter(|(i, _)| !failed.contains(i)).map(|(_, n)| *n),
                );
                if let (Some(&i), None) = (failed.first(), &first_error) {
                    *first_error = Some(Error::from(SqsError::transient(format!(
                        "SendMessageBatch refused {} of {} messages (first: line {})",
                        failed.len(),
                        lines.len(),
                        lines[i]
                    ))));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e.into());
            }
        }
    };
    for chunk in batches(bodies) {
        if first_error.is_some() {
            break;
        }
        if in_flight.len() >= config.parallel {
            let done = in_flight
                .join_next()
                .await
                .expect("a task is in flight")
                .expect("send task panicked");
            record(done, &mut first_error);
            if first_error.is_some() {
                break;
            }
        }
        let source = source.clone();
        let lines: Vec<usize> = chunk.iter().map(|(n, _)| *n).collect();
        let chunk: Vec<String> = chunk.iter().map(|(_, b)| b.clone()).collect();
        in_flight.spawn(async move { (lines, source.send_batch_entries(&chunk).await) });
    }
    while let Some(done) = in_flight.join_next().await {
        record(done.expect("send task panicked"), &mut first_error);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(source.queue_url().to_owned()),
    }
}

/// The bodies with their line numbers: NDJSON lines (blank ones skipped, still counted), or
/// the items of a JSON array numbered from 1.
fn read_bodies(path: &Path) -> Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(Error::io(format!("cannot read {}", path.display())))?;
    if text.trim_start().starts_with('[') {
        let events: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| Error::usage(format!("{}: not a JSON array: {e}", path.display())))?;
        return Ok(events.iter().enumerate().map(|(i, e)| (i + 1, e.to_string())).collect());
    }
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect())
}

/// SendMessageBatch takes at most 10 entries and 1 MiB of bodies per call (AWS since August
/// 2025; LocalStack too): a batch closes at whichever comes first, so big events go out in
/// smaller batches instead of failing with BatchRequestTooLong.
const BATCH_BYTES: usize = 1 << 20;

fn batches(bodies: &[(usize, String)]) -> Vec<&[(usize, String)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, body)) in bodies.iter().enumerate() {
        if i > start && (i - start == SQS_BATCH || bytes + body.len() > BATCH_BYTES) {
            out.push(&bodies[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += body.len();
    }
    if start < bodies.len() {
        out.push(&bodies[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_close_at_ten_entries_or_one_mib_and_keep_every_line_once_in_order() {
        let sized = |sizes: &[usize]| -> Vec<(usize, String)> {
            sizes.iter().enumerate().map(|(i, &n)| (i + 1, "x".repeat(n))).collect()
        };
        let small = sized(&[10; 25]);
        let lens: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(lens, [10, 10, 5]);
        // 200 KiB events: five fit in 1 MiB, not ten.
        let big = sized(&[200 << 10; 12]);
        let got = batches(&big);
        assert!(got.iter().all(|b| b.iter().map(|(_, s)| s.len()).sum::<usize>() <= BATCH_BYTES));
        assert_eq!(got.iter().map(|b| b.len()).collect::<Vec<_>>(), [5, 5, 2]);
        let lines: Vec<usize> = got.iter().flat_map(|b| b.iter().map(|(n, _)| *n)).collect();
        assert_eq!(lines, (1..=12).collect::<Vec<_>>());
        // One body over the limit still goes alone (SQS names it in its answer).
        assert_eq!(batches(&sized(&[2 << 20, 1])).len(), 2);
    }
}
