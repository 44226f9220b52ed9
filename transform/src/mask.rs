//! Deterministic masking with AES-256-SIV (RFC 5297), byte-identical to the `aes-siv` crate's
//! `Aes256SivAead::encrypt(nonce, value)` (and so to VRL's `encrypt(v, "AES-256-SIV", key, iv)`).
//!
//! Why not call `aes-siv` per value: its AEAD API re-derives the same things every call (CMAC of
//! the zero block, of the empty associated data, of the nonce; the CTR key schedule). The nonce
//! of a column is a constant, so that whole S2V prefix is a constant too. [`ColumnCipher`]
//! computes it once and leaves two AES block operations for a value of up to 16 bytes. The
//! `aes-siv` crate is still used to decrypt and, in the tests, as the reference.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes256;
use aes_siv::aead::Aead;
use aes_siv::Aes256SivAead;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dbl::Dbl;

use crate::error::Error;

pub use crate::key::{Key, KEY_LEN};
pub const NONCE_LEN: usize = 16;
/// Length of the SIV tag that precedes the ciphertext.
pub const TAG_LEN: usize = 16;

type Block = aes::Block;

/// The nonce of [`Key::fingerprint`]'s domain: no column or body uses it.
const FINGERPRINT_NONCE: &[u8; NONCE_LEN] = b"maskflow.key.fpr";

impl Key {
    /// A one-way fingerprint of the key, safe to store beside the data (it is the mask of a
    /// fixed text in a domain of its own, so it reveals nothing a mask would not): two keys
    /// with the same id and different bytes have different fingerprints.
    pub fn fingerprint(&self) -> String {
        ColumnCipher::new(self, FINGERPRINT_NONCE).mask(b"maskflow key fingerprint")
    }

    /// Decrypts `tag || ciphertext` made under `nonce`; `None` when the tag does not verify.
    fn open(&self, nonce: &[u8; NONCE_LEN], sealed: &[u8]) -> Option<Vec<u8>> {
        let aead = <Aes256SivAead as aes_siv::aead::KeyInit>::new(&(*self.bytes()).into());
        aead.decrypt(aes_siv::Nonce::from_slice(nonce), sealed).ok()
    }
}

/// AES-256-SIV encryption under one key and one fixed nonce, with the S2V prefix precomputed.
/// CMAC and CTR are written out over the two expanded keys (RFC 4493, RFC 5297 section 2.6):
/// nothing is cloned per value (cloning the `cmac` and `ctr` crates' states copied both key
/// schedules, about 2 KB, for every mask), and a value of up to 16 bytes costs two AES blocks.
#[derive(Clone)]
pub struct ColumnCipher {
    key_id: String,
    /// CMAC's cipher, keyed with the first half of the key, and its subkeys K1, K2.
    mac_key: Aes256,
    k1: Block,
    k2: Block,
    /// CTR key (second half), expanded once.
    ctr_key: Aes256,
    /// S2V state after the zero block, the empty associated data and the nonce.
    prefix: Block,
    /// Both halves' encryption of the zero block: equal for ciphers of the same key, whose
    /// blocks can then share one AES call ([`ColumnCipher::mask_pair_into`]).
    key_check: [Block; 2],
}

impl ColumnCipher {
    pub fn new(key: &Key, nonce: &[u8; NONCE_LEN]) -> Self {
        let (mac_key, ctr_key) = key.bytes().split_at(KEY_LEN / 2);
        let mac_key = Aes256::new_from_slice(mac_key).expect("32-byte CMAC key");
        let mut l = Block::default();
        mac_key.encrypt_block(&mut l);
        let k1 = l.dbl();
        let k2 = k1.dbl();
        let ctr_key = Aes256::new_from_slice(ctr_key).expect("32-byte AES key");
        let mut ctr_check = Block::default();
        ctr_key.encrypt_block(&mut ctr_check);
        let mut cipher = ColumnCipher {
            key_check: [l, ctr_check],
            key_id: key.id().to_owned(),
            mac_key,
            k1,
            k2,
            ctr_key,
            prefix: Block::default(),
        };
        // RFC 5297 S2V over the headers [associated data = "", nonce], exactly as aes-siv's AEAD.
        let mut prefix = cipher.cmac(&[0u8; 16]);
        for header in [&[][..], &nonce[..]] {
            prefix = prefix.dbl();
            xor(&mut prefix, &cipher.cmac(header));
        }
        cipher.prefix = prefix;
        cipher
    }

    /// AES-CMAC (RFC 4493) of `message` under the first half of the key.
    fn cmac(&self, message: &[u8]) -> Block {
        let blocks = message.len().div_ceil(16).max(1);
        let (body, last) = message.split_at((blocks - 1) * 16);
        let mut x = Block::default();
        for block in body.chunks_exact(16) {
            xor(&mut x, block);
            self.mac_key.encrypt_block(&mut x);
        }
        xor(&mut x, last);
        if last.len() == 16 {
            xor(&mut x, &self.k1);
        } else {
            x[last.len()] ^= 0x80;
            xor(&mut x, &self.k2);
        }
        self.mac_key.encrypt_block(&mut x);
        x
    }

    /// Appends `tag || ciphertext` of `plaintext` to `out`.
    pub fn seal_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(plaintext);
        let text = &mut out[start + TAG_LEN..];
        // S2V's last step: CMAC(plaintext xorend prefix), or CMAC(dbl(prefix) xor pad(plaintext)).
        let tag = if text.len() >= 16 {
            let tail = text.len() - 16;
            xor_into(&mut text[tail..], &self.prefix);
            let tag = self.cmac(text);
            xor_into(&mut text[tail..], &self.prefix);
            tag
        } else {
            let mut state = self.prefix.dbl();
            xor(&mut state, text);
            state[text.len()] ^= 0x80;
            self.cmac(&state)
        };
        // CTR with the tag as the IV, bits 31 and 63 cleared (RFC 5297 section 2.6), a 128-bit
        // big-endian counter.
        let mut iv = tag;
        iv[8] &= 0x7f;
        iv[12] &= 0x7f;
        let counter = u128::from_be_bytes(iv.into());
        for (i, chunk) in text.chunks_mut(16).enumerate() {
            let mut keystream = Block::from(counter.wrapping_add(i as u128).to_be_bytes());
            self.ctr_key.encrypt_block(&mut keystream);
            xor_into(chunk, &keystream);
        }
        out[start..start + TAG_LEN].copy_from_slice(&tag);
    }

    /// CMAC's last input block for a value of under 16 bytes: `dbl(prefix) xor pad(value) xor K1`.
    fn short_block(&self, value: &[u8]) -> Block {
        let mut block = self.prefix.dbl();
        xor(&mut block, value);
        block[value.len()] ^= 0x80;
        xor(&mut block, &self.k1);
        block
    }

    /// Whether [`ColumnCipher::mask_pair_into`] can take these two (same key, short values).
    pub(crate) fn can_pair(&self, other: &ColumnCipher, a: usize, b: usize) -> bool {
        a < 16 && b < 16 && self.key_check == other.key_check && self.key_id == other.key_id
    }

    /// The masks of two values of under 16 bytes, `a` in this cipher's column and `b` in
    /// `other`'s (same key, see [`ColumnCipher::can_pair`]), appended to `out_a` and `out_b`:
    /// exactly what two `mask_into` calls append, with the two CMAC blocks in one AES call and
    /// the two CTR blocks in another (software AES, as in wasm, encrypts blocks in pairs).
    pub(crate) fn mask_pair_into(
        &self,
        a: &[u8],
        other: &ColumnCipher,
        b: &[u8],
        out_a: &mut String,
        out_b: &mut String,
    ) {
        debug_assert!(self.can_pair(other, a.len(), b.len()));
        let mut tags = [self.short_block(a), other.short_block(b)];
        self.mac_key.encrypt_blocks(&mut tags);
        let mut keystream = tags;
        for block in &mut keystream {
            block[8] &= 0x7f;
            block[12] &= 0x7f;
        }
        self.ctr_key.encrypt_blocks(&mut keystream);
        for ((value, tag, keystream), out) in
            [(a, &tags[0], &keystream[0]), (b, &tags[1], &keystream[1])]
                .into_iter()
                .zip([out_a, out_b])
        {
            let mut sealed = [0u8; TAG_LEN + 16];
            sealed[..TAG_LEN].copy_from_slice(tag);
            sealed[TAG_LEN..TAG_LEN + value.len()].copy_from_slice(value);
            xor_into(&mut sealed[TAG_LEN..TAG_LEN + value.len()], keystream);
            out.push_str(&self.key_id);
            out.push('.');
            URL_SAFE_NO_PAD.encode_string(&sealed[..TAG_LEN + value.len()], out);
        }
    }

    /// Appends the text form `<key-id>.<base64url(tag || ciphertext)>` to `out`.
    pub fn mask_into(&self, plaintext: &[u8], scratch: &mut Vec<u8>, out: &mut String) {
        scratch.clear();
        self.seal_into(plaintext, scratch);
        out.push_str(&self.key_id);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&scratch[..], out);
    }

    /// Length in characters of the mask of an `n`-byte value, without computing it.
    pub fn mask_len(&self, n: usize) -> usize {
        self.key_id.len() + 1 + (4 * (n + TAG_LEN)).div_ceil(3)
    }

    pub fn mask(&self, plaintext: &[u8]) -> String {
        let mut out = String::new();
        self.mask_into(plaintext, &mut Vec::new(), &mut out);
        out
    }
}

/// Reverses a mask: finds the key by its id and tries each nonce the mask may have been made
/// under (SIV authenticates the nonce, so only the right one verifies). Returns the index of
/// the matching nonce and the clear bytes.
pub fn unmask(
    keys: &[Key],
    nonces: &[[u8; NONCE_LEN]],
    mask: &str,
) -> Result<(usize, Vec<u8>), Error> {
    let (id, b64) =
        mask.trim().split_once('.').ok_or(Error::MaskFormat("no `.` after the key id"))?;
    let sealed = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| Error::MaskFormat("not unpadded URL-safe base64 after the key id"))?;
    if sealed.len() < TAG_LEN {
        return Err(Error::MaskFormat("too short to hold an AES-SIV tag"));
    }
    let key = keys
        .iter()
        .find(|k| k.id() == id)
        .ok_or_else(|| Error::UnknownKeyId(id.chars().take(16).collect()))?;
    nonces
        .iter()
        .enumerate()
        .find_map(|(i, nonce)| key.open(nonce, &sealed).map(|clear| (i, clear)))
        .ok_or(Error::Authentication)
}

fn xor(acc: &mut Block, other: &[u8]) {
    acc.iter_mut().zip(other).for_each(|(a, b)| *a ^= b);
}

fn xor_into(acc: &mut [u8], other: &[u8]) {
    acc.iter_mut().zip(other).for_each(|(a, b)| *a ^= b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NONCE: &[u8; 16] = b"maskflow.ip.v001";

    fn key(seed: u8) -> Key {
        Key::new("k1", std::array::from_fn(|i| seed.wrapping_add(i as u8))).unwrap()
    }

    fn reference(key: &Key, nonce: &[u8; 16], value: &[u8]) -> Vec<u8> {
        let aead = <Aes256SivAead as aes_siv::aead::KeyInit>::new(&(*key.bytes()).into());
        aead.encrypt(aes_siv::Nonce::from_slice(nonce), value).unwrap()
    }

    #[test]
    fn rfc5297_aead_matches_the_crate_at_block_boundaries() {
        let k = key(7);
        let cipher = ColumnCipher::new(&k, NONCE);
        for len in 0..70 {
            let value: Vec<u8> = (0..len as u8).collect();
            let mut out = Vec::new();
            cipher.seal_into(&value, &mut out);
            assert_eq!(out, reference(&k, NONCE, &value), "length {len}");
        }
    }

    #[test]
    fn unmask_reports_wrong_key_tampering_and_format() {
        let nonces = [*NONCE];
        let mask = ColumnCipher::new(&key(1), NONCE).mask(b"199.172.111.135");
        assert_eq!(unmask(&[key(1)], &nonces, &mask).unwrap(), (0, b"199.172.111.135".to_vec()));
        assert_eq!(unmask(&[key(2)], &nonces, &mask), Err(Error::Authentication));
        let mut tampered = mask.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            unmask(&[key(1)], &nonces, std::str::from_utf8(&tampered).unwrap()),
            Err(Error::Authentication)
        );
        assert_eq!(
            unmask(&[key(1)], &nonces, "k9.AAAAAAAAAAAAAAAAAAAAAA"),
            Err(Error::UnknownKeyId("k9".into()))
        );
        assert!(matches!(unmask(&[key(1)], &nonces, "nodot"), Err(Error::MaskFormat(_))));
        assert!(matches!(unmask(&[key(1)], &nonces, "k1.!!"), Err(Error::MaskFormat(_))));
    }

    proptest! {
        #[test]
        fn cmac_is_the_cmac_crates(seed in any::<u8>(), message in proptest::collection::vec(any::<u8>(), 0..80)) {
            use cmac::{Cmac, Mac};
            let k = key(seed);
            let cipher = ColumnCipher::new(&k, NONCE);
            let mut reference = <Cmac<Aes256> as KeyInit>::new_from_slice(&k.bytes()[..32]).unwrap();
            reference.update(&message);
            prop_assert_eq!(cipher.cmac(&message), reference.finalize().into_bytes());
        }

        #[test]
        fn paired_masks_are_the_single_masks(seed in any::<u8>(), a in proptest::collection::vec(any::<u8>(), 0..16), b in proptest::collection::vec(any::<u8>(), 0..16), other in any::<[u8; 16]>()) {
            let k = key(seed);
            let (ip, did) = (ColumnCipher::new(&k, NONCE), ColumnCipher::new(&k, &other));
            prop_assert!(ip.can_pair(&did, a.len(), b.len()));
            prop_assert!(!ip.can_pair(&ColumnCipher::new(&key(seed.wrapping_add(1)), &other), a.len(), b.len()));
            let (mut out_a, mut out_b) = (String::from(">"), String::new());
            ip.mask_pair_into(&a, &did, &b, &mut out_a, &mut out_b);
            prop_assert_eq!(&out_a[1..], ip.mask(&a));
            prop_assert_eq!(out_b, did.mask(&b));
        }

        #[test]
        fn identical_to_aes_siv_crate(seed in any::<u8>(), nonce in any::<[u8; 16]>(), value in proptest::collection::vec(any::<u8>(), 0..100)) {
            let k = key(seed);
            let mut out = Vec::new();
            ColumnCipher::new(&k, &nonce).seal_into(&value, &mut out);
            prop_assert_eq!(out, reference(&k, &nonce, &value));
        }

        #[test]
        fn deterministic_injective_and_reversible(a in ".{0,40}", b in ".{0,40}") {
            let cipher = ColumnCipher::new(&key(9), NONCE);
            let (ma, mb) = (cipher.mask(a.as_bytes()), cipher.mask(b.as_bytes()));
            prop_assert_eq!(&ma, &cipher.mask(a.as_bytes()));
            prop_assert_eq!(a == b, ma == mb);
            prop_assert_eq!(ma.len(), cipher.mask_len(a.len()));
            prop_assert_eq!(unmask(&[key(9)], &[*NONCE], &ma).unwrap().1, a.into_bytes());
        }
    }
}
