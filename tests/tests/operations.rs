//! What an operator meets: a running host's /metrics, /healthz and /readyz read with a real
//! HTTP client, and `maskflow transform` (of this build, or of `MASKFLOW_BIN`: scripts/test
//! points it at a `cargo install`ed copy) over the golden vectors.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use maskflow_tests::run::{events_of, generated, wait_until, Events, Run};
use maskflow_tests::{free_port, get, golden, maskflow_bin, test_key_file, Services, Vector};
use serde_json::Value;

/// The metrics test stops PostgreSQL: every test of this file that uses it takes this turn
/// (CI went red once when the pollers test read the ledger during that stop).
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Samples of an OpenMetrics text: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("sample line: {l}"));
            (name.to_owned(), value.parse().unwrap_or_else(|_| panic!("sample value: {l}")))
        })
        .collect()
}

#[test]
fn metrics_count_the_run_and_readiness_follows_postgres() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "ops_metrics");
    let bodies = generated(2000, 61);
    let sent_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    services.send(&run.queue_url, &bodies);
    let base = format!("http://127.0.0.1:{}", free_port());
    let addr = base.trim_start_matches("http://").to_owned();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let host = run.spawn_watched(
        &["run", "--batch-size", "100", "--metrics-addr", &addr, "--stats-interval", "1s"],
        &[],
    );
    let metrics = || samples(&get(&format!("{base}/metrics")).expect("/metrics answers").1);
    let value = |m: &BTreeMap<String, f64>, name: &str| m.get(name).copied().unwrap_or(0.0);

    // During the run: alive, and the counters move.
    wait_until("/metrics", Duration::from_secs(30), || get(&format!("{base}/metrics")).is_some());
    assert_eq!(get(&format!("{base}/healthz")).unwrap().0, 200, "/healthz during the run");
    let written = |m: &BTreeMap<String, f64>| {
        let rejected: f64 = m
            .iter()
            .filter(|(k, _)| k.starts_with("maskflow_rejections_total{"))
            .map(|(_, v)| v)
            .sum();
        value(m, "maskflow_rows_written_total") + rejected
    };
    wait_until("every message written", Duration::from_secs(120), || {
        written(&metrics()) as usize == bodies.len()
    });
    wait_until("every message deleted", Duration::from_secs(30), || {
        value(&metrics(), "maskflow_messages_deleted_total") as usize == bodies.len()
    });

    // After it: the counters equal what PostgreSQL holds and what was sent.
    let m = metrics();
    assert_eq!(value(&m, "maskflow_messages_received_total") as usize, bodies.len());
    // Every reason's series exists, at 0 where none happened (no panel reads "no data").
    assert_eq!(value(&m, "maskflow_rejections_total{reason=\"sink_refused\"}"), 0.0);
    let start = value(&m, "maskflow_start_time_seconds");
    assert!(
        start >= started.as_secs_f64() - 1.0
            && start <= value(&m, "maskflow_last_commit_timestamp_seconds"),
        "{start}"
    );
    assert_eq!(
        value(&m, "maskflow_rows_written_total") as i64,
        run.count("SELECT count(*) FROM user_logins")
    );
    let mut db = run.db();
    let by_reason =
        db.query("SELECT reason, count(*) FROM user_logins_rejected GROUP BY reason", &[]).unwrap();
    assert!(!by_reason.is_empty(), "the generated set has malformed messages");
    for row in &by_reason {
        let (reason, n): (String, i64) = (row.get(0), row.get(1));
        let key = format!("maskflow_rejections_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&m, &key) as i64, n, "{key}");
    }
    assert_eq!(value(&m, "maskflow_messages_in_flight"), 0.0);
    assert_eq!(value(&m, "maskflow_redeliveries_skipped_total"), 0.0);
    let batches = value(&m, "maskflow_batch_commit_seconds_count");
    assert!(batches >= (bodies.len() / 100) as f64, "one commit per batch at least: {batches}");
    assert_eq!(
        value(&m, "maskflow_module_call_seconds_count"),
        batches,
        "one module call per batch"
    );
    assert!(value(&m, "maskflow_last_commit_timestamp_seconds") >= started.as_secs_f64());
    // Lag: one observation per message, each between 0 and the time since the first was sent.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    assert_eq!(value(&m, "maskflow_lag_seconds_count") as usize, bodies.len());
    let mean_lag = value(&m, "maskflow_lag_seconds_sum") / bodies.len() as f64;
    assert!(mean_lag > 0.0 && mean_lag < (now - sent_at).as_secs_f64(), "mean lag {mean_lag} s");
    let text = get(&format!("{base}/metrics")).unwrap().1;
    every_series_the_dashboard_and_alerts_name_is_served(&text);
    host.wait_for("the stats event (stderr is not a terminal)", Duration::from_secs(10), |e| {
        e.named("stats").any(|s| s["received"] == bodies.len() && s["deleted"] == bodies.len())
    });

    // Readiness follows PostgreSQL; liveness does not.
    let ready = get(&format!("{base}/readyz")).unwrap();
    assert_eq!(ready.0, 200, "/readyz: {}", ready.1);
    /// Starts PostgreSQL again however the test ends, for the tests that follow.
    struct RestartPostgres<'a>(&'a Services);
    impl Drop for RestartPostgres<'_> {
        fn drop(&mut self) {
            self.0.control(&["start-pg"]);
        }
    }
    let _restart = RestartPostgres(&services);
    services.control(&["stop-pg", "immediate"]);
    wait_until("/readyz 503", Duration::from_secs(20), || {
        get(&format!("{base}/readyz"))
            .is_some_and(|(s, body)| s == 503 && body.contains("PostgreSQL"))
    });
    assert_eq!(get(&format!("{base}/healthz")).unwrap().0, 200, "an outage is not a stuck host");
    services.control(&["start-pg"]);
    wait_until("/readyz 200 again", Duration::from_secs(30), || {
        get(&format!("{base}/readyz")).is_some_and(|(s, _)| s == 200)
    });

    let (status, log) = host.stop("-TERM");
    assert!(status.success(), "SIGTERM ends the run cleanly: {log}");
}

#[test]
fn prune_deletes_only_ledger_entries_older_than_asked() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "ops_prune");
    let bodies = generated(50, 71);
    services.send(&run.queue_url, &bodies);
    run.drain(&[]);
    let aged = "UPDATE maskflow_ledger SET processed_at = now() - interval '20 days'
                WHERE message_id IN (SELECT message_id FROM maskflow_ledger ORDER BY message_id LIMIT 10)";
    assert_eq!(run.db().execute(aged, &[]).unwrap(), 10);
    let too_short = run.command(&["prune", "--older-than", "30s"]).output().unwrap();
    assert_eq!(too_short.status.code(), Some(2), "below SQS' shortest retention: a usage error");
    let out = run.command(&["prune", "--older-than", "14d"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(events_of(&out.stderr).sum("pruned", "deleted"), 10, "{stderr}");
    assert_eq!(run.count("SELECT count(*) FROM maskflow_ledger"), 40);
    assert_eq!(
        run.count("SELECT count(*) FROM user_logins")
            + run.count("SELECT count(*) FROM user_logins_rejected"),
        50,
        "data is never pruned"
    );
    let index = "SELECT count(*) FROM pg_indexes WHERE indexname = 'maskflow_ledger_processed_at'";
    assert_eq!(run.count(index), 1, "prune deletes through an index on processed_at");
}

/// `maskflow transform` turns every golden vector whose body is one line into the golden row
/// or rejection reason (one call per sent timestamp: it sets `create_date`).
/// One-line golden vectors, grouped by the SQS sent time `maskflow transform` is given.
fn golden_by_sent_time() -> BTreeMap<i64, Vec<Vector>> {
    let vectors: Vec<_> = golden().into_iter().filter(|v| !v.body().contains(&b'\n')).collect();
    assert!(vectors.len() > 40, "most vectors are one line: {}", vectors.len());
    let mut by_time: BTreeMap<i64, Vec<_>> = BTreeMap::new();
    for v in vectors {
        by_time.entry(v.sent_timestamp_ms).or_default().push(v);
    }
    by_time
}

/// `maskflow transform` of these vectors; asserts every output line is the vector's expected
/// row or rejection, and returns its events.
fn transform_golden(sent: i64, group: &[Vector], args: &[&str]) -> Events {
    let bin = maskflow_bin();
    let mut child = Command::new(&bin)
        .args(["transform", "--sent-timestamp-ms", &sent.to_string()])
        .args(args)
        .env("MASKFLOW_KEY", std::fs::read_to_string(test_key_file()).unwrap())
        .env("RUST_LOG", "maskflow=debug")
        .env("MASKFLOW_LOG_FORMAT", "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let mut input = Vec::new();
    for v in group {
        input.extend(v.body());
        input.push(b'\n');
    }
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), group.len(), "one output line per input line");
    for (v, line) in group.iter().zip(&lines) {
        match v.expected_reason() {
            Some(reason) => assert_eq!(line["rejected"]["reason"], reason, "{}", v.name),
            None => assert_eq!(Some(line.as_object().unwrap()), v.expected_row(), "{}", v.name),
        }
    }
    Events::parse(&stderr)
}

/// What the module cache did in one run (`module_cache` events' `outcome`, and `why`).
fn cache_outcomes(events: &Events) -> Vec<(String, String)> {
    let field = |e: &Value, f: &str| e[f].as_str().unwrap_or("").to_owned();
    events.named("module_cache").map(|e| (field(e, "outcome"), field(e, "why"))).collect()
}

#[test]
fn the_binary_transforms_the_golden_vectors() {
    for (sent, group) in golden_by_sent_time() {
        transform_golden(sent, &group, &[]);
    }
}

/// The compiled module is kept between starts (host/src/runtime/cache.rs). What is loaded from
/// the cache transforms the golden vectors exactly like a fresh compile; a damaged entry, or a
/// directory others could write, is not loaded.
#[test]
fn the_module_cache_is_reused_only_when_intact_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let (sent, group) = golden_by_sent_time().into_iter().max_by_key(|(_, g)| g.len()).unwrap();
    let root = std::env::temp_dir().join(format!("maskflow-module-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("modules");
    let flag = ["--module-cache", dir.to_str().unwrap()];
    let run = || transform_golden(sent, &group, &flag);
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let outcomes = |events: Events| -> Vec<String> {
        cache_outcomes(&events).into_iter().map(|(outcome, _)| outcome).collect()
    };
    assert_eq!(outcomes(run()), ["stored"], "compiled, then cached");
    assert_eq!(mode(&dir), 0o700, "created private");
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "one entry, no temporary left: {entries:?}");
    let entry = &entries[0];
    assert_eq!(mode(entry), 0o600);
    assert_eq!(outcomes(run()), ["loaded"], "loaded, not compiled again");

    // One flipped byte inside the machine code: refused, compiled again, stored again.
    let mut bytes = std::fs::read(entry).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(entry, &bytes).unwrap();
    assert_eq!(outcomes(run()), ["damaged", "stored"]);
    assert_eq!(outcomes(run()), ["loaded"]);

    // An entry others may write: refused (checked on the opened file), compiled, replaced.
    std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o622)).unwrap();
    let writable = cache_outcomes(&run());
    assert_eq!(writable.len(), 2, "{writable:?}");
    assert_eq!(writable[0].0, "refused", "{writable:?}");
    assert!(writable[0].1.starts_with("mode 622"), "says why: {writable:?}");
    assert_eq!(writable[1].0, "stored", "{writable:?}");
    assert_eq!(mode(entry), 0o600, "replaced by a private entry");
    assert_eq!(outcomes(run()), ["loaded"]);

    // A directory on the way that others may write: the cache is not used at all.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let parent = cache_outcomes(&run());
    assert_eq!(parent.len(), 1, "{parent:?}");
    assert_eq!(parent[0].0, "unused", "{parent:?}");
    assert!(parent[0].1.starts_with(&format!("{}: mode 777", root.display())), "{parent:?}");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Others may write the directory: not loaded from, not written to.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let open = cache_outcomes(&run());
    assert_eq!(open.len(), 1, "not loaded from, not written to: {open:?}");
    assert_eq!(open[0].0, "unused", "{open:?}");
    assert!(open[0].1.starts_with("mode 777"), "{open:?}");

    let off = transform_golden(sent, &group, &["--module-cache", "off"]);
    assert_eq!(cache_outcomes(&off), [], "no cache at all");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn pollers_grow_while_the_queue_is_full_and_fall_to_one_when_it_empties() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "ops_pollers");
    let bodies = generated(6000, 62);
    services.send(&run.queue_url, &bodies);
    let addr = format!("127.0.0.1:{}", free_port());
    let host = run.spawn_watched(&["run", "--metrics-addr", &addr, "--concurrency", "2"], &[]);
    let pollers = || {
        let text = get(&format!("http://{addr}/metrics")).map(|(_, body)| body).unwrap_or_default();
        samples(&text).get("maskflow_pollers").copied()
    };
    // A full queue: every receive comes back with 10, so more receives go out at once.
    let mut most = 0.0_f64;
    wait_until("more pollers than the 2 it started with", Duration::from_secs(60), || {
        most = most.max(pollers().unwrap_or(0.0));
        most > 2.0
    });
    // Empty: the next long polls (20 s) come back with nothing, and the count halves to one.
    wait_until("every message committed", Duration::from_secs(120), || {
        run.committed() == bodies.len() as i64
    });
    wait_until("one poller left", Duration::from_secs(60), || pollers() == Some(1.0));
    eprintln!("pollers: up to {most} under a full queue, 1 once it was empty");
    drop(host.stop("-TERM"));
}

/// Every `maskflow_*` series named by deploy/grafana and deploy/prometheus is one the host
/// serves (a family of its `# TYPE` lines, or such a family's `_total`, `_bucket`, `_sum`,
/// `_count` sample), so a renamed metric cannot leave a panel or an alert silently empty.
fn every_series_the_dashboard_and_alerts_name_is_served(metrics: &str) {
    let families: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let served = |name: &str| {
        families.iter().any(|family| {
            name.strip_prefix(family)
                .is_some_and(|rest| ["", "_total", "_bucket", "_sum", "_count"].contains(&rest))
        })
    };
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut named = 0;
    for file in ["grafana/maskflow.json", "prometheus/alerts.yaml"] {
        let text = std::fs::read_to_string(deploy.join(file)).expect(file);
        for (at, _) in text.match_indices("maskflow_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // Its labels are SQS' error codes: the family appears with the first failure.
            if name == "maskflow_sqs_entry_failures_total" {
                continue;
            }
            assert!(served(&name), "{file} names {name}, which /metrics does not serve");
            named += 1;
        }
    }
    assert!(named >= 20, "the files name the host's series ({named} found)");
}
