//! Inputs and outputs that could be misread are not merged (issue 20, item 8):
//! - `maskflow unmask`: one record per mask even when a clear value holds a line break, and a
//!   stdin line that is not UTF-8 is reported by its number, the lines after it still read;
//! - `maskflow send`: a send that stops part-way names exactly the lines sent and the flag that
//!   sends the rest, and that rerun puts every line on the queue exactly once.
//!
//! (Numbers as versions are golden vectors: tests/vectors/cases.jsonl, `version_json_number_*`.)

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use maskflow_tests::faults::{Fault, SqsFaults};
use maskflow_tests::{maskflow_bin, maskflow_env, test_config, Services};
use maskflow_transform::{Message, Transformer};

/// Masks of: a device id with a line break, and the encrypted body of a rejected message that
/// spans two lines; and a plain device id.
fn masks() -> (String, String, String) {
    let mut transformer = Transformer::new(test_config()).unwrap();
    let mut device_mask = |device: &str| {
        let body = serde_json::json!({"user_id": "u", "device_id": device}).to_string();
        let message = Message { id: "m", body: body.as_bytes(), sent_timestamp_ms: 0 };
        let row = transformer.transform(&message).unwrap();
        row.get(3).unwrap().to_owned()
    };
    let (broken, plain) = (device_mask("dev\nice"), device_mask("device-1"));
    // The encrypted body of a rejected message that spans two lines.
    let encrypted_body = transformer.encrypt_body(b"{\"user_id\":\n 7}");
    (broken, encrypted_body, plain)
}

fn unmask(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(maskflow_bin())
        .arg("unmask")
        .args(args)
        .env("MASKFLOW_KEY", std::fs::read_to_string(maskflow_tests::test_key_file()).unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn unmask_writes_one_record_per_mask_whatever_the_value_holds() {
    let (broken, body, plain) = masks();
    let input = format!("{broken}\n{body}\n{plain}\n");

    // Default: lines. The two values with a line break are refused (exit 1), not split.
    let out = unmask(&[], input.as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(out.stdout, b"device-1\n", "{stderr}");
    assert!(stderr.contains("stdin line 1: ") && stderr.contains("stdin line 2: "), "{stderr}");
    assert!(stderr.contains("line break") && stderr.contains("--output json"), "{stderr}");

    // JSON lines: one object per mask, in order, each on one line.
    let out = unmask(&["--output", "json"], input.as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records,
        [
            serde_json::json!({"column": "masked_device_id", "value": "dev\nice"}),
            serde_json::json!({"column": "raw_body", "value": "{\"user_id\":\n 7}"}),
            serde_json::json!({"column": "masked_device_id", "value": "device-1"}),
        ]
    );

    // NUL-terminated, with the column.
    let out = unmask(&["--output", "nul", "--with-column"], input.as_bytes());
    assert!(out.status.success());
    let records: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
    assert_eq!(
        records,
        [
            &b"masked_device_id\tdev\nice"[..],
            b"raw_body\t{\"user_id\":\n 7}",
            b"masked_device_id\tdevice-1",
            b""
        ]
    );
}

#[test]
fn unmask_reports_a_line_that_is_not_utf8_and_goes_on() {
    let (_, _, plain) = masks();
    let mut input = format!("{plain}\n").into_bytes();
    input.extend_from_slice(b"k1.\xff\xfe\n");
    input.extend_from_slice(format!("{plain}\n").as_bytes());
    let out = unmask(&[], &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(out.stdout, b"device-1\ndevice-1\n", "the line after it is read: {stderr}");
    assert!(stderr.contains("stdin line 2: not UTF-8"), "{stderr}");
    let out = unmask(&["--output", "json"], &input);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "one record per line given: {text}");
    assert!(text.lines().nth(1).unwrap().contains(r#""error":"stdin line 2: not UTF-8"#), "{text}");
}

fn send(services: &Services, queue_url: &str, relay: &SqsFaults, args: &[&str]) -> Output {
    Command::new(maskflow_bin())
        .arg("send")
        .args(args)
        .envs(maskflow_env(services, "postgresql://unused", queue_url))
        .env("MASKFLOW_SQS_ENDPOINT", relay.url())
        .env("AWS_ENDPOINT_URL", relay.url())
        .output()
        .unwrap()
}

/// Every body on the queue (received until it stays empty).
fn drain_bodies(services: &Services, queue_url: &str) -> Vec<String> {
    let queue = services.queue(queue_url);
    let mut bodies = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let got = services
            .runtime
            .block_on(queue.receive(Duration::from_secs(1), Duration::from_secs(120)))
            .unwrap();
        empty = if got.is_empty() { empty + 1 } else { 0 };
        bodies.extend(got.into_iter().map(|m| m.body));
    }
    bodies.sort();
    bodies
}

#[test]
fn a_send_that_stops_part_way_says_what_was_sent_and_the_rerun_duplicates_nothing() {
    let services = Services::get();
    let addr = services.var("AWS_ENDPOINT_URL").trim_start_matches("http://").parse().unwrap();
    let relay = SqsFaults::start(addr);
    // 26 lines, line 5 blank (numbers count it).
    let lines: Vec<String> =
        (1..=26).map(|n| if n == 5 { String::new() } else { format!("{{\"n\": {n}}}") }).collect();
    let file = std::env::temp_dir().join(format!("maskflow-send-{}.ndjson", std::process::id()));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut expected: Vec<String> = lines.iter().filter(|l| !l.is_empty()).cloned().collect();
    expected.sort();

    // Half the entries of the first call fail inside its 200 answer: lines 2, 4, 7, 9, 11.
    let queue_url = services.fresh_queue("send_partial");
    let fault = Fault::FailEntries { code: "InternalError", sender_fault: false };
    relay.inject("SendMessageBatch", fault, Some(1));
    let out = send(&services, &queue_url, &relay, &[file.to_str().unwrap(), "--parallel", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("lines sent: 1,3,6,8,10 (5 messages)"), "{stderr}");
    assert!(stderr.contains("not sent: 2,4,7,9,11-26 (20 messages)"), "{stderr}");
    let rerun = stderr.split("rerun with ").nth(1).unwrap().lines().next().unwrap().to_owned();
    assert_eq!(rerun, "--lines 2,4,7,9,11-");
    let mut args: Vec<&str> = vec![file.to_str().unwrap()];
    args.extend(rerun.split(' '));
    let out = send(&services, &queue_url, &relay, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(drain_bodies(&services, &queue_url), expected, "every line exactly once");

    // The first call refused outright: nothing sent, resume from line 1.
    let queue_url = services.fresh_queue("send_denied");
    relay.inject("SendMessageBatch", Fault::Status(400, "AccessDenied"), Some(1));
    let out = send(&services, &queue_url, &relay, &[file.to_str().unwrap(), "--parallel", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("lines sent: none") && stderr.contains("rerun with --from-line 1\n"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(file);
}
