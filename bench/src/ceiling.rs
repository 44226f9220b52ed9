//! The SQS ceiling: a consumer that only receives and deletes, with the host's own client and
//! calls (10 per ReceiveMessage, DeleteMessageBatch), `--concurrency` loops at once. No
//! pipeline using this SQS server on this machine can go faster.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use maskflow::cli::SqsArgs;
use maskflow::source::SqsSource;

#[derive(Debug, clap::Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    sqs: SqsArgs,
    /// Receive-and-delete loops running at once (as `maskflow run --concurrency`).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

/// Drains the queue, then prints `{"messages", "seconds", "msg_per_s"}`.
pub async fn run(args: &CeilingArgs) -> Result<()> {
    let source = SqsSource::connect(&args.sqs.clone().into_config()?, false).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let loops: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (source, done) = (source.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    let batch =
                        source.receive(Duration::from_secs(1), Duration::from_secs(120)).await?;
                    if batch.is_empty() {
                        if source.approximate_depth().await? == (0, 0) {
                            return anyhow::Ok(());
                        }
                        continue;
                    }
                    let receipts: Vec<String> = batch.iter().map(|m| m.receipt.clone()).collect();
                    source.delete(&receipts).await?;
                    done.fetch_add(batch.len(), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for handle in loops {
        handle.await??;
    }
    let (messages, seconds) = (done.load(Ordering::Relaxed), started.elapsed().as_secs_f64());
    println!(
        "{}",
        serde_json::json!({"messages": messages, "seconds": seconds, "msg_per_s": messages as f64 / seconds})
    );
    Ok(())
}
