//! The fast path of [`crate::scan`]: a hand-written scanner for the shape nearly every message
//! has, one flat JSON object of strings, integers, booleans and nulls. It finds string ends 8
//! bytes at a time, matches keys by length then bytes, and borrows every string from the body.
//!
//! It answers only when it is sure to agree with the serde_json path; anything unusual makes it
//! return `None` and the caller scans again with [`crate::scan::scan`], which has the final say:
//! escapes in keys or values, control characters, nested objects or arrays, numbers with a
//! fraction or an exponent (their `f64` must be serde_json's own), integers over 18 digits,
//! `-0` (serde_json reads it as a float), duplicate keys, more than 32 keys, paths with more than
//! one segment, and every syntax error (so the reason and its position are serde's).
//! `tests` proves the agreement over generated hostile bodies.

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::scan::{Found, Values};

/// Keys compared for duplicates without a hash set; more send the body to the serde path.
const MAX_KEYS: usize = 32;

/// The values of `paths` (one segment each, or none) in the flat object `body`, or `None`
/// when the serde path must decide.
pub(crate) fn scan_flat<'de>(body: &'de str, paths: &[Vec<String>]) -> Option<Values<'de>> {
    let b = body.as_bytes();
    let mut at = skip_ws(b, 0);
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut found: Values = (0..paths.len()).map(|_| Found::Absent).collect();
    let mut keys: SmallVec<[&[u8]; MAX_KEYS]> = SmallVec::new();
    at = skip_ws(b, at + 1);
    if b.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            if b.get(at) != Some(&b'"') {
                return None;
            }
            let end = string_end(b, at + 1)?;
            let key = &b[at + 1..end];
            if keys.len() == MAX_KEYS || keys.iter().any(|k| k.len() == key.len() && *k == key) {
                return None;
            }
            keys.push(key);
            at = skip_ws(b, end + 1);
            if b.get(at) != Some(&b':') {
                return None;
            }
            at = skip_ws(b, at + 1);
            let (value, next) = match *b.get(at)? {
                b'"' => {
                    let end = string_end(b, at + 1)?;
                    (Found::Str(Cow::Borrowed(&body[at + 1..end])), end + 1)
                }
                b'n' => literal(b, at, b"null", Found::Null)?,
                b't' => literal(b, at, b"true", Found::Other("boolean"))?,
                b'f' => literal(b, at, b"false", Found::Other("boolean"))?,
                b'-' | b'0'..=b'9' => integer(b, at)?,
                _ => return None,
            };
            for (slot, path) in found.iter_mut().zip(paths) {
                match path.as_slice() {
                    [segment] if segment.len() == key.len() && segment.as_bytes() == key => {
                        *slot = value.clone()
                    }
                    [segment, _, ..] if segment.as_bytes() == key => return None,
                    _ => {}
                }
            }
            at = skip_ws(b, next);
            match b.get(at) {
                Some(b',') => at = skip_ws(b, at + 1),
                Some(b'}') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, at) == b.len()).then_some(found)
}

/// JSON's whitespace (RFC 8259: space, tab, line feed, carriage return), as serde_json skips it.
fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(at) {
        at += 1;
    }
    at
}

/// The index of the `"` closing a string whose content starts at `from`, or `None` if a `\`
/// or a control character (U+0000-U+001F) comes first, or the body ends.
fn string_end(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut at = from;
    while let Some(chunk) = b.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // Lowest flagged byte: a quote, a backslash or a byte below 0x20 (borrows can only
        // flag bytes above the first true match, never below it).
        let hits = zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if hits != 0 {
            let i = at + (hits.trailing_zeros() / 8) as usize;
            return (b[i] == b'"').then_some(i);
        }
        at += 8;
    }
    let i = at + b.get(at..)?.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    (b[i] == b'"').then_some(i)
}

fn literal<'de>(
    b: &[u8],
    at: usize,
    text: &[u8],
    value: Found<'de>,
) -> Option<(Found<'de>, usize)> {
    b[at..].starts_with(text).then_some((value, at + text.len()))
}

/// An integer of at most 18 digits (`-?(0|[1-9][0-9]*)`, no fraction or exponent), which
/// serde_json reads as a u64 or i64; `-0` it reads as a float, so that one is left to it.
fn integer<'de>(b: &[u8], at: usize) -> Option<(Found<'de>, usize)> {
    let negative = b[at] == b'-';
    let start = at + usize::from(negative);
    let digits = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
    let end = start + digits;
    if digits == 0 || digits > 18 || (b[start] == b'0' && digits > 1) {
        return None;
    }
    if let Some(b'.' | b'e' | b'E') = b.get(end) {
        return None;
    }
    let n = b[start..end].iter().fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
    match (negative, n) {
        (true, 0) => None,
        (true, n) => Some((Found::Int(-n), end)),
        (false, n) => Some((Found::Int(n), end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::scan;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    fn paths() -> Vec<Vec<String>> {
        ["user_id", "device_type", "ip", "device_id", "locale", "app_version", ""]
            .iter()
            .map(|p| if p.is_empty() { vec![] } else { vec![p.to_string()] })
            .collect()
    }

    /// The property: whenever the scanner answers, serde's path answers the same values.
    fn agree(body: &str) -> Result<bool, TestCaseError> {
        let paths = paths();
        let fast = scan_flat(body, &paths);
        if let Some(fast) = &fast {
            prop_assert_eq!(Ok(fast.clone()), scan(body, &paths, 32), "body {:?}", body);
        }
        Ok(fast.is_some())
    }

    #[test]
    fn typical_events_take_the_fast_path() {
        let body = r#"{"user_id": "424cdd21", "app_version": "2.3.0", "device_type": "android", "ip": "199.172.111.135", "locale": null, "device_id": "593-47-5928", "n": -12, "b": true}"#;
        assert!(agree(body).unwrap(), "a flat event must not fall back");
        assert!(agree("{}").unwrap());
        assert!(agree(" {\"ip\":\"\"}\n").unwrap());
        let found = scan_flat(body, &paths()).unwrap();
        assert_eq!(found[2], Found::Str(Cow::Borrowed("199.172.111.135")));
        assert_eq!(found[4], Found::Null);
        assert_eq!(found[6], Found::Absent);
    }

    #[test]
    fn unusual_bodies_fall_back() {
        for body in [
            r#"{"ip": "a\"b"}"#,
            r#"{"i\u0070": "x"}"#,
            "{\"ip\": \"a\u{1}\"}",
            r#"{"ip": 1, "ip": 2}"#,
            r#"{"ip": {"a": 1}}"#,
            r#"{"ip": [1]}"#,
            r#"{"ip": 1.5}"#,
            r#"{"ip": 1e3}"#,
            r#"{"ip": -0}"#,
            r#"{"ip": 01}"#,
            r#"{"ip": 1234567890123456789}"#,
            r#"{"ip": "x",}"#,
            r#"{"ip": "x"} x"#,
            r#"{"ip": tru}"#,
            r#"{"ip": "x""#,
            "\u{feff}{}",
            "[]",
            "",
        ] {
            assert!(!agree(body).unwrap(), "{body:?} should fall back to the serde path");
        }
    }

    /// One `key: value` pair: mostly what real events hold (the fast path), sometimes anything
    /// odd (escapes, control characters, unicode, numbers of every form, nesting, literals cut
    /// short, whitespace JSON does not allow).
    fn piece() -> impl Strategy<Value = String> {
        let plain_key = prop_oneof![
            Just("user_id"),
            Just("ip"),
            Just("device_id"),
            Just("device_type"),
            Just("app_version"),
            Just("locale"),
            Just("other"),
        ]
        .prop_map(|k| format!("\"{k}\""));
        let plain_key = prop_oneof![plain_key, "\"[a-z_]{1,10}\""];
        let odd_key = prop_oneof![
            Just("\"user\\u005fid\"".to_owned()),
            Just("\"i\\u0070\"".to_owned()),
            Just("\"ip\u{1}\"".to_owned()),
            "\"[a-z_é]{0,12}\"",
        ];
        let plain_value = prop_oneof![
            4 => "\"[ -!#-\\[\\]-~]{0,24}\"",
            1 => "\"[\\PC&&[^\"\\\\]]{0,12}\"",
            1 => "-?[1-9][0-9]{0,5}",
            1 => prop_oneof![Just("null"), Just("true"), Just("false"), Just("0")].prop_map(str::to_owned),
        ];
        let odd_value = prop_oneof![
            "\"([a-z]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-f]{2}|\\\\[xu]|\u{0}|\u{1f}|\t|\u{7f}|\u{a0}|\u{2028}|é|😀)*\"",
            "-?(0|[1-9][0-9]{0,22})(\\.[0-9]{0,4})?([eE][+-]?[0-9]{0,4})?",
            "[+-]?[0-9.eE+-]{1,8}",
            prop_oneof![
                Just("18446744073709551615"), Just("18446744073709551616"), Just("-9223372036854775808"),
                Just("-9223372036854775809"), Just("999999999999999999"), Just("1000000000000000000"),
                Just("1e400"), Just("-0"), Just("nul"), Just("tru"), Just("nulll"), Just("{}"), Just("[]"),
                Just("{\"a\": 1}"), Just("[1, {\"b\": [2]}]"), Just("\"\\ud800\""),
            ].prop_map(str::to_owned),
        ];
        let ws = prop_oneof![
            24 => Just(""), 8 => Just(" "), 4 => Just("\n\t\r "), 1 => Just("\u{a0}"), 1 => Just("\u{b}"),
        ];
        let key = prop_oneof![9 => plain_key, 1 => odd_key];
        let value = prop_oneof![5 => plain_value, 1 => odd_value];
        (ws.clone(), key, ws.clone(), ws.clone(), value, ws)
            .prop_map(|(w1, k, w2, w3, v, w4)| format!("{w1}{k}{w2}:{w3}{v}{w4}"))
    }

    fn object() -> impl Strategy<Value = String> {
        let tail = prop_oneof![
            16 => Just(""),
            4 => Just(" \n"),
            1 => Just("x"),
            1 => Just(","),
            1 => Just("}")
        ];
        (prop::collection::vec(piece(), 0..7), prop::bool::weighted(0.05), "[ \n]{0,2}", tail)
            .prop_map(|(pieces, trailing_comma, lead, tail)| {
                let comma = if trailing_comma && !pieces.is_empty() { "," } else { "" };
                format!("{lead}{{{}{comma}}}{tail}", pieces.join(","))
            })
    }

    /// The property would prove nothing if the bodies all fell back: most must take the fast path.
    #[test]
    fn the_generated_bodies_exercise_the_fast_path() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut fast, total) = (0, 2000);
        for _ in 0..total {
            let body = object().new_tree(&mut runner).unwrap().current();
            fast += usize::from(agree(&body).unwrap());
        }
        eprintln!("{fast} of {total} generated bodies took the fast path");
        assert!(fast * 4 >= total, "only {fast} of {total} generated bodies took the fast path");
        assert!(fast * 10 <= total * 9, "{fast} of {total}: too few hostile bodies");
    }

    /// Cuts `body` at a char boundary at or after `at` (a message truncated in flight).
    fn cut(body: &str, at: usize) -> &str {
        let mut at = at.min(body.len());
        while !body.is_char_boundary(at) {
            at += 1;
        }
        &body[..at]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn scanner_agrees_with_serde_path(body in object(), at in 0usize..400, mutate in 0usize..400, c in any::<char>()) {
            agree(&body)?;
            agree(cut(&body, at))?;
            let mut mutated = cut(&body, mutate).to_owned();
            mutated.push(c);
            mutated.push_str(&body[cut(&body, mutate).len()..]);
            agree(&mutated)?;
        }

        #[test]
        fn most_generated_objects_without_oddities_take_the_fast_path(
            fields in prop::collection::btree_map("[a-z_]{1,10}", "[ -!#-\\[\\]-~]{0,20}", 0..8)
        ) {
            let body = serde_json::to_string(&fields).unwrap();
            prop_assert!(agree(&body)?, "{} fell back", body);
        }
    }
}
