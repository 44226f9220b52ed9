//! KMS-wrapped lines of a key file: `ID:kms:KEY_ARN:CIPHERTEXT` (base64 of KMS's ciphertext
//! blob), beside plain `ID:base64` lines, in any source. They are found here, unwrapped with
//! `kms:Decrypt` (`aws/kms.rs`), and put back as plain lines in place, so the one key file
//! parser (`Key::parse_key_file`) sees the text it always sees: same line numbers in errors,
//! same rules (ids used twice, the first key masks).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::error::WrappedRule;
use super::{KeyError, KeySource};
use crate::aws::region_of_arn;

/// An AES-256-SIV key's length.
const KEY_LEN: usize = maskflow_transform::mask::KEY_LEN;

/// A wrapped line: where, the key id it is for, the KMS key's ARN and the ciphertext.
pub(super) struct Wrapped<'a> {
    pub(super) line: usize,
    pub(super) id: &'a str,
    pub(super) key_arn: &'a str,
    pub(super) ciphertext: Vec<u8>,
}

/// The wrapped lines of `text` (none for a plain key file). A malformed one is refused by its
/// number and rule, never its text.
pub(super) fn find<'a>(text: &'a str, from: &KeySource) -> Result<Vec<Wrapped<'a>>, KeyError> {
    let mut found = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let Some((id, rest)) = line.split_once(':') else { continue };
        let Some(rest) = rest.strip_prefix("kms:") else { continue };
        if line.starts_with('#') {
            continue;
        }
        let number = index + 1;
        let bad = |rule| KeyError::WrappedLine { from: from.clone(), line: number, rule };
        if line.contains(char::is_whitespace) {
            return Err(bad(WrappedRule::Whitespace));
        }
        if !valid_id(id) {
            return Err(bad(WrappedRule::InvalidId));
        }
        let Some((key_arn, b64)) = rest.rsplit_once(':') else {
            return Err(bad(WrappedRule::NoKeyArn));
        };
        if !key_arn.contains(":kms:") || region_of_arn(key_arn).is_none() {
            return Err(bad(WrappedRule::NotAnArn));
        }
        let ciphertext = match STANDARD.decode(b64) {
            Ok(bytes) if !bytes.is_empty() => bytes,
            _ => return Err(bad(WrappedRule::NotBase64)),
        };
        found.push(Wrapped { line: number, id, key_arn, ciphertext });
    }
    Ok(found)
}

/// `text` with each wrapped line replaced by its plain `id:base64` line (`clear[i]` is the
/// unwrapped key of `wrapped[i]`). Written into a buffer that never moves while it grows, and
/// wiped when dropped.
pub(super) fn substitute(
    text: &str,
    wrapped: &[Wrapped<'_>],
    clear: &[Zeroizing<Vec<u8>>],
    from: &KeySource,
) -> Result<Zeroizing<String>, KeyError> {
    // A plain line is never longer than the wrapped one it replaces: this never reallocates.
    let mut out = Zeroizing::new(String::with_capacity(text.len() + 1));
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        match wrapped.iter().position(|w| w.line == index + 1) {
            None => out.push_str(line),
            Some(i) if clear[i].len() != KEY_LEN => {
                return Err(KeyError::WrappedLine {
                    from: from.clone(),
                    line: index + 1,
                    rule: WrappedRule::UnwrappedLength { bytes: clear[i].len() },
                })
            }
            Some(i) => {
                out.push_str(wrapped[i].id);
                out.push(':');
                STANDARD.encode_string(&*clear[i], &mut out);
            }
        }
    }
    Ok(out)
}

/// A key id: 1-16 characters of a-z and 0-9 (as the key file parser's).
fn valid_id(id: &str) -> bool {
    (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn from() -> KeySource {
        KeySource::Env("MASKFLOW_KEY".into())
    }

    #[test]
    fn wrapped_lines_are_found_and_replaced_in_place() {
        let plain = format!("k1:{}", STANDARD.encode([1u8; 64]));
        let wrapped = format!("k2:kms:{ARN}:{}", STANDARD.encode([9u8; 180]));
        let text = format!("# rotated\n{wrapped}\n{plain}\n");
        let found = find(&text, &from()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].id, found[0].key_arn), (2, "k2", ARN));
        assert_eq!(found[0].ciphertext, vec![9u8; 180]);
        let clear = [Zeroizing::new(vec![7u8; 64])];
        let out = substitute(&text, &found, &clear, &from()).unwrap();
        let expected = format!("# rotated\nk2:{}\n{plain}\n", STANDARD.encode([7u8; 64]));
        assert_eq!(*out, expected);
        let keys = maskflow_transform::Key::parse_key_file(&out).unwrap();
        assert_eq!(keys.iter().map(|k| k.id()).collect::<Vec<_>>(), ["k2", "k1"]);
    }

    #[test]
    fn malformed_wrapped_lines_name_the_line_and_rule() {
        let b64 = STANDARD.encode([9u8; 180]);
        for (line, rule) in [
            (format!("K2:kms:{ARN}:{b64}"), "key id"),
            (format!("k2:kms:{b64}"), "ARN"),
            (format!("k2:kms:alias/maskflow:{b64}"), "ARN"),
            (format!("k2:kms:{ARN}:{}", &b64[1..]), "base64"),
            (format!("k2:kms:{ARN}:{b64} "), "spaces"),
            (format!("k2:kms:{ARN}:{b64}\r"), "carriage return"),
        ] {
            let text = format!("\n{line}\n");
            let err = find(&text, &from()).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("line 2") && err.contains(rule), "{line}: {err}");
            assert!(!err.contains(&b64[..16]), "{err}");
        }
        let text = format!("k2:kms:{ARN}:{b64}");
        let found = find(&text, &from()).unwrap();
        let err = substitute(&text, &found, &[Zeroizing::new(vec![1; 32])], &from()).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }
}
