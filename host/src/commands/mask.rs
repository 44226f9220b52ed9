//! `maskflow mask`: the mask of a clear value, as a row would carry it ("every login from
//! 203.0.113.7"). The value goes through the transform itself, not a copy of its rules: it is
//! put in a one-column body and transformed with that column's own plan (kind, trimming,
//! canonical IP form, length limit, nonce), so `::ffff:1.2.3.4`, padded or upper-case forms
//! give the row's mask, and a value the pipeline would reject gets the same reason.

use std::io::{BufRead, Write};

use maskflow_transform::{Column, Config, Key, KeyConfig, Mapping, Message, Reason, Transformer};
use serde_json::Value;

use crate::error::{Error, Result};

/// `maskflow mask`'s settings (built by `crate::cli`).
pub(crate) struct MaskConfig {
    /// The key file's keys, the masking one first.
    pub(crate) keys: Vec<Key>,
    pub(crate) mapping: Mapping,
    /// A masked column, by its name (`masked_ip`) or input path (`ip`).
    pub(crate) column: String,
    /// One mask per key instead of the masking key's only.
    pub(crate) all_keys: bool,
    /// Read one per line from stdin when empty.
    pub(crate) values: Vec<String>,
}

/// Why a value has no mask: the pipeline would reject it, for this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) reason: Reason,
    /// Names the field and the rule, never the value.
    pub(crate) message: String,
}

/// One transformer per key asked for, each masking with that key over just `column`.
pub(crate) struct Masker {
    transformers: Vec<Transformer>,
    path: Vec<String>,
}

impl Masker {
    pub(crate) fn new(
        keys: &[Key],
        mapping: &Mapping,
        column: &str,
        all_keys: bool,
    ) -> Result<Masker> {
        let masked: Vec<&Column> =
            mapping.columns.iter().filter(|c| c.mask_nonce.is_some()).collect();
        let Some(plan) =
            masked.iter().find(|c| c.name == column || c.path.as_deref() == Some(column))
        else {
            let names: Vec<&str> = masked.iter().filter_map(|c| c.path.as_deref()).collect();
            return Err(Error::usage(format!(
                "--column {column}: not a masked column; the mapping masks: {}",
                names.join(", ")
            )));
        };
        // The column alone and optional: the value is judged by its own rules only.
        let one = Mapping {
            columns: vec![Column { required: false, ..(*plan).clone() }],
            ..mapping.clone()
        };
        let active = if all_keys { keys.len() } else { 1 };
        let transformers = (0..active)
            .map(|i| {
                // Key i first (it masks), the others after it.
                let order = keys[i..=i].iter().chain(keys[..i].iter()).chain(keys[i + 1..].iter());
                let config = Config {
                    keys: order.map(KeyConfig::from).collect(),
                    mapping: one.clone(),
                    cache_size: 0,
                };
                Transformer::new(config).map_err(Error::from)
            })
            .collect::<Result<Vec<_>>>()?;
        let path = plan.path.as_deref().unwrap_or_default().split('.').map(str::to_owned).collect();
        Ok(Masker { transformers, path })
    }

    /// The masks of `value` (one per key asked for), `Ok(None)` for a value stored as NULL
    /// (empty once trimmed), or the rejection's reason and message, which name the field and
    /// never the value.
    pub(crate) fn mask(
        &mut self,
        value: &str,
    ) -> std::result::Result<Option<Vec<String>>, Refused> {
        let body = self
            .path
            .iter()
            .rev()
            .fold(Value::String(value.to_owned()), |inner, segment| {
                Value::Object([(segment.clone(), inner)].into_iter().collect())
            })
            .to_string();
        let mut masks = Vec::with_capacity(self.transformers.len());
        for transformer in &mut self.transformers {
            let message = Message { id: "mask", body: body.as_bytes(), sent_timestamp_ms: 0 };
            match transformer.transform(&message) {
                Ok(row) => match row.get(0) {
                    Some(mask) => masks.push(mask.to_owned()),
                    None => return Ok(None),
                },
                Err(rejection) => {
                    let (reason, message) = (rejection.reason, rejection.message);
                    return Err(Refused { reason, message });
                }
            }
        }
        Ok(Some(masks))
    }
}

/// Prints each value's mask(s), one per line (with `all_keys`: one line per key, the masking
/// key first). Returns how many values have no mask (rejected, or empty).
pub(crate) fn run(config: MaskConfig) -> Result<usize> {
    let mut masker = Masker::new(&config.keys, &config.mapping, &config.column, config.all_keys)?;
    let stdin_values;
    let values: Box<dyn Iterator<Item = String>> = if config.values.is_empty() {
        stdin_values = std::io::stdin().lock().lines().map_while(|l| l.ok());
        Box::new(stdin_values)
    } else {
        Box::new(config.values.into_iter())
    };
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for (n, value) in values.enumerate() {
        match masker.mask(&value) {
            Ok(Some(masks)) => {
                for mask in masks {
                    writeln!(out, "{mask}").map_err(Error::io("cannot write stdout"))?;
                }
            }
            // The value itself is never printed: it is the PII this command protects.
            Ok(None) => {
                failed += 1;
                eprintln!("maskflow: value {}: empty; a row stores it as NULL, unmasked", n + 1);
            }
            Err(Refused { reason, message }) => {
                failed += 1;
                eprintln!("maskflow: value {}: rejected: {reason} ({message})", n + 1);
            }
        }
    }
    out.flush().map_err(Error::io("cannot write stdout"))?;
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Key> {
        vec![Key::new("k2", [2; 64]).unwrap(), Key::new("k1", [1; 64]).unwrap()]
    }

    #[test]
    fn masks_as_the_row_after_the_same_normalisation() {
        let mapping = Mapping::user_logins();
        let mut ip = Masker::new(&keys(), &mapping, "ip", false).unwrap();
        let body = br#"{"user_id": "u", "ip": "10.0.0.1", "device_id": "d-1"}"#;
        let mut t = Transformer::new(Config::with_keys(keys())).unwrap();
        let row = t.transform(&Message { id: "m", body, sent_timestamp_ms: 0 }).unwrap();
        let (row_ip, row_did) = (row.get(2).unwrap().to_owned(), row.get(3).unwrap().to_owned());
        for form in ["10.0.0.1", " 10.0.0.1\t", "::ffff:10.0.0.1", "::FFFF:0a00:0001"] {
            assert_eq!(ip.mask(form), Ok(Some(vec![row_ip.clone()])), "{form:?}");
        }
        let mut did = Masker::new(&keys(), &mapping, "masked_device_id", false).unwrap();
        assert_eq!(did.mask("  d-1 "), Ok(Some(vec![row_did])));
        assert_eq!(ip.mask("   "), Ok(None));
        let rejected = ip.mask("010.0.0.1").unwrap_err();
        assert_eq!(rejected.reason, Reason::InvalidIp);
        assert!(!rejected.message.contains("010.0.0.1"), "the value leaked: {rejected:?}");
        assert_eq!(did.mask("a\0b").unwrap_err().reason, Reason::InvalidCharacter);
        assert_eq!(did.mask(&"x".repeat(300)).unwrap_err().reason, Reason::MaskTooLong);
    }

    #[test]
    fn all_keys_gives_one_mask_per_key_each_unmasking_to_the_value() {
        let mut ip = Masker::new(&keys(), &Mapping::user_logins(), "ip", true).unwrap();
        let masks = ip.mask("2001:DB8::1").unwrap().unwrap();
        assert_eq!(masks.len(), 2);
        assert!(masks[0].starts_with("k2.") && masks[1].starts_with("k1."), "{masks:?}");
        let t = Transformer::new(Config::with_keys(keys())).unwrap();
        for mask in masks {
            let clear = t.unmask(&mask).unwrap();
            assert_eq!(
                (clear.column.as_str(), clear.value.as_slice()),
                ("masked_ip", &b"2001:db8::1"[..])
            );
        }
    }

    #[test]
    fn an_unmasked_or_unknown_column_is_a_usage_error() {
        for column in ["user_id", "locale", "nope"] {
            let e = Masker::new(&keys(), &Mapping::user_logins(), column, false).err().unwrap();
            assert!(
                matches!(e, Error::Usage { ref problem } if problem.contains("ip, device_id")),
                "{e}"
            );
        }
    }
}
