//! `maskflow keys`: which key ids the key file and the database know, and how many masks each
//! still has; `maskflow keys retire ID` drops a key id no mask uses any more.

use std::collections::BTreeSet;
use std::io::Write;

use maskflow_transform::Key;

use crate::error::{Error, Result};
use crate::sink::{key_report, retire, PostgresConfig};

pub(crate) struct KeysConfig {
    pub(crate) postgres: PostgresConfig,
    /// The key file's keys, if one was given.
    pub(crate) keys: Option<Vec<Key>>,
    /// The mapping's masked columns.
    pub(crate) columns: Vec<String>,
    /// `Some(id)`: retire it; `None`: list.
    pub(crate) retire: Option<String>,
}

pub(crate) fn run(config: KeysConfig) -> Result<()> {
    match &config.retire {
        Some(id) => retire_key(&config, id),
        None => list(&config),
    }
}

fn list(config: &KeysConfig) -> Result<()> {
    let report = key_report(&config.postgres, &config.columns)?;
    let file = config.keys.as_deref().unwrap_or_default();
    let ids: BTreeSet<&str> = file
        .iter()
        .map(Key::id)
        .chain(report.recorded.iter().map(|(id, _)| id.as_str()))
        .chain(report.counts.keys().map(String::as_str))
        .collect();
    // The masking key first, then the file's order, then the rest by name.
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_by_key(|id| file.iter().position(|k| k.id() == *id).unwrap_or(usize::MAX));
    let mut out = std::io::stdout().lock();
    let mut header = vec!["key", "key file", "maskflow_keys"];
    header.extend(report.places.iter().map(String::as_str));
    let mut lines = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for id in ids {
        let in_file = file.iter().position(|k| k.id() == id);
        let recorded = report.recorded.iter().find(|(k, _)| k == id).map(|(_, f)| f);
        let mut line = vec![
            id.to_owned(),
            match in_file {
                Some(0) => "masks".into(),
                Some(_) => "unmasks".into(),
                None if config.keys.is_none() => "?".into(),
                None => "-".into(),
            },
            match (recorded, in_file.map(|i| file[i].fingerprint())) {
                (None, _) => "-".into(),
                (Some(db), Some(f)) if *db != f => "OTHER KEY".into(),
                (Some(_), _) => "recorded".into(),
            },
        ];
        let counts = report.counts.get(id);
        line.extend(
            report
                .places
                .iter()
                .map(|p| counts.and_then(|c| c.get(p)).copied().unwrap_or(0).to_string()),
        );
        lines.push(line);
    }
    let widths: Vec<usize> =
        (0..lines[0].len()).map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0)).collect();
    for line in lines {
        let cells: Vec<String> =
            line.iter().zip(&widths).map(|(cell, &w)| format!("{cell:<w$}")).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())
            .map_err(Error::io("cannot write stdout"))?;
    }
    Ok(())
}

fn retire_key(config: &KeysConfig, id: &str) -> Result<()> {
    if let Some(first) = config.keys.as_ref().and_then(|k| k.first()).filter(|k| k.id() == id) {
        return Err(Error::usage(format!(
            "`{}` is the key that masks now (first in the key file): put the new key first, \
             restart the hosts, `maskflow rekey --to <new id>`, then retire `{id}`",
            first.id()
        )));
    }
    match retire(&config.postgres, &config.columns, id) {
        Ok(()) => {
            eprintln!(
                "maskflow: retired `{id}`: no mask uses it and its fingerprint is gone from \
                 maskflow_keys. Now remove its line from every key file and destroy the key."
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
