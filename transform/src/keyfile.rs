//! The key file (and `MASKFLOW_KEY`, which holds the same text): one `id:base64` per line.
//!
//! Every error names the line and the rule it breaks ([`KeyFileRule`]), and never any part of
//! the line: a line that breaks a rule may hold key material anywhere (reversed `<base64>:k1`,
//! the key pasted as its id, a comment after it), so nothing of it is echoed. Every copy of the
//! key made while parsing is wiped (`zeroize`) when dropped. The same parser serves the host,
//! and every engine through the module's `init` (`"key_file"`, ABI.md).

use crate::key::{self, valid_id, Key};
use crate::{Error, KeyFileRule};

impl Key {
    /// Parses a key file: one `id:base64` per line (a bare `base64` line means id `k1`). The
    /// first key masks; all of them unmask. `#` starts a comment line. Errors name the line
    /// and the rule, never the line's text.
    pub fn parse_key_file(text: &str) -> Result<Vec<Key>, Error> {
        parse(text)
    }
}

/// Parses the text of a key file: `id:base64` lines (a bare `base64` line means id `k1`). The
/// first key masks; all of them unmask. Blank lines and lines starting with `#` are skipped.
fn parse(text: &str) -> Result<Vec<Key>, Error> {
    let mut keys: Vec<(usize, Key)> = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let key = parse_line(line, &keys).map_err(|rule| Error::KeyFile { line: number, rule })?;
        keys.push((number, key));
    }
    if keys.is_empty() {
        return Err(Error::NoKey);
    }
    Ok(keys.into_iter().map(|(_, k)| k).collect())
}

/// One key line, given the keys (and their line numbers) read before it.
fn parse_line(line: &str, earlier: &[(usize, Key)]) -> Result<Key, KeyFileRule> {
    if line.contains('\r') {
        return Err(KeyFileRule::CarriageReturn);
    }
    if line.contains(char::is_whitespace) {
        return Err(KeyFileRule::Whitespace);
    }
    if line.contains('#') {
        return Err(KeyFileRule::CommentAfterKey);
    }
    let (id, b64) = line.split_once(':').unwrap_or(("k1", line));
    if b64.contains(':') {
        return Err(KeyFileRule::ExtraColon);
    }
    if !valid_id(id) {
        let reversed = valid_id(b64) && id.len() > 16;
        return Err(if reversed { KeyFileRule::Reversed } else { KeyFileRule::InvalidId });
    }
    // Ids are not echoed: `id` may be a piece of a key split at a stray `:`.
    if let Some((first_line, _)) = earlier.iter().find(|(_, k)| k.id() == id) {
        return Err(KeyFileRule::DuplicateId { first_line: *first_line });
    }
    let bytes = key::decode(b64)?;
    Ok(Key::new(id, *bytes).expect("the id was checked above"))
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    use super::*;
    use crate::key::KEY_LEN;

    /// The malformed key files every engine refuses (tests/vectors/key_files.md).
    const FIXTURE: &str = include_str!("../../tests/vectors/key_files.jsonl");

    /// A key whose every 8-byte window and 8-character base64 window is distinct from the
    /// format's own text (bytes 0x80.. never appear in an error message's ASCII).
    fn key_bytes(seed: u8) -> [u8; KEY_LEN] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(seed) | 0x80)
    }

    /// The first 8-character window of the key (base64 text or raw bytes) found in `shown`.
    fn leaked(shown: &[u8], b64: &str, bytes: &[u8]) -> Option<String> {
        let windows = b64.as_bytes().windows(8).chain(bytes.windows(8));
        windows
            .into_iter()
            .find(|w| shown.windows(8).any(|s| s == *w))
            .map(|w| String::from_utf8_lossy(w).into_owned())
    }

    /// A fixture case: its name, the key file's text, and the line, rule code and words its
    /// error must have.
    struct Case {
        name: String,
        text: String,
        line: usize,
        rule: String,
        says: String,
    }

    /// The fixture with its placeholders replaced by `key` and `other` (standard base64).
    fn malformed(key: &str, other: &str) -> Vec<Case> {
        let mut mangled = key.to_owned();
        mangled.replace_range(40..41, "!");
        let urlsafe = key.replace('+', "-").replace('/', "_");
        assert_ne!(urlsafe, key, "the test key must hold `+` or `/`");
        FIXTURE
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("fixture line is JSON");
                let field = |name: &str| v[name].as_str().expect(name).to_owned();
                let mut text = field("text")
                    .replace("{key}", key)
                    .replace("{other}", other)
                    .replace("{key_mangled}", &mangled)
                    .replace("{key_urlsafe}", &urlsafe);
                while let Some(start) = text.find("{key[") {
                    let end = start + text[start..].find("]}").expect("slice placeholder ends");
                    let (from, to) = text[start + 5..end].split_once("..").expect("a range");
                    let from = if from.is_empty() { 0 } else { from.parse().unwrap() };
                    let to = if to.is_empty() { key.len() } else { to.parse().unwrap() };
                    text.replace_range(start..end + 2, &key[from..to]);
                }
                assert!(!text.contains('{'), "unknown placeholder in {l}");
                Case {
                    name: field("name"),
                    text,
                    line: v["line"].as_u64().expect("line") as usize,
                    rule: field("rule"),
                    says: field("says"),
                }
            })
            .collect()
    }

    #[test]
    fn malformed_key_files_name_the_line_and_rule_and_never_the_key() {
        let bytes = key_bytes(11);
        let b64 = STANDARD.encode(bytes);
        assert_eq!(b64.len(), 88);
        let other = STANDARD.encode(key_bytes(99));
        let cases = malformed(&b64, &other);
        assert!(cases.len() >= 17, "the fixture lost cases: {}", cases.len());
        for case in cases {
            let (text, line, name) = (&case.text, case.line, &case.name);
            let err = Key::parse_key_file(text).map(|_| ()).expect_err(name);
            let Error::KeyFile { line: got, rule } = &err else { panic!("{name}: {err:?}") };
            assert_eq!((*got, rule.code()), (line, case.rule.as_str()), "{name}");
            for shown in [err.to_string(), format!("{err:?}")] {
                let named = [format!("line {line}"), format!("line: {line}")];
                assert!(named.iter().any(|n| shown.contains(n)), "{name}: {shown}");
                assert!(shown.contains(&case.says), "{name} should say {:?}: {shown}", case.says);
                if let Some(w) = leaked(shown.as_bytes(), &b64, &bytes) {
                    panic!("{name}: the error shows key material {w:?}: {shown}");
                }
                if let Some(w) = leaked(shown.as_bytes(), &other, &key_bytes(99)) {
                    panic!("{name}: the error shows key material {w:?}: {shown}");
                }
            }
        }
    }

    #[test]
    fn the_fixture_covers_every_rule() {
        let b64 = STANDARD.encode(key_bytes(11));
        let cases = malformed(&b64, &STANDARD.encode(key_bytes(99)));
        for code in KeyFileRule::CODES {
            assert!(cases.iter().any(|c| c.rule == code), "no fixture case for {code}");
        }
        for case in &cases {
            assert!(KeyFileRule::CODES.contains(&case.rule.as_str()), "{}", case.name);
        }
    }

    #[test]
    fn key_file_lines_round_trip_and_never_print_the_key() {
        let k = Key::new("k1", key_bytes(3)).unwrap();
        let parsed =
            Key::parse_key_file(&format!("# comment\n{}\n", *k.to_key_file_line())).unwrap();
        assert_eq!(parsed[0].bytes(), k.bytes());
        assert_eq!(format!("{:?}", parsed[0]), "Key(k1, <redacted>)");
        assert!(matches!(Key::parse_key_file("k1:abc"), Err(Error::KeyFile { line: 1, .. })));
        assert!(Key::parse_key_file(&format!("K.1:{}", STANDARD.encode([0u8; 64]))).is_err());
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
