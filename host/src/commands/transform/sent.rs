//! `--sent-timestamp-field`: a line's sent time (which sets `create_date`) read from a
//! top-level field, or why it cannot be read. Nothing is guessed: a value that is not clearly
//! a time is a rejection naming the field (`invalid_timestamp`), never a silent wrong date.
//!
//! - a JSON integer of milliseconds since the epoch, from `100000000000` (1973-03-03) to the
//!   end of year 9999. A smaller number reads as seconds as well as milliseconds (`1700000000`
//!   is 2023 in seconds and January 1970 in milliseconds), so it is refused rather than guessed;
//! - an RFC 3339 string with its zone (`2023-11-14T22:13:20Z`, `...+02:00`, fractions allowed);
//! - absent or `null`: the line gets `--sent-timestamp-ms`, or the time it arrived.

use serde_json::Value;

/// Milliseconds below this could be seconds (they are before 1973-03-03 as milliseconds).
pub(crate) const SMALLEST_MS: i64 = 100_000_000_000;
/// The last millisecond of year 9999, the transform's own bound.
const LARGEST_MS: i64 = 253_402_300_799_999;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SentTime {
    At(i64),
    /// No such field (or `null`), or the line is not a JSON object (the module judges it).
    Absent,
    /// Why the field's value is not a time (it never quotes the value).
    Unreadable(&'static str),
}

pub(crate) fn read(body: &[u8], field: &str) -> SentTime {
    let Ok(Value::Object(mut object)) = serde_json::from_slice(body) else {
        return SentTime::Absent;
    };
    match object.remove(field) {
        None | Some(Value::Null) => SentTime::Absent,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) if (SMALLEST_MS..=LARGEST_MS).contains(&ms) => SentTime::At(ms),
            Some(ms) if (0..SMALLEST_MS).contains(&ms) => SentTime::Unreadable(
                "a number below 100000000000 reads as seconds as well as milliseconds: give \
                 milliseconds since the epoch, or an RFC 3339 time",
            ),
            Some(_) => SentTime::Unreadable("milliseconds outside the years 1973-9999"),
            None => SentTime::Unreadable("not a whole number of milliseconds since the epoch"),
        },
        Some(Value::String(text)) => match rfc3339_ms(&text) {
            Some(ms) if (0..=LARGEST_MS).contains(&ms) => SentTime::At(ms),
            Some(_) => SentTime::Unreadable("an RFC 3339 time outside the years 1970-9999"),
            None => SentTime::Unreadable(
                "a string that is not an RFC 3339 time with a zone (give `2023-11-14T22:13:20Z`, \
                 or milliseconds since the epoch as a JSON number)",
            ),
        },
        Some(_) => SentTime::Unreadable(
            "neither milliseconds since the epoch (a JSON number) nor an RFC 3339 time (a string)",
        ),
    }
}

/// Milliseconds since the epoch of an RFC 3339 date-time with its zone (`Z` or `±HH:MM`).
/// humantime reads the UTC form; the offset, if any, is taken off here.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let (local, offset_minutes) = match text.strip_suffix(['Z', 'z']) {
        Some(local) => (local, 0),
        None => {
            let split = text.len().checked_sub(6)?;
            let (local, zone) = text.split_at_checked(split)?;
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = zone[1..].split_once(':')?;
            let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
            if hours > 23
                || minutes > 59
                || !zone[1..].bytes().all(|b| b.is_ascii_digit() || b == b':')
            {
                return None;
            }
            (local, sign * (hours * 60 + minutes))
        }
    };
    // A date and a time, `T` (or `t`, or a space, which RFC 3339 allows) between them.
    let (date, time) = local.split_at_checked(10)?;
    let time = time.strip_prefix(['T', 't', ' '])?;
    let utc = humantime::parse_rfc3339(&format!("{date}T{time}Z")).ok()?;
    let ms = utc.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    Some(ms - offset_minutes * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(json: &str) -> SentTime {
        read(format!(r#"{{"user_id": "u", "t": {json}}}"#).as_bytes(), "t")
    }

    #[test]
    fn milliseconds_and_rfc3339_times_with_a_zone_are_read() {
        assert_eq!(sent("1700000000123"), SentTime::At(1_700_000_000_123));
        assert_eq!(sent(r#""2023-11-14T22:13:20Z""#), SentTime::At(1_700_000_000_000));
        assert_eq!(sent(r#""2023-11-14T22:13:20.5Z""#), SentTime::At(1_700_000_000_500));
        assert_eq!(sent(r#""2023-11-15T00:13:20+02:00""#), SentTime::At(1_700_000_000_000));
        assert_eq!(sent(r#""2023-11-14T17:13:20-05:00""#), SentTime::At(1_700_000_000_000));
        assert_eq!(sent(r#""2023-11-14 22:13:20z""#), SentTime::At(1_700_000_000_000));
    }

    #[test]
    fn what_cannot_be_read_as_a_time_is_said_not_guessed() {
        for value in [
            r#""yesterday""#,
            r#""2024-02-03""#,
            r#""2023-11-14T22:13:20""#,
            r#""1700000000000""#,
            "1.7e12",
            "1700000000000.5",
            "1700000000",
            "-1",
            "253402300800000",
            "true",
            "[1700000000000]",
            r#""2023-11-14T22:13:20+25:00""#,
        ] {
            assert!(matches!(sent(value), SentTime::Unreadable(_)), "{value} was read as a time");
        }
        let SentTime::Unreadable(why) = sent("1700000000") else { panic!() };
        assert!(why.contains("seconds"), "{why}");
    }

    #[test]
    fn an_absent_or_null_field_or_a_body_that_is_not_an_object_falls_back() {
        assert_eq!(sent("null"), SentTime::Absent);
        assert_eq!(read(br#"{"u": 1}"#, "t"), SentTime::Absent);
        assert_eq!(read(b"not json", "t"), SentTime::Absent);
        assert_eq!(read(b"[1]", "t"), SentTime::Absent);
    }
}
