//! Key material is never shown: every error path of key loading (the key file, `MASKFLOW_KEY`,
//! a Secrets Manager secret) is checked against every 8-character window of the key's base64,
//! of its hex and of its raw bytes, in the library's errors (Display and Debug) and in the
//! `maskflow` process's output; a whole run with keys from Secrets Manager and KMS logs none at
//! `RUST_LOG=trace`. Also: the process marks itself not dumpable, and says so.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use maskflow_tests::aws_keys::AwsKeys;
use maskflow_tests::key_files::{malformed_key_files, KeyFileCase};
use maskflow_tests::run::{generated, Run};
use maskflow_tests::{maskflow_bin, Services};
use maskflow_transform::{Error as TransformError, Key, KeyFileRule};

/// A 64-byte key: bytes spread over the whole range so every window is distinctive.
fn key_bytes(seed: u8) -> [u8; 64] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(73).wrapping_add(seed).rotate_left(3))
}

/// Every 8-byte window of the key's base64, lowercase hex and raw bytes.
fn windows(bytes: &[u8]) -> Vec<Vec<u8>> {
    let b64 = STANDARD.encode(bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    [b64.as_bytes(), hex.as_bytes(), bytes]
        .iter()
        .flat_map(|r| r.windows(8))
        .map(<[u8]>::to_vec)
        .collect()
}

fn assert_no_key(shown: &[u8], keys: &[[u8; 64]], what: &str) {
    for key in keys {
        for w in windows(key) {
            assert!(
                !shown.windows(8).any(|s| s == w.as_slice()),
                "{what}: shows key material {:?}:\n{}",
                String::from_utf8_lossy(&w),
                String::from_utf8_lossy(shown)
            );
        }
    }
}

/// Where `unmask_with` puts the key file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `--key-file`, mode 0600.
    File,
    /// `MASKFLOW_KEY`.
    Env,
    /// A Secrets Manager secret (`--key-source aws-secretsmanager:...`).
    Secret,
}

/// `maskflow unmask` with the key file's text put `via` a source: its exit code and everything
/// it wrote.
fn unmask_with(key_text: &[u8], via: Via) -> (Option<i32>, Vec<u8>) {
    let mut cmd = Command::new(maskflow_bin());
    cmd.args(["unmask", "k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
        .env_remove("MASKFLOW_KEY")
        .env_remove("MASKFLOW_KEY_FILE")
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null());
    // One file per call: the tests of this file run in parallel.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("maskflow-secrets-{}-{call}.key", std::process::id()));
    match via {
        Via::File => {
            std::fs::write(&path, key_text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            cmd.arg("--key-file").arg(&path);
        }
        Via::Env => {
            use std::os::unix::ffi::OsStrExt;
            cmd.env("MASKFLOW_KEY", std::ffi::OsStr::from_bytes(key_text));
        }
        Via::Secret => {
            let services = Services::get();
            let name = Services::unique("mf-secrets").replace('_', "-");
            AwsKeys::new(&services).put_secret(&name, std::str::from_utf8(key_text).unwrap());
            cmd.envs(&services.env).env_remove("MASKFLOW_KEY");
            cmd.arg("--key-source").arg(format!("aws-secretsmanager:{name}"));
        }
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_file(path);
    (out.status.code(), [out.stdout, out.stderr].concat())
}

#[test]
fn key_loading_errors_name_the_line_and_rule_never_the_key() {
    let (key, other) = (key_bytes(5), key_bytes(200));
    let (b64, other_b64) = (STANDARD.encode(key), STANDARD.encode(other));
    let cases = malformed_key_files(&b64, &other_b64);
    assert!(cases.len() >= 17, "the fixture lost cases: {}", cases.len());
    for KeyFileCase { name, text, line, rule, says } in cases {
        // The library: the typed rule and line; Display and Debug, of its error and the host's.
        let err = Key::parse_key_file(&text).map(|_| ()).expect_err(&name);
        let TransformError::KeyFile { line: got, rule: got_rule } = &err else {
            panic!("{name}: {err:?}")
        };
        assert_eq!((*got, got_rule.code()), (line, rule.as_str()), "{name}");
        let host: maskflow::Error = err.clone().into();
        for shown in [err.to_string(), format!("{err:?}"), host.to_string(), format!("{host:?}")] {
            let named = [format!("line {line}"), format!("line: {line}")];
            assert!(named.iter().any(|n| shown.contains(n)), "{name}: {shown}");
            assert!(shown.contains(&says), "{name} should say {says:?}: {shown}");
            assert_no_key(shown.as_bytes(), &[key, other], &name);
        }
        // The CLI: exit 3 (a setting), the source and line named, nothing of the key.
        for (via, source) in [
            (Via::File, "key file "),
            (Via::Env, "MASKFLOW_KEY line"),
            (Via::Secret, "(Secrets Manager) line"),
        ] {
            let (code, output) = unmask_with(text.as_bytes(), via);
            let shown = String::from_utf8_lossy(&output);
            assert_eq!(code, Some(3), "{name} ({via:?}): {shown}");
            assert!(shown.contains(source) && shown.contains(&format!("line {line}")), "{shown}");
            assert_no_key(&output, &[key, other], &format!("{name} ({via:?})"));
        }
    }
}

#[test]
fn the_key_file_fixture_covers_every_rule_and_only_known_rules() {
    let (key, other) = (STANDARD.encode(key_bytes(5)), STANDARD.encode(key_bytes(200)));
    let cases = malformed_key_files(&key, &other);
    for code in KeyFileRule::CODES {
        assert!(cases.iter().any(|c| c.rule == code), "no fixture case for {code}");
    }
    for case in &cases {
        assert!(KeyFileRule::CODES.contains(&case.rule.as_str()), "{}: {}", case.name, case.rule);
    }
}

#[test]
fn other_key_loading_errors_show_nothing_of_the_key_either() {
    let key = key_bytes(77);
    let line = format!("k1:{}\n", STANDARD.encode(key));
    let mut not_utf8 = line.clone().into_bytes();
    not_utf8.insert(3, 0xff);
    for (text, expected) in [
        (not_utf8.clone(), "not UTF-8"),
        (b"\n# no key here\n".to_vec(), "holds no key line"),
        (line.replace('\n', "\r\n").into_bytes(), "CRLF"),
    ] {
        // A secret's string is UTF-8 by construction: that case is the file's and the variable's.
        let vias = if text == not_utf8 {
            vec![Via::File, Via::Env]
        } else {
            vec![Via::File, Via::Env, Via::Secret]
        };
        for via in vias {
            let (code, output) = unmask_with(&text, via);
            let shown = String::from_utf8_lossy(&output);
            assert_eq!(code, Some(3), "{shown}");
            assert!(shown.contains(expected), "{expected}: {shown}");
            assert_no_key(&output, &[key], expected);
        }
    }
    // A secret holding JSON (the console's key/value form) is refused by what it holds.
    let json = format!("{{\"maskflow\": \"{}\"}}", line.trim());
    let (code, output) = unmask_with(json.as_bytes(), Via::Secret);
    assert_eq!(code, Some(3), "{}", String::from_utf8_lossy(&output));
    assert!(String::from_utf8_lossy(&output).contains("holds JSON"));
    assert_no_key(&output, &[key], "JSON secret");
    // A key file others can read is refused before it is read.
    let path: PathBuf =
        std::env::temp_dir().join(format!("maskflow-open-{}.key", std::process::id()));
    std::fs::write(&path, &line).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(maskflow_bin())
        .args(["unmask", "--key-file", path.to_str().unwrap(), "k1.AAAA"])
        .env_remove("MASKFLOW_KEY")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let output = [out.stdout, out.stderr].concat();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output).contains("chmod 600"));
    assert_no_key(&output, &[key], "mode 0644");
}

/// The process is marked not dumpable before it reads any key: the kernel's answer to
/// PR_GET_DUMPABLE, logged at debug, is 0.
#[test]
fn the_process_is_not_dumpable() {
    let mut child = Command::new(maskflow_bin())
        .args(["transform", "--module-cache", "off"])
        .env("MASKFLOW_KEY", std::fs::read_to_string(maskflow_tests::test_key_file()).unwrap())
        .env("RUST_LOG", "maskflow=debug")
        .env("MASKFLOW_LOG_FORMAT", "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{}\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let hardening = maskflow_tests::run::events_of(&out.stderr);
    let hardening =
        hardening.last("hardening").unwrap_or_else(|| panic!("no hardening event: {stderr}"));
    assert_eq!(hardening["dumpable"], 0, "{stderr}");
}

/// A whole run with its keys from Secrets Manager, one of them KMS-wrapped, at `RUST_LOG=trace`
/// (the AWS SDK's answers included, as far as the host lets its crates log): no window of
/// either key, in any form, anywhere in the output.
#[test]
fn keys_from_secrets_manager_and_kms_never_reach_the_output_at_trace() {
    let services = Services::get();
    let aws = AwsKeys::new(&services);
    let keygen = |args: &[&str]| {
        let out = Command::new(maskflow_bin())
            .arg("keygen")
            .args(args)
            .envs(&services.env)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let plain = keygen(&["--id", "k1"]);
    let wrapped = keygen(&["--id", "k2", "--kms-key-id", &aws.create_key()]);
    let clear: Vec<[u8; 64]> = [aws.unwrap_line(&wrapped), plain.clone()]
        .iter()
        .map(|l| STANDARD.decode(l.split_once(':').unwrap().1).unwrap().try_into().unwrap())
        .collect();
    let secret = Services::unique("mf-trace").replace('_', "-");
    aws.put_secret(&secret, &format!("{wrapped}\n{plain}\n"));
    let run = Run::new(&services, "secrets_trace");
    let bodies = generated(200, 3);
    services.send(&run.queue_url, &bodies);
    let out = run
        .command(&["run", "--drain"])
        .env("MASKFLOW_KEY_SOURCE", format!("aws-secretsmanager:{secret}"))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let output = [out.stdout, out.stderr].concat();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&output[output.len().saturating_sub(4000)..])
    );
    let traced =
        String::from_utf8_lossy(&output).lines().filter(|l| l.contains("\"TRACE\"")).count();
    assert!(traced > 1000, "a trace log: {traced} trace lines");
    let patterns: Vec<Vec<u8>> = clear.iter().flat_map(|k| windows(k)).collect();
    let found = aho_corasick::AhoCorasick::new(&patterns).unwrap().find(&output);
    if let Some(m) = found {
        let at = m.start().saturating_sub(200);
        panic!(
            "key material in the trace log: ...{}",
            String::from_utf8_lossy(&output[at..m.end() + 50])
        );
    }
}
