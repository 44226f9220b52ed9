//! Trying hard to break exactly-once: kill -9 at random moments, PostgreSQL and SQS outages,
//! poison rows, and secrets in logs. These tests stop and start the shared services, so they
//! take turns (one lock) and live in their own test binary (cargo runs binaries one at a time).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use maskflow_tests::faults::{Fault, SqsFaults};
use maskflow_tests::proxy::Proxy;
use maskflow_tests::run::{
    events_of, expected_contents, generated, wait_until, Events, Phase, Run,
};
use maskflow_tests::{golden, test_key_file, Services};

static TURN: Mutex<()> = Mutex::new(());

fn stop(child: Child, signal: &str) -> std::process::Output {
    Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    child.wait_with_output().unwrap()
}

/// A small seeded generator (xorshift), so a failing kill schedule can be replayed.
struct Schedule(u64);

impl Schedule {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

#[test]
fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let seed: u64 =
        std::env::var("MASKFLOW_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261123);
    let kills: usize =
        std::env::var("MASKFLOW_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    eprintln!("kill schedule seed {seed} (MASKFLOW_KILL_SEED replays it), {kills} kills");
    let services = Services::get();
    let run = Run::new(&services, "rel_kill9");
    let bodies = generated(15_000, seed);
    let sent_ids = services.send_with_ids(&run.queue_url, &bodies);

    let mut schedule = Schedule(seed);
    let args =
        ["run", "--concurrency", "2", "--batch-size", "200", "--visibility-timeout-secs", "3"];
    let mut phases: BTreeMap<Phase, usize> = BTreeMap::new();
    for k in 0..kills {
        let host = run.spawn_watched(&args, &[]);
        // Only once this host has committed a batch of its own, then a random moment later,
        // and only while it holds messages it has not deleted.
        host.wait_for("a commit", Duration::from_secs(60), |e| e.tally().committed > 0);
        std::thread::sleep(Duration::from_millis(schedule.next_ms(0, 600)));
        host.wait_for("messages in flight", Duration::from_secs(30), |e| e.tally().in_flight() > 0);
        let (status, log) = host.stop("-KILL");
        assert_eq!(status.signal(), Some(9), "kill {k}: the host was not killed by SIGKILL: {log}");
        let events = Events::parse(&log);
        let tally = events.tally();
        assert!(tally.committed > 0 && tally.in_flight() > 0, "kill {k}: {tally:?}");
        let phase = events.last_phase();
        eprintln!("kill {k}: in {phase:?}, the host's tally at death {tally:?}");
        *phases.entry(phase).or_default() += 1;
    }
    eprintln!("kills per phase: {phases:?}");
    std::thread::sleep(Duration::from_secs(4)); // in-flight messages of the last victim reappear
    run.drain(&["--visibility-timeout-secs", "3"]);

    let mut sent_ids = sent_ids;
    sent_ids.sort();
    let ledger = run.ledger_ids();
    assert!(
        ledger == sent_ids,
        "the ledger's message ids differ from those sent: {} missing, {} unknown",
        sent_ids.iter().filter(|id| ledger.binary_search(id).is_err()).count(),
        ledger.iter().filter(|id| sent_ids.binary_search(id).is_err()).count()
    );
    run.assert_exactly_once(bodies.len(), expected_contents(&bodies).len());
    assert_eq!(
        run.contents(),
        expected_contents(&bodies),
        "row contents differ from what was sent"
    );
}

#[test]
fn postgres_outage_mid_run_is_waited_out() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "rel_pg_outage");
    let bodies = generated(3000, 21);
    services.send(&run.queue_url, &bodies);
    let host = run.spawn(&["run", "--drain", "--batch-size", "100"], &[]);
    wait_until("first commits", Duration::from_secs(60), || run.committed() >= 300);
    services.control(&["stop-pg", "immediate"]);
    std::thread::sleep(Duration::from_secs(3));
    services.control(&["start-pg"]);
    let out = host.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(events_of(&out.stderr).retries("postgres") > 0, "the outage was waited out: {log}");
    run.assert_exactly_once(bodies.len(), expected_contents(&bodies).len());
    assert_eq!(run.contents(), expected_contents(&bodies));
}

#[test]
fn held_messages_stay_hidden_through_an_outage_longer_than_their_visibility_timeout() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "rel_lease");
    let bodies = generated(2000, 41);
    services.send(&run.queue_url, &bodies);
    // Visibility 5 s, batches of 100: while a batch waits for PostgreSQL, more messages wait
    // in the channel (2 batches) and in the poller; all of them must stay hidden.
    let args =
        ["run", "--concurrency", "1", "--batch-size", "100", "--visibility-timeout-secs", "5"];
    let first = run.spawn(&args, &[]);
    wait_until("first commits", Duration::from_secs(60), || run.committed() >= 100);
    services.control(&["stop-pg", "immediate"]);
    let outage = Instant::now();
    // A second host polls the same queue through the outage: it must get fresh messages only,
    // never one the first host holds.
    let second = run.spawn(&args, &[]);
    std::thread::sleep(Duration::from_secs(15).saturating_sub(outage.elapsed()));
    services.control(&["start-pg"]);
    wait_until("every message committed", Duration::from_secs(120), || {
        run.committed() == bodies.len() as i64
    });

    for (name, host) in [("first", first), ("second", second)] {
        let out = stop(host, "-TERM");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {log}");
        let events = events_of(&out.stderr);
        // The first host waits in its commit; the second, started in the outage, at start.
        let waited = events.retries("postgres") + events.count("startup_waiting");
        assert!(waited > 0, "{name}: the outage was waited out: {log}");
        assert_eq!(events.done("received_again"), 0, "{name} host got redelivered messages: {log}");
    }
    std::thread::sleep(Duration::from_secs(1)); // SQS's approximate counts settle
    run.assert_exactly_once(bodies.len(), expected_contents(&bodies).len());
    assert_eq!(run.contents(), expected_contents(&bodies));
}

#[test]
fn sqs_down_at_start_fails_the_start_and_mid_run_is_waited_out() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "rel_sqs_outage");
    let name = run.queue_url.rsplit('/').next().unwrap().to_owned();
    // LocalStack keeps no queues across restarts here: recreate ours each time it comes back.
    let restart_sqs = || {
        services.control(&["start-sqs"]);
        assert_eq!(services.fresh_queue_named(&name), run.queue_url);
    };

    // An outage, then a batch of 500 messages that must all be committed once SQS is back.
    let outage_then_batch = |seed, committed_total| {
        std::thread::sleep(Duration::from_secs(3));
        restart_sqs();
        let bodies = generated(500, seed);
        services.send(&run.queue_url, &bodies);
        wait_until("the batch after an outage", Duration::from_secs(60), || {
            run.committed() == committed_total
        });
        bodies
    };
    // SQS down at start: a start-up failure within the budget (exit code 4, naming the
    // endpoint), never a silent wait; an orchestrator restarts the host.
    services.control(&["stop-sqs"]);
    let started = std::time::Instant::now();
    let out =
        run.command(&["run", "--batch-size", "100", "--startup-timeout", "3"]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{log}");
    assert!(log.contains("127.0.0.1"), "names the endpoint: {log}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    // Once it is back, the host starts and commits a first batch.
    restart_sqs();
    let host = run.spawn(&["run", "--batch-size", "100"], &[]);
    let first = generated(500, 31);
    services.send(&run.queue_url, &first);
    wait_until("the first batch", Duration::from_secs(60), || run.committed() == 500);
    services.control(&["stop-sqs"]); // and again mid-run
    let second = outage_then_batch(32, 1000);

    let out = stop(host, "-TERM");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(events_of(&out.stderr).retries("receive") > 0, "receives were retried: {log}");
    let all: Vec<String> = first.into_iter().chain(second).collect();
    run.assert_exactly_once(all.len(), expected_contents(&all).len());
    assert_eq!(run.contents(), expected_contents(&all));
}

#[test]
fn sqs_outage_with_messages_in_flight_and_deletes_failing_loses_and_doubles_nothing() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "rel_sqs_in_flight");
    let bodies = generated(3000, 33);
    let mut sent_ids = services.send_with_ids(&run.queue_url, &bodies);
    // The host reaches SQS through a relay the test cuts: LocalStack keeps its messages (and
    // their visibility clocks) through the outage, as SQS would.
    let endpoint = services.var("AWS_ENDPOINT_URL");
    let upstream = endpoint.trim_start_matches("http://").parse().expect("host:port endpoint");
    // Deletes answered 150 ms late (on loopback a batch's chunks are all deleted within a
    // millisecond of its commit), so the cut finds committed messages not yet deleted.
    let faults = SqsFaults::start(upstream);
    faults.inject("DeleteMessageBatch", Fault::Delay(Duration::from_millis(150)), None);
    let proxy = Proxy::start(faults.addr);
    let url = proxy.url();
    let host = run.spawn_watched(
        &[
            "run",
            "--drain",
            "--concurrency",
            "2",
            "--batch-size",
            "100",
            "--visibility-timeout-secs",
            "4",
            // Full batches of 100 (LocalStack's receives are slower than the workers): each
            // worker holds up to 100 received, uncommitted messages while it fills one.
            "--linger-ms",
            "1000",
        ],
        &[("AWS_ENDPOINT_URL", &url), ("MASKFLOW_SQS_ENDPOINT", &url)],
    );
    // Cut while the host holds committed messages it has not deleted yet and received ones it
    // has not committed yet.
    host.wait_for("commits with messages in flight", Duration::from_secs(60), |e| {
        let t = e.tally();
        t.committed >= 200 && t.committed > t.deleted && t.received > t.committing + 100
    });
    proxy.cut();
    let at_cut = host.events().tally();
    // Longer than the visibility timeout (held messages come back) and than a delete's retries
    // (committed messages stay in the queue).
    std::thread::sleep(Duration::from_secs(12));
    let during = host.events().tally();
    proxy.restore();
    let (status, log) = host.wait();
    assert!(status.success(), "{log}");
    eprintln!("at the cut {at_cut:?}; when restored {during:?}");
    assert!(
        at_cut.received > at_cut.committing,
        "uncommitted messages held at the cut: {at_cut:?}"
    );
    assert!(
        during.committed > at_cut.deleted,
        "committed during the outage, not deleted: {during:?}"
    );
    let events = Events::parse(&log);
    assert!(events.retries("receive") > 0, "receives were retried: {log}");
    assert!(events.retries("delete") > 0, "deletes failed during the outage: {log}");
    eprintln!("deletes given up on during the outage: {}", events.count("delete_abandoned"));
    let skipped = events.done("redelivered");
    assert!(
        skipped > 0,
        "committed, undeleted messages came back and the ledger skipped them: {log}"
    );
    assert!(events.done("received_again") >= skipped, "{log}");

    sent_ids.sort();
    assert_eq!(run.ledger_ids(), sent_ids, "the ledger's message ids are exactly those sent");
    run.assert_exactly_once(bodies.len(), expected_contents(&bodies).len());
    assert_eq!(run.contents(), expected_contents(&bodies));
}

#[test]
fn a_row_postgres_refuses_is_isolated_and_the_rest_of_its_batch_lands() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "rel_poison");
    // A mapping that allows more than the column does: the module passes what PostgreSQL refuses.
    let mut mapping = maskflow_transform::Mapping::user_logins();
    mapping.columns[1].max_len = Some(64);
    let mapping_file =
        std::env::temp_dir().join(format!("maskflow-loose-mapping-{}.json", std::process::id()));
    std::fs::write(&mapping_file, serde_json::to_string(&mapping).unwrap()).unwrap();

    let mut bodies = generated(99, 41);
    bodies.insert(
        50,
        r#"{"user_id": "poison", "device_type": "a-device-type-longer-than-thirty-two-chars"}"#
            .into(),
    );
    services.send(&run.queue_url, &bodies);
    run.drain(&["--mapping", mapping_file.to_str().unwrap(), "--concurrency", "1"]);

    let valid = expected_contents(&bodies).len(); // the library (default mapping) rejects the poison one too
    run.assert_exactly_once(bodies.len(), valid);
    let row = run
        .db()
        .query_one(
            "SELECT m.message FROM user_logins_rejected m WHERE reason = 'sink_refused'",
            &[],
        )
        .unwrap();
    let message: String = row.get(0);
    assert!(message.contains("22001"), "{message}");
}

/// Every string a body holds that must not appear in clear: every value of every body (at any
/// depth; for a body that is not JSON, every quoted string but keys, and the body itself),
/// trimmed, and
/// every IP address in canonical form. Values shorter than 7 characters (`RU`, `ios`, `2.3.0`)
/// would match innocent text and are left out; the table keeps some of them in clear anyway.
fn clear_values(body: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Number(n) => out.push(n.to_string()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut raw = Vec::new();
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => walk(&v, &mut raw),
        Err(_) => {
            raw.push(body.to_owned());
            // Quoted strings but keys (a quote followed by `:`).
            let parts: Vec<&str> = body.split('"').collect();
            for (i, part) in parts.iter().enumerate().skip(1).step_by(2) {
                let next = parts.get(i + 1).copied().unwrap_or_default();
                if !next.trim_start().starts_with(':') {
                    raw.push((*part).to_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    for value in raw {
        let trimmed = value.trim().to_owned();
        if let Ok(ip) = trimmed.parse::<std::net::IpAddr>() {
            out.push(ip.to_string());
            if let std::net::IpAddr::V6(v6) = ip {
                out.extend(v6.to_ipv4_mapped().map(|v4| v4.to_string()));
            }
        }
        out.push(trimmed.to_lowercase());
        out.push(trimmed);
        out.push(value);
    }
    out.retain(|s| s.chars().count() >= 7);
    out
}

#[test]
fn trace_logs_and_rejections_carry_no_clear_pii_or_key() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "rel_secrets");
    // Generated events (2% malformed) and every golden vector SQS can carry: padded values,
    // IPv6 in long and short forms, IPv4-mapped, nested and broken bodies.
    let mut bodies = generated(300, 51);
    bodies.extend(
        golden()
            .iter()
            .map(|v| v.body())
            .filter_map(|b| String::from_utf8(b).ok())
            .filter(|b| !b.is_empty() && b.len() <= 256 * 1024),
    );
    services.send(&run.queue_url, &bodies);
    let out = run
        .command(&["run", "--drain", "--batch-size", "20"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success());
    let events = events_of(&out.stderr);
    // What is scanned: every byte written, and every field as JSON-decoded (a value with a
    // quote or a backslash is escaped in the JSON text).
    let decoded: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| v.as_object().cloned().unwrap_or_default().into_iter())
        .filter_map(|(_, v)| v.as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n");
    let log = String::from_utf8_lossy(&out.stderr).into_owned()
        + &String::from_utf8_lossy(&out.stdout)
        + &decoded;
    // Trace logging was on all the way: the pipeline's own event for every batch phase of
    // every message, and trace lines from the libraries beside it.
    let tally = events.tally();
    let n = bodies.len() as u64;
    assert!(
        tally.received == n
            && tally.transforming == n
            && tally.committed == n
            && tally.deleted == n,
        "a debug line per batch phase for all {n} messages: {tally:?}"
    );
    let trace_lines = log.lines().filter(|l| l.contains(r#""level":"TRACE""#)).count();
    eprintln!("{} log lines, {trace_lines} at trace, for {n} messages", log.lines().count());
    // About 7 per message when the module comes from the compiled-module cache (PostgreSQL's
    // client, wasmtime, rustls, hyper), thousands more when Cranelift compiles it.
    assert!(trace_lines >= 2 * bodies.len(), "{trace_lines} trace lines for {n} messages");

    let mut secrets: Vec<String> = bodies.iter().flat_map(|b| clear_values(b)).collect();
    secrets.sort();
    secrets.dedup();
    assert!(secrets.len() > 200, "{} distinct clear values", secrets.len());
    for must in
        ["199.172.111.135", "2001:db8::1", "593-47-5928", "424cdd21-063a-43a7-b91b-7ca1a833afae"]
    {
        assert!(secrets.iter().any(|s| s == must), "{must} is among the values checked");
    }
    let key = std::fs::read_to_string(test_key_file()).unwrap();
    let key_b64 =
        key.lines().find(|l| l.starts_with("k1:")).unwrap().trim_start_matches("k1:").to_owned();
    secrets.push(key_b64[..40].to_owned());
    let rejections: Vec<String> = run
        .db()
        .query("SELECT message_id, reason, message, encrypted_body FROM user_logins_rejected", &[])
        .unwrap()
        .iter()
        .flat_map(|r| (0..4).map(|i| r.get::<_, String>(i)).collect::<Vec<_>>())
        .collect();
    assert!(rejections.len() >= 4 * 40, "{} rejection fields", rejections.len());
    let finder = aho_corasick::AhoCorasick::new(&secrets).unwrap();
    let found = |text: &str| finder.find(text).map(|m| m.pattern().as_usize());
    if let Some(i) = found(&log) {
        let line = log.lines().find(|l| found(l).is_some()).unwrap_or_default();
        // The value itself stays out of the test's output.
        panic!(
            "clear value #{i} appears in the trace log: {}",
            finder.replace_all(line, &vec!["<clear value>"; secrets.len()])
        );
    }
    for field in &rejections {
        assert!(found(field).is_none(), "a clear value appears in a rejection");
    }
}
