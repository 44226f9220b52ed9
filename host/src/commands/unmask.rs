//! `maskflow unmask`: clear values from masks, one record per mask, in a format that cannot be
//! misread when a value holds a newline (`--output`).

use std::io::{BufRead, Write};

use base64::Engine;
use maskflow_transform::{Config, Transformer};

use crate::error::{Error, Result};

/// How records are written (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// One value per line. A value holding a newline or carriage return is refused (counted
    /// as failed, with the flag to use): a line-oriented reader would take it for two records.
    Lines,
    /// Each value followed by a NUL byte (`xargs -0`); a value holding NUL is refused.
    Nul,
    /// One JSON object per line, one per mask given, in order: `{"column", "value"}` (or
    /// `"value_base64"` for bytes that are not UTF-8), or `{"error"}`.
    Json,
}

/// `maskflow unmask`: the transform config (keys, mapping), and what to unmask.
pub(crate) struct UnmaskConfig {
    pub(crate) config: Config,
    pub(crate) with_column: bool,
    pub(crate) output: Output,
    /// Read one per line from stdin when empty.
    pub(crate) values: Vec<String>,
}

/// Writes one record per mask. Returns how many could not be unmasked or written (a stdin line
/// that is not UTF-8 counts, named by its line number).
pub(crate) fn run(args: UnmaskConfig) -> Result<usize> {
    let transformer = Transformer::new(args.config)?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    let mut each = |place: &str, mask: std::result::Result<&str, String>| -> Result<()> {
        let outcome = mask.and_then(|mask| {
            let clear = transformer
                .unmask(mask)
                .map_err(|e| format!("cannot unmask `{}`: {e}", abbreviate(mask)))?;
            record(args.output, args.with_column, &clear.column, &clear.value)
                .map_err(|why| format!("`{}` ({}): {why}", abbreviate(mask), clear.column))
        });
        match outcome {
            Ok(bytes) => out.write_all(&bytes).map_err(Error::io("stdout")),
            Err(why) => {
                failed += 1;
                eprintln!("maskflow: {place}{why}");
                if args.output == Output::Json {
                    writeln!(out, "{}", serde_json::json!({ "error": format!("{place}{why}") }))
                        .map_err(Error::io("stdout"))?;
                }
                Ok(())
            }
        }
    };
    if args.values.is_empty() {
        let mut stdin = std::io::stdin().lock();
        let mut line = Vec::new();
        for number in 1.. {
            line.clear();
            if stdin.read_until(b'\n', &mut line).map_err(Error::io("stdin"))? == 0 {
                break;
            }
            let place = format!("stdin line {number}: ");
            match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => each(&place, Ok(text.trim()))?,
                Err(_) => each(&place, Err("not UTF-8 text (a mask is ASCII)".into()))?,
            }
        }
    } else {
        for value in &args.values {
            each("", Ok(value.trim()))?;
        }
    }
    out.flush().map_err(Error::io("stdout"))?;
    Ok(failed)
}

/// One record's bytes, or why this value cannot be written in this format.
fn record(
    output: Output,
    with_column: bool,
    column: &str,
    value: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(value.len() + column.len() + 2);
    match output {
        Output::Json => {
            let mut object = serde_json::Map::new();
            object.insert("column".into(), column.into());
            match std::str::from_utf8(value) {
                Ok(text) => object.insert("value".into(), text.into()),
                Err(_) => object.insert(
                    "value_base64".into(),
                    base64::engine::general_purpose::STANDARD.encode(value).into(),
                ),
            };
            bytes.extend_from_slice(serde_json::Value::Object(object).to_string().as_bytes());
            bytes.push(b'\n');
        }
        Output::Lines | Output::Nul => {
            let (end, refused, other) = match output {
                Output::Nul => (0u8, &[0u8][..], "--output json"),
                _ => (b'\n', &b"\n\r"[..], "--output json or --output nul"),
            };
            if value.iter().any(|b| refused.contains(b)) {
                let what = if end == 0 { "a NUL byte" } else { "a line break" };
                return Err(format!(
                    "the value holds {what}, which would split the record; use {other}"
                ));
            }
            if with_column {
                bytes.extend_from_slice(column.as_bytes());
                bytes.push(b'\t');
            }
            bytes.extend_from_slice(value);
            bytes.push(end);
        }
    }
    Ok(bytes)
}

/// A mask is not secret, but keep error lines short.
fn abbreviate(mask: &str) -> String {
    let mask = mask.trim();
    if mask.chars().count() > 24 {
        format!("{}…", mask.chars().take(24).collect::<String>())
    } else {
        mask.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_with_a_line_break_is_one_record_in_every_format() {
        let value = b"line one\nline two";
        let err = record(Output::Lines, false, "raw_body", value).unwrap_err();
        assert!(err.contains("line break") && err.contains("--output json"), "{err}");
        assert_eq!(
            record(Output::Nul, true, "raw_body", value).unwrap(),
            b"raw_body\tline one\nline two\0"
        );
        let json = record(Output::Json, false, "raw_body", value).unwrap();
        assert_eq!(json.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
            serde_json::json!({"column": "raw_body", "value": "line one\nline two"})
        );
        let binary = record(Output::Json, false, "raw_body", &[0xff, 0]).unwrap();
        assert!(String::from_utf8(binary).unwrap().contains(r#""value_base64":"/wA=""#));
        assert!(record(Output::Nul, false, "c", b"a\0b").is_err());
        assert_eq!(record(Output::Lines, true, "c", b"a\tb").unwrap(), b"c\ta\tb\n");
    }
}
