//! Secrets Manager and KMS errors: a setting to fix (exit 3: a missing secret, a refused
//! permission, a key KMS refuses or that is disabled) or trouble that heals (throttling, a
//! timeout, the service's own failure: retried within the start-up budget), sorted by the
//! service's error code and the SDK's error variant, never by text. What is missing (the
//! permission, the setting) is a field of its own.

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};

use crate::cause::find_cause;

/// Codes of trouble that heals: throttling, the service's own failures and timeouts. Any other
/// code is a setting to fix: retrying a refusal for the whole start-up budget would only turn
/// a clear exit 3 into a late exit 4.
const TRANSIENT_CODES: [&str; 13] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalFailure",
    "InternalError",
    "KMSInternalException",
    "DependencyTimeoutException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
];

/// Codes whose message is the service's own words about the request (never echoing a
/// ciphertext): kept in errors. KMS answers some others by quoting what it was given.
const KMS_PLAIN_MESSAGES: [&str; 4] = [
    "AccessDeniedException",
    "DisabledException",
    "KMSInvalidStateException",
    "ThrottlingException",
];

/// Codes meaning the credentials themselves are refused.
const CREDENTIAL_CODES: [&str; 8] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
    "MissingAuthenticationToken",
    "IncompleteSignature",
];

type Cause = Box<dyn StdError + Send + Sync>;

/// Which AWS service a key source calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    SecretsManager,
    Kms,
}

impl AwsService {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            AwsService::SecretsManager => "Secrets Manager",
            AwsService::Kms => "KMS",
        }
    }

    /// The `source` field of the `key_source_failed` event.
    pub fn as_str(self) -> &'static str {
        match self {
            AwsService::SecretsManager => "aws-secretsmanager",
            AwsService::Kms => "kms",
        }
    }
}

/// Boxed: errors travel in every `Result` of the key sources.
#[derive(Debug)]
pub struct AwsKeyError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    service: AwsService,
    /// `GetSecretValue`, `Decrypt`, `Encrypt`.
    call: &'static str,
    /// Of what (`secret `maskflow/key``, `key arn:... (line 2)`), and where the call went.
    target: String,
    transient: bool,
    /// The service's error code (`AccessDeniedException`, `ResourceNotFoundException`).
    code: Option<String>,
    /// The service's message, when it is known not to quote the request.
    message: Option<String>,
    /// The IAM permission that is missing, when the service refused one.
    needs: Option<&'static str>,
    /// What to fix, when the host knows.
    hint: Option<&'static str>,
    cause: Option<Cause>,
}

impl AwsKeyError {
    /// A failed call of the SDK, sorted. `target` says of what and where.
    pub(crate) fn from_sdk<E>(
        service: AwsService,
        call: &'static str,
        target: String,
        e: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let (transient, code, message) = match &e {
            SdkError::ServiceError(failure) => {
                let code = failure.err().code().map(str::to_owned);
                let status = failure.raw().status().as_u16();
                let transient = match code.as_deref() {
                    Some(code) => TRANSIENT_CODES.contains(&code),
                    None => status >= 500 || status == 429,
                };
                let keep = match service {
                    AwsService::SecretsManager => true,
                    AwsService::Kms => {
                        code.as_deref().is_some_and(|c| KMS_PLAIN_MESSAGES.contains(&c))
                    }
                };
                let message = failure.err().message().filter(|_| keep);
                (transient, code, message.map(|m| m.trim_end_matches('.').to_owned()))
            }
            // The request could not even be built: an invalid endpoint URL, no credentials.
            SdkError::ConstructionFailure(_) => (false, None, None),
            // A request the connector refused as malformed; connection trouble heals.
            SdkError::DispatchFailure(failure) => (!failure.is_user(), None, None),
            _ => (true, None, None),
        };
        let (needs, hint) = advice(service, call, code.as_deref());
        let service_error = matches!(e, SdkError::ServiceError(_));
        let mut error = AwsKeyError(Box::new(Inner {
            service,
            call,
            target,
            transient,
            code,
            message,
            needs,
            hint,
            cause: None,
        }));
        // A certificate this machine does not trust will not become trusted by waiting.
        if find_cause::<rustls::Error>(&e).is_some() {
            error.0.transient = false;
            error.0.hint = Some(
                "The endpoint's TLS certificate is not trusted here: check the endpoint URL, or \
                 add its CA to the system trust store (or point SSL_CERT_FILE at it)",
            );
        }
        // The service's code and message say it all; the SDK's context would add the raw response.
        if !service_error {
            error.0.cause = Some(Box::new(e));
        }
        error
    }

    /// No complete answer before the start-up deadline (trouble that heals).
    pub(crate) fn no_answer(service: AwsService, call: &'static str, target: String) -> Self {
        AwsKeyError(Box::new(Inner {
            service,
            call,
            target,
            transient: true,
            code: None,
            message: None,
            needs: None,
            hint: Some("no complete answer before the deadline (--startup-timeout)"),
            cause: None,
        }))
    }

    /// An answer the host cannot use (a call that succeeded without what it must return).
    pub(crate) fn unusable(
        service: AwsService,
        call: &'static str,
        target: String,
        hint: &'static str,
    ) -> Self {
        let mut error = AwsKeyError::no_answer(service, call, target);
        error.0.transient = false;
        error.0.hint = Some(hint);
        error
    }

    pub fn service(&self) -> AwsService {
        self.0.service
    }

    /// The call that failed: `GetSecretValue`, `Decrypt`, `Encrypt`.
    pub fn call(&self) -> &'static str {
        self.0.call
    }

    /// Trouble that heals, as opposed to a setting to fix.
    pub fn is_transient(&self) -> bool {
        self.0.transient
    }

    /// The service's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// The IAM permission the service refused (`secretsmanager:GetSecretValue`, `kms:Decrypt`).
    pub fn needs(&self) -> Option<&'static str> {
        self.0.needs
    }
}

/// The permission a refusal names, and what to fix, by service, call and code.
fn advice(
    service: AwsService,
    call: &'static str,
    code: Option<&str>,
) -> (Option<&'static str>, Option<&'static str>) {
    let permission = match (service, call) {
        (AwsService::SecretsManager, _) => "secretsmanager:GetSecretValue",
        (AwsService::Kms, "Encrypt") => "kms:Encrypt",
        (AwsService::Kms, _) => "kms:Decrypt",
    };
    let Some(code) = code else { return (None, None) };
    if CREDENTIAL_CODES.contains(&code) {
        return (None, Some("The AWS credentials are refused: check the credential chain (AWS_PROFILE, the pod's IAM role, AWS_ACCESS_KEY_ID)"));
    }
    let hint = match (service, code) {
        (_, "AccessDeniedException" | "AccessDenied") => {
            let hint = match (service, call) {
                (AwsService::SecretsManager, _) => "The role needs secretsmanager:GetSecretValue on this secret (and kms:Decrypt on the secret's own KMS key, if it is a customer managed key): docs/deploy.md, \"IAM\"",
                (AwsService::Kms, "Encrypt") => "The role needs kms:Encrypt on this KMS key",
                (AwsService::Kms, _) => "The role needs kms:Decrypt on this KMS key, for the encryption context maskflow-key-id = the line's key id: docs/deploy.md, \"IAM\"",
            };
            return (Some(permission), Some(hint));
        }
        (AwsService::SecretsManager, "DecryptionFailure") => {
            return (Some("kms:Decrypt"), Some("Secrets Manager cannot decrypt the secret with its KMS key: the role needs kms:Decrypt on that key"));
        }
        (AwsService::SecretsManager, "ResourceNotFoundException") => "No such secret, or no version of it at that stage, in this region: check the secret id, the stage and the region (the secret's ARN names its region)",
        (AwsService::SecretsManager, "InvalidRequestException") => "The secret is scheduled for deletion (restore it: aws secretsmanager restore-secret) or cannot be read as asked",
        (AwsService::Kms, "InvalidCiphertextException") => "KMS refuses this ciphertext under this key id: it was wrapped for another key id (its encryption context maskflow-key-id names the id it was made for, so a wrapped key moved to another id is refused) or it is damaged",
        (AwsService::Kms, "IncorrectKeyException") => "The ciphertext was made under another KMS key than the one the line names",
        (AwsService::Kms, "DisabledException") => "The KMS key is disabled: enable it (aws kms enable-key)",
        (AwsService::Kms, "KMSInvalidStateException") => "The KMS key cannot be used now (pending deletion?): cancel its deletion (aws kms cancel-key-deletion) or use another key",
        (AwsService::Kms, "NotFoundException") => "No such KMS key in this region: check the key's ARN or alias",
        (AwsService::Kms, "InvalidKeyUsageException") => "The KMS key is not a symmetric ENCRYPT_DECRYPT key",
        _ => return (None, None),
    };
    (None, Some(hint))
}

impl fmt::Display for AwsKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.0;
        write!(f, "{} {} of {}", inner.service.name(), inner.call, inner.target)?;
        if let Some(code) = &inner.code {
            write!(f, ": {code}")?;
            if let Some(message) = &inner.message {
                write!(f, ": {message}")?;
            }
        }
        if let Some(hint) = inner.hint {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

impl StdError for AwsKeyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.cause.as_deref().map(|c| c as &(dyn StdError + 'static))
    }
}
