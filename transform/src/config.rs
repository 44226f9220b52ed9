//! The field mapping is data: which input path feeds which column, what kind of value it is,
//! whether it is required, masked, and how long it may be. [`Mapping::user_logins`] is the
//! default; a JSON config passed to `init` (ABI.md) may replace it.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::mask::NONCE_LEN;

/// Per-column AES-SIV nonces of the default mapping (16 ASCII bytes each). They keep the masks
/// of different columns in different domains: the same string masks differently as an ip and
/// as a device id. Changing one changes every mask of that column.
pub const IP_NONCE: &str = "maskflow.ip.v001";
pub const DEVICE_ID_NONCE: &str = "maskflow.did.v01";
/// Nonce for the encrypted raw body of a rejected message.
pub const RAW_BODY_NONCE: &str = "maskflow.raw.v01";

/// What `init` receives (ABI.md): keys plus an optional mapping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[{"id": "k1", "key": "<base64 of 64 bytes>"}]`; the first masks, all unmask.
    pub keys: Vec<KeyConfig>,
    #[serde(default = "Mapping::user_logins")]
    pub mapping: Mapping,
    /// Slots of the per-column mask cache; 0 disables it.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

pub(crate) fn default_cache_size() -> usize {
    4096
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub id: String,
    pub key: String,
}

/// The key's base64 is wiped when the config is dropped.
impl Drop for KeyConfig {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyConfig({}, <redacted>)", self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub columns: Vec<Column>,
    /// Deepest nesting of objects and arrays accepted (the top-level object is depth 1).
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_max_depth() -> usize {
    32
}

fn default_max_body_bytes() -> usize {
    256 * 1024
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Output column name.
    pub name: String,
    /// Dotted input path (`device.id`); absent for `sent_date`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub required: bool,
    /// Maximum length in characters of the value written (for masked columns: of the mask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// Present means masked, with this 16-byte ASCII nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_nonce: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A JSON string, trimmed.
    #[default]
    Text,
    /// A JSON string holding an IPv4/IPv6 address, canonicalised.
    Ip,
    /// A version string or number, encoded as an integer (see `version`).
    Version,
    /// The UTC date of the message's sent timestamp (no input path).
    SentDate,
}

impl Mapping {
    /// The `user_logins` table.
    pub fn user_logins() -> Self {
        let col = |name: &str, path: &str, kind, required, max_len, nonce: Option<&str>| Column {
            name: name.into(),
            path: (kind != Kind::SentDate).then(|| path.into()),
            kind,
            required,
            max_len,
            mask_nonce: nonce.map(Into::into),
        };
        Mapping {
            columns: vec![
                col("user_id", "user_id", Kind::Text, true, Some(128), None),
                col("device_type", "device_type", Kind::Text, false, Some(32), None),
                col("masked_ip", "ip", Kind::Ip, false, Some(256), Some(IP_NONCE)),
                col(
                    "masked_device_id",
                    "device_id",
                    Kind::Text,
                    false,
                    Some(256),
                    Some(DEVICE_ID_NONCE),
                ),
                col("locale", "locale", Kind::Text, false, Some(32), None),
                col("app_version", "app_version", Kind::Version, false, None, None),
                col("create_date", "", Kind::SentDate, false, None, None),
            ],
            max_depth: default_max_depth(),
            max_body_bytes: default_max_body_bytes(),
        }
    }

    /// Checks the mapping as a whole, so that `Transformer::new` fails early and clearly.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.columns.is_empty() || self.columns.len() > 64 {
            return bad("a mapping has 1 to 64 columns".into());
        }
        if !(1..=100).contains(&self.max_depth) {
            return bad("max_depth must be between 1 and 100".into());
        }
        for (i, c) in self.columns.iter().enumerate() {
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("column `{}` appears twice", c.name));
            }
            match (&c.path, c.kind) {
                (Some(_), Kind::SentDate) => {
                    return bad(format!("column `{}`: sent_date takes no path", c.name))
                }
                (None, k) if k != Kind::SentDate => {
                    return bad(format!("column `{}` needs a path", c.name))
                }
                (Some(p), _) if p.split('.').any(str::is_empty) => {
                    return bad(format!("column `{}`: path `{p}` has an empty segment", c.name))
                }
                _ => {}
            }
            if let Some(nonce) = &c.mask_nonce {
                if nonce.len() != NONCE_LEN {
                    return bad(format!(
                        "column `{}`: mask_nonce must be {NONCE_LEN} bytes",
                        c.name
                    ));
                }
                if !matches!(c.kind, Kind::Text | Kind::Ip) {
                    return bad(format!(
                        "column `{}`: only text and ip columns can be masked",
                        c.name
                    ));
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn nonce_bytes(text: &str) -> [u8; NONCE_LEN] {
    text.as_bytes().try_into().expect("nonce length checked by Mapping::validate")
}
