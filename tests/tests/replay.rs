//! `maskflow rejections` and `maskflow replay` (issue 31), on real PostgreSQL and LocalStack:
//! a producer's renamed field replayed with a fixed mapping; a table's CHECK refusing rows,
//! dropped, then the diverted rows replayed and the rest drained; replay killed twice beside two
//! running hosts; bodies under a key the key file lost; `--dry-run`; the send day kept (and
//! `rejected_at` standing in for older rejections, upgraded in place); a renamed optional field
//! counted as NULLs on /metrics. Expected rows come from the library (`maskflow_transform`)
//! on the original bodies, never from the code under test.

use std::collections::BTreeMap;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maskflow_tests::run::{
    events_of, expected_contents, expected_rows, generated, wait_until, Run, Watched,
};
use maskflow_tests::{free_port, get, test_config, test_keys, Services};
use maskflow_transform::{Key, Mapping, Message, Transformer};
use serde_json::Value;

const EXIT_CONFIG: i32 = 3;
const EXIT_STOPPED: i32 = 5;

/// Seeded rejections' SQS time: 2020-09-13, a day no message sent by a test has.
const SENT_MS: i64 = 1_600_000_000_000;
const SENT_DAY: &str = "2020-09-13";

/// `n` generated events that the built-in mapping turns into rows.
fn valid_events(n: usize, seed: u64) -> Vec<String> {
    let mut t = Transformer::new(test_config()).unwrap();
    let valid = |b: &String| {
        t.transform(&Message { id: "m", body: b.as_bytes(), sent_timestamp_ms: 1 }).is_ok()
            && b.contains("\"user_id\":\"")
    };
    let events: Vec<String> = generated(n * 2, seed).into_iter().filter(valid).take(n).collect();
    assert_eq!(events.len(), n);
    events
}

/// `body` with its top-level field `from` renamed `to` (a producer's release).
fn renamed(body: &str, from: &str, to: &str) -> String {
    let mut event: serde_json::Map<String, Value> = serde_json::from_str(body).unwrap();
    if let Some(value) = event.remove(from) {
        event.insert(to.to_owned(), value);
    }
    Value::Object(event).to_string()
}

/// The built-in mapping reading `user_id` from `userId`: the fix for the rename, as a file.
fn user_id_mapping(run: &Run) -> String {
    let mut mapping = Mapping::user_logins();
    mapping.columns[0].path = Some("userId".into());
    let path = std::env::temp_dir().join(format!("{}-mapping.json", Services::unique("replay")));
    std::fs::write(&path, serde_json::to_string(&mapping).unwrap()).unwrap();
    let _ = run; // one file per test run
    path.to_str().unwrap().to_owned()
}

fn key_text(keys: &[&Key]) -> String {
    keys.iter().map(|k| format!("{}\n", k.to_key_file_line().as_str())).collect()
}

/// `maskflow args` to its end.
fn maskflow(run: &Run, args: &[&str]) -> Output {
    run.command(args).output().unwrap()
}

fn spawn(run: &Run, args: &[&str]) -> Child {
    let mut cmd = run.command(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().unwrap()
}

/// `replay`'s stdout table: (reason before, what it is now) -> count.
fn fates(out: &Output) -> BTreeMap<(String, String), u64> {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("reason\tnow\tcount"), "{text}");
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            ((cells[0].to_owned(), cells[1].to_owned()), cells[2].parse().unwrap())
        })
        .collect()
}

fn fate(pairs: &[(&str, &str, u64)]) -> BTreeMap<(String, String), u64> {
    pairs.iter().map(|(a, b, n)| ((a.to_string(), b.to_string()), *n)).collect()
}

/// Rejections written as a host writes them: `bodies` judged by the library with `keys`
/// (the first seals), with `sent_ms` kept (`None`: an older host, no `sent_at`) and a ledger
/// entry each. Ids are `{prefix}-000001`...
fn seed(run: &Run, prefix: &str, bodies: &[String], keys: &[Key], sent_ms: Option<i64>) {
    let mut t = Transformer::new(maskflow_transform::Config::with_keys(keys.to_vec())).unwrap();
    let (mut ids, mut reasons, mut messages, mut sealed) = (vec![], vec![], vec![], vec![]);
    for (i, body) in bodies.iter().enumerate() {
        let message = Message { id: "s", body: body.as_bytes(), sent_timestamp_ms: SENT_MS };
        let rejection = t.transform(&message).expect_err("seeded bodies are rejections");
        ids.push(format!("{prefix}-{:06}", i + 1));
        reasons.push(rejection.reason.code().to_owned());
        messages.push(rejection.message);
        sealed.push(rejection.encrypted_body);
    }
    let mut db = run.db();
    let sent = match sent_ms {
        Some(ms) => format!("'epoch'::timestamptz + {ms} * interval '1 millisecond'"),
        None => "NULL".into(),
    };
    let sent_column = if sent_ms.is_some() { ", sent_at" } else { "" };
    let sent_value = if sent_ms.is_some() { format!(", {sent}") } else { String::new() };
    db.execute(
        &format!(
            "INSERT INTO user_logins_rejected (message_id, reason, message, encrypted_body{sent_column})
             SELECT id, r, m, b{sent_value} FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS v(id, r, m, b)"
        ),
        &[&ids, &reasons, &messages, &sealed],
    )
    .unwrap();
    db.execute(
        "INSERT INTO maskflow_ledger (message_id, outcome) SELECT id, 'rejected' FROM unnest($1::text[]) AS v(id)",
        &[&ids],
    )
    .unwrap();
}

/// Every table, as sorted text: what a dry run must leave exactly as it was.
fn snapshot(run: &Run) -> Vec<Vec<String>> {
    ["user_logins", "user_logins_rejected", "maskflow_ledger"]
        .iter()
        .map(|table| {
            let sql = format!("SELECT t::text FROM {table} t ORDER BY 1");
            run.db().query(&sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The UTC day of `ms`, as PostgreSQL writes a `date`.
fn utc_day(run: &Run, ms: i64) -> String {
    let sql = "SELECT ((('epoch'::timestamptz + $1 * interval '1 millisecond') AT TIME ZONE 'UTC')::date)::text";
    run.db().query_one(sql, &[&(ms as f64)]).unwrap().get(0)
}

#[test]
fn a_renamed_field_is_replayed_with_a_mapping_that_reads_it() {
    let services = Services::get();
    let run = Run::new(&services, "replay_renamed");
    let originals = valid_events(500, 81);
    let sent: Vec<String> = originals.iter().map(|b| renamed(b, "user_id", "userId")).collect();
    let (before, ids, after) = (now_ms(), services.send_with_ids(&run.queue_url, &sent), now_ms());
    run.drain(&[]);
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), 0);
    let rejected = "SELECT count(*) FROM user_logins_rejected WHERE reason = 'missing_field'";
    assert_eq!(run.count(rejected), 500, "the wave");
    // Each rejection keeps its SQS SentTimestamp (LocalStack shares this machine's clock).
    let sent_kept = format!(
        "SELECT count(*) FROM user_logins_rejected WHERE sent_at BETWEEN
         'epoch'::timestamptz + {} * interval '1 ms' AND 'epoch'::timestamptz + {} * interval '1 ms'",
        before - 1_000,
        after + 1_000
    );
    assert_eq!(run.count(&sent_kept), 500);

    // Finding the cause: counts by reason and key, then the rejections themselves.
    let out = maskflow(&run, &["rejections", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"], 500, "{report}");
    assert_eq!(report["by_reason"]["missing_field"]["count"], 500, "{report}");
    assert_eq!(report["by_key"][test_keys()[0].id()], 500, "{report}");
    let out =
        maskflow(&run, &["rejections", "--reason", "missing_field", "--limit", "3", "--json"]);
    let listed: Vec<Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 3);
    for r in &listed {
        assert!(ids.contains(&r["message_id"].as_str().unwrap().to_owned()), "{r}");
        assert_eq!(r["reason"], "missing_field");
        assert!(r["message"].as_str().unwrap().contains("user_id"), "names the field: {r}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let clear: Vec<String> = originals
        .iter()
        .flat_map(|b| {
            let event: Value = serde_json::from_str(b).unwrap();
            ["ip", "device_id"].map(|f| event[f].as_str().unwrap_or("\u{0}").to_owned())
        })
        .collect();
    assert!(!clear.iter().any(|v| text.contains(v.as_str())), "no clear value listed: {text}");

    // The fix: a mapping that reads the new name.
    let mapping = user_id_mapping(&run);
    let out = maskflow(&run, &["replay", "--mapping", &mapping]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fates(&out), fate(&[("missing_field", "row", 500)]));
    let done = events_of(&out.stderr).last("replay_done").cloned().unwrap();
    assert_eq!((done["rows"].as_u64(), done["skipped"].as_u64()), (Some(500), Some(0)), "{done}");
    assert_eq!(run.contents(), expected_contents(&originals), "the masks of the original events");
    let days: Vec<String> = run
        .db()
        .query("SELECT DISTINCT create_date::text FROM user_logins", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sent_days = [utc_day(&run, before), utc_day(&run, after)];
    assert!(days.iter().all(|d| sent_days.contains(d)), "{days:?} not {sent_days:?}");
    assert_eq!(run.count("SELECT count(*) FROM user_logins_rejected"), 0, "no rejection left");
    let mut sent_ids = ids.clone();
    sent_ids.sort();
    assert_eq!(run.ledger_ids(), sent_ids);
    assert_eq!(run.count("SELECT count(*) FROM maskflow_ledger WHERE outcome = 'row'"), 500);
    // Run again: nothing left to replay, nothing written twice.
    let out = maskflow(&run, &["replay", "--mapping", &mapping]);
    assert!(out.status.success());
    assert_eq!(fates(&out), fate(&[]));
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), 500);
}

#[test]
fn replayed_rows_keep_their_send_day_and_older_rejections_fall_back_to_rejected_at() {
    let services = Services::get();
    let run = Run::new(&services, "replay_days");
    // A database made by a host older than `sent_at`, with rejections of that time.
    run.db()
        .batch_execute(
            "CREATE TABLE maskflow_ledger(message_id text PRIMARY KEY, outcome text NOT NULL,
                 processed_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE user_logins_rejected(message_id text PRIMARY KEY, reason text NOT NULL,
                 message text NOT NULL, encrypted_body text NOT NULL,
                 rejected_at timestamptz NOT NULL DEFAULT now())",
        )
        .unwrap();
    let originals = valid_events(50, 82);
    let renamed: Vec<String> = originals.iter().map(|b| renamed(b, "user_id", "userId")).collect();
    seed(&run, "old", &renamed[..20], &test_keys(), None);
    run.db()
        .batch_execute("UPDATE user_logins_rejected SET rejected_at = '2021-01-01 12:00:00+00'")
        .unwrap();
    // A host of this version upgrades the table in place at start.
    let out = run.drain(&[]);
    let upgraded = events_of(&out.stderr);
    let event = upgraded.last("schema_upgraded").expect("schema_upgraded");
    assert_eq!(
        (event["table"].as_str(), event["column"].as_str()),
        (Some("user_logins_rejected"), Some("sent_at"))
    );
    let column = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'user_logins_rejected'::regclass AND attname = 'sent_at'";
    assert_eq!(run.count(column), 1);
    assert!(run.drain(&[]).status.success());
    assert_eq!(events_of(&run.drain(&[]).stderr).count("schema_upgraded"), 0, "once");
    seed(&run, "new", &renamed[20..], &test_keys(), Some(SENT_MS));

    let out = maskflow(&run, &["replay", "--mapping", &user_id_mapping(&run)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = events_of(&out.stderr).last("replay_done").cloned().unwrap();
    assert_eq!(done["sent_time_fallback"], 20, "the replay says how many: {done}");
    let by_day: BTreeMap<String, i64> = run
        .db()
        .query("SELECT create_date::text, count(*) FROM user_logins GROUP BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: BTreeMap<String, i64> =
        [("2021-01-01".to_owned(), 20), (SENT_DAY.to_owned(), 30)].into();
    assert_eq!(by_day, expected);
    assert_eq!(run.contents(), expected_contents(&originals));
}

#[test]
fn rows_a_table_refused_are_replayed_once_the_table_is_fixed_and_the_rest_drains() {
    let services = Services::get();
    let run = Run::new(&services, "replay_refused");
    run.drain(&[]);
    run.db()
        .batch_execute(
            "ALTER TABLE user_logins ADD CONSTRAINT not_yet CHECK (create_date < '2000-01-01')",
        )
        .unwrap();
    let bodies = valid_events(50, 83);
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
    let (status, log) = run.spawn_watched(&light, &[]).wait_at_most(Duration::from_secs(60));
    assert_eq!(status.code(), Some(EXIT_STOPPED), "{log}");
    let diverted =
        run.count("SELECT count(*) FROM user_logins_rejected WHERE reason = 'sink_refused'");
    assert!((1..=2).contains(&diverted), "{diverted} diverted");

    // While the CHECK is there, a replay leaves them as they are.
    let out = maskflow(&run, &["replay", "--reason", "sink_refused"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fates(&out), fate(&[("sink_refused", "sink_refused", diverted as u64)]));
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), 0);

    run.db().batch_execute("ALTER TABLE user_logins DROP CONSTRAINT not_yet").unwrap();
    let out = maskflow(&run, &["replay", "--reason", "sink_refused"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fates(&out), fate(&[("sink_refused", "row", diverted as u64)]));
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), diverted);
    std::thread::sleep(Duration::from_secs(3)); // what the stopped host held becomes visible
    run.drain(&[]);
    run.assert_exactly_once(bodies.len(), bodies.len());
    assert_eq!(run.contents(), expected_contents(&bodies));
    assert_eq!(run.count("SELECT count(*) FROM maskflow_ledger WHERE outcome <> 'row'"), 0);
}

#[test]
fn replay_killed_twice_beside_two_running_hosts_replays_every_message_once() {
    let services = Services::get();
    let run = Run::new(&services, "replay_killed");
    run.drain(&[]);
    let n = 20_000;
    let originals = valid_events(n, 84);
    let renamed: Vec<String> = originals.iter().map(|b| renamed(b, "user_id", "userId")).collect();
    seed(&run, "seed", &renamed, &test_keys(), Some(SENT_MS));
    // Two hosts keep writing new messages all along.
    let new = generated(3_000, 85);
    let hosts: Vec<Watched> = (0..2).map(|_| run.spawn_watched(&["run"], &[])).collect();
    let mapping = user_id_mapping(&run);
    // Small batches: many transactions to be killed between (or in).
    let replay_args = ["replay", "--mapping", &mapping, "--batch-size", "50"];
    let replayed = format!("SELECT count(*) FROM user_logins WHERE create_date = '{SENT_DAY}'");
    let seeds_left = "SELECT count(*) FROM user_logins_rejected WHERE message_id LIKE 'seed-%'";
    let new_ids = std::thread::scope(|scope| {
        let sending = scope.spawn(|| services.send_with_ids(&run.queue_url, &new));
        let mut last = 0;
        for kill in 0..2 {
            let mut replay = spawn(&run, &replay_args);
            let mut db = run.db();
            let started = std::time::Instant::now();
            while db.query_one(replayed.as_str(), &[]).unwrap().get::<_, i64>(0) <= last {
                assert!(started.elapsed() < Duration::from_secs(60), "the replay wrote nothing");
                std::thread::sleep(Duration::from_millis(5));
            }
            replay.kill().unwrap(); // SIGKILL, mid-way
            replay.wait().unwrap();
            last = run.count(&replayed);
            eprintln!("replay killed after {last} of {n} rows");
            assert!(last < n as i64, "kill {kill} came after the end: make the seed larger");
            // At every point: each seeded message is a row or a rejection, never both or neither.
            assert_eq!(last + run.count(seeds_left), n as i64, "after kill {kill}");
        }
        let out = maskflow(&run, &replay_args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let done = events_of(&out.stderr).last("replay_done").cloned().unwrap();
        assert_eq!(done["rows"].as_i64(), Some(n as i64 - last), "the rerun does the rest: {done}");
        sending.join().unwrap()
    });
    wait_until("the hosts to commit every new message", Duration::from_secs(120), || {
        run.committed() == (n + new.len()) as i64
    });
    for host in hosts {
        let (status, log) = host.stop("-TERM");
        assert!(status.success(), "{log}");
    }

    assert_eq!(run.count(&replayed), n as i64, "every seeded message is one row");
    assert_eq!(run.count(seeds_left), 0, "and no longer a rejection");
    let seeded_rows = format!(
        "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version::text
         FROM user_logins WHERE create_date = '{SENT_DAY}'"
    );
    let mut rows: Vec<Vec<Option<String>>> = run
        .db()
        .query(&seeded_rows, &[])
        .unwrap()
        .iter()
        .map(|r| (0..6).map(|i| r.get(i)).collect())
        .collect();
    rows.sort();
    assert_eq!(rows, expected_contents(&originals), "the original events' rows, once each");
    let seed_ledger =
        "SELECT count(*) FROM maskflow_ledger WHERE message_id LIKE 'seed-%' AND outcome = 'row'";
    assert_eq!(run.count(seed_ledger), n as i64);
    // The hosts' messages: each once, as rows or rejections.
    let mut ledger = run.ledger_ids();
    ledger.retain(|id| !id.starts_with("seed-"));
    let mut sent = new_ids.clone();
    sent.sort();
    assert_eq!(ledger, sent);
    let today = format!("SELECT count(*) FROM user_logins WHERE create_date <> '{SENT_DAY}'");
    assert_eq!(run.count(&today) as usize, expected_rows(&new));
    let host_rejections =
        "SELECT count(*) FROM user_logins_rejected WHERE message_id NOT LIKE 'seed-%'";
    assert_eq!(run.count(host_rejections) as usize, new.len() - expected_rows(&new));
}

#[test]
fn bodies_under_a_key_the_key_file_lost_are_skipped_and_named_by_key_id() {
    let services = Services::get();
    let run = Run::new(&services, "replay_lost_key");
    run.drain(&[]);
    let originals = valid_events(15, 86);
    let renamed: Vec<String> = originals.iter().map(|b| renamed(b, "user_id", "userId")).collect();
    let k0 = Key::new("k0", [0x5a; 64]).unwrap();
    seed(&run, "known", &renamed[..10], &test_keys(), Some(SENT_MS));
    seed(&run, "lost", &renamed[10..], std::slice::from_ref(&k0), Some(SENT_MS));
    let lost = "SELECT message_id, reason, message, encrypted_body FROM user_logins_rejected WHERE message_id LIKE 'lost-%' ORDER BY 1";
    let before: Vec<String> =
        run.db().query(lost, &[]).unwrap().iter().map(|r| format!("{r:?}")).collect();
    let mapping = user_id_mapping(&run);

    let out = maskflow(&run, &["replay", "--mapping", &mapping]);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{}", String::from_utf8_lossy(&out.stderr));
    let events = events_of(&out.stderr);
    assert_eq!(events.failure_kind(), Some("config"));
    let skipped: Vec<(&str, &str, u64)> = events
        .named("replay_skipped")
        .map(|e| {
            (
                e["key_id"].as_str().unwrap(),
                e["why"].as_str().unwrap(),
                e["bodies"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(skipped, [("k0", "key_not_loaded", 5)]);
    assert_eq!(fates(&out), fate(&[("missing_field", "row", 10), ("missing_field", "skipped", 5)]));
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), 10, "the rest was replayed");
    let after: Vec<String> =
        run.db().query(lost, &[]).unwrap().iter().map(|r| format!("{r:?}")).collect();
    assert_eq!(after, before, "skipped rejections are left as they are");

    // The key back in the key file (after the masking key): the rest is replayed.
    let keys = key_text(&[&test_keys()[0], &k0]);
    let out =
        run.command(&["replay", "--mapping", &mapping]).env("MASKFLOW_KEY", keys).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fates(&out), fate(&[("missing_field", "row", 5)]));
    assert_eq!(run.count("SELECT count(*) FROM user_logins_rejected"), 0);
    assert_eq!(run.contents(), expected_contents(&originals));
}

#[test]
fn a_dry_run_counts_what_would_change_and_changes_nothing() {
    let services = Services::get();
    let run = Run::new(&services, "replay_dry");
    run.drain(&[]);
    let originals = valid_events(40, 87);
    let mut renamed: Vec<String> =
        originals.iter().map(|b| renamed(b, "user_id", "userId")).collect();
    // Three still wrong after the fix: an ip that is not one (invalid_ip now).
    for body in &mut renamed[..3] {
        let mut event: serde_json::Map<String, Value> = serde_json::from_str(body).unwrap();
        event.insert("ip".into(), "999.1.2.3".into());
        *body = Value::Object(event).to_string();
    }
    seed(&run, "dry", &renamed, &test_keys(), Some(SENT_MS));
    let before = snapshot(&run);
    let mapping = user_id_mapping(&run);
    let expected = fate(&[("missing_field", "invalid_ip", 3), ("missing_field", "row", 37)]);

    let dry = maskflow(&run, &["replay", "--mapping", &mapping, "--dry-run"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert_eq!(fates(&dry), expected);
    let done = events_of(&dry.stderr).last("replay_done").cloned().unwrap();
    assert_eq!((done["dry_run"].as_bool(), done["rows"].as_u64()), (Some(true), Some(37)));
    assert_eq!(snapshot(&run), before, "nothing changed");

    let real = maskflow(&run, &["replay", "--mapping", &mapping]);
    assert!(real.status.success(), "{}", String::from_utf8_lossy(&real.stderr));
    assert_eq!(fates(&real), expected, "the dry run said what the replay did");
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), 37);
    let still = "SELECT count(*) FROM user_logins_rejected WHERE reason = 'invalid_ip' AND message LIKE '%ip%'";
    assert_eq!(run.count(still), 3, "still rejected, with the reason they have now");
    let ledger = "SELECT outcome, count(*)::int8 FROM maskflow_ledger GROUP BY 1 ORDER BY 1";
    let outcomes: Vec<(String, i64)> =
        run.db().query(ledger, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(outcomes, [("rejected".to_owned(), 3), ("row".to_owned(), 37)]);
}

#[test]
fn a_renamed_optional_field_is_counted_as_nulls_per_column() {
    let services = Services::get();
    let run = Run::new(&services, "replay_nulls");
    let bodies = valid_events(300, 88);
    let sent: Vec<String> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| if i % 3 == 0 { renamed(b, "ip", "ip_address") } else { b.clone() })
        .collect();
    services.send(&run.queue_url, &sent);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let host = run.spawn_watched(&["run", "--metrics-addr", &addr], &[]);
    wait_until("every message committed", Duration::from_secs(60), || run.committed() == 300);
    let (_, metrics) = get(&format!("http://{addr}/metrics")).unwrap();
    drop(host.stop("-TERM"));
    let served = |column: &str| -> i64 {
        let prefix = format!("maskflow_null_values_total{{column=\"{column}\"}} ");
        let line = metrics.lines().find(|l| l.starts_with(&prefix));
        line.unwrap_or_else(|| panic!("{prefix} not served: {metrics}"))[prefix.len()..]
            .parse()
            .unwrap()
    };
    for column in [
        "user_id",
        "device_type",
        "masked_ip",
        "masked_device_id",
        "locale",
        "app_version",
        "create_date",
    ] {
        let nulls = run.count(&format!("SELECT count(*) FROM user_logins WHERE {column} IS NULL"));
        assert_eq!(served(column), nulls, "{column}");
    }
    assert!(served("masked_ip") >= 100, "the renamed field shows: {metrics}");
    assert_eq!(served("user_id"), 0);
}

#[test]
fn one_replay_at_a_time_per_database() {
    let services = Services::get();
    let run = Run::new(&services, "replay_busy");
    run.drain(&[]);
    let renamed: Vec<String> =
        valid_events(5, 89).iter().map(|b| renamed(b, "user_id", "userId")).collect();
    seed(&run, "busy", &renamed, &test_keys(), Some(SENT_MS));
    let mapping = user_id_mapping(&run);
    // A replay that is running holds the database's replay lock: here, a session of the test's.
    let mut holder = run.db();
    holder.execute("SELECT pg_advisory_lock(hashtext('maskflow replay'))", &[]).unwrap();
    let out = maskflow(&run, &["replay", "--mapping", &mapping]);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(events_of(&out.stderr).failure_kind(), Some("config"));
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), 0, "it wrote nothing");
    drop(holder); // the running one ends
    let out = maskflow(&run, &["replay", "--mapping", &mapping]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(run.count("SELECT count(*) FROM user_logins"), 5);
}
