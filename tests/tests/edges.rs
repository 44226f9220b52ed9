//! The messy edges of a real deployment (issue 20, docs/reliability.md): a PostgreSQL that
//! accepts and never answers, or resets mid-handshake; one that goes silent mid-run; a ledger
//! row locked by a frozen session; a read-only node; SQS refusing deletes, or failing entries
//! inside a 200; a table that refuses every row at one row per batch; a rejection redelivered
//! after an early prune; SIGTERM during an outage; a panicking or stuck worker. Each test
//! talks to the real PostgreSQL and LocalStack, through the fault injectors of `faults.rs`.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use maskflow_tests::faults::{Fault, SilentListener, SqsFaults, SslThenReset};
use maskflow_tests::proxy::Proxy;
use maskflow_tests::run::{expected_rows, generated, wait_until, Events, Run, Watched};
use maskflow_tests::{free_port, get, Services};

const EXIT_CONFIG: i32 = 3;
const EXIT_UNREACHABLE: i32 = 4;
const EXIT_STOPPED: i32 = 5;

/// `url` with its `host:port` replaced by `addr` (to go through a fault injector).
fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let start = url.find('@').map_or_else(|| url.find("://").unwrap() + 3, |at| at + 1);
    let end = start + url[start..].find('/').unwrap();
    format!("{}{addr}{}", &url[..start], &url[end..])
}

fn pg_addr(services: &Services) -> std::net::SocketAddr {
    let url = services.var("DATABASE_URL");
    let start = url.find('@').unwrap() + 1;
    let end = start + url[start..].find('/').unwrap();
    url[start..end].parse().expect("127.0.0.1:port")
}

fn sqs_addr(services: &Services) -> std::net::SocketAddr {
    services.var("AWS_ENDPOINT_URL").trim_start_matches("http://").parse().unwrap()
}

fn code(status: ExitStatus) -> Option<i32> {
    status.code()
}

/// A queue with `n` generated events; returns the run and the bodies.
fn queued<'a>(services: &'a Services, name: &str, n: usize, seed: u64) -> (Run<'a>, Vec<String>) {
    let run = Run::new(services, name);
    let bodies = generated(n, seed);
    services.send(&run.queue_url, &bodies);
    (run, bodies)
}

#[test]
fn a_postgres_that_accepts_and_never_answers_or_resets_mid_handshake_fails_the_start_in_budget() {
    let services = Services::get();
    let run = Run::new(&services, "edge_silent_start");
    let silent = SilentListener::start();
    let resetting = SslThenReset::start();
    for (addr, mode) in
        [(silent.addr, "disable"), (silent.addr, "require"), (resetting.addr, "require")]
    {
        let url = format!("{}?sslmode={mode}", via(&run.database_url, addr));
        let started = Instant::now();
        let host = run.spawn_watched(
            &["run", "--drain", "--startup-timeout", "3", "--connect-timeout", "2s"],
            &[("DATABASE_URL", &url)],
        );
        let (status, log) = host.wait_at_most(Duration::from_secs(30));
        let took = started.elapsed();
        assert_eq!(code(status), Some(EXIT_UNREACHABLE), "{mode} via {addr}: {log}");
        assert!(took < Duration::from_secs(8), "{mode}: exit after {took:?}, budget 3 s: {log}");
        assert_eq!(Events::parse(&log).failure_kind(), Some("unreachable"), "{log}");
        assert!(log.contains("did not answer within --startup-timeout"), "{log}");
    }
    assert_eq!(services.queue_depth(&run.queue_url), 0, "nothing was received");
}

#[test]
fn postgres_going_silent_mid_run_is_waited_out_and_nothing_is_lost_or_doubled() {
    let services = Services::get();
    let (run, bodies) = queued(&services, "edge_silent_mid", 3_000, 61);
    let proxy = Proxy::start(pg_addr(&services));
    let url = via(&run.database_url, proxy.addr);
    let args = [
        "run",
        "--drain",
        "--batch-size",
        "100",
        "--commit-timeout",
        "2s",
        "--connect-timeout",
        "2s",
        "--visibility-timeout-secs",
        "10",
    ];
    let host = run.spawn_watched(&args, &[("DATABASE_URL", &url)]);
    host.wait_for("a commit", Duration::from_secs(60), |e| e.tally().committed > 0);
    proxy.silence();
    host.wait_for("the silence noticed", Duration::from_secs(20), |e| e.retries("postgres") > 0);
    std::thread::sleep(Duration::from_secs(3));
    proxy.restore();
    let (status, log) = host.wait_at_most(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn a_ledger_row_held_by_a_frozen_session_delays_only_its_message() {
    let services = Services::get();
    let run = Run::new(&services, "edge_locked_row");
    run.drain(&[]); // creates the tables
    let bodies = generated(300, 62);
    let ids = services.send_with_ids(&run.queue_url, &bodies);
    // A host that froze in the middle of its commit: its claim of one id is never committed.
    let holder_url = format!("{}?application_name=frozen-host", run.database_url);
    let mut holder = postgres::Client::connect(&holder_url, postgres::NoTls).unwrap();
    holder.batch_execute("BEGIN").unwrap();
    holder
        .execute("INSERT INTO maskflow_ledger (message_id, outcome) VALUES ($1, 'row')", &[&ids[7]])
        .unwrap();

    let args = ["run", "--drain", "--visibility-timeout-secs", "5", "--commit-timeout", "4s"];
    let host = run.spawn_watched(&args, &[]);
    // The host starts next to the open transaction (its set-up takes no lock that would queue
    // behind it) and commits everything else.
    wait_until("every other message committed", Duration::from_secs(60), || {
        run.committed() == (ids.len() - 1) as i64
    });
    host.wait_for("the held message handed back", Duration::from_secs(30), |e| {
        e.named("messages_released")
            .any(|r| r["held_by"].as_str().unwrap_or("").contains("frozen-host"))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(run.committed(), (ids.len() - 1) as i64, "the held message waits");
    holder.batch_execute("ROLLBACK").unwrap();
    let (status, log) = host.wait_at_most(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    let mut sent = ids.clone();
    sent.sort();
    assert_eq!(run.ledger_ids(), sent, "every message once");
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn a_read_only_postgres_is_waited_for_and_gets_no_ddl() {
    let services = Services::get();
    let (run, bodies) = queued(&services, "edge_read_only", 50, 63);
    let database = run.database_url.rsplit('/').next().unwrap().to_owned();
    let mut admin =
        postgres::Client::connect(services.var("DATABASE_URL"), postgres::NoTls).unwrap();
    let set = |admin: &mut postgres::Client, value: &str| {
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {database} SET default_transaction_read_only = {value}"
            ))
            .unwrap();
    };
    set(&mut admin, "on");
    let host = run.spawn_watched(&["run", "--drain", "--startup-timeout", "3"], &[]);
    let (status, log) = host.wait_at_most(Duration::from_secs(30));
    assert_eq!(code(status), Some(EXIT_UNREACHABLE), "a standby heals (failover): {log}");
    assert_eq!(Events::parse(&log).failure_kind(), Some("unreachable"), "{log}");
    assert!(
        log.contains("is read-only (a standby"),
        "found by the check at connect, before any DDL: {log}"
    );
    let created: bool = run
        .db()
        .query_one("SELECT to_regclass('user_logins') IS NOT NULL OR to_regclass('maskflow_ledger') IS NOT NULL", &[])
        .unwrap()
        .get(0);
    assert!(!created, "no DDL on a read-only node");
    set(&mut admin, "off");
    run.drain(&[]);
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn access_denied_on_delete_stops_the_host_before_its_messages_come_back() {
    let services = Services::get();
    let (run, bodies) = queued(&services, "edge_denied", 300, 64);
    let relay = SqsFaults::start(sqs_addr(&services));
    relay.inject("DeleteMessageBatch", Fault::Status(400, "AccessDenied"), None);
    let env = [("MASKFLOW_SQS_ENDPOINT", relay.url()), ("AWS_ENDPOINT_URL", relay.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = ["run", "--drain", "--visibility-timeout-secs", "4"];
    let (status, log) = run.spawn_watched(&args, &env).wait_at_most(Duration::from_secs(60));
    assert_eq!(code(status), Some(EXIT_CONFIG), "{log}");
    assert!(log.contains("sqs:DeleteMessage"), "says what to fix: {log}");
    assert_eq!(Events::parse(&log).failure_kind(), Some("config"), "{log}");
    assert_eq!(Events::parse(&log).count("redelivered"), 0, "stopped before redeliveries: {log}");
    // The policy fixed: what was committed and not deleted is skipped, the rest lands.
    relay.clear();
    let (status, log) = run.spawn_watched(&args, &env).wait_at_most(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn entries_sqs_fails_inside_a_200_are_retried_alone_or_left_to_come_back() {
    let services = Services::get();
    let (run, bodies) = queued(&services, "edge_failed_entries", 400, 65);
    let relay = SqsFaults::start(sqs_addr(&services));
    // SQS' own fault on half the entries of three calls: sent again, those entries alone.
    let server = Fault::FailEntries { code: "InternalError", sender_fault: false };
    relay.inject("DeleteMessageBatch", server, Some(3));
    let env = [("MASKFLOW_SQS_ENDPOINT", relay.url()), ("AWS_ENDPOINT_URL", relay.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = ["run", "--drain", "--visibility-timeout-secs", "4"];
    let (status, log) = run.spawn_watched(&args, &env).wait_at_most(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    let calls = relay.calls("DeleteMessageBatch");
    let faulted: Vec<_> = calls.iter().filter(|c| !c.failed.is_empty()).collect();
    assert_eq!(faulted.len(), 3, "{calls:?}");
    for call in faulted {
        let mut failed = call.failed.clone();
        failed.sort();
        let retried = calls.iter().any(|c| {
            let mut r = c.receipts.clone();
            r.sort();
            r == failed
        });
        assert!(retried, "the failed entries were sent again, alone: {:?}", call.failed);
    }
    let refused = Events::parse(&log);
    let codes: Vec<&str> =
        refused.named("entry_refused").filter_map(|e| e["code"].as_str()).collect();
    assert!(!codes.is_empty() && codes.iter().all(|c| *c == "InternalError"), "{log}");
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));

    // The request's fault (a stale receipt): not sent again; the message comes back, skipped.
    let (run, bodies) = queued(&services, "edge_stale_receipts", 100, 66);
    relay.inject(
        "DeleteMessageBatch",
        Fault::FailEntries { code: "ReceiptHandleIsInvalid", sender_fault: true },
        Some(1),
    );
    let (status, log) = run.spawn_watched(&args, &env).wait_at_most(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    let events = Events::parse(&log);
    let codes: Vec<&str> =
        events.named("entry_refused").filter_map(|e| e["code"].as_str()).collect();
    assert!(codes.contains(&"ReceiptHandleIsInvalid"), "{log}");
    assert!(events.count("redelivered") > 0, "they came back: {log}");
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn a_table_refusing_every_row_stops_the_host_even_at_one_row_per_batch() {
    let services = Services::get();
    let run = Run::new(&services, "edge_refuse_light");
    run.drain(&[]);
    run.db()
        .batch_execute("ALTER TABLE user_logins ADD CONSTRAINT nothing_fits CHECK (create_date < '2000-01-01')")
        .unwrap();
    let bodies: Vec<String> =
        generated(100, 67).into_iter().filter(|b| b.contains("\"user_id\":\"")).take(10).collect();
    assert_eq!(expected_rows(&bodies), bodies.len(), "all valid rows");
    services.send(&run.queue_url, &bodies);
    let light = [
        "run",
        "--drain",
        "--batch-size",
        "1",
        "--concurrency",
        "1",
        "--visibility-timeout-secs",
        "2",
    ];
    for attempt in 0..2 {
        let (status, log) = run.spawn_watched(&light, &[]).wait_at_most(Duration::from_secs(60));
        assert_eq!(code(status), Some(EXIT_STOPPED), "attempt {attempt}: {log}");
        assert_eq!(Events::parse(&log).failure_kind(), Some("stopped"), "{log}");
        assert!(log.contains("none was recorded and nothing was deleted"), "{log}");
        let refused = run.count("SELECT count(*) FROM user_logins_rejected");
        assert!(refused <= 2, "at most {} rows diverted, not the queue: {refused}", 2);
    }
    std::thread::sleep(Duration::from_secs(3)); // held messages become visible again
    let rejected = run.count("SELECT count(*) FROM user_logins_rejected") as u64;
    assert_eq!(services.queue_depth(&run.queue_url), bodies.len() as u64 - rejected);
}

/// Rounds of the race below: with two workers, 3 rows were diverted in about one run of three
/// before the streak was read under a lock (issue 31); 12 rounds miss that with odds below 1%.
const RACE_ROUNDS: usize = 12;

#[test]
fn a_table_refusing_every_row_diverts_at_most_two_rows_whatever_the_concurrency() {
    let services = Services::get();
    let run = Run::new(&services, "edge_refuse_race");
    run.drain(&[]);
    run.db()
        .batch_execute("ALTER TABLE user_logins ADD CONSTRAINT nothing_fits CHECK (create_date < '2000-01-01')")
        .unwrap();
    let bodies: Vec<String> =
        generated(100, 72).into_iter().filter(|b| b.contains("\"user_id\":\"")).take(12).collect();
    assert_eq!(expected_rows(&bodies), bodies.len(), "all valid rows");
    let mut diverted = Vec::new();
    for round in 0..RACE_ROUNDS {
        // Two workers (the default) most rounds; more now and then.
        let concurrency = ["2", "2", "4"][round % 3];
        let queue = services.fresh_queue("edge_refuse_race");
        services.send(&queue, &bodies);
        let args = [
            "run",
            "--drain",
            "--batch-size",
            "1",
            "--linger-ms",
            "1",
            "--concurrency",
            concurrency,
        ];
        let host = run.spawn_watched(&args, &[("MASKFLOW_QUEUE_URL", &queue)]);
        let (status, log) = host.wait_at_most(Duration::from_secs(60));
        assert_eq!(code(status), Some(EXIT_STOPPED), "round {round}: {log}");
        assert_eq!(Events::parse(&log).failure_kind(), Some("stopped"), "{log}");
        let refused = run.count("SELECT count(*) FROM user_logins_rejected");
        diverted.push(refused);
        assert_eq!(run.count("SELECT count(*) FROM user_logins"), 0);
        run.db().batch_execute("TRUNCATE user_logins_rejected, maskflow_ledger").unwrap();
    }
    eprintln!("rows diverted per round: {diverted:?}");
    assert!(diverted.iter().all(|&n| n <= 2), "at most 2 rows diverted per round: {diverted:?}");
}

#[test]
fn a_rejection_redelivered_after_its_ledger_entry_was_pruned_is_recorded_once() {
    let services = Services::get();
    let run = Run::new(&services, "edge_pruned_rejection");
    services.send(&run.queue_url, &["this is not json".to_owned(), "{\"user_id\": 7}".to_owned()]);
    let args = ["run", "--drain", "--visibility-timeout-secs", "2"];
    let host = run.spawn_failpoints(&args, "after-commit=return(abort)");
    let (status, log) = host.wait_at_most(Duration::from_secs(60));
    assert!(!status.success(), "aborted after the commit: {log}");
    assert_eq!(run.count("SELECT count(*) FROM user_logins_rejected"), 2);
    // Pruned too early: SQS still holds the messages, the ledger has forgotten them.
    run.db().batch_execute("DELETE FROM maskflow_ledger").unwrap();
    for _ in 0..2 {
        let (status, log) = run
            .spawn_watched(&["run", "--drain", "--visibility-timeout-secs", "2"], &[])
            .wait_at_most(Duration::from_secs(60));
        assert!(status.success(), "no crash loop on the rejected table's key: {log}");
    }
    assert_eq!(run.count("SELECT count(*) FROM user_logins_rejected"), 2, "recorded once");
    assert_eq!(services.queue_depth(&run.queue_url), 0);
}

#[test]
fn sigterm_during_a_postgres_outage_exits_zero() {
    let services = Services::get();
    let (run, bodies) = queued(&services, "edge_term_outage", 2_000, 68);
    let proxy = Proxy::start(pg_addr(&services));
    let url = via(&run.database_url, proxy.addr);
    let host = run.spawn_watched(&["run", "--batch-size", "100"], &[("DATABASE_URL", &url)]);
    host.wait_for("a commit", Duration::from_secs(60), |e| e.tally().committed > 0);
    proxy.cut();
    host.wait_for("the outage noticed", Duration::from_secs(30), |e| e.retries("postgres") > 0);
    let started = Instant::now();
    let (status, log) = host.stop("-TERM");
    assert_eq!(code(status), Some(0), "a clean stop, as the README says: {log}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    proxy.restore();
    run.drain(&[]);
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn a_panicking_worker_stops_the_host_and_what_it_held_comes_back() {
    let services = Services::get();
    let (run, bodies) = queued(&services, "edge_panic", 500, 69);
    let args = ["run", "--drain", "--visibility-timeout-secs", "30"];
    let host = run.spawn_failpoints(&args, "before-commit=panic");
    let (status, log) = host.wait_at_most(Duration::from_secs(60));
    assert_eq!(code(status), Some(1), "{log}");
    assert_eq!(Events::parse(&log).failure_kind(), Some("internal"), "{log}");
    assert!(log.contains("internal error") && log.contains("panicked"), "{log}");
    // Handed back at exit, not after the 30 s visibility timeout.
    let started = Instant::now();
    run.drain(&["--visibility-timeout-secs", "30"]);
    assert!(started.elapsed() < Duration::from_secs(25), "{:?}", started.elapsed());
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn one_stuck_worker_makes_healthz_fail_whatever_the_other_loops_do() {
    let services = Services::get();
    let (run, _) = queued(&services, "edge_stuck", 200, 70);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let args = ["run", "--metrics-addr", &addr, "--health-stuck-after", "2s", "--concurrency", "2"];
    let host = run.spawn_failpoints(&args, "before-commit=pause");
    let url = format!("http://{addr}/healthz");
    wait_until(
        "/healthz 503",
        Duration::from_secs(30),
        || matches!(get(&url), Some((503, body)) if body.contains("worker-")),
    );
    let (_, body) = get(&url).unwrap();
    assert!(!body.contains("poller"), "the pollers go round: {body}");
    drop(host.stop("-KILL"));
}

/// Runs `maskflow run --drain` and returns its exit status, peak RSS in bytes and log. The
/// peak is the kernel's `VmHWM` of the host's own address space, read every 20 ms until it
/// exits (it only grows). Not `wait4`'s `ru_maxrss`: that keeps the RSS of the forked test
/// process from before `exec`, which here holds every body it sent.
fn peak_rss_draining(run: &Run, extra: &[&str]) -> (ExitStatus, u64, String) {
    let mut args = vec!["run", "--drain"];
    args.extend_from_slice(extra);
    let mut host: Watched = run.spawn_watched(&args, &[]);
    let status_file = format!("/proc/{}/status", host.child.id());
    let mut peak = 0;
    while host.child.try_wait().unwrap().is_none() {
        let hwm = std::fs::read_to_string(&status_file).ok().and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        peak = peak.max(hwm.unwrap_or(0) * 1024);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, log) = host.wait();
    (status, peak, log)
}

#[test]
fn events_of_200_kib_are_drained_within_a_256_mib_memory_limit() {
    let services = Services::get();
    let run = Run::new(&services, "edge_big_events");
    let pad = "x".repeat(200 * 1024 - 300);
    let bodies: Vec<String> = generated(3_000, 71)
        .into_iter()
        .map(|b| match b.strip_suffix('}') {
            Some(event) if b.starts_with('{') => format!("{event},\"pad\":\"{pad}\"}}"),
            _ => b,
        })
        .collect();
    std::thread::scope(|scope| {
        for part in bodies.chunks(bodies.len().div_ceil(4)) {
            let (services, queue) = (&services, &run.queue_url);
            scope.spawn(move || {
                for body in part {
                    services.send(queue, std::slice::from_ref(body)); // one per call: SQS' 256 KiB per request
                }
            });
        }
    });
    // A user's tuning for throughput: counted in messages alone, 4 batches of 500 such events
    // would hold 400 MiB before the module made its copies.
    let (status, peak, log) = peak_rss_draining(
        &run,
        &["--batch-size", "500", "--concurrency", "4", "--linger-ms", "3000"],
    );
    assert!(status.success(), "{log}");
    eprintln!("peak RSS draining 3,000 events of 200 KiB: {} MiB", peak >> 20);
    assert!(peak > 8 << 20, "the reading is real: {peak} bytes");
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}
