use thiserror::Error;

/// Everything that can go wrong outside a single message: configuration, keys, unmasking.
/// (A bad *message* is not an error: it is a [`crate::Rejection`].)
///
/// No variant ever carries key material or a clear-text PII value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("invalid config: {0}")]
    Config(String),
    #[error("invalid key `{id}`: {reason}")]
    Key { id: String, reason: String },
    /// A key file (or `MASKFLOW_KEY`) line breaking a rule; nothing of the line is shown.
    #[error("key file line {line}: {rule}")]
    KeyFile { line: usize, rule: String },
    #[error(
        "no key given: set MASKFLOW_KEY or pass a key file (create one with `maskflow keygen`)"
    )]
    NoKey,
    #[error("not a mask (expected `<key-id>.<base64url>`, e.g. `k1.AbC...`): {0}")]
    MaskFormat(&'static str),
    #[error("the mask was made with key `{0}`, which is not loaded; add that key's line to the key file")]
    UnknownKeyId(String),
    #[error("cannot unmask: wrong key or tampered value (AES-SIV authentication failed)")]
    Authentication,
}
