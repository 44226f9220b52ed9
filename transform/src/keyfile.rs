//! The key file (and `MASKFLOW_KEY`, which holds the same text): one `id:base64` per line.
//!
//! Every error names the line and the rule it breaks ([`KeyFileRule`]), and never any part of
//! the line: a line that breaks a rule may hold key material anywhere (reversed `<base64>:k1`,
//! the key pasted as its id, a comment after it), so nothing of it is echoed. Every copy of the
//! key made while parsing is wiped (`zeroize`) when dropped. The same parser serves the host,
//! and every engine through the module's `init` (`"key_file"`, ABI.md).

use crate::error::{Error, KeyFileRule};
use crate::key::{self, valid_id, Key};

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

    // The malformed key files of tests/vectors/key_files.jsonl are checked against this parser,
    // the CLI and every engine by tests/tests/secrets.rs (and integrations/*/tests).

    /// A key whose every 8-byte window and 8-character base64 window is distinct from the
    /// format's own text (bytes 0x80.. never appear in an error message's ASCII).
    fn key_bytes(seed: u8) -> [u8; KEY_LEN] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(seed) | 0x80)
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
