use std::path::PathBuf;

use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::generate::Generator;
use crate::source::sqs::SQS_BATCH;
use crate::source::{SqsArgs, SqsSource};

/// Loads messages into the queue (creating it if missing): a file, or synthetic events.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub sqs: SqsArgs,
    /// A JSON array of events, or NDJSON (each line sent as it is, malformed lines included).
    #[arg(required_unless_present = "generate", conflicts_with = "generate")]
    pub file: Option<PathBuf>,
    /// Generate this many synthetic login events instead.
    #[arg(long, value_name = "N")]
    pub generate: Option<usize>,
    /// Seed of the generator (same seed, same messages).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Malformed messages per thousand generated.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub malformed_per_mille: u32,
    /// Print the bodies as NDJSON on stdout instead of sending them.
    #[arg(long)]
    pub print: bool,
    /// SendMessageBatch calls in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
}

/// Returns how many messages were sent.
pub fn run(args: SendArgs) -> Result<usize> {
    let bodies = match (&args.file, args.generate) {
        (Some(path), _) => read_bodies(path)?,
        (None, Some(n)) => {
            let mut generator = Generator::new(args.seed, n, args.malformed_per_mille);
            (0..n).map(|_| generator.next_body()).collect()
        }
        (None, None) => return Err(Error::Usage("give a FILE or --generate N".into())),
    };
    if args.print {
        for body in &bodies {
            println!("{body}");
        }
        return Ok(bodies.len());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Error::io("cannot start the async runtime"))?;
    runtime.block_on(async {
        let source = SqsSource::connect(&args.sqs, true).await?;
        let mut in_flight = JoinSet::new();
        for chunk in bodies.chunks(SQS_BATCH) {
            if in_flight.len() >= args.parallel.max(1) {
                in_flight.join_next().await.expect("a task is in flight").expect("send task panicked")?;
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

fn read_bodies(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(Error::io(format!("cannot read {}", path.display())))?;
    if text.trim_start().starts_with('[') {
        let events: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| Error::Usage(format!("{}: not a JSON array: {e}", path.display())))?;
        return Ok(events.iter().map(|e| e.to_string()).collect());
    }
    Ok(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
}
