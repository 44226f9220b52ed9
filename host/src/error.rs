use std::process::ExitCode;

use thiserror::Error;

/// The host's one error type. Messages say what to do next; none carries a clear-text PII
/// value or key material (bodies and values are never formatted into them). Each kind has
/// its exit code (README, `maskflow run --help`).
#[derive(Debug, Error)]
pub enum Error {
    /// A bad or conflicting flag.
    #[error("{0}")]
    Usage(String),
    /// A setting to fix: credentials, permissions, a missing queue or database, TLS, the
    /// table's shape, the key.
    #[error("{0}")]
    Config(String),
    /// SQS or PostgreSQL did not answer within the start-up budget.
    #[error("{0}")]
    Unreachable(String),
    /// The data path cannot go on (a module that fails on everything, a table that refuses
    /// everything); nothing of the batch was deleted.
    #[error("{0}")]
    Stopped(String),
    #[error(transparent)]
    Transform(#[from] maskflow_transform::Error),
    #[error("key: {0}")]
    Key(String),
    #[error("wasm module: {0}")]
    Module(String),
    /// A failed SQS call that may succeed later (network, throttling, server errors).
    #[error("SQS: {0}")]
    Sqs(String),
    /// PostgreSQL unavailable: may succeed later.
    #[error("PostgreSQL unavailable: {0}")]
    PostgresUnavailable(String),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes, documented in README ("Exit codes") and `maskflow run --help`.
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const CONFIG: u8 = 3;
    pub const UNREACHABLE: u8 = 4;
    pub const STOPPED: u8 = 5;
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// Whether waiting may heal it (an outage), as opposed to a setting to fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Sqs(_) | Error::PostgresUnavailable(_))
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Usage(_) => exit::USAGE,
            Error::Config(_)
            | Error::Transform(_)
            | Error::Key(_)
            | Error::Module(_)
            | Error::Postgres(_) => exit::CONFIG,
            Error::Unreachable(_) | Error::Sqs(_) | Error::PostgresUnavailable(_) => {
                exit::UNREACHABLE
            }
            Error::Stopped(_) => exit::STOPPED,
            Error::Io { .. } => exit::FAILURE,
        })
    }
}
