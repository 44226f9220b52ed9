//! SQS errors: a setting to fix (fatal, exit code 3) or trouble that heals by itself (network,
//! throttling, server errors: retried), sorted by the service's error code and the SDK's error
//! variant, never by text; the code and the cause are kept.

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use crate::cause::find_cause;

/// Error codes that mean "fix the configuration": credentials, permissions, a missing queue,
/// its encryption key.
const FATAL_CODES: [&str; 16] = [
    "AccessDenied",
    "AccessDeniedException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidSecurity",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "InvalidAddress",
    "OptInRequired",
    "ExpiredToken",
    "KmsAccessDenied",
    "KmsDisabled",
    "KmsNotFound",
];

type Cause = Box<dyn StdError + Send + Sync>;

/// Boxed: errors travel in every `Result` of the source.
#[derive(Debug)]
pub struct SqsError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    fatal: bool,
    /// Which call, of which queue, at which endpoint.
    what: String,
    /// The service's error code (`AccessDenied`, `AWS.SimpleQueueService.NonExistentQueue`).
    code: Option<String>,
    /// The service's message (never a message body: SQS does not echo them in errors).
    message: Option<String>,
    /// What to do, when the host knows.
    hint: Option<&'static str>,
    cause: Option<Cause>,
}

impl SqsError {
    /// A failed call of the SDK, sorted. `what` says which call and which queue.
    pub(crate) fn from_sdk<E>(what: impl Into<String>, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let what = what.into();
        let (fatal, code, message) = match &e {
            SdkError::ServiceError(service) => {
                let code = service.err().code();
                let message = service.err().message().map(|m| m.trim_end_matches('.').to_owned());
                (code.is_some_and(|c| FATAL_CODES.contains(&c)), code.map(str::to_owned), message)
            }
            // The request could not even be built: no region, an invalid endpoint URL.
            SdkError::ConstructionFailure(_) => (true, None, None),
            // A request the connector refused as malformed (a bad endpoint URL); connection
            // trouble of any kind (refused, reset, closed early, timed out) heals.
            SdkError::DispatchFailure(failure) => (failure.is_user(), None, None),
            _ => (false, None, None),
        };
        let hint = match code.as_deref() {
            Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist") => Some(
                "Check the queue URL (or name), the region and the endpoint: they must name an \
                 existing queue",
            ),
            _ => None,
        };
        let service = matches!(e, SdkError::ServiceError(_));
        let mut error = SqsError(Box::new(Inner { fatal, what, code, message, hint, cause: None }));
        // A certificate this machine does not trust will not become trusted by waiting.
        if find_cause::<rustls::Error>(&e).is_some() {
            error.0.fatal = true;
            error.0.hint = Some(
                "The endpoint's TLS certificate is not trusted here: check the endpoint URL, or \
                 add its CA to the system trust store (or point SSL_CERT_FILE at it)",
            );
        }
        // The service's code and message say it all; the SDK's context would add the raw response.
        if !service {
            error.0.cause = Some(Box::new(e));
        }
        error
    }

    /// Trouble that heals, found by the host itself (an answer it cannot use yet).
    pub(crate) fn transient(what: impl Into<String>) -> Self {
        let what = what.into();
        SqsError(Box::new(Inner {
            fatal: false,
            what,
            code: None,
            message: None,
            hint: None,
            cause: None,
        }))
    }

    /// A request the SDK refused to build (a bug of ours: every field is always set).
    pub(crate) fn request(what: impl Into<String>, e: aws_sdk_sqs::error::BuildError) -> Self {
        let mut error = SqsError::transient(what);
        error.0.fatal = true;
        error.0.cause = Some(Box::new(e));
        error
    }

    /// The same refusal, with what it means for the run and what to fix.
    pub(crate) fn with_hint(mut self, hint: &'static str) -> Self {
        self.0.hint = Some(hint);
        self
    }

    /// A setting to fix, as opposed to trouble that heals.
    pub fn is_fatal(&self) -> bool {
        self.0.fatal
    }

    /// The service's error code, when SQS answered with one.
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }
}

impl fmt::Display for SqsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SQS {}", self.0.what)?;
        if let Some(code) = &self.0.code {
            write!(f, ": {code}: {}", self.0.message.as_deref().unwrap_or("no message"))?;
        }
        if let Some(hint) = self.0.hint {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

impl StdError for SqsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.cause.as_deref().map(|c| c as &(dyn StdError + 'static))
    }
}
