//! Trying hard to break exactly-once: kill -9 at random moments, PostgreSQL and SQS outages,
//! poison rows, and secrets in logs. These tests stop and start the shared services, so they
//! take turns (one lock) and live in their own test binary (cargo runs binaries one at a time).

use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use maskflow_tests::run::{expected_contents, generated, Run};
use maskflow_tests::{test_key_file, Services};

static TURN: Mutex<()> = Mutex::new(());

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

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
    let bodies = generated(10_000, seed);
    services.send(&run.queue_url, &bodies);

    let mut schedule = Schedule(seed);
    let args =
        ["run", "--concurrency", "2", "--batch-size", "200", "--visibility-timeout-secs", "3"];
    for _ in 0..kills {
        let host = run.spawn(&args, &[]);
        std::thread::sleep(Duration::from_millis(schedule.next_ms(300, 2500)));
        stop(host, "-KILL");
    }
    std::thread::sleep(Duration::from_secs(4)); // in-flight messages of the last victim reappear
    run.drain(&["--visibility-timeout-secs", "3"]);

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
    assert!(log.contains("PostgreSQL unavailable"), "the outage is logged: {log}");
    run.assert_exactly_once(bodies.len(), expected_contents(&bodies).len());
    assert_eq!(run.contents(), expected_contents(&bodies));
}

/// The number before "more than once" in a host's summary line: messages SQS delivered to it
/// with `ApproximateReceiveCount` > 1.
fn received_again(log: &str) -> u64 {
    let summary = log
        .lines()
        .rfind(|l| l.contains("more than once)"))
        .unwrap_or_else(|| panic!("no summary: {log}"));
    let before = &summary[..summary.find(" more than once)").unwrap()];
    before.rsplit('(').next().unwrap().parse().unwrap()
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
        assert!(log.contains("PostgreSQL unavailable"), "{name}: the outage is logged: {log}");
        assert_eq!(received_again(&log), 0, "{name} host got redelivered messages: {log}");
    }
    std::thread::sleep(Duration::from_secs(1)); // SQS's approximate counts settle
    run.assert_exactly_once(bodies.len(), expected_contents(&bodies).len());
    assert_eq!(run.contents(), expected_contents(&bodies));
}

#[test]
fn sqs_down_at_start_and_mid_run_is_waited_out() {
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
    services.control(&["stop-sqs"]);
    let host = run.spawn(&["run", "--batch-size", "100"], &[]); // SQS is down at start
    let first = outage_then_batch(31, 500);
    services.control(&["stop-sqs"]); // and again mid-run
    let second = outage_then_batch(32, 1000);

    let out = stop(host, "-TERM");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("SQS receive failed; retrying"), "the outage is logged: {log}");
    let all: Vec<String> = first.into_iter().chain(second).collect();
    run.assert_exactly_once(all.len(), expected_contents(&all).len());
    assert_eq!(run.contents(), expected_contents(&all));
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

#[test]
fn trace_logs_and_rejections_carry_no_clear_pii_or_key() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let services = Services::get();
    let run = Run::new(&services, "rel_secrets");
    let bodies = generated(300, 51);
    services.send(&run.queue_url, &bodies);
    let out = run.command(&["run", "--drain"]).env("RUST_LOG", "trace").output().unwrap();
    assert!(out.status.success());
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(log.lines().count() > 100, "trace logging is on");

    let mut secrets: Vec<String> = bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .flat_map(|v| {
            ["ip", "device_id"].map(|k| v.get(k).and_then(|x| x.as_str()).map(String::from))
        })
        .flatten()
        .collect();
    secrets.sort();
    secrets.dedup();
    assert!(secrets.len() > 50);
    let key = std::fs::read_to_string(test_key_file()).unwrap();
    let key_b64 =
        key.lines().find(|l| l.starts_with("k1:")).unwrap().trim_start_matches("k1:").to_owned();
    secrets.push(key_b64[..40].to_owned());
    let rejections: Vec<String> = run
        .db()
        .query(
            "SELECT message_id || reason || message || encrypted_body FROM user_logins_rejected",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a clear value or the key appears in the trace log"
        );
        assert!(
            !rejections.iter().any(|r| r.contains(secret.as_str())),
            "a clear value appears in a rejection"
        );
    }
}
