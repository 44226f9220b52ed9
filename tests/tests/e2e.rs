//! End to end against the real services: LocalStack's SQS -> `maskflow run` -> PostgreSQL.
//! Each test has its own queue and database, so they run in parallel.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use maskflow_tests::run::{events_of, expected_rows, generated, Run};
use maskflow_tests::{end_to_end, golden, test_config, Services, Vector};
use maskflow_transform::Transformer;

/// Seconds since the Unix epoch (fractional).
fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn golden_vectors_end_to_end_every_row_and_rejection_as_expected() {
    let services = Services::get();
    let run = Run::new(&services, "e2e_golden");
    let vectors: Vec<Vector> = golden().into_iter().filter(end_to_end).collect();
    assert!(vectors.len() >= 60);
    let sent_from = unix_now();
    services.send(
        &run.queue_url,
        &vectors.iter().map(|v| String::from_utf8(v.body()).unwrap()).collect::<Vec<_>>(),
    );
    let sent_until = unix_now();
    run.drain(&["--concurrency", "2"]);

    let expected_rows: Vec<&Vector> =
        vectors.iter().filter(|v| v.expected_row().is_some()).collect();
    run.assert_exactly_once(vectors.len(), expected_rows.len());

    // Rows: the golden values (but create_date, which comes from SQS's own SentTimestamp).
    let columns =
        ["user_id", "device_type", "masked_ip", "masked_device_id", "locale", "app_version"];
    let key = |values: Vec<Option<String>>| format!("{values:?}");
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for v in &expected_rows {
        let row = v.expected_row().unwrap();
        *want
            .entry(key(columns.iter().map(|c| row[*c].as_str().map(String::from)).collect()))
            .or_default() += 1;
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    // SQS stamps SentTimestamp while the test sends: create_date is a UTC date of that window
    // (PostgreSQL does the calendar arithmetic, not the code under test).
    let in_window = run.count(&format!(
        "SELECT count(*) FROM user_logins WHERE create_date BETWEEN \
         (to_timestamp({sent_from}) AT TIME ZONE 'UTC')::date \
         AND (to_timestamp({sent_until}) AT TIME ZONE 'UTC')::date"
    ));
    assert_eq!(
        in_window as usize,
        expected_rows.len(),
        "create_date is the UTC date of SentTimestamp, sent between {sent_from} and {sent_until} (s)"
    );
    for r in run.db().query("SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version::text FROM user_logins", &[]).unwrap() {
        *got.entry(key((0..6).map(|i| r.get::<_, Option<String>>(i)).collect())).or_default() += 1;
    }
    assert_eq!(got, want);

    // Rejections: the golden reason per message body; each body recoverable with the key.
    let unmasker = Transformer::new(test_config()).unwrap();
    let mut want: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    for v in vectors.iter().filter(|v| v.expected_row().is_none()) {
        want.insert(v.body(), v.expected_reason().unwrap().to_owned());
    }
    let mut got = BTreeMap::new();
    for r in run.db().query("SELECT reason, encrypted_body FROM user_logins_rejected", &[]).unwrap()
    {
        let body = unmasker.unmask(r.get(1)).expect("rejected body unmasks").value;
        got.insert(body, r.get::<_, String>(0));
    }
    assert_eq!(got, want);

    // `maskflow unmask` recovers the most frequent ip (the sample's) from the table.
    let mask: String = run
        .db()
        .query_one(
            "SELECT masked_ip FROM user_logins GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let out = run.command(&["unmask", &mask]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "199.172.111.135");
}

#[test]
fn redelivery_after_a_crash_between_commit_and_delete_writes_nothing_twice() {
    let services = Services::get();
    let run = Run::new(&services, "e2e_redeliver");
    let bodies = generated(300, 11);
    services.send(&run.queue_url, &bodies);
    // First host: commits its first batch, then dies before deleting it.
    let args =
        ["run", "--concurrency", "1", "--batch-size", "50", "--visibility-timeout-secs", "2"];
    let crashed =
        run.command_with_failpoints(&args, "after-commit=return(abort)").output().unwrap();
    assert!(!crashed.status.success(), "the fail point should have aborted the host");
    assert_eq!(events_of(&crashed.stderr).count("failpoint"), 1, "it fired once");
    let committed = run.count("SELECT count(*) FROM maskflow_ledger");
    assert!(committed > 0, "the first batch was committed before the crash");
    std::thread::sleep(Duration::from_secs(3)); // let the undeleted batch become visible again
    let out = run.drain(&["--batch-size", "50"]);
    let skipped = events_of(&out.stderr).done("redelivered");
    assert_eq!(skipped, committed as u64, "the committed batch came back and was skipped");
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn two_hosts_on_one_queue_share_it_without_duplicates_or_gaps() {
    let services = Services::get();
    let run = Run::new(&services, "e2e_two_hosts");
    let bodies = generated(2000, 12);
    services.send(&run.queue_url, &bodies);
    let hosts: Vec<Child> =
        (0..2).map(|_| run.spawn(&["run", "--drain", "--batch-size", "100"], &[])).collect();
    let mut received = Vec::new();
    for host in hosts {
        let out = host.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        received.push(events_of(&out.stderr).done("received"));
    }
    // Both consumed: each host received a real share (SQS hands out at most 10 per call).
    assert!(received.iter().all(|&n| n >= 100), "messages received per host: {received:?}");
    assert!(received.iter().sum::<u64>() >= bodies.len() as u64, "{received:?}");
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn sigint_mid_run_exits_zero_promptly_and_loses_nothing() {
    let services = Services::get();
    let run = Run::new(&services, "e2e_sigint");
    let bodies = generated(3000, 13);
    services.send(&run.queue_url, &bodies);
    let host = run.spawn(&["run", "--batch-size", "100", "--visibility-timeout-secs", "5"], &[]);
    let started = Instant::now();
    while run.committed() < 200 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    let signalled = Instant::now();
    Command::new("kill").args(["-INT", &host.id().to_string()]).status().unwrap();
    let out = host.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exit status {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        signalled.elapsed()
    );
    // Every committed batch was deleted before the exit: what is left in the queue (visible or
    // not) is exactly what was not committed. Nothing deletes after the exit, so a short wait
    // only lets SQS's approximate counts settle.
    let committed = run.count("SELECT count(*) FROM maskflow_ledger") as usize;
    assert!(committed < bodies.len(), "stopped before the end");
    let exited = Instant::now();
    loop {
        let depth = services.queue_depth(&run.queue_url) as usize;
        if depth == bodies.len() - committed {
            break;
        }
        assert!(
            exited.elapsed() < Duration::from_secs(2),
            "{committed} committed, but {depth} of {} still queued: committed batches were not \
             deleted before the exit",
            bodies.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run.drain(&[]);
    run.assert_exactly_once(bodies.len(), expected_rows(&bodies));
}

#[test]
fn a_broken_module_stops_the_host_and_keeps_every_message_queued() {
    let services = Services::get();
    let run = Run::new(&services, "e2e_broken_module");
    let bodies = generated(50, 14);
    services.send(&run.queue_url, &bodies);
    let module = std::env::temp_dir().join(format!("maskflow-trap-{}.wasm", std::process::id()));
    std::fs::write(&module, maskflow_tests::hostile::traps()).unwrap();
    let out = run
        .command(&[
            "run",
            "--drain",
            "--module",
            module.to_str().unwrap(),
            "--visibility-timeout-secs",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert_eq!(events_of(&out.stderr).failure_kind(), Some("stopped"), "{stderr}");
    assert!(stderr.contains("failed on every message"), "{stderr}");
    assert_eq!(run.count("SELECT count(*) FROM maskflow_ledger"), 0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(services.queue_depth(&run.queue_url), bodies.len() as u64, "nothing deleted");
}
