//! IP normalisation, so that one address always masks to one value.

use std::fmt::Write;
use std::net::IpAddr;

/// Writes the canonical text of `s` to `out`: IPv4 dotted quad, IPv6 lower-case and
/// zero-compressed (RFC 5952), and an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as plain IPv4.
/// Ambiguous forms are refused rather than guessed: leading zeros (`010.0.0.1` is octal to
/// some parsers), zone ids, brackets, ports, shorthand like `10.1`.
pub(crate) fn canonicalize(s: &str, out: &mut String) -> bool {
    // std accepts IPv4 only as four decimal parts without leading zeros: already canonical.
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        out.push_str(s);
        return true;
    }
    let ip = match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Ok(v4) => v4,
        Err(_) => return false,
    };
    write!(out, "{ip}").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Option<String> {
        let mut out = String::new();
        canonicalize(s, &mut out).then_some(out)
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canon("199.172.111.135").as_deref(), Some("199.172.111.135"));
        assert_eq!(canon("2001:DB8:0:0::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(
            canon("2001:0db8:0000:0000:0000:0000:0000:0001").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(canon("::ffff:10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(canon("::FFFF:0a00:0001").as_deref(), Some("10.0.0.1"));
        assert_eq!(canon("::1").as_deref(), Some("::1"));
    }

    #[test]
    fn ambiguous_or_invalid_forms_are_refused() {
        for bad in [
            "010.0.0.1",
            "1.2.3",
            "10.1",
            "256.1.1.1",
            "1.2.3.4:80",
            "[::1]",
            "fe80::1%eth0",
            "",
            "abc",
            "1.2.3.4.5",
            " 1.2.3.4",
        ] {
            assert_eq!(canon(bad), None, "{bad:?} should be refused");
        }
    }
}
