//! The command line: every clap derive and every environment variable the host reads lives
//! in this layer (ripgrep's `flags/` pattern). It turns arguments into the plain config structs
//! that the pipeline, source, runtime, sink and commands take; none of those knows of clap.

mod commands;
mod keys;
mod mapping;
mod module;
mod pgpass;
mod postgres;
mod replay;
mod run;
#[cfg(test)]
mod tests;

pub use run::SqsArgs;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands::{
    keygen, keys as key_commands, mask, prune, rejections, rekey, replay as replay_command, send,
    transform, unmask,
};
use crate::error::{Error, Result};
use crate::events::{event, Event};
use crate::logging;
use crate::metrics::Phase;
use crate::pipeline;

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
pub(crate) struct Cli {
    /// Log format on stderr; the level comes from RUST_LOG (default: info).
    #[arg(long, global = true, env = "MASKFLOW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl From<LogFormat> for logging::Format {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => logging::Format::Text,
            LogFormat::Json => logging::Format::Json,
        }
    }
}

// Parsed once at start: the size of the largest variant (`run`'s flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Consume the queue into PostgreSQL until SIGINT/SIGTERM (or, with --drain, until it is empty).
    #[command(after_help = run::EXIT_CODES)]
    Run(run::RunArgs),
    /// Create a new random masking key.
    Keygen(commands::KeygenArgs),
    /// Recover clear values from masks (needs the key).
    Unmask(commands::UnmaskArgs),
    /// Print the mask of clear values (`--column ip 203.0.113.7`), as rows carry it.
    Mask(keys::MaskArgs),
    /// Re-mask the tables' masks under old keys with the masking key, in place and online.
    Rekey(keys::RekeyArgs),
    /// List key ids and how many masks each still has; `keys retire ID` drops an unused one.
    Keys(keys::KeysArgs),
    /// Transform NDJSON bodies from stdin to NDJSON rows on stdout (no SQS, no PostgreSQL).
    #[command(after_help = commands::TRANSFORM_EXIT_CODES)]
    Transform(commands::TransformArgs),
    /// Delete ledger entries older than the queue can redeliver (run it daily).
    Prune(commands::PruneArgs),
    /// Count rejected messages by reason, day and key id; or list them (`--limit N`).
    Rejections(replay::RejectionsArgs),
    /// Process rejected messages again after a fix (mapping, rules, table), exactly once and
    /// online: rows in, rejections out; what is still rejected stays.
    #[command(after_help = replay::REPLAY_EXIT_CODES)]
    Replay(replay::ReplayArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `maskflow man > maskflow.1`.
    Man,
    /// Put messages on the queue: a file, or --generate N synthetic login events.
    Send(commands::SendArgs),
}

/// Parses the command line, sets up logging, runs the command.
pub fn main() -> ExitCode {
    // First, before any key is read: no core dump, no same-user ptrace (hardening.rs).
    let dumpable = crate::hardening::not_dumpable();
    let cli = Cli::parse();
    logging::init(cli.log_format.into());
    // Fail points from FAILPOINTS, in test builds only (failpoint.rs).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    match dumpable {
        Ok(dumpable) => event!(
            debug,
            Event::Hardening,
            dumpable,
            "process not dumpable: no core dump, no ptrace"
        ),
        Err(e) => event!(
            warn,
            Event::Hardening,
            error = %e,
            "cannot mark the process not dumpable: a core dump would hold the key"
        ),
    }
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let (kind, exit_code, error) = (e.kind(), e.kind().exit_code(), e.report());
            event!(error, Event::Failed, kind = kind.as_str(), exit_code, %error, "failed");
            eprintln!("maskflow: error: {error}");
            e.exit_code()
        }
    }
}

fn execute(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run(args) => {
            let summary = pipeline::run(args.into_config()?)?;
            let metrics = &summary.metrics;
            event!(
                info,
                Event::Done,
                received = metrics.messages_received.get(),
                received_again = metrics.messages_received_again.get(),
                rows = metrics.rows_written.get(),
                rejected = metrics.rejected(),
                redelivered = metrics.redeliveries_skipped.get(),
                deleted = metrics.messages_deleted.get(),
                elapsed_s = summary.elapsed.as_secs_f64(),
                receive_s = metrics.busy_secs(Phase::Receive),
                module_s = metrics.busy_secs(Phase::Module),
                commit_s = metrics.busy_secs(Phase::Commit),
                delete_s = metrics.busy_secs(Phase::Delete),
                "done"
            );
            eprintln!("maskflow: {}", metrics.summary(summary.elapsed));
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen(args) => keygen::run(&args.into_config()).map(|()| ExitCode::SUCCESS),
        Command::Unmask(args) => {
            let failed = unmask::run(args.into_config()?)?;
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Mask(args) => {
            let failed = mask::run(args.into_config()?)?;
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Rekey(args) => {
            let summary = rekey::run(args.into_config()?)?;
            if summary.passes > 0 {
                event!(
                    info,
                    Event::RekeyDone,
                    passes = summary.passes,
                    rows = summary.rows,
                    bodies = summary.bodies,
                    distinct = summary.distinct,
                    "rekey done"
                );
                eprintln!(
                    "maskflow: rekey done in {} pass(es): {} rows re-masked ({} distinct masks), {} rejected bodies re-sealed; \
                     nothing is left under {}: `maskflow keys retire` them",
                    summary.passes,
                    summary.rows,
                    summary.distinct,
                    summary.bodies,
                    summary.from.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(args) => key_commands::run(args.into_config()?).map(|()| ExitCode::SUCCESS),
        Command::Transform(args) => {
            let fail_on_reject = args.fail_on_reject;
            let (rows, rejected) = transform::run(args.into_config()?)?;
            eprintln!("maskflow: {rows} rows, {rejected} rejected");
            Ok(if fail_on_reject && rejected > 0 { ExitCode::from(6) } else { ExitCode::SUCCESS })
        }
        Command::Prune(args) => {
            let config = args.into_config()?;
            let deleted = prune::run(&config)?;
            event!(
                info,
                Event::Pruned,
                deleted,
                older_than_s = config.older_than.as_secs(),
                "pruned the ledger"
            );
            eprintln!(
                "maskflow: {deleted} ledger entries older than {} deleted",
                humantime::format_duration(config.older_than)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Rejections(args) => {
            rejections::run(args.into_config()?).map(|()| ExitCode::SUCCESS)
        }
        Command::Replay(args) => {
            let dry_run = args.dry_run;
            let (tally, elapsed) = replay_command::run(args.into_config()?)?;
            tally
                .write_table(&mut std::io::stdout().lock())
                .map_err(Error::io("cannot write stdout"))?;
            eprintln!("maskflow: replay: {}", tally.finish(dry_run, elapsed));
            match tally.skipped_by_key() {
                by_key if by_key.is_empty() => Ok(ExitCode::SUCCESS),
                by_key => Err(replay_command::ReplayError::Skipped { by_key }.into()),
            }
        }
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a write error (`| head`).
            let (mut cli, mut script) = (<Cli as clap::CommandFactory>::command(), Vec::new());
            clap_complete::generate(shell, &mut cli, "maskflow", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .map_err(Error::io("cannot write the completion script"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            man.render(&mut std::io::stdout())
                .map_err(Error::io("cannot write the manual page"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Send(args) => send::run(args.into_config()?).map(|_| ExitCode::SUCCESS),
    }
}
