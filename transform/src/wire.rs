//! The ABI v1 wire format (ABI.md), written once for both sides: the module's exports
//! (`abi.rs`, wasm32 only) and any host (maskflow's runtime, tests, benchmarks). Everything is
//! little-endian; `str`/`bytes` are a `u32` length and the bytes; a NULL cell is `u32::MAX`.
//!
//! Decoders refuse anything malformed with a [`WireError`] naming what was wrong; they never
//! panic, whatever the bytes (a host must survive a hostile module, and a module a buggy host).

use crate::error::Error;
use crate::outcome::{Outcome, Row};
use crate::reason::{Reason, Rejection};
use crate::transformer::Message;

/// Version of the WebAssembly ABI described in ABI.md; bumped on any incompatible change.
pub const ABI_VERSION: u32 = 1;

/// First byte of every result: the payload follows.
pub const STATUS_OK: u8 = 0;
/// First byte of a failed call's result: a failure no other code names; a UTF-8 message
/// follows (as it does for every failure status but [`STATUS_KEY_FILE`]).
pub const STATUS_ERROR: u8 = 1;
/// The config was refused (JSON, mapping, keys, no key): `init` only.
pub const STATUS_CONFIG_REFUSED: u8 = 2;
/// `unmask`'s input is not a mask (`<key-id>.<base64url>`) or not UTF-8.
pub const STATUS_NOT_A_MASK: u8 = 3;
/// `unmask`: the mask's key id is not among the loaded keys.
pub const STATUS_UNKNOWN_KEY_ID: u8 = 4;
/// `unmask`: AES-SIV authentication failed (a wrong key, or a tampered value).
pub const STATUS_AUTHENTICATION_FAILED: u8 = 5;
/// `init`: a line of `key_file` breaks a rule; a UTF-8 JSON object follows:
/// `{"line": <1-based>, "rule": <KeyFileRule::code>, "message": <text>}`.
pub const STATUS_KEY_FILE: u8 = 6;
const KIND_ROW: u8 = 0;
const KIND_REJECTION: u8 = 1;
const NULL: u32 = u32::MAX;

/// Bytes that do not follow ABI.md.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn malformed<T>(what: &str) -> Result<T, WireError> {
    Err(WireError(what.to_owned()))
}

// ---- encoding -------------------------------------------------------------------------------

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// `transform_batch` input: `u32 count`, then per message `str id, i64 sent_ms, bytes body`.
pub fn encode_batch(out: &mut Vec<u8>, messages: &[Message]) {
    put_u32(out, messages.len() as u32);
    for m in messages {
        put_bytes(out, m.id.as_bytes());
        out.extend_from_slice(&m.sent_timestamp_ms.to_le_bytes());
        put_bytes(out, m.body);
    }
}

/// `init` ok payload: the output column names.
pub fn encode_columns(out: &mut Vec<u8>, names: &[String]) {
    put_u32(out, names.len() as u32);
    for name in names {
        put_bytes(out, name.as_bytes());
    }
}

/// One row outcome: kind 0, then one cell per column.
pub fn encode_row(out: &mut Vec<u8>, row: &Row) {
    out.push(KIND_ROW);
    for value in row.values() {
        match value {
            Some(text) => put_bytes(out, text.as_bytes()),
            None => put_u32(out, NULL),
        }
    }
}

/// One rejection outcome: kind 1, then reason code, message, encrypted body.
pub fn encode_rejection(out: &mut Vec<u8>, rejection: &Rejection) {
    out.push(KIND_REJECTION);
    put_bytes(out, rejection.reason.code().as_bytes());
    put_bytes(out, rejection.message.as_bytes());
    put_bytes(out, rejection.encrypted_body.as_bytes());
}

/// A failed call's result: its status byte, then its message (or, for [`STATUS_KEY_FILE`],
/// the JSON object that holds the line, the rule and the message).
pub fn encode_failure(out: &mut Vec<u8>, failure: &ModuleFailure) {
    out.push(failure.kind.status());
    match &failure.kind {
        FailureKind::KeyFile { line, rule } => {
            let detail =
                serde_json::json!({"line": line, "rule": rule, "message": failure.message});
            serde_json::to_writer(out, &detail).expect("writing JSON to a Vec cannot fail");
        }
        _ => out.extend_from_slice(failure.message.as_bytes()),
    }
}

// ---- failures -------------------------------------------------------------------------------

/// What kind of failure a call's result reports (its status byte, ABI.md "Status codes").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Status 1, and any status this version does not know (a newer module's).
    Other,
    /// Status 2: the config JSON, the mapping or the keys were refused.
    ConfigRefused,
    /// Status 6: `key_file`'s line `line` breaks the rule whose code is `rule`
    /// ([`crate::KeyFileRule::code`]).
    KeyFile { line: usize, rule: String },
    /// Status 3.
    NotAMask,
    /// Status 4.
    UnknownKeyId,
    /// Status 5: a wrong key or a tampered value.
    AuthenticationFailed,
}

impl FailureKind {
    pub fn status(&self) -> u8 {
        match self {
            FailureKind::Other => STATUS_ERROR,
            FailureKind::ConfigRefused => STATUS_CONFIG_REFUSED,
            FailureKind::KeyFile { .. } => STATUS_KEY_FILE,
            FailureKind::NotAMask => STATUS_NOT_A_MASK,
            FailureKind::UnknownKeyId => STATUS_UNKNOWN_KEY_ID,
            FailureKind::AuthenticationFailed => STATUS_AUTHENTICATION_FAILED,
        }
    }
}

/// A call the module answered with a failure: its kind and its message (which never holds key
/// material or a clear value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModuleFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl ModuleFailure {
    pub fn other(message: impl Into<String>) -> Self {
        ModuleFailure { kind: FailureKind::Other, message: message.into() }
    }
}

/// The library's errors, by the kind the ABI reports them as.
impl From<&Error> for ModuleFailure {
    fn from(error: &Error) -> Self {
        let kind = match error {
            Error::Config(_) | Error::Key { .. } | Error::NoKey => FailureKind::ConfigRefused,
            Error::KeyFile { line, rule } => {
                FailureKind::KeyFile { line: *line, rule: rule.code().to_owned() }
            }
            Error::MaskFormat(_) => FailureKind::NotAMask,
            Error::UnknownKeyId(_) => FailureKind::UnknownKeyId,
            Error::Authentication => FailureKind::AuthenticationFailed,
        };
        ModuleFailure { kind, message: error.to_string() }
    }
}

// ---- decoding -------------------------------------------------------------------------------

/// Splits a result buffer on its status byte: the payload, or the module's failure by kind.
pub fn split_result(result: &[u8]) -> Result<Result<&[u8], ModuleFailure>, WireError> {
    let Some((&status, rest)) = result.split_first() else {
        return malformed("empty result (no status byte)");
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    let kind = match status {
        STATUS_OK => return Ok(Ok(rest)),
        STATUS_CONFIG_REFUSED => FailureKind::ConfigRefused,
        STATUS_NOT_A_MASK => FailureKind::NotAMask,
        STATUS_UNKNOWN_KEY_ID => FailureKind::UnknownKeyId,
        STATUS_AUTHENTICATION_FAILED => FailureKind::AuthenticationFailed,
        STATUS_KEY_FILE => return key_file_failure(rest).map(Err),
        _ => FailureKind::Other,
    };
    Ok(Err(ModuleFailure { kind, message: text() }))
}

/// Status 6's JSON object.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFileDetail<'a> {
    line: usize,
    #[serde(borrow)]
    rule: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

fn key_file_failure(detail: &[u8]) -> Result<ModuleFailure, WireError> {
    let KeyFileDetail { line, rule, message } = serde_json::from_slice(detail)
        .map_err(|_| WireError("status 6 without its {line, rule, message} object".into()))?;
    Ok(ModuleFailure {
        kind: FailureKind::KeyFile { line, rule: rule.into_owned() },
        message: message.into_owned(),
    })
}

/// The column names of an `init` ok payload.
pub fn decode_columns(payload: &[u8]) -> Result<Vec<String>, WireError> {
    let mut reader = Reader(payload);
    let count = reader.u32()?;
    let names = (0..count).map(|_| reader.string()).collect::<Result<_, _>>()?;
    reader.finish()?;
    Ok(names)
}

/// The outcomes of a `transform_batch` ok payload: exactly `expected` of them, rows with
/// `columns` cells each.
pub fn decode_outcomes(
    payload: &[u8],
    expected: usize,
    columns: usize,
) -> Result<Vec<Outcome>, WireError> {
    let mut reader = Reader(payload);
    let count = reader.u32()? as usize;
    if count != expected {
        return malformed(&format!("answered {count} outcomes for {expected} messages"));
    }
    let outcomes = (0..count)
        .map(|_| match reader.u8()? {
            KIND_ROW => Ok(Outcome::Row(
                (0..columns).map(|_| reader.nullable_string()).collect::<Result<_, _>>()?,
            )),
            KIND_REJECTION => Ok(Outcome::Rejected {
                reason: reason(&reader.string()?)?,
                message: reader.string()?,
                encrypted_body: reader.string()?,
            }),
            kind => malformed(&format!("unknown outcome kind {kind}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    reader.finish()?;
    Ok(outcomes)
}

/// A rejection's reason code, which must be one of the rules' (ABI.md "Reason codes"): the
/// codes are a closed set (stored, counted by metric labels); a host adds its own.
fn reason(code: &str) -> Result<Reason, WireError> {
    match Reason::from_code(code).filter(|r| !r.is_host()) {
        Some(reason) => Ok(reason),
        None => malformed(&format!(
            "reason code `{}` is not one of ABI.md's",
            code.escape_debug().take(40).collect::<String>()
        )),
    }
}

/// Reads a `transform_batch` input one message at a time, borrowing ids and bodies.
pub struct BatchReader<'a> {
    reader: Reader<'a>,
    remaining: u32,
}

impl<'a> BatchReader<'a> {
    pub fn new(input: &'a [u8]) -> Result<Self, WireError> {
        let mut reader = Reader(input);
        let remaining = reader.u32()?;
        Ok(BatchReader { reader, remaining })
    }

    /// How many messages the batch announces.
    pub fn len(&self) -> u32 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The next message; `Ok(None)` after the last one, if no bytes trail it.
    pub fn next_message(&mut self) -> Result<Option<Message<'a>>, WireError> {
        if self.remaining == 0 {
            self.reader.finish()?;
            return Ok(None);
        }
        self.remaining -= 1;
        let id = std::str::from_utf8(self.reader.bytes()?)
            .map_err(|_| WireError("message id is not UTF-8".into()))?;
        let sent_timestamp_ms = i64::from_le_bytes(self.reader.array()?);
        let body = self.reader.bytes()?;
        Ok(Some(Message { id, body, sent_timestamp_ms }))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return malformed("ends early");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn nullable_string(&mut self) -> Result<Option<String>, WireError> {
        match self.u32()? {
            NULL => Ok(None),
            n => match std::str::from_utf8(self.take(n as usize)?) {
                Ok(text) => Ok(Some(text.to_owned())),
                Err(_) => malformed("text is not UTF-8"),
            },
        }
    }
    fn string(&mut self) -> Result<String, WireError> {
        self.nullable_string()?.map_or_else(|| malformed("NULL where text was required"), Ok)
    }
    fn finish(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            malformed("trailing bytes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KeyFileRule;

    #[test]
    fn a_batch_round_trips() {
        let messages = [
            Message { id: "m1", body: b"{}", sent_timestamp_ms: 1_700_000_000_000 },
            Message { id: "m2", body: b"", sent_timestamp_ms: -1 },
        ];
        let mut out = Vec::new();
        encode_batch(&mut out, &messages);
        let mut reader = BatchReader::new(&out).unwrap();
        assert_eq!(reader.len(), 2);
        for m in &messages {
            let got = reader.next_message().unwrap().unwrap();
            assert_eq!(
                (got.id, got.body, got.sent_timestamp_ms),
                (m.id, m.body, m.sent_timestamp_ms)
            );
        }
        assert!(reader.next_message().unwrap().is_none());
    }

    #[test]
    fn outcomes_round_trip_and_truncation_is_refused() {
        let mut row = Row::default();
        row.reset(2);
        row.cells[0].push_str("u1");
        row.nulls[0] = false;
        let rejection = Rejection {
            reason: Reason::InvalidIp,
            message: "m".into(),
            encrypted_body: "k1.x".into(),
        };
        let mut out = Vec::new();
        put_u32(&mut out, 2);
        encode_row(&mut out, &row);
        encode_rejection(&mut out, &rejection);
        let outcomes = decode_outcomes(&out, 2, 2).unwrap();
        assert_eq!(outcomes[0], Outcome::Row(vec![Some("u1".into()), None]));
        assert_eq!(
            outcomes[1],
            Outcome::Rejected {
                reason: Reason::InvalidIp,
                message: "m".into(),
                encrypted_body: "k1.x".into()
            }
        );
        for cut in 0..out.len() {
            assert!(decode_outcomes(&out[..cut], 2, 2).is_err(), "cut at {cut} accepted");
        }
        assert!(decode_outcomes(&out, 3, 2).is_err(), "a count mismatch is refused");
        for code in ["x", "module_failed", "sink_refused", ""] {
            let mut out = Vec::new();
            put_u32(&mut out, 1);
            out.push(KIND_REJECTION);
            for text in [code, "m", "k1.x"] {
                put_bytes(&mut out, text.as_bytes());
            }
            assert!(decode_outcomes(&out, 1, 2).is_err(), "reason `{code}` accepted");
        }
    }

    /// One library error of each kind, with the status the ABI gives it.
    fn every_failure() -> Vec<(Error, u8)> {
        vec![
            (Error::Config("mapping: x".into()), 2),
            (Error::Key { id: "k1".into(), reason: "r".into() }, 2),
            (Error::NoKey, 2),
            (Error::KeyFile { line: 3, rule: KeyFileRule::DuplicateId { first_line: 1 } }, 6),
            (Error::MaskFormat("no `.` after the key id"), 3),
            (Error::UnknownKeyId("k9".into()), 4),
            (Error::Authentication, 5),
        ]
    }

    #[test]
    fn every_failure_kind_has_its_status_and_round_trips() {
        for (error, status) in every_failure() {
            let failure = ModuleFailure::from(&error);
            let mut out = Vec::new();
            encode_failure(&mut out, &failure);
            assert_eq!(out[0], status, "{error:?}");
            assert_eq!(split_result(&out).unwrap(), Err(failure.clone()), "{error:?}");
            // An old caller's view (any status but 0 is an error, the rest its UTF-8 text): the
            // library's message, as it is for 2-5, inside the JSON object for 6.
            let text = std::str::from_utf8(&out[1..]).unwrap();
            assert!(out[0] != STATUS_OK && text.contains(&error.to_string()), "{error:?}: {text}");
        }
        let other = ModuleFailure::other("transform_batch called before a successful init");
        let mut out = Vec::new();
        encode_failure(&mut out, &other);
        assert_eq!(out[0], STATUS_ERROR);
        assert_eq!(&out[1..], other.message.as_bytes(), "status 1 is the message, as before");
        assert_eq!(split_result(&out).unwrap(), Err(other));
    }

    #[test]
    fn a_key_file_failure_carries_its_line_and_rule_code() {
        let error = Error::KeyFile { line: 2, rule: KeyFileRule::CarriageReturn };
        let mut out = Vec::new();
        encode_failure(&mut out, &ModuleFailure::from(&error));
        let detail: serde_json::Value = serde_json::from_slice(&out[1..]).unwrap();
        assert_eq!(
            detail,
            serde_json::json!({"line": 2, "rule": "crlf", "message": error.to_string()})
        );
        let Err(failure) = split_result(&out).unwrap() else { panic!("not a failure") };
        assert_eq!(failure.kind, FailureKind::KeyFile { line: 2, rule: "crlf".into() });
        assert!(split_result(b"\x06not json").is_err(), "status 6 needs its object");
    }

    #[test]
    fn ok_unknown_and_empty_statuses() {
        assert_eq!(split_result(b"\x00payload").unwrap(), Ok(&b"payload"[..]));
        let Err(failure) = split_result(b"\x09from a newer module").unwrap() else { panic!() };
        assert_eq!(failure, ModuleFailure::other("from a newer module"));
        assert!(split_result(b"").is_err());
    }
}
