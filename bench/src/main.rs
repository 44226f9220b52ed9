//! `maskflow-bench`: the benchmark parts that need a process of their own (scripts/bench runs them).

use clap::{Parser, Subcommand};
use maskflow_bench::{ceiling, profile, rekey, relay, replay, sink};

#[derive(Parser)]
#[command(
    version,
    about = "maskflow benchmarks: PostgreSQL write paths and the SQS ceiling (see scripts/bench)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rows/s of the host's write path vs single-row INSERT, multi-row INSERT and COPY.
    Sink(sink::SinkArgs),
    /// Rows/s of `maskflow rekey` (re-masking history under a new key).
    Rekey(rekey::RekeyArgs),
    /// Rejections for `maskflow replay` to replay (a renamed field), and the mapping that fixes it.
    SeedRejections(replay::SeedArgs),
    /// Messages/s of a consumer that only receives and deletes (the SQS server's ceiling).
    Ceiling(ceiling::CeilingArgs),
    /// A TCP relay that adds a round trip (and jitter, a bandwidth cap) and counts SQS requests.
    Relay(relay::RelayArgs),
    /// Cold transform passes, native or wasm (perf map), for `perf record`.
    Profile(profile::ProfileArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sink(args) => sink::run(&args),
        Command::Rekey(args) => rekey::run(&args),
        Command::SeedRejections(args) => replay::seed(&args),
        Command::Ceiling(args) => tokio::runtime::Runtime::new()?.block_on(ceiling::run(&args)),
        Command::Profile(args) => profile::run(&args),
        // One thread: the relay's work is waiting, and the machine's cores belong to the rig.
        Command::Relay(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(relay::run(&args)),
    }
}
