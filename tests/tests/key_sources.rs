//! Key sources (README "Key sources") against LocalStack's own KMS and Secrets Manager: every
//! source gives the masks the key file gives; each refusal (a wrapped key moved to another id,
//! a deleted or missing secret, a disabled KMS key, a permission the service refuses) exits 3
//! at once, throttling is retried within `--startup-timeout` and exits 4 past it; SIGHUP
//! rotates the key mid-run with exactly-once kept, and a source that fails on reload keeps the
//! running keys. Tests read exit codes, events and metrics, never log text.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maskflow_tests::aws_keys::AwsKeys;
use maskflow_tests::faults::{Fault, SqsFaults};
use maskflow_tests::run::{events_of, Events};
use maskflow_tests::{maskflow_bin, Services};

/// Variables set for one command: (name, value).
type Env<'a> = Vec<(&'a str, &'a str)>;
/// The refusal a case must end in: (call, the service's error code, the permission named).
type Refusal<'a> = (&'a str, &'a str, Option<&'a str>);

/// A fresh file name under the temp dir, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with(text: &str) -> TempFile {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("maskflow-ks-{}-{n}.key", std::process::id()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a one-off `maskflow` command did.
struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    events: Events,
    elapsed: Duration,
}

/// `maskflow ARGS` with the services' environment (endpoints, LocalStack's credentials) and no
/// key but the one given in `env`; `stdin` fed to it.
fn maskflow(services: &Services, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Outcome {
    let mut cmd = Command::new(maskflow_bin());
    cmd.args(args)
        .envs(&services.env)
        .env_remove("MASKFLOW_KEY")
        .env_remove("MASKFLOW_KEY_FILE")
        .env_remove("MASKFLOW_KEY_SOURCE")
        .env("MASKFLOW_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn maskflow");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: out.status.code(),
        events: events_of(&out.stderr),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: out.stdout,
        elapsed: started.elapsed(),
    }
}

/// A new key line from `maskflow keygen ARGS` (stdout).
fn keygen(services: &Services, args: &[&str]) -> String {
    let mut all = vec!["keygen"];
    all.extend_from_slice(args);
    let out = maskflow(services, &all, &[], b"");
    assert_eq!(out.code, Some(0), "keygen {args:?}: {}", out.stderr);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// NDJSON bodies, rows and rejections alike (rejections carry the body sealed with the key).
fn bodies() -> Vec<u8> {
    maskflow_tests::run::generated(300, 17).join("\n").into_bytes()
}

const TRANSFORM: [&str; 4] =
    ["transform", "--sent-timestamp-ms", "1700000000000", "--module-cache=off"];

fn unique(prefix: &str) -> String {
    Services::unique(prefix).replace('_', "-")
}

#[test]
fn every_source_gives_the_masks_of_the_key_file() {
    let services = Services::get();
    let aws = AwsKeys::new(&services);
    let kms_key = aws.create_key();
    let plain = keygen(&services, &["--id", "k1"]);
    let wrapped = keygen(&services, &["--id", "k2", "--kms-key-id", &kms_key]);
    assert!(wrapped.starts_with(&format!("k2:kms:{kms_key}:")), "{wrapped}");
    // The reference: the same keys in the clear, k2 unwrapped by the test's own KMS client.
    let clear = TempFile::with(&format!("{}\n{plain}\n", aws.unwrap_line(&wrapped)));
    let reference = maskflow(
        &services,
        &[&TRANSFORM[..], &["--key-file", clear.path()]].concat(),
        &[],
        &bodies(),
    );
    assert_eq!(reference.code, Some(0), "{}", reference.stderr);
    assert!(String::from_utf8_lossy(&reference.stdout).contains("\"k2."), "k2 masks");

    let text = format!("# k2 wrapped by {kms_key}\n{wrapped}\n{plain}\n");
    let file = TempFile::with(&text);
    let (secret, secret_clear) = (unique("mf-keys"), unique("mf-keys-clear"));
    aws.put_secret(&secret, &text);
    aws.put_secret(&secret_clear, &std::fs::read_to_string(&clear.0).unwrap());
    let file_uri = format!("file:{}", file.path());
    let (sm, sm_clear) =
        (format!("aws-secretsmanager:{secret}"), format!("aws-secretsmanager:{secret_clear}"));
    let sm_stage = format!("{sm}:AWSCURRENT");
    let sources: Vec<(&str, Vec<&str>, Env)> = vec![
        ("--key-file (wrapped line)", vec!["--key-file", file.path()], vec![]),
        ("MASKFLOW_KEY (wrapped line)", vec![], vec![("MASKFLOW_KEY", text.as_str())]),
        ("file:", vec!["--key-source", file_uri.as_str()], vec![]),
        ("env:", vec!["--key-source", "env:MF_TEST_KEYS"], vec![("MF_TEST_KEYS", text.as_str())]),
        ("aws-secretsmanager: (wrapped line)", vec![], vec![("MASKFLOW_KEY_SOURCE", sm.as_str())]),
        ("aws-secretsmanager: with a stage", vec!["--key-source", sm_stage.as_str()], vec![]),
        ("aws-secretsmanager: (clear)", vec!["--key-source", sm_clear.as_str()], vec![]),
    ];
    for (name, args, env) in sources {
        let out = maskflow(&services, &[&TRANSFORM[..], &args].concat(), &env, &bodies());
        assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
        assert!(out.stdout == reference.stdout, "{name}: other rows or masks than the key file's");
        eprintln!("{name}: transform of 300 lines in {:?}", out.elapsed);
    }
}

/// `maskflow mask` with `env`, expected to fail: (exit code, the `key_source_failed` events).
fn refused(
    services: &Services,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (Outcome, Vec<serde_json::Value>) {
    let args = [&["mask", "--column", "ip", "203.0.113.7"][..], extra].concat();
    let out = maskflow(services, &args, env, b"");
    let failures = out.events.named("key_source_failed").cloned().collect();
    (out, failures)
}

#[test]
fn each_refusal_exits_3_at_once_naming_the_call_code_and_permission() {
    let services = Services::get();
    let aws = AwsKeys::new(&services);
    let kms_key = aws.create_key();
    let wrapped = keygen(&services, &["--id", "k2", "--kms-key-id", &kms_key]);
    let moved = wrapped.replacen("k2:", "k3:", 1);
    let (gone, deleted, clear) = (unique("mf-gone"), unique("mf-deleted"), unique("mf-ok"));
    aws.put_secret(&gone, &wrapped);
    aws.delete_secret(&gone, true);
    aws.put_secret(&deleted, &wrapped);
    aws.delete_secret(&deleted, false);
    aws.put_secret(&clear, &keygen(&services, &["--id", "k1"]));
    let json = unique("mf-json");
    aws.put_secret(&json, "{\"key\": \"k1:AAAA\"}");
    let disabled_key = aws.create_key();
    let disabled = keygen(&services, &["--id", "k4", "--kms-key-id", &disabled_key]);
    aws.disable_key(&disabled_key);
    let relay = SqsFaults::start(localstack(&services));
    relay.inject("GetSecretValue", Fault::Status(400, "AccessDeniedException"), None);
    relay.inject("Decrypt", Fault::Status(400, "AccessDeniedException"), None);

    let sm = |id: &str| format!("aws-secretsmanager:{id}");
    let (sm_gone, sm_deleted, sm_clear, sm_old, sm_json) =
        (sm(&gone), sm(&deleted), sm(&clear), sm(&format!("{clear}:AWSPREVIOUS")), sm(&json));
    let relay_url = relay.url();
    let cases: Vec<(&str, Env, Option<Refusal>)> = vec![
        (
            "a wrapped key moved to another id",
            vec![("MASKFLOW_KEY", &moved)],
            Some(("Decrypt", "InvalidCiphertextException", None)),
        ),
        (
            "a KMS key disabled",
            vec![("MASKFLOW_KEY", &disabled)],
            Some(("Decrypt", "DisabledException", None)),
        ),
        (
            "a secret deleted for good",
            vec![("MASKFLOW_KEY_SOURCE", &sm_gone)],
            Some(("GetSecretValue", "ResourceNotFoundException", None)),
        ),
        (
            "a secret scheduled for deletion",
            vec![("MASKFLOW_KEY_SOURCE", &sm_deleted)],
            Some(("GetSecretValue", "InvalidRequestException", None)),
        ),
        (
            "no version at that stage",
            vec![("MASKFLOW_KEY_SOURCE", &sm_old)],
            Some(("GetSecretValue", "ResourceNotFoundException", None)),
        ),
        (
            "GetSecretValue refused",
            vec![
                ("MASKFLOW_KEY_SOURCE", &sm_clear),
                ("MASKFLOW_SECRETSMANAGER_ENDPOINT", &relay_url),
            ],
            Some((
                "GetSecretValue",
                "AccessDeniedException",
                Some("secretsmanager:GetSecretValue"),
            )),
        ),
        (
            "Decrypt refused",
            vec![("MASKFLOW_KEY", &wrapped), ("MASKFLOW_KMS_ENDPOINT", &relay_url)],
            Some(("Decrypt", "AccessDeniedException", Some("kms:Decrypt"))),
        ),
        ("a secret holding JSON", vec![("MASKFLOW_KEY_SOURCE", &sm_json)], None),
    ];
    for (name, env, expected) in cases {
        let (out, failures) = refused(&services, &env, &["--startup-timeout", "20"]);
        assert_eq!(out.code, Some(3), "{name}: {}", out.stderr);
        assert_eq!(out.events.failure_kind(), Some("config"), "{name}");
        assert!(out.elapsed < Duration::from_secs(10), "{name}: {:?}, not at once", out.elapsed);
        match expected {
            None => assert!(failures.is_empty(), "{name}: {failures:?}"),
            Some((call, code, needs)) => {
                assert_eq!(failures.len(), 1, "{name}: one call, not retried: {failures:?}");
                let failure = &failures[0];
                assert_eq!(failure["call"], call, "{name}");
                assert_eq!(failure["code"], code, "{name}");
                assert_eq!(failure["transient"], false, "{name}");
                assert_eq!(failure["needs"].as_str(), needs, "{name}");
            }
        }
    }
    // keygen: a disabled KMS key refuses Encrypt the same way.
    let out =
        maskflow(&services, &["keygen", "--id", "k5", "--kms-key-id", &disabled_key], &[], b"");
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert_eq!(out.events.last("key_source_failed").unwrap()["code"], "DisabledException");
    assert!(out.stdout.is_empty(), "no key line printed");
}

/// LocalStack's address, for a relay in front of it.
fn localstack(services: &Services) -> std::net::SocketAddr {
    let url = services.var("AWS_ENDPOINT_URL");
    url.trim_start_matches("http://").parse().expect("LocalStack at IP:port")
}

#[test]
fn throttling_is_retried_within_the_startup_timeout_then_exits_4() {
    let services = Services::get();
    let aws = AwsKeys::new(&services);
    let wrapped = keygen(&services, &["--id", "k2", "--kms-key-id", &aws.create_key()]);
    let relay = SqsFaults::start(localstack(&services));
    let url = relay.url();
    let env = [("MASKFLOW_KEY", wrapped.as_str()), ("MASKFLOW_KMS_ENDPOINT", url.as_str())];

    // Throttled for good: retried until the 3 s budget is spent, then exit 4.
    relay.inject("Decrypt", Fault::Status(400, "ThrottlingException"), None);
    let (out, failures) = refused(&services, &env, &["--startup-timeout", "3"]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(out.events.failure_kind(), Some("unreachable"));
    assert!(out.elapsed >= Duration::from_secs(3), "gave up early: {:?}", out.elapsed);
    assert!(out.elapsed < Duration::from_secs(8), "past the budget: {:?}", out.elapsed);
    assert!(failures.len() >= 3, "retried: {failures:?}");
    // Each answer was the throttling; the deadline may cut the last attempt short (no code).
    let (last, answered) = failures.split_last().unwrap();
    assert!(answered.iter().all(|f| f["code"] == "ThrottlingException" && f["transient"] == true));
    assert!(last["code"] == "ThrottlingException" || last["code"].is_null(), "{last}");
    assert!(last["retry_in_ms"].is_null(), "the budget is spent: no retry announced");

    // Throttled 4 times, then answered: the key is had, with 4 retries seen.
    relay.clear();
    relay.inject("Decrypt", Fault::Status(400, "ThrottlingException"), Some(4));
    let calls_before = relay.calls("Decrypt").len();
    let (out, failures) = refused(&services, &env, &["--startup-timeout", "20"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("k2."), "masked under k2");
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert_eq!(relay.calls("Decrypt").len() - calls_before, 5, "one call per attempt");
}

#[path = "key_sources/rotation.rs"]
mod rotation;
