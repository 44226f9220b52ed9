//! SQS errors sorted: a setting to fix (fatal, exit code 3) or trouble that heals by itself
//! (network, throttling, server errors: retried).

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::{find_cause, Error};

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

/// Sorts a failed SQS call; `what` says which call and which queue.
pub fn classify<E>(what: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let fatal = match &e {
        SdkError::ServiceError(service) => {
            service.err().code().is_some_and(|code| FATAL_CODES.contains(&code))
        }
        // The request could not even be built: no region, an invalid endpoint URL.
        SdkError::ConstructionFailure(_) => true,
        // A request the connector refused as malformed (a bad endpoint URL); connection
        // trouble of any kind (refused, reset, closed early, timed out) heals.
        SdkError::DispatchFailure(failure) => failure.is_user(),
        _ => false,
    };
    let text = match &e {
        // The service's own code and message; the SDK's context would add the raw response.
        SdkError::ServiceError(service) => {
            let (code, message) = (service.err().code(), service.err().message());
            let hint = match code {
                Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist") => {
                    ". Check the queue URL (or name), the region and the endpoint: they must \
                     name an existing queue"
                }
                _ => "",
            };
            let message = message.unwrap_or("no message").trim_end_matches('.');
            format!("{what}: {}: {message}{hint}", code.unwrap_or("error"))
        }
        _ => format!("{what}: {}", DisplayErrorContext(&e)),
    };
    // A certificate this machine does not trust will not become trusted by waiting.
    if find_cause::<rustls::Error>(&e).is_some() {
        return Error::Config(format!(
            "SQS {text}. The endpoint's TLS certificate is not trusted here: check the endpoint \
             URL, or add its CA to the system trust store (or point SSL_CERT_FILE at it)"
        ));
    }
    if fatal {
        Error::Config(format!("SQS {text}"))
    } else {
        Error::Transient(format!("SQS {text}"))
    }
}
