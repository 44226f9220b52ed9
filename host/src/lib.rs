//! maskflow's host: data flows one way, `source -> runtime -> sink`.
//!
//! - [`source`]: SQS (aws-sdk-sqs) long polling, and the lease task that keeps held messages
//!   hidden and deletes committed ones.
//! - [`runtime`]: the WebAssembly transform module under wasmtime, sandboxed.
//! - [`sink`]: PostgreSQL, one transaction per batch with an exactly-once ledger.
//! - [`pipeline`]: `maskflow run`: pollers, workers (the one place that decides what happens
//!   to a batch), isolation of bad messages, shutdown.
//! - [`isolate`]: finding the one item of a batch that fails, by halving (module calls,
//!   rows PostgreSQL refuses, ledger entries another transaction holds).
//! - [`commands`]: `keygen`, `unmask`, `transform`, `send`.
//! - [`cli`]: every flag and environment variable, turned into the config structs above.

pub mod cli;
pub mod commands;
pub mod error;
pub mod hardening;
pub mod health;
pub mod isolate;
pub mod keys;
pub mod logging;
pub mod pipeline;
pub mod progress;
pub mod retry;
pub mod runtime;
pub mod serve;
pub mod sink;
pub mod source;
pub mod stats;

pub use error::{Error, Result};
