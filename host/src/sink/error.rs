//! PostgreSQL errors: a kind (what it means for the commit), the server's answer as typed
//! fields, and the cause. Sorted in `classify.rs`. Nothing of a batch is committed in any case.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use tokio_postgres::error::SqlState;

/// What a failure means for the commit that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgKind {
    /// PostgreSQL refused the data (SQLSTATE class 22 or 23): some row of the batch is bad.
    Refused,
    /// Connection lost, refused or silent, server starting, shutting down or read-only, a lock
    /// or serialization conflict: the same commit may succeed later.
    Transient,
    /// Anything else (a missing table, permissions, TLS, the table's shape): retrying will not
    /// help.
    Fatal,
}

/// What the server said, as typed fields. Its message is kept only for errors that are not
/// about data: a data error's message (and its DETAIL) can quote the value.
#[derive(Debug, Clone)]
pub struct ServerError {
    pub sqlstate: SqlState,
    pub table: Option<String>,
    pub column: Option<String>,
    pub constraint: Option<String>,
    pub(super) message: Option<String>,
}

pub(super) type Cause = Box<dyn StdError + Send + Sync>;

/// Boxed, as tokio-postgres boxes its own: errors travel in every `Result` of the sink.
#[derive(Debug)]
pub struct PostgresError(pub(super) Box<Inner>);

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) kind: PgKind,
    /// What failed, and what to do, in the host's words.
    pub(super) context: Cow<'static, str>,
    pub(super) server: Option<ServerError>,
    pub(super) cause: Option<Cause>,
}

impl PostgresError {
    pub(crate) fn new(kind: PgKind, context: impl Into<Cow<'static, str>>) -> Self {
        PostgresError(Box::new(Inner { kind, context: context.into(), server: None, cause: None }))
    }

    pub(crate) fn transient(context: impl Into<Cow<'static, str>>) -> Self {
        Self::new(PgKind::Transient, context)
    }

    pub(crate) fn fatal(context: impl Into<Cow<'static, str>>) -> Self {
        Self::new(PgKind::Fatal, context)
    }

    /// Keeps `cause` as this error's source.
    pub(crate) fn because(mut self, cause: impl Into<Cause>) -> Self {
        self.0.cause = Some(cause.into());
        self
    }

    pub fn kind(&self) -> PgKind {
        self.0.kind
    }

    pub fn is(&self, kind: PgKind) -> bool {
        self.0.kind == kind
    }

    /// The server's answer, when the server answered.
    pub fn server(&self) -> Option<&ServerError> {
        self.0.server.as_ref()
    }

    pub fn sqlstate(&self) -> Option<&SqlState> {
        self.0.server.as_ref().map(|s| &s.sqlstate)
    }

    /// The same error, fatal: for a refusal where a refusal cannot be isolated any further.
    pub(crate) fn into_fatal(mut self, context: &'static str) -> Self {
        self.0.kind = PgKind::Fatal;
        self.0.context = match self.0.context.is_empty() {
            true => Cow::Borrowed(context),
            false => Cow::Owned(format!("{context}: {}", self.0.context)),
        };
        self
    }

    /// A refusal as a rejection's message says it: the SQLSTATE, what it means, and the names
    /// of the column or constraint; never the value.
    pub fn data_problem(&self) -> String {
        let Some(server) = &self.0.server else { return self.0.context.to_string() };
        let mut text = format!(
            "SQLSTATE {}: {}",
            server.sqlstate.code(),
            describe_data_error(&server.sqlstate)
        );
        if let Some(column) = &server.column {
            text += &format!(" (column `{column}`)");
        } else if let Some(constraint) = &server.constraint {
            text += &format!(" (constraint `{constraint}`)");
        }
        text
    }
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.kind {
            PgKind::Refused => {
                return write!(f, "PostgreSQL refused the data: {}", self.data_problem())
            }
            PgKind::Transient => f.write_str("PostgreSQL unavailable")?,
            PgKind::Fatal => f.write_str("PostgreSQL")?,
        }
        if !self.0.context.is_empty() {
            write!(f, ": {}", self.0.context)?;
        }
        if let Some(server) = &self.0.server {
            write!(f, ": SQLSTATE {}", server.sqlstate.code())?;
            if let Some(message) = &server.message {
                write!(f, ": {message}")?;
            }
        }
        Ok(())
    }
}

impl StdError for PostgresError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.cause.as_deref().map(|c| c as &(dyn StdError + 'static))
    }
}

fn describe_data_error(code: &SqlState) -> &'static str {
    match *code {
        SqlState::STRING_DATA_RIGHT_TRUNCATION => "value too long for the column",
        SqlState::INVALID_TEXT_REPRESENTATION => "value not valid for the column's type",
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE => "number out of range",
        SqlState::DATETIME_FIELD_OVERFLOW => "date out of range",
        SqlState::CHARACTER_NOT_IN_REPERTOIRE | SqlState::UNTRANSLATABLE_CHARACTER => {
            "character not allowed"
        }
        SqlState::NOT_NULL_VIOLATION => "NULL in a NOT NULL column",
        SqlState::CHECK_VIOLATION => "check constraint violated",
        SqlState::UNIQUE_VIOLATION => "unique constraint violated",
        _ => "data refused",
    }
}
