//! The raw-body cipher on its own, for hosts that record rejections of their own (a module that
//! traps on a message, a database that refuses a row) without running a whole [`Transformer`].

use crate::config::{nonce_bytes, RAW_BODY_NONCE};
use crate::error::Error;
use crate::key::Key;
use crate::mask::ColumnCipher;

/// Encrypts message bodies exactly as rejections carry them (`k1.<base64url>`), with the
/// first (active) key, so `maskflow unmask` recovers them like any rejection's body.
///
/// [`Transformer`]: crate::Transformer
#[derive(Clone)]
pub struct BodySealer {
    cipher: ColumnCipher,
}

impl BodySealer {
    /// The first key masks, as for the transform.
    pub fn new(keys: &[Key]) -> Result<Self, Error> {
        let active = keys.first().ok_or(Error::NoKey)?;
        Ok(BodySealer { cipher: ColumnCipher::new(active, &nonce_bytes(RAW_BODY_NONCE)) })
    }

    pub fn seal(&self, body: &[u8]) -> String {
        self.cipher.mask(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::transformer::{Message, Transformer};

    #[test]
    fn seals_as_the_transform_rejects() {
        let keys = vec![Key::new("k1", [3; 64]).unwrap()];
        let mut transformer = Transformer::new(Config::with_keys(keys.clone())).unwrap();
        let body = b"not json";
        let rejection =
            transformer.transform(&Message { id: "m", body, sent_timestamp_ms: 0 }).unwrap_err();
        let sealed = BodySealer::new(&keys).unwrap().seal(body);
        assert_eq!(sealed, rejection.encrypted_body);
        assert_eq!(transformer.unmask(&sealed).unwrap().value, body);
    }
}
