//! maskflow's host: `source -> transform -> sink`.
//!
//! - [`source`]: SQS (aws-sdk-sqs) long polling, deletes after commit.
//! - [`transform`]: the WebAssembly transform module under wasmtime, sandboxed.
//! - [`sink`]: PostgreSQL, one transaction per batch with an exactly-once ledger.
//! - [`pipeline`]: `maskflow run`, wiring the three with pollers, workers and shutdown.
//! - [`commands`]: `keygen`, `unmask`, `transform`, `send`.

pub mod cli;
pub mod commands;
pub mod error;
pub mod generate;
pub mod keys;
pub mod logging;
pub mod pipeline;
pub mod progress;
pub mod retry;
pub mod sink;
pub mod source;
pub mod transform;

pub use error::{Error, Result};
