//! The SQS ceiling: a consumer that only receives and deletes, with the host's own client and
//! calls (10 per ReceiveMessage, DeleteMessageBatch), pipelined as the host is: `--concurrency`
//! receive loops, each handing its receipts to a delete loop of its own and receiving again at
//! once, so receives and deletes overlap (the host's pollers and its lease task do the same).
//! No pipeline using this SQS server on this machine, at this concurrency, can go faster.
//! `--sequential` waits for each delete before the next receive (the ceiling of earlier runs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use maskflow::{SqsArgs, SqsSource};
use tokio::sync::mpsc;

#[derive(Debug, clap::Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    sqs: SqsArgs,
    /// Receive loops running at once (as `maskflow run --concurrency`), each with its delete loop.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Delete before receiving again (no overlap).
    #[arg(long)]
    sequential: bool,
}

/// Drains the queue, then prints `{"messages", "seconds", "msg_per_s", "pipelined"}`.
pub async fn run(args: &CeilingArgs) -> Result<()> {
    let source = SqsSource::connect(&args.sqs.clone().into_config()?, false).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (receipts_tx, mut receipts_rx) = mpsc::channel::<Vec<String>>(64);
        if !args.sequential {
            let (source, done) = (source.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while let Some(receipts) = receipts_rx.recv().await {
                    source.delete_batch(&receipts).await?;
                    done.fetch_add(receipts.len(), Ordering::Relaxed);
                }
                anyhow::Ok(())
            }));
        }
        let (source, done, sequential) = (source.clone(), done.clone(), args.sequential);
        tasks.push(tokio::spawn(async move {
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
                if sequential {
                    source.delete_batch(&receipts).await?;
                    done.fetch_add(receipts.len(), Ordering::Relaxed);
                } else {
                    receipts_tx.send(receipts).await?;
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let (messages, seconds) = (done.load(Ordering::Relaxed), started.elapsed().as_secs_f64());
    println!(
        "{}",
        serde_json::json!({"messages": messages, "seconds": seconds,
                           "msg_per_s": messages as f64 / seconds, "pipelined": !args.sequential})
    );
    Ok(())
}
