//! What the live test sends into a topic and reads back, with the `fluvio` CLI as a user does.

use std::collections::HashMap;

use anyhow::{ensure, Result};

use crate::cluster::LocalCluster;
use crate::reference::{parse_consumed, Consumed, CONSUME_FORMAT};
use crate::{events, golden, Vector};

/// What was sent: each record's key and body, in the order they were produced.
pub struct Sent {
    pub records: Vec<(String, Vec<u8>)>,
    /// The key of each golden vector's record.
    pub golden: HashMap<String, Vector>,
}

impl Sent {
    /// Every golden vector (key = `golden-<name>`), then `n` generated events (`msg-<i>`).
    pub fn golden_and_generated(n: usize) -> Self {
        let vectors = golden();
        let mut records: Vec<(String, Vec<u8>)> =
            vectors.iter().map(|v| (format!("golden-{}", v.name), v.body())).collect();
        records.extend((0..n).map(|i| (events::id(i), events::body(i).into_bytes())));
        let golden = vectors.into_iter().map(|v| (format!("golden-{}", v.name), v)).collect();
        Sent { records, golden }
    }

    pub fn generated(range: std::ops::Range<usize>) -> Self {
        Sent {
            records: range.map(|i| (events::id(i), events::body(i).into_bytes())).collect(),
            golden: HashMap::new(),
        }
    }
}

/// Produces the records in order with the CLI: UTF-8 bodies as lines of one file (`key<TAB>body`,
/// `--key-separator`), a body that is not UTF-8 alone with `--raw` (the CLI reads a file's lines
/// as UTF-8 text and silently stops at the first line that is not: README.md, "Producing").
/// `chain`: the transforms file, to mask before the topic stores the records.
pub fn produce(
    cluster: &LocalCluster,
    topic: &str,
    sent: &Sent,
    chain: Option<&str>,
) -> Result<()> {
    let dir = cluster.scratch();
    let mut with_chain: Vec<&str> = vec!["produce", topic];
    if let Some(chain) = chain {
        with_chain.extend(["--transforms-file", chain]);
    }
    let mut lines: Vec<u8> = vec![];
    let flush = |lines: &mut Vec<u8>| -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let file = dir.join(format!("{topic}.lines"));
        std::fs::write(&file, &lines)?;
        let file = file.to_string_lossy();
        let mut args = with_chain.clone();
        args.extend(["--key-separator", "\t", "-f", &file]);
        cluster.fluvio(&args)?;
        lines.clear();
        Ok(())
    };
    for (key, body) in &sent.records {
        if std::str::from_utf8(body).is_ok() {
            ensure!(!body.contains(&b'\n'), "{key}: a line break cannot travel in a line");
            lines.extend(key.as_bytes().iter().chain(b"\t").chain(body).chain(b"\n"));
        } else {
            flush(&mut lines)?;
            let file = dir.join(format!("{topic}.raw"));
            std::fs::write(&file, body)?;
            let file = file.to_string_lossy();
            let mut args = with_chain.clone();
            args.extend(["--raw", "--key", key, "-f", &file]);
            cluster.fluvio(&args)?;
        }
    }
    flush(&mut lines)
}

/// `-b` for a plain consumer (no SmartModule): larger than any topic here. At the Fluvio commit
/// tested, a plain consumer skips the batch that a fetch response (1 MB by default) ends in
/// (fixed upstream by fluvio-community/fluvio#4627, after that commit; README.md, "Offsets,
/// restarts and what Fluvio promises"); through a SmartModule the SPU cuts responses at batch
/// boundaries, so those consumers keep the default.
pub const PLAIN_MAX_BYTES: &str = "67108864";

/// `fluvio consume TOPIC -B -d` (everything stored, then exit), optionally through the chain.
pub fn consume_all(
    cluster: &LocalCluster,
    topic: &str,
    chain: Option<&str>,
    extra: &[&str],
) -> Result<Vec<Consumed>> {
    let mut args = vec!["consume", topic, "-B", "-d", "-F", CONSUME_FORMAT];
    match chain {
        Some(chain) => args.extend(["--transforms-file", chain]),
        None if !extra.contains(&"--transforms-file") => args.extend(["-b", PLAIN_MAX_BYTES]),
        None => {}
    }
    args.extend(extra);
    parse_consumed(&cluster.fluvio(&args)?)
}
