//! `init`'s config JSON (ABI.md): the keys, as a `keys` list or as a key file's text
//! (`key_file`, parsed by the host's own [`Key::parse_key_file`]), then the mapping.
//!
//! Errors never show key material: serde's messages quote the value they did not expect
//! (`invalid type: string "k1:..."`), so every field but the mapping is read with messages of
//! its own, and serde's are dropped. (A `serde_json::Value` would do the same in fewer lines
//! and add 36 KB to the module.)

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use crate::config::{default_cache_size, Config, KeyConfig, Mapping};
use crate::error::Error;
use crate::key::Key;

const FIELDS: [&str; 4] = ["keys", "key_file", "mapping", "cache_size"];

/// The config's fields, unread: each is parsed on its own, with its own errors.
#[derive(Default)]
struct Fields<'a> {
    keys: Option<&'a RawValue>,
    key_file: Option<&'a RawValue>,
    mapping: Option<&'a RawValue>,
    cache_size: Option<&'a RawValue>,
}

impl Config {
    /// Reads `init`'s config JSON: exactly one of `keys` (`[{"id", "key"}]`) and `key_file`
    /// (the text of a key file, with every rule the host applies to one), then the optional
    /// `mapping` and `cache_size`.
    pub fn from_json(text: &str) -> Result<Config, Error> {
        let bad = |message: &str| Error::Config(message.to_owned());
        // Errors of the object itself: a syntax error names a position, never the text, and
        // an unknown field is named only where it cannot be key material (`FieldsVisitor`).
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = de
            .deserialize_any(FieldsVisitor)
            .and_then(|fields| de.end().map(|()| fields))
            .map_err(|e| Error::Config(e.to_string()))?;
        let keys = match (fields.keys, fields.key_file) {
            (Some(keys), None) => {
                serde_json::from_str::<Vec<KeyConfig>>(keys.get()).map_err(|_| {
                    bad("`keys` is a list of {\"id\": ..., \"key\": <base64>} objects (a key \
                     file's text goes in `key_file`)")
                })?
            }
            (None, Some(file)) => {
                let text = serde_json::from_str::<String>(file.get())
                    .map_err(|_| bad("`key_file` is the text of a key file (a JSON string)"))?;
                let text = Zeroizing::new(text);
                Key::parse_key_file(&text)?.iter().map(KeyConfig::from).collect()
            }
            (Some(_), Some(_)) => return Err(bad("give `keys` or `key_file`, not both")),
            (None, None) => {
                return Err(bad("no key: give `key_file` (a key file's text) or `keys`"))
            }
        };
        let cache_size = match fields.cache_size {
            None => default_cache_size(),
            Some(raw) => serde_json::from_str::<u32>(raw.get())
                .map_err(|_| bad("`cache_size` is a whole number of slots (0 disables)"))?
                as usize,
        };
        // The mapping's own errors may quote its text: column names, paths, kinds.
        let mapping = match fields.mapping {
            None => Mapping::user_logins(),
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|e| Error::Config(format!("mapping: {e}")))?,
        };
        Ok(Config { keys, mapping, cache_size })
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the config, a JSON object (ABI.md `init`)")
    }

    /// Not serde's default, which quotes the string (a key file's text given as the config).
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Fields<'de>, E> {
        Err(E::custom("the config is a JSON object (ABI.md `init`), not a string"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match &*name {
                "keys" => &mut fields.keys,
                "key_file" => &mut fields.key_file,
                "mapping" => &mut fields.mapping,
                "cache_size" => &mut fields.cache_size,
                other => {
                    return Err(de::Error::custom(format_args!(
                        "unknown field {}; the fields are {FIELDS:?}",
                        shown(other)
                    )))
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format_args!("field `{name}` given twice")));
            }
            *slot = Some(map.next_value()?);
        }
        Ok(fields)
    }
}

/// A field name as an error may show it: only when it cannot be key material.
fn shown(name: &str) -> String {
    let plain = name.len() <= 32 && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain {
        format!("`{name}`")
    } else {
        "(name not shown)".into()
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    use super::*;
    use crate::error::KeyFileRule;
    use crate::transformer::Transformer;

    fn b64(seed: u8) -> String {
        STANDARD.encode([seed | 0x80; 64])
    }

    #[test]
    fn a_key_file_gives_the_same_keys_as_the_list() {
        let (a, b) = (b64(1), b64(2));
        let from_file = Config::from_json(
            &serde_json::json!({"key_file": format!("k2:{a}\nk1:{b}\n")}).to_string(),
        )
        .unwrap();
        let from_list = Config::from_json(
            &serde_json::json!({"keys": [{"id": "k2", "key": a}, {"id": "k1", "key": b}]})
                .to_string(),
        )
        .unwrap();
        let ids =
            |c: &Config| c.keys.iter().map(|k| (k.id.clone(), k.key.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&from_file), ids(&from_list));
        assert_eq!(from_file.mapping, Mapping::user_logins());
        assert_eq!(from_file.cache_size, 4096);
        let t = Transformer::new(from_file).unwrap();
        assert_eq!(t.columns().len(), 7);
    }

    #[test]
    fn the_key_file_is_held_to_the_hosts_rules() {
        let crlf = serde_json::json!({"key_file": format!("k1:{}\r\n", b64(3))}).to_string();
        assert_eq!(
            Config::from_json(&crlf).unwrap_err(),
            Error::KeyFile { line: 1, rule: KeyFileRule::CarriageReturn }
        );
        let none = serde_json::json!({"key_file": "# nothing\n"}).to_string();
        assert_eq!(Config::from_json(&none).unwrap_err(), Error::NoKey);
    }

    #[test]
    fn exactly_one_way_of_giving_keys() {
        let key = b64(4);
        for config in [
            serde_json::json!({}),
            serde_json::json!({"keys": [{"id": "k1", "key": key}], "key_file": format!("k1:{key}")}),
            serde_json::json!({"key_file": [format!("k1:{key}")]}),
        ] {
            let err = Config::from_json(&config.to_string()).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{config}: {err:?}");
            assert!(!err.to_string().contains(&key[..12]), "{err}");
        }
    }

    #[test]
    fn misshaped_keys_never_show_key_material() {
        let key = b64(5);
        let line = format!("k1:{key}");
        for config in [
            serde_json::json!({"keys": line}),
            serde_json::json!({"keys": [line]}),
            serde_json::json!({"keys": [{"id": "k1", "key": key, "note": line}]}),
            serde_json::json!({"keys": [{"id": "k1", "key": [key]}]}),
            serde_json::json!({"keys": [{"id": "k1", "key": key}, {"k1": key}]}),
            serde_json::json!({"keys": [{"id": "k1", "key": key}], line.clone(): 1}),
            serde_json::json!({"keys": [{"id": "k1", "key": key}], "mapping": 1, "cache_size": key}),
            serde_json::json!(line),
        ] {
            let err = Config::from_json(&config.to_string()).unwrap_err();
            for shown in [err.to_string(), format!("{err:?}")] {
                for window in key.as_bytes().windows(8) {
                    let window = std::str::from_utf8(window).unwrap();
                    assert!(!shown.contains(window), "{config}: shows {window:?}: {shown}");
                }
            }
        }
    }

    #[test]
    fn unknown_fields_are_named_when_they_cannot_be_key_material() {
        let err = Config::from_json(r#"{"key_fle": "x"}"#).unwrap_err().to_string();
        assert!(err.contains("`key_fle`") && err.contains("key_file"), "{err}");
        let err = Config::from_json(r#"{"K1:ABC": "x"}"#).unwrap_err().to_string();
        assert!(err.contains("not shown") && !err.contains("ABC"), "{err}");
        let err = Config::from_json("[1]").unwrap_err().to_string();
        assert!(err.contains("JSON object"), "{err}");
        let err = Config::from_json(r#"{"keys": [], "keys": []}"#).unwrap_err().to_string();
        assert!(err.contains("`keys` given twice"), "{err}");
    }
}
