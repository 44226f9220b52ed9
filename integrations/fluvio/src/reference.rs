//! The ground truth of the live tests: `maskflow transform` (the host binary, the project's
//! reference implementation) on the same bodies with the same key and sent timestamps, and the
//! records as `fluvio consume` prints them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::repo_root;

/// `$MASKFLOW_BIN`, else `<repo>/target/release/maskflow` (integrations/fluvio/test passes the
/// one of the outer `CARGO_TARGET_DIR`); an error if absent: the comparison needs it.
pub fn maskflow_bin() -> Result<PathBuf> {
    let bin = std::env::var_os("MASKFLOW_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/maskflow"));
    ensure!(
        bin.is_file(),
        "{}: build the host first (cargo build --release -p maskflow-host) or set MASKFLOW_BIN",
        bin.display()
    );
    Ok(bin)
}

/// A new key file from `maskflow keygen` (mode 0600), as the README makes one.
pub fn keygen(maskflow: &Path, id: &str, out: &Path) -> Result<()> {
    let output = Command::new(maskflow)
        .args(["keygen", "--id", id, "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .output()?;
    crate::cluster::checked(output, "maskflow keygen").map(drop)
}

/// `maskflow transform`'s outcome for each body (one line each, in order), in the SmartModule's
/// shape: a row line `{...}` becomes `{"row": {...}}`; a `{"rejected": {id, reason, message,
/// encrypted_body}}` line becomes `{"rejection": {reason, message, encrypted_body}}` (the id is
/// the CLI's line number, which the SmartModule has no use for).
pub fn transform(
    maskflow: &Path,
    key_file: &Path,
    bodies: &[&[u8]],
    sent_ms: i64,
) -> Result<Vec<Value>> {
    for body in bodies {
        ensure!(
            !body.contains(&b'\n'),
            "`maskflow transform` reads lines: a body holds a line break"
        );
    }
    let mut child = Command::new(maskflow)
        .arg("transform")
        .arg("--key-file")
        .arg(key_file)
        .args(["--sent-timestamp-ms", &sent_ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start maskflow transform")?;
    let mut stdin = child.stdin.take().expect("piped");
    let input: Vec<u8> = bodies.iter().flat_map(|b| b.iter().copied().chain([b'\n'])).collect();
    // Written from a thread: the output pipe must be drained while the input is still going in.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output()?;
    writer.join().expect("writer thread")?;
    let text = crate::cluster::checked(output, "maskflow transform")?;
    let outcomes: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).map(smartmodule_shape))
        .collect::<Result<_, _>>()?;
    ensure!(
        outcomes.len() == bodies.len(),
        "maskflow transform: {} lines in, {} out",
        bodies.len(),
        outcomes.len()
    );
    Ok(outcomes)
}

fn smartmodule_shape(line: Value) -> Value {
    match line.get("rejected") {
        Some(r) => {
            json!({"rejection": {"reason": r["reason"], "message": r["message"], "encrypted_body": r["encrypted_body"]}})
        }
        None => json!({ "row": line }),
    }
}

/// The `fluvio consume -F` template the tests print records with: tab-separated, the value last
/// (the SmartModule's values are JSON, which holds no raw tab or line break).
pub const CONSUME_FORMAT: &str = "{{offset}}\t{{time}}\t{{key}}\t{{value}}";

/// One record as `fluvio consume -F CONSUME_FORMAT` printed it.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub offset: i64,
    /// The record's timestamp, ms since the epoch (the CLI prints RFC 3339 with milliseconds),
    /// `None` where it prints `NA`: a record that went through a SmartModule in the SPU has no
    /// timestamp (README.md, "Records in and out").
    pub timestamp_ms: Option<i64>,
    pub key: String,
    /// The value as JSON, or as a JSON string where it is not JSON (a clear body).
    pub value: Value,
}

pub fn parse_consumed(stdout: &str) -> Result<Vec<Consumed>> {
    stdout.lines().map(parse_line).collect()
}

pub fn parse_line(line: &str) -> Result<Consumed> {
    let mut parts = line.splitn(4, '\t');
    let (Some(offset), Some(time), Some(key), Some(value)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a `{CONSUME_FORMAT}` line ({} bytes)", line.len());
    };
    let timestamp_ms = match time {
        "NA" => None,
        _ => {
            let at =
                humantime::parse_rfc3339(time).with_context(|| format!("record time {time:?}"))?;
            Some(at.duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64)
        }
    };
    Ok(Consumed {
        offset: offset.parse().with_context(|| format!("offset {offset:?}"))?,
        timestamp_ms,
        key: key.to_owned(),
        // A SmartModule's value is JSON; a clear topic's is the body, whatever it is.
        value: serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned())),
    })
}

/// `maskflow transform`'s outcome for each (body, sent time): the bodies are grouped by sent
/// time and each group is one `maskflow transform --sent-timestamp-ms` run.
pub fn expected_outcomes(
    maskflow: &Path,
    key_file: &Path,
    sends: &[(&[u8], i64)],
) -> Result<Vec<Value>> {
    let mut by_time: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, (_, sent_ms)) in sends.iter().enumerate() {
        by_time.entry(*sent_ms).or_default().push(i);
    }
    let mut expected = vec![Value::Null; sends.len()];
    for (sent_ms, indices) in by_time {
        let bodies: Vec<&[u8]> = indices.iter().map(|&i| sends[i].0).collect();
        for (i, outcome) in
            indices.into_iter().zip(transform(maskflow, key_file, &bodies, sent_ms)?)
        {
            expected[i] = outcome;
        }
    }
    Ok(expected)
}

/// `YYYY-MM-DD` in UTC of a time in ms since the epoch.
pub fn utc_date(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()[..10].to_owned()
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
