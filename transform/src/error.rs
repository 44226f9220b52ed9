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
    KeyFile { line: usize, rule: KeyFileRule },
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

/// The format, repeated in errors so the fix is in the message.
const FORMAT: &str = "a key line is `id:base64` (id: 1-16 characters of a-z and 0-9; base64 of \
                      64 bytes, 88 characters), nothing else on the line";

/// Which rule of the key-file format a line breaks (README "The key file"). [`KeyFileRule::code`]
/// is the stable word every engine reports (ABI.md status 6, Python's `KeyFileError.rule`);
/// the `Display` text says how to fix it. Neither ever holds any part of the line.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFileRule {
    /// A `\r` on the line: the file was saved with CRLF line endings.
    CarriageReturn,
    /// Spaces or tabs anywhere on the line.
    Whitespace,
    /// A `#` after the key (a comment goes on a line of its own).
    CommentAfterKey,
    /// More than one `:`.
    ExtraColon,
    /// `<base64>:k1`: the id written after the key.
    Reversed,
    /// The id is not 1-16 characters of `a-z0-9`.
    InvalidId,
    /// The id was already used on `first_line`.
    DuplicateId { first_line: usize },
    /// The key is not standard base64 (`chars` characters were given).
    NotBase64 { chars: usize },
    /// The key decodes to `bytes` bytes, not 64.
    KeyLength { bytes: usize },
}

impl KeyFileRule {
    /// Every code, in the order the rules are checked.
    pub const CODES: [&'static str; 9] = [
        "crlf",
        "whitespace",
        "comment_after_key",
        "extra_colon",
        "reversed",
        "invalid_id",
        "duplicate_id",
        "not_base64",
        "key_length",
    ];

    /// The stable code of the rule (one of [`KeyFileRule::CODES`]).
    pub fn code(self) -> &'static str {
        match self {
            KeyFileRule::CarriageReturn => "crlf",
            KeyFileRule::Whitespace => "whitespace",
            KeyFileRule::CommentAfterKey => "comment_after_key",
            KeyFileRule::ExtraColon => "extra_colon",
            KeyFileRule::Reversed => "reversed",
            KeyFileRule::InvalidId => "invalid_id",
            KeyFileRule::DuplicateId { .. } => "duplicate_id",
            KeyFileRule::NotBase64 { .. } => "not_base64",
            KeyFileRule::KeyLength { .. } => "key_length",
        }
    }
}

/// The code and the sentence: a logged `{:?}` of an error says what to fix, as `{}` does.
impl std::fmt::Debug for KeyFileRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({:?})", self.code(), self.to_string())
    }
}

impl std::fmt::Display for KeyFileRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFileRule::CarriageReturn => f.write_str(
                "carriage return (CRLF line endings): save the key file with LF line endings",
            ),
            KeyFileRule::Whitespace => write!(f, "spaces or tabs on the line; {FORMAT}"),
            KeyFileRule::CommentAfterKey => f.write_str(
                "`#` after the key: a comment goes on a line of its own, starting with `#`",
            ),
            KeyFileRule::ExtraColon => write!(f, "more than one `:`; {FORMAT}"),
            KeyFileRule::Reversed => {
                f.write_str("reversed: the id comes first, then `:`, then the key (`k1:<base64>`)")
            }
            KeyFileRule::InvalidId => {
                f.write_str("the key id (before `:`) must be 1-16 characters of a-z and 0-9")
            }
            KeyFileRule::DuplicateId { first_line } => {
                write!(f, "its key id is already used on line {first_line}")
            }
            KeyFileRule::NotBase64 { chars } => write!(
                f,
                "the key is not standard base64 (A-Z a-z 0-9 + / and `=` padding; {chars} \
                 characters): truncated or mangled?"
            ),
            KeyFileRule::KeyLength { bytes } => write!(
                f,
                "the key is {bytes} bytes; an AES-256-SIV key is 64 bytes (88 base64 \
                 characters): truncated?"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_its_own_code_listed_in_codes() {
        let rules = [
            KeyFileRule::CarriageReturn,
            KeyFileRule::Whitespace,
            KeyFileRule::CommentAfterKey,
            KeyFileRule::ExtraColon,
            KeyFileRule::Reversed,
            KeyFileRule::InvalidId,
            KeyFileRule::DuplicateId { first_line: 1 },
            KeyFileRule::NotBase64 { chars: 3 },
            KeyFileRule::KeyLength { bytes: 60 },
        ];
        assert_eq!(rules.map(KeyFileRule::code), KeyFileRule::CODES);
    }
}
