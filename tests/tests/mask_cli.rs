//! `maskflow mask` (issue 23): the mask of a clear value is the row's mask, for every golden
//! vector row, and `unmask` and `mask` are inverse. No services: the golden rows are what the
//! table holds (e2e.rs checks the table against them).

use std::process::{Command, Output};

use maskflow_tests::{golden, maskflow_bin, test_key_file};
use serde_json::Value;

fn maskflow(args: &[&str]) -> Output {
    Command::new(maskflow_bin())
        .args(args)
        .env("MASKFLOW_KEY", std::fs::read_to_string(test_key_file()).unwrap())
        .env_remove("MASKFLOW_KEY_FILE")
        .output()
        .expect("run maskflow")
}

fn lines(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "maskflow failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap().lines().map(str::to_owned).collect()
}

/// (clear input, the row's mask) of `field` for every golden row whose body has it as a string.
fn inputs_and_masks(field: &str, column: &str) -> Vec<(String, String)> {
    golden()
        .iter()
        .filter_map(|v| {
            let row = v.expected_row()?;
            let body: Value = serde_json::from_slice(&v.body()).ok()?;
            let input = body.get(field)?.as_str()?.to_owned();
            let mask = row.get(column)?.as_str()?.to_owned();
            Some((input, mask))
        })
        .collect()
}

#[test]
fn mask_gives_the_rows_mask_for_every_golden_row_and_unmask_inverts_it() {
    for (field, column) in [("ip", "masked_ip"), ("device_id", "masked_device_id")] {
        let pairs = inputs_and_masks(field, column);
        assert!(pairs.len() >= 20, "{field}: only {} golden rows", pairs.len());
        let mut args = vec!["mask", "--column", field, "--"];
        args.extend(pairs.iter().map(|(input, _)| input.as_str()));
        let masks = lines(&maskflow(&args));
        let expected: Vec<&String> = pairs.iter().map(|(_, mask)| mask).collect();
        assert_eq!(
            masks.iter().collect::<Vec<_>>(),
            expected,
            "{field}: mask differs from the row's"
        );

        // unmask(mask) is the normalised input, and mask(unmask(mask)) is the mask again.
        let mut args = vec!["unmask"];
        args.extend(masks.iter().map(String::as_str));
        let clear = lines(&maskflow(&args));
        assert_eq!(clear.len(), masks.len());
        let mut args = vec!["mask", "--column", field, "--"];
        args.extend(clear.iter().map(String::as_str));
        assert_eq!(lines(&maskflow(&args)), masks, "{field}: mask(unmask(m)) != m");
    }
}

#[test]
fn mask_rejects_what_the_pipeline_rejects_without_printing_the_value() {
    let mut checked = 0;
    for v in golden().iter().filter(|v| v.expected_reason() == Some("invalid_ip")) {
        let Ok(body) = serde_json::from_slice::<Value>(&v.body()) else { continue };
        let Some(ip) = body.get("ip").and_then(Value::as_str).filter(|ip| !ip.contains('\0'))
        else {
            continue;
        };
        let out = maskflow(&["mask", "--column", "ip", "--", ip]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", v.name);
        assert!(out.stdout.is_empty(), "{}: printed a mask for a rejected value", v.name);
        assert!(stderr.contains("rejected: invalid_ip"), "{}: {stderr}", v.name);
        assert!(ip.trim().len() < 4 || !stderr.contains(ip.trim()), "{}: the value leaked", v.name);
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} invalid_ip vectors");
    // From stdin, one value per line; an empty one has no mask (a row stores NULL).
    let mut child = Command::new(maskflow_bin())
        .args(["mask", "--column", "ip", "--all-keys"])
        .env("MASKFLOW_KEY", std::fs::read_to_string(test_key_file()).unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"::ffff:199.172.111.135\n   \n").unwrap();
    let out = child.wait_with_output().unwrap();
    let sample =
        inputs_and_masks("ip", "masked_ip").into_iter().find(|(i, _)| i == "199.172.111.135");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sample.unwrap().1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("value 2: empty"));
    assert_eq!(out.status.code(), Some(1));
}
