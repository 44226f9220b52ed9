//! One named AES-256-SIV key, and the one check of a key's text (standard base64 of exactly
//! 64 bytes) and of its id that both ways of giving keys share: the key file (`keyfile`) and
//! the `keys` list of the config JSON ([`Key::from_base64`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, KeyFileRule};

/// Bytes of an AES-256-SIV key (two AES-256 keys: CMAC's and CTR's).
pub const KEY_LEN: usize = 64;

/// One named 64-byte key (`k1`, `k2`, ...). The id prefixes every mask, so a key can be rotated
/// and masks made with an older key can still be recovered.
#[derive(Clone)]
pub struct Key {
    id: String,
    bytes: [u8; KEY_LEN],
}

/// The key bytes are wiped when a key is dropped (copies made by `Clone` are wiped too).
impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, <redacted>)", self.id)
    }
}

impl Key {
    pub fn new(id: &str, bytes: [u8; KEY_LEN]) -> Result<Self, Error> {
        if !valid_id(id) {
            // Not echoed: a malformed id may be key material (a key line written backwards).
            return Err(Error::Key {
                id: "(not shown)".into(),
                reason: "a key id is 1-16 characters of a-z and 0-9".into(),
            });
        }
        Ok(Key { id: id.to_owned(), bytes })
    }

    /// Decodes standard base64 of exactly 64 bytes (surrounding whitespace is ignored here; a
    /// key file refuses it, see `keyfile`).
    pub fn from_base64(id: &str, text: &str) -> Result<Self, Error> {
        let bytes = decode(text.trim()).map_err(|rule| Error::Key {
            id: if valid_id(id) { id } else { "(not shown)" }.to_owned(),
            reason: rule.to_string(),
        })?;
        Key::new(id, *bytes)
    }

    /// The key-file line for this key (what `maskflow keygen` writes).
    pub fn to_key_file_line(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}:{}", self.id, &*Zeroizing::new(STANDARD.encode(self.bytes))))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

/// The 64 key bytes of standard base64 `text`, or which rule it breaks ([`KeyFileRule::NotBase64`]
/// or [`KeyFileRule::KeyLength`]: neither shows any of the text). Every copy is wiped on drop.
pub(crate) fn decode(text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyFileRule> {
    let bytes = Zeroizing::new(
        STANDARD.decode(text).map_err(|_| KeyFileRule::NotBase64 { chars: text.len() })?,
    );
    let mut exact = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(KeyFileRule::KeyLength { bytes: bytes.len() });
    }
    exact.copy_from_slice(&bytes);
    Ok(exact)
}

/// A key id: 1-16 characters of `a-z0-9`.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 16
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_base64_checks_what_the_key_file_checks_and_never_shows_the_key() {
        let b64 = STANDARD.encode([0xA5u8; KEY_LEN]);
        assert_eq!(Key::from_base64("k2", &format!(" {b64}\n")).unwrap().bytes, [0xA5; KEY_LEN]);
        let short = &b64[..80];
        let err = Key::from_base64("k1", short).unwrap_err();
        assert_eq!(
            err,
            Error::Key {
                id: "k1".into(),
                reason: KeyFileRule::KeyLength { bytes: 60 }.to_string()
            }
        );
        let err = Key::from_base64("k1", &format!("{}!", &b64[..87])).unwrap_err();
        assert_eq!(
            err,
            Error::Key {
                id: "k1".into(),
                reason: KeyFileRule::NotBase64 { chars: 88 }.to_string()
            }
        );
        // A bad id is not shown: it may be a piece of the key.
        let err = Key::from_base64(&b64[..20], &b64).unwrap_err().to_string();
        assert!(!err.contains(&b64[..20]), "{err}");
    }

    #[test]
    fn ids_are_one_to_sixteen_lowercase_letters_or_digits() {
        for good in ["k1", "a", "0123456789abcdef"] {
            assert!(valid_id(good), "{good}");
        }
        for bad in ["", "K1", "k.1", "k-1", "kéy", "0123456789abcdefg", "k 1"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
