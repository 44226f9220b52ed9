//! maskflow's host: data flows one way, `source -> runtime -> sink` (docs/architecture.md).
//!
//! - `source`: SQS (aws-sdk-sqs) long polling, and the lease task that keeps held messages
//!   hidden and deletes committed ones.
//! - `runtime`: the WebAssembly transform module under wasmtime, sandboxed.
//! - `sink`: PostgreSQL, one transaction per batch with an exactly-once ledger.
//! - `pipeline`: `maskflow run`: pollers, workers (the one place that decides what happens to
//!   a batch), isolation of bad messages.
//! - `commands`: the other subcommands (`transform`, `send`, `unmask`, `mask`, `rekey`, ...).
//! - `cli`: every flag and environment variable, turned into the plain config structs of the
//!   parts above; none of them knows of the command line.
//! - `error`: the one error type, its kinds and exit codes; `events`: the documented log
//!   events; `metrics`: the served series.
//!
//! Everything is private to the crate but this facade: the entry point of the binary, and
//! what the tests (`tests/`) and benchmarks (`bench/`) drive directly.

mod aws;
mod cause;
mod cli;
mod commands;
mod error;
mod events;
mod failpoint;
mod hardening;
mod health;
mod isolate;
mod keys;
mod kind;
mod logging;
mod metrics;
mod pipeline;
mod progress;
mod replay_error;
mod retry;
mod runtime;
mod serve;
mod shutdown;
mod sink;
mod source;
mod stop;

/// The `maskflow` binary: parses the command line, runs the command, returns its exit code.
pub use cli::main;
/// `maskflow send`'s and `maskflow run`'s SQS flags, for tools that take the same ones.
pub use cli::SqsArgs;
/// `maskflow rekey`, run in process (its benchmark).
pub use commands::rekey::{run as rekey, RekeyConfig};
/// Synthetic login events (`maskflow send --generate`).
pub use commands::send::Generator;
pub use error::{Error, Kind, Result};
/// The errors `Error` gathers, each with its typed fields.
pub use error::{
    KeyError, ModuleError, PgKind, PostgresError, ReplayError, RetireError, SqsError, Stop,
    Unsealable,
};
pub use keys::{AwsKeyError, AwsService, KeySource, WrappedRule};
/// The module stage as workers run it: bisection of failed calls, `module_failed` rejections.
pub use pipeline::ModuleStage;
pub use runtime::{Failure, Step};
/// The wasm runtime: the embedded module, its sandbox limits, one compiled module and its
/// instances.
pub use runtime::{
    ModuleCache, ModuleLimits, WasmInstance, WasmModule, EMBEDDED_MODULE, MAX_TABLE_ELEMENTS,
};
pub use sink::ServerError;
/// The PostgreSQL sink: its settings and one transaction per batch.
pub use sink::{
    ClientCert, CommitStats, Item, PostgresConfig, PostgresSink, RootCerts, SslMode, Timeouts,
    TlsConfig,
};
/// SQS: its settings and the client the host uses (the SDK's, on rustls + ring).
pub use source::{https_client, EntryFailure, Queue, Received, SqsConfig, SqsSource, SQS_BATCH};
