//! Why the keys could not be had. None of these shows any part of a key source's text: a
//! malformed line may hold key material anywhere, so only its number and the rule it breaks
//! are named.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

pub use super::aws::{AwsKeyError, AwsService};

/// Where keys were read from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--key-file` / `MASKFLOW_KEY_FILE`, or `--key-source file:PATH`.
    File(PathBuf),
    /// A variable holding a key file's text (`MASKFLOW_KEY`, or `--key-source env:VAR`).
    Env(String),
    /// `--key-source aws-secretsmanager:SECRET_ID[:VERSION_STAGE]`.
    SecretsManager { secret_id: String, stage: Option<String> },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "key file {}", path.display()),
            KeySource::Env(var) => f.write_str(var),
            KeySource::SecretsManager { secret_id, stage: None } => {
                write!(f, "secret `{secret_id}` (Secrets Manager)")
            }
            KeySource::SecretsManager { secret_id, stage: Some(stage) } => {
                write!(f, "secret `{secret_id}` at stage {stage} (Secrets Manager)")
            }
        }
    }
}

#[derive(Debug, Error)]
pub enum KeyError {
    #[error(
        "key: no key: set MASKFLOW_KEY to a key file's content, pass --key-file, or --key-source \
         (create a key with `maskflow keygen --out maskflow.key`)"
    )]
    Missing,
    #[error("key: variable {var} (--key-source env:{var}) is not set")]
    Unset { var: String },
    #[error("cannot read key file {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "key file {} has mode {mode:o}: group or others can read the key; chmod 600 {}",
        path.display(),
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{from} is not UTF-8 text: it must hold `id:base64` lines")]
    NotText { from: KeySource },
    /// A Secrets Manager secret that holds JSON or bytes rather than a key file's text.
    #[error(
        "key: {from} holds {what}, not a key file's text: store the key file's content as the \
         secret's plaintext (SecretString), `id:base64` lines"
    )]
    NotKeyFile { from: KeySource, what: &'static str },
    #[error("key: {from} line {line}: {rule}")]
    Line { from: KeySource, line: usize, rule: maskflow_transform::KeyFileRule },
    #[error("key: {from} line {line}: {rule}")]
    WrappedLine { from: KeySource, line: usize, rule: WrappedRule },
    #[error("key: {from} holds no key line (`id:base64`)")]
    Empty { from: KeySource },
    #[error("key: {from}")]
    Invalid {
        from: KeySource,
        #[source]
        cause: maskflow_transform::Error,
    },
    /// A Secrets Manager or KMS call refused, or not answered.
    #[error("key: {from}")]
    Aws {
        from: KeySource,
        #[source]
        cause: AwsKeyError,
    },
    /// `keygen --kms-key-id`: KMS could not wrap the new key.
    #[error("keygen: cannot wrap the new key with KMS")]
    Wrap {
        #[source]
        cause: AwsKeyError,
    },
    #[error(
        "key: no AWS region for {}: set AWS_REGION (or a profile's region), or name the {} by its ARN",
        service.name(),
        match service { AwsService::SecretsManager => "secret", AwsService::Kms => "KMS key" }
    )]
    NoRegion { service: AwsService },
    #[error(
        "masks under `{id}` are to be re-masked, but `{id}` is not in the key file: add its line \
         after `{active}`'s (or leave it out with --from)"
    )]
    NotLoaded { id: String, active: String },
    /// `keygen --out`: the file exists (a key is never overwritten) or cannot be written.
    #[error("cannot create {} (an existing key is never overwritten)", path.display())]
    Unwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key: the key id is refused")]
    Id(#[source] maskflow_transform::Error),
    #[error("key: no randomness from the OS")]
    NoRandomness(#[source] getrandom::Error),
}

impl KeyError {
    /// Trouble that may heal by itself (throttling, a timeout, a service error): retried
    /// within the start-up budget. Everything else is a setting to fix.
    pub fn is_transient(&self) -> bool {
        self.aws().is_some_and(AwsKeyError::is_transient)
    }

    /// The AWS service's refusal or failure, when a call failed.
    pub fn aws(&self) -> Option<&AwsKeyError> {
        match self {
            KeyError::Aws { cause, .. } | KeyError::Wrap { cause } => Some(cause),
            _ => None,
        }
    }
}

/// Which rule a KMS-wrapped line (`ID:kms:KEY_ARN:base64`) breaks; as for plain lines, nothing
/// of the line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WrappedRule {
    #[error("spaces, tabs or a carriage return on the line; {WRAPPED_FORMAT}")]
    Whitespace,
    #[error("the key id (before `:kms:`) must be 1-16 characters of a-z and 0-9")]
    InvalidId,
    #[error("no KMS key ARN; {WRAPPED_FORMAT}")]
    NoKeyArn,
    #[error(
        "the KMS key must be named by its ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); {WRAPPED_FORMAT}"
    )]
    NotAnArn,
    #[error("the ciphertext is not standard base64; {WRAPPED_FORMAT}")]
    NotBase64,
    #[error(
        "the KMS-wrapped key is {bytes} bytes once unwrapped; an AES-256-SIV key is {} bytes",
        maskflow_transform::mask::KEY_LEN
    )]
    UnwrappedLength { bytes: usize },
}

/// The format, repeated in errors so the fix is in the message.
const WRAPPED_FORMAT: &str = "a KMS-wrapped key line is `id:kms:KEY_ARN:base64-ciphertext`, as \
                              `maskflow keygen --kms-key-id` writes it";
