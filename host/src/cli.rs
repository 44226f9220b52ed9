//! Command-line interface: flags are documented here and shown by `--help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing::info;

use crate::commands::{keygen, send, transform, unmask};
use crate::error::Result;
use crate::pipeline::{self, RunArgs};
use crate::progress::Stage;

#[derive(Debug, Parser)]
#[command(
    name = "maskflow",
    version,
    about = "Login events from SQS -> masked rows in PostgreSQL, exactly once",
    long_about = "Login events from SQS -> masked rows in PostgreSQL, exactly once.\n\n\
        Each message is flattened and validated by a WebAssembly module (run by wasmtime); `ip` and \
        `device_id` are masked with AES-256-SIV (same input, same mask; recoverable with the key). \
        Messages that are not valid events are recorded in user_logins_rejected with their body \
        encrypted.\n\nQuick start: scripts/quickstart (README.md)."
)]
pub struct Cli {
    /// Log format on stderr; the level comes from RUST_LOG (default: info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the queue into PostgreSQL until SIGINT/SIGTERM (or, with --drain, until it is empty).
    Run(RunArgs),
    /// Create a new random masking key.
    Keygen(keygen::KeygenArgs),
    /// Recover clear values from masks (needs the key).
    Unmask(unmask::UnmaskArgs),
    /// Transform NDJSON bodies from stdin to NDJSON rows on stdout (no SQS, no PostgreSQL).
    Transform(transform::TransformArgs),
    /// Put messages on the queue: a file, or --generate N synthetic login events.
    Send(send::SendArgs),
}

pub fn execute(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let summary = pipeline::run(args)?;
            info!(
                received = summary.stats.received(),
                rows = summary.stats.rows(),
                rejected = summary.stats.rejected(),
                redelivered = summary.stats.duplicates(),
                deleted = summary.stats.deleted(),
                elapsed_s = summary.elapsed.as_secs_f64(),
                receive_s = summary.stats.busy_secs(Stage::Receive),
                transform_s = summary.stats.busy_secs(Stage::Transform),
                write_s = summary.stats.busy_secs(Stage::Write),
                delete_s = summary.stats.busy_secs(Stage::Delete),
                "done"
            );
            eprintln!("maskflow: {}", summary.stats.summary(summary.elapsed));
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen(args) => keygen::run(args).map(|()| ExitCode::SUCCESS),
        Command::Unmask(args) => Ok(if unmask::run(args)? == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        Command::Transform(args) => {
            let (rows, rejected) = transform::run(args)?;
            eprintln!("maskflow: {rows} rows, {rejected} rejected");
            Ok(ExitCode::SUCCESS)
        }
        Command::Send(args) => send::run(args).map(|_| ExitCode::SUCCESS),
    }
}
