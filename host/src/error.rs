use std::process::ExitCode;

use thiserror::Error;

/// The host's one error type, by what the error means for the run: a flag to fix, a setting to
/// fix, trouble that heals by itself, a data path that cannot go on, a bug. Messages say what
/// to do next; none carries a clear-text PII value or key material (bodies and values are
/// never formatted into them). Each kind has its exit code (README, `maskflow run --help`).
#[derive(Debug, Error)]
pub enum Error {
    /// A bad or conflicting flag.
    #[error("{0}")]
    Usage(String),
    /// A setting to fix: credentials, permissions, a missing queue or database, TLS, the
    /// table's shape, the key, the module. Retrying will not help.
    #[error("{0}")]
    Config(String),
    /// Trouble that may heal by itself: SQS or PostgreSQL down, silent, throttling, failing
    /// over. Retried while running; at start, retried until the start-up budget runs out.
    #[error("{0}")]
    Transient(String),
    /// SQS or PostgreSQL did not answer within the start-up budget.
    #[error("{0}")]
    Unreachable(String),
    /// The data path cannot go on (a module that fails on everything, a table that refuses
    /// everything); nothing of the batch was deleted.
    #[error("{0}")]
    Stopped(String),
    /// A bug: a worker or poller panicked. The host stops; what it held comes back.
    #[error("internal error: {0}")]
    Internal(String),
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

/// The first error of type `T` in `error`'s source chain, looking inside `std::io::Error`s
/// too (whose `source()` skips the error they wrap): how errors are sorted by what they are.
pub fn find_cause<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        let wrapped = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if let Some(found) = wrapped.and_then(|inner| find_cause::<T>(inner)) {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

/// Keys, config and mapping problems the transform library finds are settings to fix.
impl From<maskflow_transform::Error> for Error {
    fn from(e: maskflow_transform::Error) -> Self {
        Error::Config(e.to_string())
    }
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// A problem with the key (`key: ...`): a setting.
    pub fn key(message: impl std::fmt::Display) -> Error {
        Error::Config(format!("key: {message}"))
    }

    /// A problem with the wasm module (`wasm module: ...`): a setting.
    pub fn module(message: impl std::fmt::Display) -> Error {
        Error::Config(format!("wasm module: {message}"))
    }

    /// Whether waiting may heal it (an outage), as opposed to a setting to fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transient(_))
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Usage(_) => exit::USAGE,
            Error::Config(_) => exit::CONFIG,
            Error::Unreachable(_) | Error::Transient(_) => exit::UNREACHABLE,
            Error::Stopped(_) => exit::STOPPED,
            Error::Internal(_) | Error::Io { .. } => exit::FAILURE,
        })
    }
}
