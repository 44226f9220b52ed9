//! The straightforward transform maskflow replaces, kept only as the benchmark's baseline:
//! parse into `serde_json::Value`, call the `aes-siv` crate for every masked value, build new
//! `String`s for every record. Each step from here to the real transform is one lever of
//! docs/benchmarks.md ("Levers").

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use maskflow_transform::config::{DEVICE_ID_NONCE, IP_NONCE};
use maskflow_transform::{ColumnCipher, Key};
use serde_json::Value;

/// How a value is masked.
// Built once per benchmark and never moved in the timed loop: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Masking {
    /// A full AES-SIV per value (S2V over the empty AD, the nonce and the value), as the
    /// `aes-siv` crate does it.
    Crate(Box<Aes256Siv>),
    /// maskflow's cipher: the S2V steps over the fixed inputs precomputed once per column.
    Precomputed { ip: ColumnCipher, device_id: ColumnCipher },
}

pub struct Naive {
    key_id: String,
    masking: Masking,
}

impl Naive {
    pub fn with_crate(key: &Key) -> Self {
        let line = key.to_key_file_line();
        let bytes =
            STANDARD.decode(line.split_once(':').expect("id:base64").1).expect("base64 key");
        Naive {
            key_id: key.id().to_owned(),
            masking: Masking::Crate(Box::new(
                Aes256Siv::new_from_slice(&bytes).expect("64-byte key"),
            )),
        }
    }

    pub fn with_precomputed_s2v(key: &Key) -> Self {
        let cipher = |nonce: &str| {
            ColumnCipher::new(key, nonce.as_bytes().try_into().expect("16-byte nonce"))
        };
        Naive {
            key_id: key.id().to_owned(),
            masking: Masking::Precomputed {
                ip: cipher(IP_NONCE),
                device_id: cipher(DEVICE_ID_NONCE),
            },
        }
    }

    /// `value` masked in column `nonce`'s domain: `k1.<base64url>`, as maskflow writes it.
    pub fn mask(&mut self, nonce: &str, value: &str) -> String {
        match &mut self.masking {
            Masking::Crate(siv) => {
                let sealed = siv
                    .encrypt([b"".as_slice(), nonce.as_bytes()], value.as_bytes())
                    .expect("AES-SIV encrypts");
                format!("{}.{}", self.key_id, URL_SAFE_NO_PAD.encode(sealed))
            }
            Masking::Precomputed { ip, device_id } => {
                if nonce == IP_NONCE { ip } else { device_id }.mask(value.as_bytes())
            }
        }
    }

    /// The `user_logins` row, or `None` for a message that is not a login event.
    pub fn transform(
        &mut self,
        body: &[u8],
        sent_timestamp_ms: i64,
    ) -> Option<Vec<Option<String>>> {
        let event: Value = serde_json::from_slice(body).ok()?;
        let text = |field: &str| event.get(field).and_then(Value::as_str).map(str::to_owned);
        let user_id = text("user_id")?;
        let ip = match text("ip") {
            Some(ip) => {
                Some(self.mask(IP_NONCE, &ip.parse::<std::net::IpAddr>().ok()?.to_string()))
            }
            None => None,
        };
        let device_id = text("device_id").map(|d| self.mask(DEVICE_ID_NONCE, &d));
        let version = match text("app_version") {
            Some(v) => {
                let parts: Vec<u32> =
                    v.split('.').map(str::parse).collect::<Result<_, _>>().ok()?;
                let part = |i: usize| parts.get(i).copied().unwrap_or(0);
                Some((part(0) * 1_000_000 + part(1) * 1_000 + part(2)).to_string())
            }
            None => None,
        };
        let date = civil_date(sent_timestamp_ms.div_euclid(86_400_000));
        Some(vec![
            Some(user_id),
            text("device_type"),
            ip,
            device_id,
            text("locale"),
            version,
            Some(date),
        ])
    }
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (Howard Hinnant's civil_from_days).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{month:02}-{day:02}", yoe + era * 400 + i64::from(month <= 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data;
    use maskflow_transform::{Message, Transformer};

    /// The baseline does the same job: on valid events its rows equal maskflow's, masks included,
    /// so the lever figures compare equal work.
    #[test]
    fn baseline_rows_equal_maskflow_rows() {
        let key = data::key();
        let mut maskflow = Transformer::new(data::config(4096)).unwrap();
        let (mut by_crate, mut precomputed) =
            (Naive::with_crate(&key), Naive::with_precomputed_s2v(&key));
        let bodies =
            data::distinct(300).into_iter().chain(data::realistic(700)).collect::<Vec<_>>();
        let mut compared = 0;
        for body in &bodies {
            let Ok(row) = maskflow.transform(&Message {
                id: "m",
                body: body.as_bytes(),
                sent_timestamp_ms: 1_700_000_000_000,
            }) else {
                continue;
            };
            let expected: Vec<Option<String>> =
                (0..7).map(|i| row.get(i).map(str::to_owned)).collect();
            assert_eq!(
                by_crate.transform(body.as_bytes(), 1_700_000_000_000).as_ref(),
                Some(&expected),
                "{body}"
            );
            assert_eq!(
                precomputed.transform(body.as_bytes(), 1_700_000_000_000).as_ref(),
                Some(&expected),
                "{body}"
            );
            compared += 1;
        }
        assert!(compared > 900, "only {compared} rows compared");
    }
}
