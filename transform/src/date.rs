//! Sent timestamp (ms since the epoch) to a UTC calendar date.

/// Latest accepted timestamp: 9999-12-31T23:59:59.999Z (PostgreSQL `date` goes further, but
/// nothing later is a plausible SQS timestamp).
const MAX_MS: i64 = 253_402_300_799_999;

/// `YYYY-MM-DD` for a timestamp in `0..=MAX_MS`, else `None`.
pub(crate) fn utc_date(sent_timestamp_ms: i64, out: &mut String) -> Option<()> {
    if !(0..=MAX_MS).contains(&sent_timestamp_ms) {
        return None;
    }
    let (y, m, d) = civil_from_days(sent_timestamp_ms / 86_400_000);
    push_decimal(out, y as u64, 4);
    out.push('-');
    push_decimal(out, m.into(), 2);
    out.push('-');
    push_decimal(out, d.into(), 2);
    Some(())
}

/// [`utc_date`] computed once per distinct day: messages of a batch are nearly always sent on
/// the same day, so most rows copy the last date instead of converting again.
#[derive(Debug, Default)]
pub(crate) struct Dates {
    day: i64,
    text: String,
}

impl Dates {
    /// Appends what [`utc_date`] would, or returns `None` where it would.
    pub(crate) fn push(&mut self, sent_timestamp_ms: i64, out: &mut String) -> Option<()> {
        if !(0..=MAX_MS).contains(&sent_timestamp_ms) {
            return None;
        }
        let day = sent_timestamp_ms / 86_400_000;
        if self.text.is_empty() || self.day != day {
            self.text.clear();
            utc_date(sent_timestamp_ms, &mut self.text)?;
            self.day = day;
        }
        out.push_str(&self.text);
        Some(())
    }
}

/// Appends `n` in decimal, zero-padded to `width` digits (no `fmt` machinery: this runs for
/// every row).
pub(crate) fn push_decimal(out: &mut String, n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let (mut at, mut rest) = (digits.len(), n);
    while rest > 0 || digits.len() - at < width.max(1) {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_padding() {
        for (n, width, text) in [
            (0, 1, "0"),
            (7, 2, "07"),
            (2024, 4, "2024"),
            (12345, 2, "12345"),
            (2_146_999_999, 1, "2146999999"),
        ] {
            let mut out = String::from(">");
            push_decimal(&mut out, n, width);
            assert_eq!(out, format!(">{text}"));
        }
    }
    use proptest::prelude::*;

    fn date(ms: i64) -> Option<String> {
        let mut s = String::new();
        utc_date(ms, &mut s).map(|_| s)
    }

    #[test]
    fn known_dates_and_bounds() {
        assert_eq!(date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(date(1_700_000_000_000).as_deref(), Some("2023-11-14"));
        assert_eq!(date(951_782_400_000).as_deref(), Some("2000-02-29"));
        assert_eq!(date(MAX_MS).as_deref(), Some("9999-12-31"));
        assert_eq!(date(-1), None);
        assert_eq!(date(MAX_MS + 1), None);
    }

    proptest! {
        #[test]
        fn dates_once_per_day_agree_with_utc_date(ms in prop::collection::vec(prop_oneof![
            -5i64..5, 1_700_000_000_000i64..1_700_300_000_000, 0..=MAX_MS + 5], 1..20)) {
            let mut dates = Dates::default();
            for ms in ms {
                let mut out = String::from(">");
                let got = dates.push(ms, &mut out).map(|()| out[1..].to_owned());
                prop_assert_eq!(got, date(ms), "{}", ms);
            }
        }

        #[test]
        fn agrees_with_chrono(ms in 0..=MAX_MS) {
            let expected = chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%d").to_string();
            prop_assert_eq!(date(ms), Some(expected));
        }
    }
}
