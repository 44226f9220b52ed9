//! `app_version` as an integer that sorts like the version and never collides:
//! `major * 1_000_000 + minor * 1_000 + patch`, minor and patch below 1000.
//!
//! For analysts, the inverse in SQL:
//! `(v / 1000000) || '.' || (v / 1000 % 1000) || '.' || (v % 1000)`.

/// Largest major that keeps the code inside `i32` (the column is `integer`).
pub const MAX_MAJOR: u32 = 2146;

/// Parses `"a"`, `"a.b"` or `"a.b.c"`: 1-4 ASCII digits per part (`"2.00"` is 2.0.0, `"0.96"` is 0.96.0).
pub fn encode(text: &str) -> Option<i32> {
    let mut parts = [0u32; 3];
    for (count, part) in text.split('.').enumerate() {
        if count == 3
            || part.is_empty()
            || part.len() > 4
            || !part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        parts[count] = part.parse().ok()?;
    }
    from_parts(parts[0], parts[1], parts[2])
}

/// A JSON number, read from its literal text as written in the body, never from its value: an
/// integer is a major version (`2` is 2.0.0, `-0` is 0.0.0); otherwise the literal must be a
/// version as a string would be, so `1.10` is 1.10.0 (its value 1.1 would make it 1.1.0 and
/// merge it with `"1.1"`), `2.50` is 2.50.0, and `1e2`, `-1.5` or `1.00000` are no version.
pub fn encode_number_literal(literal: &str) -> Option<i32> {
    if !literal.contains(['.', 'e', 'E']) {
        let n: i128 = literal.parse().ok()?;
        return u32::try_from(n).ok().and_then(|major| from_parts(major, 0, 0));
    }
    encode(literal)
}

pub fn from_parts(major: u32, minor: u32, patch: u32) -> Option<i32> {
    if major > MAX_MAJOR || minor > 999 || patch > 999 {
        return None;
    }
    Some((major * 1_000_000 + minor * 1_000 + patch) as i32)
}

/// The inverse: `2003000` -> `"2.3.0"`.
pub fn decode(code: i32) -> Option<String> {
    if code < 0 {
        return None;
    }
    Some(format!("{}.{}.{}", code / 1_000_000, code / 1_000 % 1_000, code % 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sample_versions() {
        assert_eq!(encode("2.3.0"), Some(2_003_000));
        assert_eq!(encode("0.96"), Some(96_000));
        assert_eq!(encode("2.00"), Some(2_000_000));
        assert_eq!(encode("5.4.8"), Some(5_004_008));
        assert_eq!(encode("7"), Some(7_000_000));
        assert_eq!(encode_number_literal("2.0"), Some(2_000_000));
        assert_eq!(encode_number_literal("0.96"), Some(96_000));
        assert_eq!(encode_number_literal("2"), Some(2_000_000));
        assert_eq!(encode_number_literal("-0"), Some(0));
        assert_eq!(decode(5_004_008).as_deref(), Some("5.4.8"));
    }

    /// Issue 20: a number's literal, not its value. `1.10` and `1.1` are two versions, and the
    /// number `1.10` is the string `"1.10"`, not `"1.1"`.
    #[test]
    fn numbers_are_read_as_written() {
        assert_eq!(encode_number_literal("1.10"), Some(1_010_000));
        assert_eq!(encode_number_literal("1.10"), encode("1.10"));
        assert_ne!(encode_number_literal("1.10"), encode("1.1"));
        assert_eq!(encode_number_literal("2.50"), Some(2_050_000));
        assert_eq!(encode_number_literal("1.1"), Some(1_001_000));
    }

    #[test]
    fn the_seed_designs_collision_is_gone() {
        // a*2^8 + b*2^4 + c gave 512 for both.
        assert_ne!(encode("1.16.0"), encode("2.0.0"));
    }

    #[test]
    fn malformed_versions_are_refused() {
        for bad in [
            "",
            "1.2.3.4",
            "-1.0",
            "99999999.0",
            "1.1000",
            "1..2",
            "1.2.",
            ".1",
            "v1.2",
            "1.2-beta",
            " 1",
            "1e3",
            "١.٢",
            "2147.0.0",
        ] {
            assert_eq!(encode(bad), None, "{bad:?}");
        }
        for bad in [
            "-1",
            "-1.0",
            "1e2",
            "1E2",
            "1.5e-7",
            "1e300",
            "2147",
            "1.00000",
            "-0.0",
            "18446744073709551616",
        ] {
            assert_eq!(encode_number_literal(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn order_preserving_and_invertible(a in (0..=MAX_MAJOR, 0u32..1000, 0u32..1000), b in (0..=MAX_MAJOR, 0u32..1000, 0u32..1000)) {
            let ea = from_parts(a.0, a.1, a.2).unwrap();
            let eb = from_parts(b.0, b.1, b.2).unwrap();
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            prop_assert_eq!(decode(ea), Some(format!("{}.{}.{}", a.0, a.1, a.2)));
            prop_assert_eq!(encode(&format!("{}.{}.{}", a.0, a.1, a.2)), Some(ea));
        }
    }
}
