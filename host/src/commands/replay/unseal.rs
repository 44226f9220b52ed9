//! Opening rejected bodies (sealed with AES-SIV under the key that rejected them) with the key
//! file's keys. The clear body is PII: it lives in memory only, wiped when dropped, between
//! here and the module.

use maskflow_transform::{Config, Key, Transformer};
use zeroize::Zeroizing;

use super::error::Unsealable;
use crate::error::Result;

/// The column `unmask` names for a rejected message's body.
const RAW_BODY: &str = "raw_body";

pub(crate) struct Unsealer(Transformer);

impl Unsealer {
    pub(crate) fn new(keys: &[Key]) -> Result<Self> {
        let mut config = Config::with_keys(keys.to_vec());
        config.cache_size = 0;
        Ok(Unsealer(Transformer::new(config)?))
    }

    /// The clear body, or why not with the key id in front of the sealed text.
    pub(crate) fn open(&self, sealed: &str) -> Result<Zeroizing<Vec<u8>>, (String, Unsealable)> {
        match self.0.unmask(sealed) {
            Ok(clear) if clear.column == RAW_BODY => Ok(Zeroizing::new(clear.value)),
            Ok(mut clear) => {
                zeroize::Zeroize::zeroize(&mut clear.value);
                Err((key_id(sealed), Unsealable::Unreadable))
            }
            Err(maskflow_transform::Error::UnknownKeyId(_)) => {
                Err((key_id(sealed), Unsealable::KeyNotLoaded))
            }
            Err(_) => Err((key_id(sealed), Unsealable::Unreadable)),
        }
    }
}

/// The key id a sealed body names (its text before the first `.`; at most 16 characters, as
/// key ids are).
pub(crate) fn key_id(sealed: &str) -> String {
    sealed.split('.').next().unwrap_or_default().chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use maskflow_transform::BodySealer;

    #[test]
    fn bodies_open_with_their_key_and_say_why_not_otherwise() {
        let k1 = Key::new("k1", [1; 64]).unwrap();
        let k0 = Key::new("k0", [9; 64]).unwrap();
        let other_k1 = Key::new("k1", [2; 64]).unwrap();
        let unsealer = Unsealer::new(std::slice::from_ref(&k1)).unwrap();
        let body = br#"{"user_id": "u"}"#;
        let sealed = BodySealer::new(&[k1]).unwrap().seal(body);
        assert_eq!(unsealer.open(&sealed).unwrap().as_slice(), body);
        let under_k0 = BodySealer::new(&[k0]).unwrap().seal(body);
        assert_eq!(unsealer.open(&under_k0).unwrap_err(), ("k0".into(), Unsealable::KeyNotLoaded));
        let forged = BodySealer::new(&[other_k1]).unwrap().seal(body);
        assert_eq!(unsealer.open(&forged).unwrap_err(), ("k1".into(), Unsealable::Unreadable));
        assert_eq!(unsealer.open("garbage").unwrap_err().1, Unsealable::Unreadable);
    }
}
