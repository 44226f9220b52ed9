//! `maskflow_typed`'s result per event: one named `Tuple` of the mapping's columns, then the
//! rejection's fields, in RowBinary. Each column's ClickHouse type follows its kind:
//!
//! | kind | element |
//! |---|---|
//! | `text`, `ip` | `Nullable(String)` |
//! | `version` | `Nullable(Int32)` |
//! | `sent_date` | `Nullable(Date32)` |
//!
//! then `reason`, `message`, `encrypted_body`, each `Nullable(String)`. A row has NULL rejection
//! fields; a rejection has every column NULL. So the views read columns, never JSON.

use super::rowbinary::{put_nullable_i32, put_nullable_string, NULL};
use crate::config::Kind;
use crate::outcome::Row;
use crate::reason::{Reason, Rejection};
use crate::transformer::{Message, Transformer};

const MS_PER_DAY: i64 = 86_400_000;

/// The last day ClickHouse's `Date32` holds, 2299-12-31, in days after 1970-01-01. The
/// transform's dates go on to 9999; a `create_date` after this one cannot be stored, so it is a
/// rejection here (never a date clamped to the type's end).
const DATE32_LAST_DAY: i64 = 120_529;

/// What a row of this mapping needs that the transform alone does not check.
pub(super) struct Shape {
    kinds: Vec<Kind>,
    has_sent_date: bool,
}

impl Shape {
    pub(super) fn new(kinds: Vec<Kind>) -> Self {
        let has_sent_date = kinds.contains(&Kind::SentDate);
        Shape { kinds, has_sent_date }
    }

    /// The `Date32` day of `sent_timestamp_ms`, or `Err` with the rejection's reason and message
    /// when the mapping has a date that `Date32` cannot hold. Only asked for a row: the
    /// transform has already refused a time outside 1970-9999.
    fn day(&self, sent_timestamp_ms: i64) -> Result<i32, (Reason, &'static str)> {
        let day = sent_timestamp_ms.div_euclid(MS_PER_DAY);
        match i32::try_from(day) {
            Ok(day) if !self.has_sent_date || i64::from(day) <= DATE32_LAST_DAY => Ok(day),
            _ => Err((
                Reason::InvalidTimestamp,
                "field `sent timestamp`: after 2299-12-31, the last day a ClickHouse Date32 holds",
            )),
        }
    }

    /// One event's outcome: the transform's row or rejection, or a rejection for a row whose
    /// date ClickHouse cannot store (its body encrypted as every rejection's is).
    pub(super) fn put_outcome(
        &self,
        out: &mut Vec<u8>,
        transformer: &mut Transformer,
        message: &Message,
    ) {
        let (reason, text) =
            match (transformer.transform(message), self.day(message.sent_timestamp_ms)) {
                (Ok(row), Ok(day)) => return self.put_row(out, row, day),
                (Err(rejection), _) => return self.put_rejection(out, &rejection),
                (Ok(_), Err(refused)) => refused,
            };
        let encrypted_body = transformer.encrypt_body(message.body);
        self.put_rejection(out, &Rejection { reason, message: text.to_owned(), encrypted_body });
    }

    /// A row: each cell as its kind's element, then three NULL rejection fields.
    fn put_row(&self, out: &mut Vec<u8>, row: &Row, day: i32) {
        for (kind, cell) in self.kinds.iter().zip(row.values()) {
            match (kind, cell) {
                (_, None) => out.push(NULL),
                (Kind::Text | Kind::Ip, Some(text)) => {
                    put_nullable_string(out, Some(text.as_bytes()))
                }
                // The transform wrote the version code as an i32's decimal digits.
                (Kind::Version, Some(code)) => put_nullable_i32(
                    out,
                    Some(code.parse().unwrap_or_else(|_| core::arch::wasm32::unreachable())),
                ),
                (Kind::SentDate, Some(_)) => put_nullable_i32(out, Some(day)),
            }
        }
        out.extend_from_slice(&[NULL; 3]);
    }

    /// A rejection: every column NULL, then its reason, message and encrypted body.
    fn put_rejection(&self, out: &mut Vec<u8>, rejection: &Rejection) {
        out.extend(std::iter::repeat_n(NULL, self.kinds.len()));
        put_nullable_string(out, Some(rejection.reason.code().as_bytes()));
        put_nullable_string(out, Some(rejection.message.as_bytes()));
        put_nullable_string(out, Some(rejection.encrypted_body.as_bytes()));
    }
}
