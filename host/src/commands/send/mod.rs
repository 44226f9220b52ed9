//! `maskflow send`: loads messages into the queue (creating it if missing), from a file or
//! from the synthetic generator next door.

mod generate;

use std::path::{Path, PathBuf};

use tokio::task::JoinSet;

pub use self::generate::Generator;
use crate::error::{Error, Result};
use crate::source::{SqsConfig, SqsSource, SQS_BATCH};

pub struct SendConfig {
    pub sqs: SqsConfig,
    pub input: SendInput,
    /// Print the bodies as NDJSON on stdout instead of sending them.
    pub print: bool,
    /// SendMessageBatch calls in flight at once.
    pub parallel: usize,
}

pub enum SendInput {
    /// A JSON array of events, or NDJSON (each line sent as it is, malformed lines included).
    File(PathBuf),
    Generate {
        count: usize,
        seed: u64,
        malformed_per_mille: u32,
    },
}

/// Returns how many messages were sent.
pub fn run(config: SendConfig) -> Result<usize> {
    let bodies = match &config.input {
        SendInput::File(path) => read_bodies(path)?,
        &SendInput::Generate { count, seed, malformed_per_mille } => {
            let mut generator = Generator::new(seed, count, malformed_per_mille);
            (0..count).map(|_| generator.next_body()).collect()
        }
    };
    if config.print {
        for body in &bodies {
            println!("{body}");
        }
        return Ok(bodies.len());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    runtime.block_on(async {
        let source = SqsSource::connect(&config.sqs, true).await?;
        let mut in_flight = JoinSet::new();
        for chunk in bodies.chunks(SQS_BATCH) {
            if in_flight.len() >= config.parallel {
                in_flight
                    .join_next()
                    .await
                    .expect("a task is in flight")
                    .expect("send task panicked")?;
            }
            let (source, chunk) = (source.clone(), chunk.to_vec());
            in_flight.spawn(async move { source.send_batch(&chunk).await });
        }
        while let Some(done) = in_flight.join_next().await {
            done.expect("send task panicked")?;
        }
        eprintln!("maskflow: sent {} messages to {}", bodies.len(), source.queue_url());
        Ok(bodies.len())
    })
}

fn read_bodies(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(Error::io(format!("cannot read {}", path.display())))?;
    if text.trim_start().starts_with('[') {
        let events: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}: not a JSON array: {e}", path.display())))?;
        return Ok(events.iter().map(|e| e.to_string()).collect());
    }
    Ok(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
}
