use thiserror::Error;

/// The host's one error type. Messages say what to do next; none carries a clear-text PII
/// value or key material (bodies and values are never formatted into them).
#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Transform(#[from] maskflow_transform::Error),
    #[error("key: {0}")]
    Key(String),
    #[error("wasm module: {0}")]
    Module(String),
    #[error("SQS: {0}")]
    Sqs(String),
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

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
