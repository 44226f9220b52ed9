//! The command line where users pipe it: a closed pipe ends a command quietly with exit 0 (as
//! ripgrep and coreutils do: `maskflow send --generate 1000 --print | head -1` must not panic
//! or fail a `pipefail` pipeline), and `transform --sent-timestamp-field` reads what its help
//! says and rejects, naming the field, what it cannot read. No services needed.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use maskflow_tests::{maskflow_bin, test_config, test_key_file};
use maskflow_transform::{Message, Transformer};
use serde_json::Value;

fn key() -> String {
    std::fs::read_to_string(test_key_file()).unwrap()
}

/// Runs `maskflow ARGS` with its stdout's reader gone before it writes (`| head -0`).
fn into_a_closed_pipe(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(maskflow_bin())
        .args(args)
        .env("MASKFLOW_KEY", key())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin); // the command may already have stopped reading
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly_with_exit_0() {
    let events: String = (0..2_000)
        .map(|i| format!("{{\"user_id\": \"u{i}\", \"ip\": \"10.0.0.{}\"}}\n", i % 250))
        .collect();
    let ips: String = (0..2_000).map(|i| format!("10.1.{}.{}\n", i / 250, i % 250)).collect();
    let mut masks = String::new();
    let mut t = Transformer::new(test_config()).unwrap();
    for i in 0..2_000 {
        let body = format!("{{\"user_id\": \"u\", \"ip\": \"10.2.{}.{}\"}}", i / 250, i % 250);
        let row =
            t.transform(&Message { id: "m", body: body.as_bytes(), sent_timestamp_ms: 1 }).unwrap();
        masks += row.get(2).unwrap();
        masks.push('\n');
    }
    let cases: [(&[&str], &[u8]); 7] = [
        (&["send", "--generate", "2000", "--print"], b""),
        (&["transform", "--module-cache", "off"], events.as_bytes()),
        (&["mask", "--column", "ip"], ips.as_bytes()),
        (&["unmask"], masks.as_bytes()),
        (&["man"], b""),
        (&["completions", "bash"], b""),
        (&["keygen"], b""),
    ];
    for (args, stdin) in cases {
        let out = into_a_closed_pipe(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "maskflow {args:?} into a closed pipe: {stderr}");
        assert!(stderr.is_empty(), "maskflow {args:?} says nothing: {stderr}");
    }
}

/// `maskflow transform --sent-timestamp-field t` over `lines`: the output records, in order.
fn transform_with_field(lines: &[String]) -> Vec<Value> {
    let mut child = Command::new(maskflow_bin())
        .args(["transform", "--sent-timestamp-field", "t", "--sent-timestamp-ms", "1500000000000"])
        .env("MASKFLOW_KEY", key())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sent_timestamp_field_reads_ms_and_rfc3339_and_rejects_the_rest_by_name() {
    let event = |t: &str| format!(r#"{{"user_id": "u1", "ip": "10.0.0.1", "t": {t}}}"#);
    // What the help promises, and the fallback for lines without the field.
    let read = [
        (event("1700000000123"), "2023-11-14"),
        (event(r#""2023-11-14T23:59:59-01:00""#), "2023-11-15"),
        (event(r#""2024-02-29T00:00:00Z""#), "2024-02-29"),
        (event("null"), "2017-07-14"),
        (r#"{"user_id": "u1"}"#.to_owned(), "2017-07-14"),
    ];
    let lines: Vec<String> = read.iter().map(|(l, _)| l.clone()).collect();
    let out = transform_with_field(&lines);
    for ((line, date), record) in read.iter().zip(&out) {
        assert_eq!(record["create_date"], *date, "{line}: {record}");
    }
    // What it cannot read: a rejection naming the field, never a silent date.
    let unreadable = [
        "\"yesterday\"",
        "\"2024-02-03\"",
        "1.7e12",
        "\"1700000000000\"",
        "1700000000",
        "-5",
        "{}",
    ];
    let lines: Vec<String> = unreadable.iter().map(|t| event(t)).collect();
    let out = transform_with_field(&lines);
    assert_eq!(out.len(), unreadable.len(), "one record per line");
    for (value, record) in unreadable.iter().zip(&out) {
        let rejected = &record["rejected"];
        assert_eq!(rejected["reason"], "invalid_timestamp", "{value}: {record}");
        let message = rejected["message"].as_str().unwrap();
        assert!(message.starts_with("field `t`: "), "{value}: {message}");
        assert!(!message.contains(value.trim_matches('"')), "the value is not quoted: {message}");
        let body = Transformer::new(test_config())
            .unwrap()
            .unmask(rejected["encrypted_body"].as_str().unwrap())
            .unwrap();
        assert_eq!(body.value, event(value).as_bytes(), "the body is kept, sealed");
    }
    // Interleaved: order and counts are kept.
    let mixed = vec![event("\"yesterday\""), event("1700000000123"), event("1.5")];
    let out = transform_with_field(&mixed);
    assert!(
        out[0].get("rejected").is_some()
            && out[1].get("create_date").is_some()
            && out[2].get("rejected").is_some(),
        "{out:?}"
    );
}
