//! The real pipeline: a `vector` binary runs `vector/vector.yaml` against the dev services
//! (`scripts/services start`), and its tables are compared with what the host (`maskflow run`)
//! writes for the same messages.
//!
//! Only where a `vector` binary is found when this crate is built (`MASKFLOW_VECTOR_BIN`, else
//! `PATH`; see build.rs). Elsewhere the test is *ignored* — cargo prints
//! `live_vector_pipeline_matches_the_host ... ignored, SKIPPED: ...` and counts it as ignored,
//! never as passed. CI here has no Vector: this test does not run there.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maskflow_vrl_conformance::{golden, repo_root, test_key_text, Vector};

/// `vector/tables.sql`: the host's DDL (Vector's postgres sink creates no tables).
fn ddl() -> String {
    std::fs::read_to_string(repo_root().join("vector/tables.sql")).expect("vector/tables.sql")
}

fn services_env() -> HashMap<String, String> {
    let state = std::env::var("MASKFLOW_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".state"));
    let path = state.join("services.env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}: start the services first: scripts/services start", path.display())
    });
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches(|c| c == '"' || c == '\'').to_owned()))
        .collect()
}

fn maskflow_bin() -> PathBuf {
    let bin = std::env::var_os("MASKFLOW_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/maskflow"));
    assert!(
        bin.is_file(),
        "{}: build the host first (cargo build --release -p maskflow-host)",
        bin.display()
    );
    bin
}

/// A fresh database with the two tables; returns its URL.
fn fresh_database(env: &HashMap<String, String>, name: &str) -> String {
    let base = &env["DATABASE_URL"];
    let mut admin =
        postgres::Client::connect(base, postgres::NoTls).expect("connect to PostgreSQL");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop database");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
    let url = format!("{}/{name}", &base[..base.rfind('/').expect("URL has a database")]);
    postgres::Client::connect(&url, postgres::NoTls)
        .unwrap()
        .batch_execute(&ddl())
        .expect("create tables");
    url
}

/// Sends the bodies to a new queue with the host's `maskflow send`; returns the queue URL.
fn fresh_queue(env: &HashMap<String, String>, name: &str, bodies: &[String]) -> String {
    let file = std::env::temp_dir().join(format!("{name}.ndjson"));
    std::fs::write(&file, bodies.join("\n") + "\n").unwrap();
    let out = Command::new(maskflow_bin())
        .args(["send", "--queue-name", name])
        .arg(&file)
        .envs(env)
        .env_remove("MASKFLOW_QUEUE_URL")
        .output()
        .expect("run maskflow send");
    assert!(out.status.success(), "maskflow send: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.split_whitespace().last().expect("queue URL on stderr").to_owned()
}

type Rows = Vec<Vec<Option<String>>>;

fn table(url: &str, sql: &str) -> Rows {
    let mut db = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let mut rows: Rows = db
        .query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect();
    rows.sort();
    rows
}

const ROWS: &str = "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version::text, create_date::text FROM user_logins";
const REJECTED: &str = "SELECT reason, message, encrypted_body FROM user_logins_rejected";

fn count(url: &str) -> usize {
    table(url, ROWS).len() + table(url, REJECTED).len()
}

#[test]
#[cfg_attr(
    not(vector_on_path),
    ignore = "SKIPPED: no `vector` binary on PATH (or MASKFLOW_VECTOR_BIN) when this crate was built"
)]
fn live_vector_pipeline_matches_the_host() {
    #[allow(clippy::option_env_unwrap)] // replaced by a run-time lookup (helper branch)
    let vector = option_env!("MASKFLOW_VECTOR_FOUND").expect(
        "SKIPPED: no vector binary (build.rs found none); this test must not pass without one",
    );
    eprintln!("live: running {vector}");
    let env = services_env();
    let golden = golden();
    // What SQS carries: not empty, UTF-8, at most 256 KiB; one line each for `maskflow send`,
    // and the first line an object (a file starting with `[` is read as a JSON array).
    let mut bodies: Vec<String> = golden
        .iter()
        .map(Vector::body)
        .filter(|b| {
            !b.iter().all(u8::is_ascii_whitespace) && b.len() <= 256 * 1024 && !b.contains(&b'\n')
        })
        .filter_map(|b| String::from_utf8(b).ok())
        .collect();
    bodies.sort_by_key(|b| !b.starts_with('{'));
    let id = std::process::id();

    // The host.
    let host_db = fresh_database(&env, &format!("vrl_live_host_{id}"));
    let host_queue = fresh_queue(&env, &format!("vrl-live-host-{id}"), &bodies);
    let key_file = repo_root().join("tests/vectors/test.key");
    let out = Command::new(maskflow_bin())
        .args(["run", "--drain"])
        .envs(&env)
        .env("MASKFLOW_QUEUE_URL", &host_queue)
        .env("DATABASE_URL", &host_db)
        .env("MASKFLOW_KEY_FILE", &key_file)
        .output()
        .expect("run maskflow");
    assert!(out.status.success(), "maskflow run: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(&host_db), bodies.len(), "host: one row or rejection per message");

    // Vector, on the same messages.
    let vector_db = fresh_database(&env, &format!("vrl_live_vector_{id}"));
    let vector_queue = fresh_queue(&env, &format!("vrl-live-vector-{id}"), &bodies);
    let log = std::env::temp_dir().join(format!("vrl-live-vector-{id}.log"));
    let mut child = Command::new(vector)
        .args(["--config", "vector/vector.yaml"])
        .current_dir(repo_root())
        .envs(&env)
        .env("MASKFLOW_QUEUE_URL", &vector_queue)
        .env("DATABASE_URL", &vector_db)
        .env("MASKFLOW_KEY", test_key_text())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start vector");
    let deadline = Instant::now() + Duration::from_secs(180);
    while count(&vector_db) < bodies.len() && Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("vector exited early ({status}); log: {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Give the acknowledgements time to delete the messages, then stop Vector.
    std::thread::sleep(Duration::from_secs(5));
    child.kill().ok();
    child.wait().ok();
    assert_eq!(
        count(&vector_db),
        bodies.len(),
        "vector: one row or rejection per message (log: {})",
        log.display()
    );

    // Same rows (create_date compared apart: it is the SQS sent date of each run).
    let strip_date = |rows: Rows| -> Vec<Vec<Option<String>>> {
        rows.into_iter()
            .map(|mut r| {
                r.pop();
                r
            })
            .collect()
    };
    let (host_rows, vector_rows) = (table(&host_db, ROWS), table(&vector_db, ROWS));
    let dates: BTreeMap<_, usize> =
        host_rows.iter().chain(&vector_rows).fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r[6].clone()).or_default() += 1;
            m
        });
    assert!(dates.len() <= 2, "create_date: {dates:?}");
    let (mut host_rows, mut vector_rows) = (strip_date(host_rows), strip_date(vector_rows));
    host_rows.sort();
    vector_rows.sort();
    assert_eq!(vector_rows, host_rows, "user_logins differs between Vector and the host");
    assert_eq!(
        table(&vector_db, REJECTED),
        table(&host_db, REJECTED),
        "user_logins_rejected differs between Vector and the host"
    );
    eprintln!("live: {} messages, Vector and the host wrote the same tables", bodies.len());
}
