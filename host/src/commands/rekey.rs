//! `maskflow rekey`: re-masks every mask under old keys with the masking key, in place and
//! online (the database side, and why it is safe to kill and rerun, is in `sink::rekey`).
//! Clear values exist only here, in memory, between an unmask and a mask.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::events::{event, Event};
use crate::keys::KeyError;
use crate::sink::{PostgresConfig, Rekey};
use crate::stop::Stop;
use indicatif::{ProgressBar, ProgressStyle};
use maskflow_transform::{BodySealer, ColumnCipher, Config, Key, Mapping, Transformer};

/// `maskflow rekey`'s settings (built by `crate::cli`).
pub struct RekeyConfig {
    pub postgres: PostgresConfig,
    /// The key file's keys; the first masks and must be `to`.
    pub keys: Vec<Key>,
    pub mapping: Mapping,
    pub to: String,
    /// `None`: every other key id found in the tables.
    pub from: Option<Vec<String>>,
    pub dry_run: bool,
    /// Pages of the table per transaction.
    pub pages_per_step: i64,
    /// Passes over the tables before giving up on rows that keep arriving under an old key.
    pub max_passes: usize,
}

/// What a rekey did.
#[derive(Debug, Default)]
pub struct RekeySummary {
    pub from: Vec<String>,
    pub rows: u64,
    pub distinct: u64,
    pub bodies: u64,
    pub passes: usize,
}

/// Names of the mapping's masked columns, in order.
pub(crate) fn masked_columns(mapping: &Mapping) -> Vec<String> {
    mapping.columns.iter().filter(|c| c.mask_nonce.is_some()).map(|c| c.name.clone()).collect()
}

pub fn run(config: RekeyConfig) -> Result<RekeySummary> {
    let active = config.keys[0].id();
    if config.to != active {
        return Err(Error::usage(format!(
            "--to {}: the key file's first key (the one that masks) is `{active}`; put `{}` first, \
             as on the hosts, so that new rows and re-masked rows share one key",
            config.to, config.to
        )));
    }
    let in_file = |id: &str| config.keys.iter().any(|k| k.id() == id);
    let columns = masked_columns(&config.mapping);
    let fingerprints: Vec<(String, String)> =
        config.keys.iter().map(|k| (k.id().to_owned(), k.fingerprint())).collect();
    let mut rekey = Rekey::open(&config.postgres, columns.clone(), &fingerprints)?;
    let counts = rekey.counts()?;
    let from = match &config.from {
        Some(from) => from.clone(),
        None => counts.keys().filter(|k| **k != config.to).cloned().collect(),
    };
    if let Some(id) = from.iter().find(|id| **id == config.to) {
        return Err(Error::usage(format!("--from {id} is the key to rekey to")));
    }
    if let Some(id) = from.iter().find(|id| !in_file(id)) {
        return Err(KeyError::NotLoaded { id: id.clone(), active: active.to_owned() }.into());
    }
    let pending = |counts: &crate::sink::MaskCounts| -> i64 {
        from.iter().filter_map(|id| counts.get(id)).flat_map(|c| c.values()).sum()
    };
    if config.dry_run || pending(&counts) == 0 {
        for id in &from {
            for (place, n) in counts.get(id).into_iter().flatten() {
                writeln!(std::io::stdout(), "{place}\t{id}\t{n}")
                    .map_err(Error::io("cannot write stdout"))?;
            }
        }
        let verb = if config.dry_run { "would re-mask" } else { "nothing to do:" };
        let under = if from.is_empty() { "another key".to_owned() } else { from.join(", ") };
        eprintln!(
            "maskflow: rekey {verb} {} masks under {under} to {}",
            pending(&counts),
            config.to
        );
        return Ok(RekeySummary { from, ..Default::default() });
    }
    rekey.set_from(from.clone());

    // The to key's cipher per domain (column, or the rejected body), as the transform has them.
    let to_key = &config.keys[0];
    let unmasker = Transformer::new(Config {
        keys: config.keys.iter().map(Into::into).collect(),
        mapping: config.mapping.clone(),
        cache_size: 0,
    })?;
    let ciphers: HashMap<String, (ColumnCipher, usize)> = config
        .mapping
        .columns
        .iter()
        .filter_map(|c| {
            let nonce: [u8; 16] = c.mask_nonce.as_deref()?.as_bytes().try_into().ok()?;
            Some((
                c.name.clone(),
                (ColumnCipher::new(to_key, &nonce), c.max_len.unwrap_or(usize::MAX)),
            ))
        })
        .collect();
    let sealer = BodySealer::new(std::slice::from_ref(to_key))?;
    let mut summary = RekeySummary { from: from.clone(), ..Default::default() };
    let mut distinct = 0u64;
    let mut remask = |old: &str| -> Option<String> {
        let clear = unmasker.unmask(old).ok()?;
        let (cipher, max_len) = ciphers.get(&clear.column)?;
        let new = cipher.mask(&clear.value);
        distinct += 1;
        (new.chars().count() <= *max_len).then_some(new)
    };
    let mut reseal = |old: &str| -> Option<String> {
        let clear = unmasker.unmask(old).ok().filter(|c| c.column == "raw_body")?;
        Some(sealer.seal(&clear.value))
    };

    let started = Instant::now();
    let mut left = pending(&counts);
    while left > 0 {
        summary.passes += 1;
        if summary.passes > config.max_passes {
            return Err(Stop::RekeyOutpaced {
                left,
                from: from.join(", "),
                passes: config.max_passes,
                to: config.to.clone(),
            }
            .into());
        }
        let pages = rekey.pages()?;
        let bar = ProgressBar::new(pages as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} pages {elapsed} (ETA {eta}) {msg}")
                .expect("valid template"),
        );
        let (mut rows, mut bodies) = (0, 0);
        let mut first = 0;
        while first < pages {
            let end = (first + config.pages_per_step).min(pages);
            rows += rekey.step(first, end, &mut remask)?;
            bar.set_position(end as u64);
            bar.set_message(format!("{rows} rows re-masked"));
            first = end;
        }
        let mut after = String::new();
        while let Some((last, changed)) = rekey.reseal(&after, 256, &mut reseal)? {
            bodies += changed;
            after = last;
        }
        bar.finish_and_clear();
        summary.rows += rows;
        summary.bodies += bodies;
        left = pending(&rekey.counts()?);
        event!(
            info,
            Event::RekeyPass,
            pass = summary.passes,
            rows,
            bodies,
            left,
            elapsed_s = started.elapsed().as_secs_f64(),
            "rekey pass"
        );
        if left > 0 && rows + bodies == 0 {
            break;
        }
    }
    summary.distinct = distinct;
    if left > 0 {
        let distinct = rekey.unreadable.len();
        return Err(Stop::RekeyUnreadable { left, from: from.join(", "), distinct }.into());
    }
    Ok(summary)
}
