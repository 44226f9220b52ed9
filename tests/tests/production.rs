//! Outside the lab: TLS to PostgreSQL the libpq way, configuration errors that fail fast with
//! the queue untouched, key safety, and a table that refuses everything. Against the real
//! services; `scripts/services` runs PostgreSQL with TLS (a CA and a server certificate for
//! `localhost` made per run with the openssl CLI) and a role allowed over TLS only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use maskflow_tests::run::{generated, Run};
use maskflow_tests::Services;

/// Exit codes documented in README and `maskflow run --help`.
const EXIT_CONFIG: i32 = 3;
const EXIT_UNREACHABLE: i32 = 4;
const EXIT_STOPPED: i32 = 5;
const EXIT_USAGE: i32 = 2;

fn pg_port(services: &Services) -> &str {
    services.var("PGPORT")
}

/// `run.database_url` with another host, user and query string.
fn url(run: &Run, host: &str, user: &str, query: &str) -> String {
    let db = run.database_url.rsplit('/').next().unwrap();
    format!("postgresql://{user}@{host}:{}/{db}?{query}", pg_port(run.services))
}

/// Runs `maskflow run --drain` with `DATABASE_URL` replaced; returns its output and duration.
fn drain_with(
    run: &Run,
    database_url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Output, Duration) {
    let mut args = vec!["run", "--drain", "--startup-timeout", "5"];
    args.extend_from_slice(extra);
    let mut cmd = run.command(&args);
    cmd.env("DATABASE_URL", database_url).envs(env.iter().copied());
    let started = Instant::now();
    let out = cmd.output().expect("run maskflow");
    (out, started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails fast with `code`, saying `hint`, and without having received any message.
fn assert_fails_fast(run: &Run, (out, took): (Output, Duration), code: i32, hint: &str) {
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{log}");
    assert!(log.to_lowercase().contains(&hint.to_lowercase()), "expected `{hint}` in: {log}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {log}");
    assert_untouched(run);
}

/// How often this test itself received each message (to tell its own receives from the host's).
static SEEN: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

/// Nothing was ever received by a host: no message is in flight, and every message's receive
/// count is exactly the number of times this test itself looked at it, plus this look.
fn assert_untouched(run: &Run) {
    let queue = run.services.queue(&run.queue_url);
    let (visible, hidden) = run.services.runtime.block_on(queue.approximate_depth()).unwrap();
    assert_eq!(hidden, 0, "messages were received");
    assert!(visible > 0, "the queue is empty");
    let received = run
        .services
        .runtime
        .block_on(queue.receive(Duration::from_secs(1), Duration::from_secs(30)))
        .unwrap();
    assert!(!received.is_empty());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    for m in &received {
        let before = seen.entry(m.id.clone()).or_default();
        *before += 1;
        assert_eq!(m.receive_count, *before, "message {} was received by a host", m.id);
    }
    // Back to visible for the next case.
    let receipts: Vec<String> = received.iter().map(|m| m.receipt.clone()).collect();
    run.services
        .runtime
        .block_on(queue.change_visibility_batch(&receipts, Duration::ZERO))
        .unwrap();
}

fn queued_run<'a>(services: &'a Services, name: &str, n: usize) -> Run<'a> {
    let run = Run::new(services, name);
    services.send(&run.queue_url, &generated(n, 51));
    run
}

#[test]
fn verify_full_with_the_runs_ca_lands_rows() {
    let services = Services::get();
    let run = queued_run(&services, "prod_tls_ok", 200);
    let ca = services.var("MASKFLOW_PG_CA");
    // The role is allowed over TLS only (pg_hba `hostssl`), so rows landing prove TLS was used.
    let role = services.var("MASKFLOW_PG_TLS_ROLE");
    let query = format!("sslmode=verify-full&sslrootcert={ca}");
    let (out, _) = drain_with(&run, &url(&run, "localhost", role, &query), &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(run.count("SELECT count(*) FROM maskflow_ledger"), 200);
}

#[test]
fn tls_misconfigurations_fail_fast_with_the_queue_untouched() {
    let services = Services::get();
    let run = queued_run(&services, "prod_tls_bad", 20);
    let ca = services.var("MASKFLOW_PG_CA");

    // A CA that did not sign the server's certificate.
    let other = std::env::temp_dir().join(format!("maskflow-other-ca-{}", std::process::id()));
    std::fs::create_dir_all(&other).unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=another CA", "-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-keyout")
        .arg(other.join("ca.key"))
        .arg("-out")
        .arg(other.join("ca.crt"))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let wrong_ca = other.join("ca.crt");
    let query = format!("sslmode=verify-full&sslrootcert={}", wrong_ca.display());
    assert_fails_fast(
        &run,
        drain_with(&run, &url(&run, "localhost", "maskflow", &query), &[], &[]),
        EXIT_CONFIG,
        "certificate",
    );

    // The certificate names `localhost`, not 127.0.0.1: refused under verify-full ...
    let query = format!("sslmode=verify-full&sslrootcert={ca}");
    assert_fails_fast(
        &run,
        drain_with(&run, &url(&run, "127.0.0.1", "maskflow", &query), &[], &[]),
        EXIT_CONFIG,
        "name",
    );
    // ... accepted under verify-ca, which checks the chain only.
    let query = format!("sslmode=verify-ca&sslrootcert={ca}");
    let (out, _) = drain_with(&run, &url(&run, "127.0.0.1", "maskflow", &query), &[], &[]);
    assert!(out.status.success(), "verify-ca: {}", stderr(&out));
    assert_eq!(run.count("SELECT count(*) FROM maskflow_ledger"), 20);

    // From here on a fresh queue (the first one was drained above).
    let run = queued_run(&services, "prod_tls_bad2", 20);
    // `require` against a server that does not speak TLS (it answers the SSLRequest with `N`).
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = plain.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for stream in plain.incoming().take(1) {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 8];
            stream.read_exact(&mut request).unwrap();
            stream.write_all(b"N").unwrap();
        }
    });
    let no_tls = format!("postgresql://maskflow@127.0.0.1:{port}/x?sslmode=require");
    assert_fails_fast(
        &run,
        drain_with(&run, &no_tls, &[], &[]),
        EXIT_CONFIG,
        "does not support TLS",
    );
    server.join().unwrap();

    // A role allowed over TLS only, asked to connect without it.
    let role = services.var("MASKFLOW_PG_TLS_ROLE");
    assert_fails_fast(
        &run,
        drain_with(&run, &url(&run, "127.0.0.1", role, "sslmode=disable"), &[], &[]),
        EXIT_CONFIG,
        "28000",
    );
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn wrong_settings_exit_with_the_config_code_before_receiving_anything() {
    let services = Services::get();
    let run = queued_run(&services, "prod_config", 20);

    // A queue that does not exist.
    let mut cmd =
        run.command(&["run", "--drain", "--queue-name", "no-such-queue", "--startup-timeout", "5"]);
    cmd.env_remove("MASKFLOW_QUEUE_URL");
    let started = Instant::now();
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-queue"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_untouched(&run);

    // A wrong password (a role that needs one).
    let role = services.var("MASKFLOW_PG_PASSWORD_ROLE");
    let db = run.database_url.rsplit('/').next().unwrap();
    let wrong = format!("postgresql://{role}:wrong@127.0.0.1:{}/{db}", pg_port(&services));
    assert_fails_fast(&run, drain_with(&run, &wrong, &[], &[]), EXIT_CONFIG, "28P01");
    // PGPASSWORD fills in a URL without a password, as in libpq: the server judges it.
    let bare = format!("postgresql://{role}@127.0.0.1:{}/{db}", pg_port(&services));
    let env = [("PGPASSWORD", "wrong")];
    assert_fails_fast(&run, drain_with(&run, &bare, &[], &env), EXIT_CONFIG, "28P01");

    // A database that does not exist.
    let missing =
        format!("postgresql://maskflow@127.0.0.1:{}/no_such_database", pg_port(&services));
    assert_fails_fast(&run, drain_with(&run, &missing, &[], &[]), EXIT_CONFIG, "3D000");

    // A user_logins of another shape.
    run.db().batch_execute("CREATE TABLE user_logins(user_id integer, device_type varchar(32), masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date)").unwrap();
    assert_fails_fast(&run, drain_with(&run, &run.database_url, &[], &[]), EXIT_CONFIG, "user_id");

    // Nothing listens on this port: unreachable within the start-up budget, naming it.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = format!("postgresql://maskflow@127.0.0.1:{closed}/x");
    let (out, took) = drain_with(&run, &nowhere, &[], &[]);
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(stderr(&out).contains(&closed.to_string()), "names the endpoint: {}", stderr(&out));
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_untouched(&run);

    // Conflicting settings are refused, not resolved.
    let out = run.command(&["run", "--drain", "--queue-name", "other"]).output().unwrap();
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
}

#[test]
fn keys_are_checked_before_anything_is_received() {
    let services = Services::get();
    let run = queued_run(&services, "prod_keys", 20);
    let dir = std::env::temp_dir().join(format!("maskflow-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keygen = |name: &str| {
        let path = dir.join(name);
        let out = run.command(&["keygen", "--out", path.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        path
    };
    let first = keygen("first.key");
    let other = keygen("other.key");
    let env_first = [("MASKFLOW_KEY_FILE", first.to_str().unwrap())];
    // The first key registers its fingerprint and drains a few messages.
    let (out, _) = drain_with(&run, &run.database_url, &[], &env_first);
    assert!(out.status.success(), "{}", stderr(&out));
    let fingerprints = run.count("SELECT count(*) FROM maskflow_keys WHERE key_id = 'k1'");
    assert_eq!(fingerprints, 1);

    services.send(&run.queue_url, &generated(10, 52));
    // Another key under the same id `k1`: refused, nothing received.
    let env_other = [("MASKFLOW_KEY_FILE", other.to_str().unwrap())];
    assert_fails_fast(
        &run,
        drain_with(&run, &run.database_url, &[], &env_other),
        EXIT_CONFIG,
        "fingerprint",
    );

    // A key file others can read: refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_fails_fast(
        &run,
        drain_with(&run, &run.database_url, &[], &env_first),
        EXIT_CONFIG,
        "chmod 600",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_table_that_accepts_nothing_stops_the_host_with_every_message_still_queued() {
    let services = Services::get();
    let run = Run::new(&services, "prod_refuse_all");
    let bodies: Vec<String> =
        generated(200, 53).into_iter().filter(|b| b.contains("\"user_id\":\"")).take(50).collect();
    services.send(&run.queue_url, &bodies);
    run.db()
        .batch_execute(
            "CREATE TABLE user_logins(user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
             masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date);
             ALTER TABLE user_logins ADD CONSTRAINT nothing_fits CHECK (create_date < '2000-01-01')",
        )
        .unwrap();
    // One batch of all 50 (a batch of one refused row is a poison message, rejected as such).
    let one_batch = ["--visibility-timeout-secs", "2", "--concurrency", "1", "--linger-ms", "3000"];
    let (out, _) = drain_with(&run, &run.database_url, &one_batch, &[]);
    assert_eq!(out.status.code(), Some(EXIT_STOPPED), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing was deleted"), "{}", stderr(&out));
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), 0);
    assert_eq!(run.count("SELECT count(*) FROM user_logins_rejected"), 0);
    std::thread::sleep(Duration::from_secs(3)); // the held messages become visible again
    assert_eq!(
        services.queue_depth(&run.queue_url),
        bodies.len() as u64,
        "every message is still queued"
    );
}

#[test]
fn sqs_endpoints_resolve_the_sdk_way() {
    let services = Services::get();
    let run = queued_run(&services, "prod_endpoint", 20);
    let endpoint = services.var("AWS_ENDPOINT_URL").to_owned();

    // AWS_ENDPOINT_URL_SQS alone reaches LocalStack.
    let mut cmd = run.command(&["run", "--drain"]);
    cmd.env_remove("AWS_ENDPOINT_URL")
        .env_remove("MASKFLOW_SQS_ENDPOINT")
        .env("AWS_ENDPOINT_URL_SQS", &endpoint);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(run.count("SELECT count(*) FROM maskflow_ledger"), 20);

    // No endpoint configured and no network (an empty network namespace): real AWS is tried,
    // and unreachable within the start-up budget is fatal, naming it.
    if !Command::new("unshare").args(["-n", "true"]).status().is_ok_and(|s| s.success()) {
        panic!("`unshare -n` is needed for the no-network case (run as root with util-linux)");
    }
    let env = maskflow_tests::maskflow_env(&services, &run.database_url, "");
    let started = Instant::now();
    let out = Command::new("unshare")
        .args([
            "-n",
            maskflow_tests::maskflow_bin().to_str().unwrap(),
            "run",
            "--queue-name",
            "login-queue",
            "--startup-timeout",
            "3",
        ])
        .env_clear()
        .envs(env.iter().filter(|(k, _)| {
            !k.starts_with("AWS_ENDPOINT")
                && *k != "MASKFLOW_QUEUE_URL"
                && *k != "MASKFLOW_SQS_ENDPOINT"
        }))
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(stderr(&out).contains("amazonaws.com"), "names the AWS endpoint: {}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(12), "{:?}", started.elapsed());
}

#[test]
fn schema_holds_the_target_and_every_bookkeeping_table() {
    let services = Services::get();
    let run = queued_run(&services, "prod_schema", 30);
    let (out, _) = drain_with(&run, &run.database_url, &["--schema", "analytics"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(run.count("SELECT count(*) FROM analytics.maskflow_ledger"), 30);
    let tables = |schema: &str| {
        run.count(&format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"))
    };
    assert_eq!(
        tables("analytics"),
        4,
        "user_logins, its _rejected, maskflow_ledger, maskflow_keys"
    );
    assert_eq!(tables("public"), 0, "nothing written outside the schema");
}

/// An SQS endpoint over TLS that accepts connections and never answers an SQS call (openssl's
/// test server, with the run's certificate for localhost): a certificate this machine does not
/// trust fails at once as a setting (exit 3); a trusted one that hangs is cut off at the
/// start-up budget (exit 4), not waited on forever.
#[test]
fn a_hanging_or_untrusted_tls_sqs_endpoint_fails_fast() {
    let services = Services::get();
    let run = Run::new(&services, "prod_sqs_tls");
    let dir = std::path::Path::new(services.var("MASKFLOW_PG_CA")).parent().unwrap().to_owned();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(dir.join("server.crt"))
        .arg("-key")
        .arg(dir.join("server.key"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let endpoint = format!("https://localhost:{port}");
    let attempt = |trust: Option<&str>| {
        let mut cmd = run.command(&["run", "--drain", "--startup-timeout", "3"]);
        cmd.env("MASKFLOW_SQS_ENDPOINT", &endpoint).env_remove("MASKFLOW_QUEUE_URL");
        if let Some(ca) = trust {
            cmd.env("SSL_CERT_FILE", ca);
        }
        let started = Instant::now();
        (cmd.output().unwrap(), started.elapsed())
    };
    let (out, took) = attempt(None);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    assert!(took < Duration::from_secs(3), "a certificate error is not waited out: {took:?}");
    let (out, took) = attempt(Some(services.var("MASKFLOW_PG_CA")));
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(took < Duration::from_secs(10), "cut off at the budget: {took:?}");
    server.kill().unwrap();
    let _ = server.wait();
}
