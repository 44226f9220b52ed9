//! The key file (and `MASKFLOW_KEY`, which holds the same text): one `id:base64` per line.
//!
//! Every error names the line and the rule it breaks, and never any part of the line: a line
//! that breaks a rule may hold key material anywhere (reversed `<base64>:k1`, the key pasted as
//! its id, a comment after it), so nothing of it is echoed. Only an id that passed the id rule is
//! shown. Every copy of the key made while parsing is wiped (`zeroize`) when dropped.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use crate::mask::{Key, KEY_LEN};
use crate::Error;

/// The format, repeated in errors so the fix is in the message.
const FORMAT: &str = "a key line is `id:base64` (id: 1-16 characters of a-z and 0-9; base64 of \
                      64 bytes, 88 characters), nothing else on the line";

/// Parses the text of a key file: `id:base64` lines (a bare `base64` line means id `k1`). The
/// first key masks; all of them unmask. Blank lines and lines starting with `#` are skipped.
pub(crate) fn parse(text: &str) -> Result<Vec<Key>, Error> {
    let mut keys: Vec<(usize, Key)> = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let bad = |rule: &str| Error::KeyFile { line: number, rule: rule.to_owned() };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains('\r') {
            return Err(bad(
                "carriage return (CRLF line endings): save the key file with LF line endings",
            ));
        }
        if line.contains(char::is_whitespace) {
            return Err(bad(&format!("spaces or tabs on the line; {FORMAT}")));
        }
        if line.contains('#') {
            return Err(bad(
                "`#` after the key: a comment goes on a line of its own, starting with `#`",
            ));
        }
        let (id, b64) = match line.split_once(':') {
            Some((id, b64)) => (id, b64),
            None => ("k1", line),
        };
        if b64.contains(':') {
            return Err(bad(&format!("more than one `:`; {FORMAT}")));
        }
        if !valid_id(id) {
            let rule = if valid_id(b64) && id.len() > 16 {
                "reversed: the id comes first, then `:`, then the key (`k1:<base64>`)"
            } else {
                "the key id (before `:`) must be 1-16 characters of a-z and 0-9"
            };
            return Err(bad(rule));
        }
        // Ids are not echoed: `id` may be a piece of a key split at a stray `:`.
        if let Some((first, _)) = keys.iter().find(|(_, k)| k.id() == id) {
            return Err(bad(&format!("its key id is already used on line {first}")));
        }
        let bytes = Zeroizing::new(STANDARD.decode(b64).map_err(|_| {
            bad(&format!(
                "the key is not standard base64 (A-Z a-z 0-9 + / and `=` padding; {} \
                 characters): truncated or mangled?",
                b64.len()
            ))
        })?);
        let mut exact = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(bad(&format!(
                "the key is {} bytes; an AES-256-SIV key is {KEY_LEN} bytes (88 base64 \
                 characters): truncated?",
                bytes.len()
            )));
        }
        exact.copy_from_slice(&bytes);
        keys.push((number, Key::new(id, *exact)?));
    }
    if keys.is_empty() {
        return Err(Error::NoKey);
    }
    Ok(keys.into_iter().map(|(_, k)| k).collect())
}

pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 16
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key whose every 8-byte window and 8-character base64 window is distinct from the
    /// format's own text (bytes 0x80.. never appear in an error message's ASCII).
    fn key_bytes(seed: u8) -> [u8; KEY_LEN] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(seed) | 0x80)
    }

    /// The first 8-character window of the key (base64 text or raw bytes) found in `shown`.
    pub(crate) fn leaked(shown: &[u8], b64: &str, bytes: &[u8]) -> Option<String> {
        let windows = b64.as_bytes().windows(8).chain(bytes.windows(8));
        windows
            .into_iter()
            .find(|w| shown.windows(8).any(|s| s == *w))
            .map(|w| String::from_utf8_lossy(w).into_owned())
    }

    /// Malformed key files: (text, line the error must name, words of the rule).
    pub(crate) fn malformed(b64: &str, other: &str) -> Vec<(String, usize, &'static str)> {
        let mut mangled = b64.to_owned();
        mangled.replace_range(40..41, "!");
        vec![
            (format!("{b64}:k1\n"), 1, "reversed"),
            (format!("# keys\n\n{b64}:k2"), 3, "reversed"),
            (format!("k1:{b64} # main key\n"), 1, "spaces"),
            (format!("k1:{b64}#main\n"), 1, "comment"),
            (format!(" k1:{b64}\n"), 1, "spaces"),
            (format!("k1: {b64}\n"), 1, "spaces"),
            (format!("k1:{b64}\t\n"), 1, "spaces"),
            (format!("k1:{b64}\r\nk2:{other}\r\n"), 1, "CRLF"),
            (format!("k1:{}\n", &b64[..80]), 1, "bytes"),
            (format!("k1:{}\n", &b64[..87]), 1, "base64"),
            (format!("{}\n", &b64[..60]), 1, "base64"),
            (format!("k1:{mangled}\n"), 1, "base64"),
            (format!("k1:{}\n", b64.replace('+', "-").replace('/', "_")), 1, "base64"),
            (format!("K1:{b64}\n"), 1, "id"),
            (format!("k.1:{b64}\n"), 1, "id"),
            (format!("k-1:{b64}\n"), 1, "id"),
            (format!("kéy:{b64}\n"), 1, "id"),
            (format!(":{b64}\n"), 1, "id"),
            (format!("seventeenchars123:{b64}\n"), 1, "id"),
            (format!("{}:{}\n", &b64[..8], &b64[8..]), 1, "id"),
            (format!("k1:{b64}:k1\n"), 1, "`:`"),
            (format!("k1:{b64}\nk2:{other}\nk1:{other}\n"), 3, "already used on line 1"),
        ]
    }

    #[test]
    fn malformed_key_files_name_the_line_and_rule_and_never_the_key() {
        let bytes = key_bytes(11);
        let b64 = STANDARD.encode(bytes);
        assert_eq!(b64.len(), 88);
        let other = STANDARD.encode(key_bytes(99));
        for (text, line, rule) in malformed(&b64, &other) {
            let err = Key::parse_key_file(&text).map(|_| ()).expect_err(&text);
            for shown in [err.to_string(), format!("{err:?}")] {
                let named = [format!("line {line}"), format!("line: {line}")];
                assert!(named.iter().any(|n| shown.contains(n)), "{text:?}: {shown}");
                assert!(shown.contains(rule), "{text:?} should say {rule:?}: {shown}");
                if let Some(w) = leaked(shown.as_bytes(), &b64, &bytes) {
                    panic!("{text:?}: the error shows key material {w:?}: {shown}");
                }
                if let Some(w) = leaked(shown.as_bytes(), &other, &key_bytes(99)) {
                    panic!("{text:?}: the error shows key material {w:?}: {shown}");
                }
            }
        }
    }

    #[test]
    fn well_formed_key_files_parse() {
        let (a, b) = (STANDARD.encode(key_bytes(1)), STANDARD.encode(key_bytes(2)));
        let keys = parse(&format!("# rotated\nk2:{b}\n\nk1:{a}\n")).unwrap();
        assert_eq!(keys.iter().map(Key::id).collect::<Vec<_>>(), ["k2", "k1"]);
        assert_eq!(parse(&a).unwrap()[0].id(), "k1", "a bare line is k1");
        assert_eq!(parse("\n# nothing\n").unwrap_err(), Error::NoKey);
        assert_eq!(parse("").unwrap_err(), Error::NoKey);
    }
}
