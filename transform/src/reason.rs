use serde::Serialize;

/// Why a message was rejected. The `code()` strings are a stable contract: they are stored in
/// `user_logins_rejected.reason`, produced by the VRL twin, and listed in ABI.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    BodyTooLarge,
    BodyNotUtf8,
    BodyNotJson,
    BodyNotObject,
    NestingTooDeep,
    DuplicateKey,
    InvalidTimestamp,
    MissingField,
    WrongType,
    InvalidCharacter,
    ValueTooLong,
    InvalidIp,
    InvalidVersion,
    MaskTooLong,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
        Reason::BodyTooLarge,
        Reason::BodyNotUtf8,
        Reason::BodyNotJson,
        Reason::BodyNotObject,
        Reason::NestingTooDeep,
        Reason::DuplicateKey,
        Reason::InvalidTimestamp,
        Reason::MissingField,
        Reason::WrongType,
        Reason::InvalidCharacter,
        Reason::ValueTooLong,
        Reason::InvalidIp,
        Reason::InvalidVersion,
        Reason::MaskTooLong,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyNotUtf8 => "body_not_utf8",
            Reason::BodyNotJson => "body_not_json",
            Reason::BodyNotObject => "body_not_object",
            Reason::NestingTooDeep => "nesting_too_deep",
            Reason::DuplicateKey => "duplicate_key",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::InvalidCharacter => "invalid_character",
            Reason::ValueTooLong => "value_too_long",
            Reason::InvalidIp => "invalid_ip",
            Reason::InvalidVersion => "invalid_version",
            Reason::MaskTooLong => "mask_too_long",
        }
    }
}

/// A message that cannot become a row. `message` names the field and the rule but never the
/// value; the original body is kept only encrypted (`k1.<base64url>`, see `maskflow unmask`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub reason: Reason,
    pub message: String,
    pub encrypted_body: String,
}
