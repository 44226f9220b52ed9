//! The host's one error type: kinds that keep their causes.
//!
//! Each part has an error of its own with typed fields: [`PostgresError`] (what it means, the
//! SQLSTATE, table, column and constraint), [`SqsError`] (the call and the service's error
//! code), [`ModuleError`] (the step of the module and how it failed), [`KeyError`] (which
//! source, which line and rule). [`Error`] gathers them, keeping each as the cause. What an
//! error means for a run is its [`Kind`], computed from those fields in one place
//! ([`Error::kind`]); each kind has one exit code ([`Kind::exit_code`], README "Exit codes").
//! Nothing sorts an error by its text.
//!
//! None of them carries a clear-text PII value or key material: bodies and values are never
//! formatted into them, and PostgreSQL's own message is kept only for errors that are not about
//! data (a data error's message can quote the value: only its SQLSTATE and names are kept).

use std::path::PathBuf;
use std::process::ExitCode;

use thiserror::Error;

pub(crate) use crate::cause::report;
pub use crate::commands::replay::{ReplayError, Unsealable};
pub use crate::keys::KeyError;
pub use crate::kind::Kind;
pub use crate::runtime::ModuleError;
pub use crate::sink::{PgKind, PostgresError, RetireError};
pub use crate::source::SqsError;
pub use crate::stop::Stop;

#[derive(Debug, Error)]
pub enum Error {
    /// A bad or conflicting flag. The one error that is only text: a command line the user
    /// rewrites, which nothing in the host sorts or retries.
    #[error("{problem}")]
    Usage { problem: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A mapping file that is not a valid mapping (a flag's value: usage).
    #[error("mapping {}: {source}", path.display())]
    Mapping {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The transform library refused the keys or the mapping.
    #[error(transparent)]
    Transform(#[from] maskflow_transform::Error),
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    #[error(transparent)]
    Sqs(#[from] SqsError),
    #[error(transparent)]
    Retire(#[from] RetireError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// A service kept failing in a way that heals until the start-up budget ran out.
    #[error("{service} did not answer within --startup-timeout. Check the address, the network path and that the service runs")]
    Unreachable {
        service: String,
        #[source]
        last: Box<Error>,
    },
    #[error(transparent)]
    Stopped(#[from] Stop),
    /// `--metrics-addr` cannot be served.
    #[error("cannot listen on {addr} for --metrics-addr (MASKFLOW_METRICS_ADDR); pick a free port or an address of this machine")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A bug: a worker, poller or task panicked. The host stops; what it held comes back.
    #[error("internal error: {what} panicked: {message}")]
    Panicked { what: String, message: String },
    #[error("internal error: {what} failed")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What this error means for the run: the one place errors are sorted.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Usage { .. } | Error::Mapping { .. } => Kind::Usage,
            Error::Key(e) if e.is_transient() => Kind::Transient,
            Error::Key(_) | Error::Transform(_) | Error::Listen { .. } => Kind::Config,
            Error::Module(e) => e.kind(),
            Error::Postgres(e) | Error::Retire(RetireError::Sink(e)) => match e.kind() {
                PgKind::Transient => Kind::Transient,
                // A refusal that reaches the top is a batch that cannot be recorded at all.
                PgKind::Refused => Kind::Stopped,
                PgKind::Fatal => Kind::Config,
            },
            Error::Sqs(e) => match e.is_fatal() {
                true => Kind::Config,
                false => Kind::Transient,
            },
            Error::Retire(_) => Kind::Config,
            // Another replay holds the database, or bodies under keys the key file lacks: a
            // setting (which key file, when to run) to fix.
            Error::Replay(ReplayError::Busy | ReplayError::Skipped { .. }) => Kind::Config,
            Error::Unreachable { .. } => Kind::Unreachable,
            Error::Stopped(_) => Kind::Stopped,
            Error::Io { .. } | Error::Panicked { .. } | Error::Task { .. } => Kind::Internal,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind().exit_code())
    }

    /// Whether the reader of our output went away (`maskflow ... | head`): the command ends
    /// quietly with exit 0, as ripgrep and coreutils do, instead of reporting an error.
    /// Only local I/O counts (stdout, files): a broken pipe to PostgreSQL or SQS is their
    /// error, never this.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Whether waiting may heal it (an outage), as opposed to a setting to fix.
    pub fn is_transient(&self) -> bool {
        self.kind() == Kind::Transient
    }

    pub(crate) fn usage(problem: impl Into<String>) -> Error {
        Error::Usage { problem: problem.into() }
    }

    /// `map_err(Error::io("cannot read x"))`: an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The error and its causes on one line, `error: cause: cause`: what the CLI prints.
    pub fn report(&self) -> String {
        report(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_shows_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = Error::io("cannot read mapping m.json")(io);
        assert_eq!(e.report(), "cannot read mapping m.json: no such file");
        let wrapped = Error::Unreachable { service: "SQS".into(), last: Box::new(e) };
        let report = wrapped.report();
        assert!(report.starts_with("SQS did not answer within --startup-timeout"), "{report}");
        assert!(report.ends_with(": cannot read mapping m.json: no such file"), "{report}");
    }
}
