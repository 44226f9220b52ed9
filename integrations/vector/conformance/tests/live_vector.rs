//! The real pipeline: a `vector` binary runs `integrations/vector/vector.yaml` against the dev services
//! (`scripts/services start`), and the tables it writes are compared with what the host
//! (`maskflow run --drain`) writes for the same SQS bodies and the same key.
//!
//! The binary is looked for when the test runs (not when it is built): `MASKFLOW_VECTOR_BIN`,
//! else `<repo>/../shared/bin/vector` (where every checkout and CI keep the shared tools), else
//! `vector` on `PATH`. Where there is none the trial is reported as `ignored` (never `ok`), by
//! the libtest-mimic harness this target uses (`harness = false` in Cargo.toml): the built-in
//! harness can only ignore a test when it is compiled. A `MASKFLOW_VECTOR_BIN` that names no
//! file fails the test: whoever set it expects the test to run.
//!
//! What is compared (see integrations/vector/README.md, "The live test"):
//! - `user_logins`: every row, cell for cell, `create_date` included: both sides take it from
//!   the SQS `SentTimestamp`, and both queues are filled within one UTC day (checked; on the
//!   rare run that straddles midnight, `create_date` is checked against the two dates instead).
//! - `user_logins_rejected`: `(reason, message, encrypted_body)` as a multiset. `message_id`
//!   cannot match (the host stores the SQS message id, Vector's source does not pass it on and
//!   the row gets `vector-<uuid>`), so it is checked for its form and uniqueness; `rejected_at`
//!   is the time of the insert on each side, so it is checked to fall within the run.
//! - The known differences of the twin (integrations/vector/conformance/tests/conformance.rs, `KNOWN_DIFFERENCES`)
//!   are not golden vectors, so here every message must give the host's outcome exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use maskflow_vrl_conformance::{golden, repo_root, test_key_text, Vector};

/// libtest-mimic prints it after `ignored`.
const SKIPPED: &str =
    "SKIPPED: no vector binary (MASKFLOW_VECTOR_BIN, <repo>/../shared/bin/vector, PATH)";

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trial =
        Trial::ignorable_test("live_vector_pipeline_matches_the_host", || match find_vector()? {
            Some(vector) => {
                live_vector_pipeline_matches_the_host(&vector).map(|()| Completion::Completed)
            }
            None => Ok(Completion::ignored_with(SKIPPED)),
        });
    libtest_mimic::run(&args, vec![trial]).exit_code()
}

/// `MASKFLOW_VECTOR_BIN`, else `<repo>/../shared/bin/vector`, else `vector` on `PATH`.
fn find_vector() -> Result<Option<PathBuf>, Failed> {
    if let Some(bin) = std::env::var_os("MASKFLOW_VECTOR_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return match bin.is_file() {
            true => Ok(Some(bin)),
            false => Err(format!("MASKFLOW_VECTOR_BIN={}: no such file", bin.display()).into()),
        };
    }
    let shared = repo_root().join("../shared/bin/vector");
    if shared.is_file() {
        return Ok(Some(shared));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(&path).map(|dir| dir.join("vector")).find(|p| p.is_file()))
}

// ------------------------------------------------------------------------------------------
// The services, the host and the databases

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

/// `MASKFLOW_BIN`, else the `maskflow` built beside this test (`<target>/release/deps/<test>`
/// -> `<target>/release/maskflow`), which also finds it under a `CARGO_TARGET_DIR`.
fn maskflow_bin() -> PathBuf {
    let bin = std::env::var_os("MASKFLOW_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent().and_then(Path::parent).expect("<target>/<profile>/deps").join("maskflow")
    });
    assert!(
        bin.is_file(),
        "{}: build the host first (cargo build --release --workspace --bins --tests) \
         or set MASKFLOW_BIN",
        bin.display()
    );
    bin
}

/// What the test made, removed however it ends: Vector is killed, the temporary directory
/// (bodies, Vector's data_dir and log), the two databases and the two queues are dropped.
struct Cleanup {
    admin_url: String,
    sqs_endpoint: String,
    dir: PathBuf,
    databases: Vec<String>,
    queues: Vec<String>,
    vector: Option<Child>,
}

impl Cleanup {
    fn stop_vector(&mut self) {
        if let Some(mut child) = self.vector.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.stop_vector();
        std::fs::remove_dir_all(&self.dir).ok();
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            for name in &self.databases {
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).ok();
            }
        }
        for queue in &self.queues {
            sqs_query(&self.sqs_endpoint, "DeleteQueue", queue, "").ok();
        }
    }
}

/// A fresh database with the two tables of `integrations/vector/tables.sql` (the host's DDL: Vector's
/// postgres sink creates none); returns its URL.
fn fresh_database(cleanup: &mut Cleanup, name: &str) -> String {
    let mut admin = postgres::Client::connect(&cleanup.admin_url, postgres::NoTls)
        .expect("connect to PostgreSQL");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .expect("drop database");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
    cleanup.databases.push(name.to_owned());
    let base = &cleanup.admin_url;
    let url = format!("{}/{name}", &base[..base.rfind('/').expect("URL has a database")]);
    let ddl = std::fs::read_to_string(repo_root().join("integrations/vector/tables.sql"))
        .expect("integrations/vector/tables.sql");
    postgres::Client::connect(&url, postgres::NoTls)
        .expect("connect to the new database")
        .batch_execute(&ddl)
        .expect("create tables");
    url
}

/// Sends the bodies to a new queue with the host's `maskflow send`; returns the queue URL.
fn fresh_queue(env: &HashMap<String, String>, dir: &Path, name: &str, bodies: &[String]) -> String {
    let file = dir.join(format!("{name}.ndjson"));
    std::fs::write(&file, bodies.join("\n") + "\n").expect("write the bodies");
    let out = Command::new(maskflow_bin())
        .args(["send", "--queue-name", name])
        .arg(&file)
        .envs(env)
        .env_remove("MASKFLOW_QUEUE_URL")
        .output()
        .expect("run maskflow send");
    assert!(out.status.success(), "maskflow send: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains(&format!("sent {} messages to ", bodies.len())));
    line.and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| {
            panic!("maskflow send did not report {} messages: {stderr}", bodies.len())
        })
        .to_owned()
}

/// One call of the SQS query API over plain HTTP/1.0 (LocalStack takes unsigned requests, and
/// this crate has no AWS SDK: the test runs against the dev services only); returns the body
/// of a 200 response.
fn sqs_query(
    endpoint: &str,
    action: &str,
    queue_url: &str,
    params: &str,
) -> Result<String, String> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("{endpoint}: not LocalStack's plain-HTTP endpoint"))?
        .trim_end_matches('/');
    let encoded: String = queue_url
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let body = format!("Action={action}&Version=2012-11-05&QueueUrl={encoded}{params}");
    let mut stream = TcpStream::connect(authority)
        .map_err(|e| format!("{action}: connect to SQS at {authority}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(
        stream,
        "POST / HTTP/1.0\r\nHost: {authority}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("{action}: {e}"))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("{action}: {e}"))?;
    match response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") {
        true => Ok(response),
        false => Err(format!("{action}: {response}")),
    }
}

/// Messages left in a queue, visible or in flight (received, not yet deleted).
fn queue_depth(endpoint: &str, queue_url: &str) -> usize {
    let params = "&AttributeName.1=ApproximateNumberOfMessages\
                  &AttributeName.2=ApproximateNumberOfMessagesNotVisible";
    let response = sqs_query(endpoint, "GetQueueAttributes", queue_url, params)
        .unwrap_or_else(|e| panic!("{e}"));
    let values: Vec<usize> = response
        .split("<Value>")
        .skip(1)
        .map(|v| v.split('<').next().unwrap().parse().expect("a count"))
        .collect();
    assert_eq!(values.len(), 2, "GetQueueAttributes: {response}");
    values.iter().sum()
}

type Rows = Vec<Vec<Option<String>>>;

fn table(url: &str, sql: &str) -> Rows {
    let mut db = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let mut rows: Rows = db
        .query(sql, &[])
        .expect(sql)
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect();
    rows.sort();
    rows
}

const ROWS: &str = "SELECT user_id, device_type, masked_ip, masked_device_id, locale, \
                    app_version::text, create_date::text FROM user_logins";
const REJECTED: &str = "SELECT reason, message, encrypted_body FROM user_logins_rejected";
/// What cannot be compared between the two sides, checked on its own.
const REJECTED_META: &str =
    "SELECT message_id, extract(epoch FROM rejected_at)::text FROM user_logins_rejected";
const CREATE_DATE: usize = 6;

fn count(url: &str) -> usize {
    let mut db = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let sql =
        "SELECT (SELECT count(*) FROM user_logins) + (SELECT count(*) FROM user_logins_rejected)";
    let n: i64 = db.query_one(sql, &[]).expect("count").get(0);
    n as usize
}

/// Fails with the rows only one side has, as a multiset difference (cells cut short: an
/// encrypted body can be hundreds of kilobytes).
fn assert_same(what: &str, vector: &Rows, host: &Rows) {
    let mut only_host = host.clone();
    let mut only_vector = Vec::new();
    for row in vector {
        match only_host.iter().position(|r| r == row) {
            Some(i) => drop(only_host.swap_remove(i)),
            None => only_vector.push(row.clone()),
        }
    }
    if only_host.is_empty() && only_vector.is_empty() {
        return;
    }
    let show = |rows: &Rows| {
        let cut = |c: &Option<String>| c.as_ref().map(|c| c.chars().take(48).collect::<String>());
        let lines =
            rows.iter().take(10).map(|r| format!("  {:?}", r.iter().map(cut).collect::<Vec<_>>()));
        lines.collect::<Vec<_>>().join("\n")
    };
    panic!(
        "{what} differs between Vector and the host: {} rows only Vector wrote, {} only the host \
         wrote (at most 10 shown each)\nonly Vector:\n{}\nonly the host:\n{}",
        only_vector.len(),
        only_host.len(),
        show(&only_vector),
        show(&only_host)
    );
}

fn utc_date(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).format("%Y-%m-%d").to_string()
}

/// The last lines of Vector's log, for a failure message (the log holds component errors, not
/// message bodies: the programs abort with the field and the rule, never the value).
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

// ------------------------------------------------------------------------------------------
// The test

fn live_vector_pipeline_matches_the_host(vector: &Path) -> Result<(), Failed> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    eprintln!("live: running {}", vector.display());
    let env = services_env();
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("maskflow-live-vector-{id}"));
    std::fs::create_dir_all(dir.join("data")).expect("create the temporary directory");
    let mut cleanup = Cleanup {
        admin_url: env["DATABASE_URL"].clone(),
        sqs_endpoint: env["AWS_ENDPOINT_URL"].clone(),
        dir: dir.clone(),
        databases: Vec::new(),
        queues: Vec::new(),
        vector: None,
    };

    // What SQS carries: not empty, UTF-8, at most 1 MiB (SQS's and LocalStack's maximum message
    // size, so the 256 KiB + 1 body_too_large vector goes through both pipelines too); one
    // line each for `maskflow send`, which splits lines with str::lines (so no \n, and no \r
    // it would strip), and the first line an object (a file starting with `[` is read as a
    // JSON array).
    let golden = golden();
    let mut bodies: Vec<String> = golden
        .iter()
        .map(Vector::body)
        .filter(|b| {
            !b.iter().all(u8::is_ascii_whitespace)
                && b.len() <= 1024 * 1024
                && !b.contains(&b'\n')
                && !b.contains(&b'\r')
        })
        .filter_map(|b| String::from_utf8(b).ok())
        .collect();
    bodies.sort_by_key(|b| !b.starts_with('{'));
    assert!(
        bodies.len() >= 50,
        "only {} of {} golden vectors can be sent over SQS",
        bodies.len(),
        golden.len()
    );

    // Both queues filled first, back to back, so that both sides see SentTimestamps of the
    // same UTC day (checked below) and create_date is comparable cell for cell.
    let host_db = fresh_database(&mut cleanup, &format!("vrl_live_host_{id}"));
    let vector_db = fresh_database(&mut cleanup, &format!("vrl_live_vector_{id}"));
    let before_send = utc_date(SystemTime::now());
    let host_queue = fresh_queue(&env, &dir, &format!("vrl-live-host-{id}"), &bodies);
    cleanup.queues.push(host_queue.clone());
    let vector_queue = fresh_queue(&env, &dir, &format!("vrl-live-vector-{id}"), &bodies);
    cleanup.queues.push(vector_queue.clone());
    let after_send = utc_date(SystemTime::now());

    // The host.
    let out = Command::new(maskflow_bin())
        .args(["run", "--drain"])
        .envs(&env)
        .env("MASKFLOW_QUEUE_URL", &host_queue)
        .env("DATABASE_URL", &host_db)
        .env("MASKFLOW_KEY", test_key_text())
        .output()
        .expect("run maskflow");
    assert!(out.status.success(), "maskflow run: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(&host_db), bodies.len(), "host: one row or rejection per message");

    // Vector, on the same messages. Its data_dir defaults to /var/lib/vector: a second config
    // file gives it one in the temporary directory.
    let global = dir.join("global.yaml");
    std::fs::write(
        &global,
        format!("data_dir: {}\n", serde_json::to_string(&dir.join("data")).unwrap()),
    )
    .unwrap();
    let log = dir.join("vector.log");
    let child = Command::new(vector)
        .args(["--config", "integrations/vector/vector.yaml", "--config"])
        .arg(&global)
        .current_dir(repo_root())
        .envs(&env)
        .env("MASKFLOW_QUEUE_URL", &vector_queue)
        .env("DATABASE_URL", &vector_db)
        .env("MASKFLOW_KEY", test_key_text())
        .env("VECTOR_LOG", "info")
        .env("VECTOR_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the log"))
        .spawn()
        .expect("start vector");
    cleanup.vector = Some(child);
    // Until every message is in, at most 120 s (Vector takes a few seconds here), or 15 s
    // without progress once it has written something (its sink flushes every second: a
    // pipeline that loses messages shows as a stall, no need to wait out the deadline).
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut written, mut progress_at) = (0, Instant::now());
    while Instant::now() < deadline
        && !(written > 0 && progress_at.elapsed() > Duration::from_secs(15))
    {
        let now_written = count(&vector_db);
        if now_written != written {
            (written, progress_at) = (now_written, Instant::now());
        }
        if written >= bodies.len() {
            break;
        }
        if let Some(status) = cleanup.vector.as_mut().unwrap().try_wait().expect("poll vector") {
            panic!(
                "vector exited early ({status}) after writing {written} of {} messages; log:\n{}",
                bodies.len(),
                log_tail(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Acknowledgements: SQS deletes a batch once every event of it is in PostgreSQL, so the
    // queue empties shortly after the last insert (at most 20 s more; a message not deleted
    // would come back after the visibility timeout and be written twice).
    let sqs = &env["AWS_ENDPOINT_URL"];
    let ack_deadline = Instant::now() + Duration::from_secs(20);
    while queue_depth(sqs, &vector_queue) > 0 && Instant::now() < ack_deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    // A little longer: a duplicate insert (a batch written twice) would show up now.
    std::thread::sleep(Duration::from_secs(3));
    cleanup.stop_vector();
    let left = queue_depth(sqs, &vector_queue);
    assert_eq!(
        left,
        0,
        "vector left {left} messages in the queue: not acknowledged and deleted; log:\n{}",
        log_tail(&log)
    );
    let written_vector = count(&vector_db);
    assert_eq!(
        written_vector,
        bodies.len(),
        "vector: one row or rejection per message (had {written} at the deadline); log:\n{}",
        log_tail(&log)
    );
    let finished_at = SystemTime::now();

    // user_logins, cell for cell.
    let (host_rows, vector_rows) = (table(&host_db, ROWS), table(&vector_db, ROWS));
    assert!(
        !vector_rows.is_empty(),
        "the golden vectors include valid events: Vector wrote no row"
    );
    if before_send == after_send {
        for row in host_rows.iter().chain(&vector_rows) {
            assert_eq!(
                row[CREATE_DATE].as_deref(),
                Some(before_send.as_str()),
                "create_date is the SQS sent date"
            );
        }
        assert_same("user_logins", &vector_rows, &host_rows);
    } else {
        // Sent across midnight UTC: each row has one of the two dates; the rest must match.
        let dates = BTreeSet::from([before_send.clone(), after_send.clone()]);
        let strip = |rows: &Rows| -> Rows {
            let mut out: Rows = rows
                .iter()
                .map(|r| {
                    assert!(
                        r[CREATE_DATE].as_ref().is_some_and(|d| dates.contains(d)),
                        "create_date {:?} is not a send date",
                        r[CREATE_DATE]
                    );
                    r[..CREATE_DATE].to_vec()
                })
                .collect();
            out.sort();
            out
        };
        assert_same("user_logins", &strip(&vector_rows), &strip(&host_rows));
    }

    // user_logins_rejected: reason, message and encrypted body.
    let (host_rejected, vector_rejected) = (table(&host_db, REJECTED), table(&vector_db, REJECTED));
    assert!(
        !vector_rejected.is_empty(),
        "the golden vectors include invalid events: Vector wrote no rejection"
    );
    assert_same("user_logins_rejected", &vector_rejected, &host_rejected);
    // ... and what is Vector's own: a fresh vector-<uuid> each, written during this run.
    let meta = table(&vector_db, REJECTED_META);
    let ids: BTreeSet<&str> = meta.iter().map(|r| r[0].as_deref().expect("message_id")).collect();
    assert_eq!(ids.len(), meta.len(), "message_id repeats");
    let uuid = |s: &str| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    for id in &ids {
        assert!(
            id.strip_prefix("vector-").is_some_and(uuid),
            "message_id {id:?} is not vector-<uuid>"
        );
    }
    let epoch = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    for r in &meta {
        let at: f64 = r[1].as_deref().expect("rejected_at").parse().expect("epoch seconds");
        assert!(
            at >= epoch(started_at) - 1.0 && at <= epoch(finished_at) + 1.0,
            "rejected_at {at} outside the run"
        );
    }

    let by_reason = vector_rejected.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, r| {
        *m.entry(r[0].as_deref().unwrap_or("?")).or_default() += 1;
        m
    });
    eprintln!(
        "live: {} messages ({} rows, {} rejections: {by_reason:?}); Vector and the host wrote \
         the same tables in {:.1} s",
        bodies.len(),
        vector_rows.len(),
        vector_rejected.len(),
        started.elapsed().as_secs_f64()
    );
    drop(cleanup);
    Ok(())
}
