use serde::Serialize;

/// Why a message was rejected. The `code()` strings are a stable contract: they are stored in
/// `user_logins_rejected.reason`, produced by the VRL twin, listed in ABI.md, and the only
/// codes a host accepts from a module (a bounded set: they label metrics).
///
/// The rules produce the first fourteen; the last two are a host's own, for messages the
/// module failed on by itself ([`Reason::ModuleFailed`]) and rows PostgreSQL refused although
/// the module accepted them ([`Reason::SinkRefused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
    /// Host only: the module trapped, ran past its deadline or its memory cap on this message.
    ModuleFailed,
    /// Host only: PostgreSQL refused the row the module made of this message.
    SinkRefused,
}

impl Reason {
    /// The reasons of the rules (what a module produces).
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

    /// The reasons a host adds itself.
    pub const HOST: [Reason; 2] = [Reason::ModuleFailed, Reason::SinkRefused];

    /// The reason of `code`, if it is one of [`Reason::ALL`] or [`Reason::HOST`].
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().chain(Reason::HOST).find(|r| r.code() == code)
    }

    /// Whether a host made this rejection itself (not the rules).
    pub fn is_host(self) -> bool {
        Reason::HOST.contains(&self)
    }

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
            Reason::ModuleFailed => "module_failed",
            Reason::SinkRefused => "sink_refused",
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

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn every_code_reads_back_as_its_reason_and_nothing_else_does() {
        for reason in Reason::ALL.into_iter().chain(Reason::HOST) {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
            // serde's name is the same code (the JSON outcomes and the ABI agree).
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.code()));
        }
        assert_eq!(Reason::from_code("x"), None);
        assert_eq!(Reason::from_code("Invalid_IP"), None);
        assert!(Reason::SinkRefused.is_host() && !Reason::InvalidIp.is_host());
    }
}
