//! SIGHUP mid-run: sources that fail keep the running keys; a new first key masks from each
//! worker's next batch on, with every message still written exactly once and older ids still
//! unmasking.

use std::collections::HashMap;

use maskflow_tests::run::{expected_rows, generated, Run};
use maskflow_tests::{free_port, get};
use maskflow_transform::{Config, Key, Message, Transformer};

use super::*;

type Masks = (String, Option<String>, Option<String>);

/// `(user_id, masked_ip, masked_device_id)` of every row, by the key id of its masks.
fn rows_by_key(run: &Run) -> HashMap<String, Vec<Masks>> {
    let mut by_key: HashMap<String, Vec<Masks>> = HashMap::new();
    let sql = "SELECT user_id, masked_ip, masked_device_id FROM user_logins";
    for row in run.db().query(sql, &[]).unwrap() {
        let masks: Masks = (row.get(0), row.get(1), row.get(2));
        let ids: Vec<&str> =
            [&masks.1, &masks.2].iter().filter_map(|m| m.as_deref()?.split('.').next()).collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "one row, two keys: {ids:?}");
        let key = ids.first().copied().unwrap_or("none").to_owned();
        by_key.entry(key).or_default().push(masks);
    }
    by_key
}

/// What the library makes of `bodies` under the key line `key` (the host's rows' masks).
fn masks_under(key: &str, bodies: &[String]) -> Vec<Masks> {
    let mut t = Transformer::new(Config::with_keys(Key::parse_key_file(key).unwrap())).unwrap();
    bodies
        .iter()
        .filter_map(|b| {
            let row =
                t.transform(&Message { id: "m", body: b.as_bytes(), sent_timestamp_ms: 1 }).ok()?;
            let v: Vec<Option<String>> = row.values().map(|v| v.map(str::to_owned)).collect();
            Some((v[0].clone()?, v[2].clone(), v[3].clone()))
        })
        .collect()
}

/// Whether every item of `part` is in `whole`, as many times as it is in `part`.
fn within(part: &[Masks], whole: &[Masks]) -> bool {
    let mut left: HashMap<&Masks, usize> = HashMap::new();
    for m in whole {
        *left.entry(m).or_default() += 1;
    }
    part.iter().all(|m| left.get_mut(m).is_some_and(|n| n.checked_sub(1).map(|r| *n = r).is_some()))
}

/// A series' value in /metrics' text (`None` while absent).
fn metric(addr: &str, series: &str) -> Option<f64> {
    let (_, text) = get(&format!("http://{addr}/metrics"))?;
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn hup(host: &maskflow_tests::run::Watched) {
    let status = Command::new("kill").args(["-HUP", &host.child.id().to_string()]).status();
    assert!(status.unwrap().success());
}

#[test]
fn sighup_rotates_the_key_mid_run_and_a_failing_source_keeps_the_running_keys() {
    let services = Services::get();
    let aws = AwsKeys::new(&services);
    let run = Run::new(&services, "keys_rotation");
    let k1 = keygen(&services, &["--id", "k1"]);
    let k2_wrapped = keygen(&services, &["--id", "k2", "--kms-key-id", &aws.create_key()]);
    let k2 = aws.unwrap_line(&k2_wrapped);
    let secret = unique("mf-rotation");
    aws.put_secret(&secret, &format!("{k1}\n"));
    let source = format!("aws-secretsmanager:{secret}");
    let addr = format!("127.0.0.1:{}", free_port());
    let args = ["run", "--concurrency", "2", "--batch-size", "100", "--metrics-addr", &addr];
    let host = run.spawn_watched(&args, &[("MASKFLOW_KEY_SOURCE", &source)]);
    let minute = Duration::from_secs(60);
    host.wait_for("the start", minute, |e| e.count("started") == 1);

    // Sources that fail on reload: the running keys stay, and say so.
    let failing = [
        "k2:not-a-key\n".to_owned(),                         // malformed
        format!("{}\n", keygen(&services, &["--id", "k1"])), // another key under k1
    ];
    for (n, text) in failing.iter().enumerate() {
        aws.put_secret(&secret, text);
        hup(&host);
        host.wait_for("a failed reload", minute, |e| e.count("keys_reload_failed") == n + 1);
    }
    let failed = host.events().named("keys_reload_failed").cloned().collect::<Vec<_>>();
    assert!(failed.iter().all(|f| f["kind"] == "config" && f["masking_key"] == "k1"), "{failed:?}");
    assert_eq!(metric(&addr, "maskflow_key_reloads_total{outcome=\"failed\"}"), Some(2.0));
    assert_eq!(metric(&addr, "maskflow_masking_key{key_id=\"k1\"}"), Some(1.0));

    // Rotation while messages flow (sent meanwhile, from another thread): k2 (KMS-wrapped)
    // first, k1 kept for unmasking.
    let (before, after) = (generated(8000, 71), generated(1000, 72));
    let started = Instant::now();
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| services.send(&run.queue_url, &before));
        while run.committed() < 600 {
            assert!(started.elapsed() < minute, "no commits: {}", host.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        aws.put_secret(&secret, &format!("{k2_wrapped}\n{k1}\n"));
        hup(&host);
        host.wait_for("the reload", minute, |e| e.count("keys_reloaded") == 1);
        assert!(!sender.is_finished(), "the rotation happened while messages were still sent");
        sender.join().unwrap();
    });
    let reloaded = host.events().last("keys_reloaded").cloned().unwrap();
    assert_eq!(
        (&reloaded["outcome"], &reloaded["masking_key"], &reloaded["previous"]),
        (&"applied".into(), &"k2".into(), &"k1".into())
    );
    services.send(&run.queue_url, &after);
    let total = before.len() + after.len();
    while (run.committed() as usize) < total {
        assert!(started.elapsed() < 3 * minute, "not all committed: {}", host.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&addr, "maskflow_key_reloads_total{outcome=\"applied\"}"), Some(1.0));
    assert_eq!(metric(&addr, "maskflow_masking_key{key_id=\"k2\"}"), Some(1.0));
    assert_eq!(metric(&addr, "maskflow_masking_key{key_id=\"k1\"}"), None, "k1 no longer masks");
    let (status, log) = host.stop("-TERM");
    assert!(status.success(), "{log}");

    // Exactly once, each row under one key with the library's masks for it; after the
    // reload, k2 only.
    let all: Vec<String> = before.iter().chain(&after).cloned().collect();
    run.assert_exactly_once(total, expected_rows(&all));
    let rows = rows_by_key(&run);
    let mut ids: Vec<&str> = rows.keys().map(String::as_str).collect();
    ids.sort();
    assert_eq!(ids, ["k1", "k2"], "rows under k1, and under k2 from the reload on");
    let (under_k1, under_k2) = (&rows["k1"], &rows["k2"]);
    assert!(within(under_k1, &masks_under(&k1, &before)), "k1 rows are the library's");
    let k2_expected: Vec<Masks> = [masks_under(&k2, &before), masks_under(&k2, &after)].concat();
    assert!(within(under_k2, &k2_expected), "k2 rows are the library's");
    assert!(
        within(&masks_under(&k2, &after), under_k2),
        "everything sent after the reload is under k2"
    );
    assert!(!under_k1.is_empty() && !under_k2.is_empty());
    let events = Events::parse(&log);
    let followed = events.named("keys_followed").filter(|e| e["masking_key"] == "k2").count();
    assert!(followed >= 1, "workers took k2 at a batch boundary");

    // Older ids still unmask through the new source: a k1 mask, and every sealed body.
    let k1_mask = under_k1.iter().find_map(|m| m.1.clone()).unwrap();
    let mut masks = vec![k1_mask.clone()];
    let sql = "SELECT encrypted_body FROM user_logins_rejected";
    masks.extend(run.db().query(sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)));
    assert!(
        masks.iter().skip(1).any(|m| m.starts_with("k1."))
            && masks.iter().any(|m| m.starts_with("k2."))
    );
    let unmask = |env: &[(&str, &str)], mask: &str| {
        let out = maskflow(&services, &["unmask", "--output", "json", mask], env, b"");
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
    };
    for mask in &masks {
        unmask(&[("MASKFLOW_KEY_SOURCE", &source)], mask);
    }
    let k1_only = TempFile::with(&k1);
    assert_eq!(
        unmask(&[("MASKFLOW_KEY_SOURCE", &source)], &k1_mask),
        unmask(&[("MASKFLOW_KEY_FILE", k1_only.path())], &k1_mask)
    );
}
