//! `maskflow rekey` (issue 23), on real PostgreSQL and SQS: history masked under k1 is re-masked
//! under k2 while a `maskflow run` keeps writing under k2, with the rekey SIGKILLed twice (once
//! in the rows, once in the rejections) and rerun. Checked against a copy taken first.
//!
//! Scale: the issue's 200,000 rows, 2,000 rejections and 10,000 new messages (about 25 s);
//! MASKFLOW_REKEY_QUICK=1 runs a tenth of it while developing.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use maskflow::Generator;
use maskflow_tests::run::{wait_until, Run};
use maskflow_tests::Services;
use maskflow_transform::{Config, Key, Message, Transformer};

/// The seeded rows' SQS time: 2020-09-13, a date the new rows (sent now) never have.
const SEEDED_MS: i64 = 1_600_000_000_000;
const SEEDED_DATE: &str = "2020-09-13";

fn scale() -> (usize, usize, usize) {
    match std::env::var("MASKFLOW_REKEY_QUICK").as_deref() {
        Ok("1") => (20_000, 200, 1_000),
        _ => (200_000, 2_000, 10_000),
    }
}

fn keys() -> (Key, Key) {
    (Key::new("k1", [0x11; 64]).unwrap(), Key::new("k2", [0x22; 64]).unwrap())
}

fn key_text(keys: &[&Key]) -> String {
    keys.iter().map(|k| format!("{}\n", k.to_key_file_line().as_str())).collect()
}

fn transformer(keys: &[&Key]) -> Transformer {
    Transformer::new(Config::with_keys(keys.iter().map(|k| (*k).clone()).collect())).unwrap()
}

/// Runs `maskflow args` with the key file `keys` to its end.
fn maskflow(run: &Run, keys: &str, args: &[&str]) -> Output {
    run.command(args).env("MASKFLOW_KEY", keys).output().unwrap()
}

fn spawn(run: &Run, keys: &str, args: &[&str]) -> Child {
    let mut cmd = run.command(args);
    cmd.env("MASKFLOW_KEY", keys).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().unwrap()
}

/// COPY text format of one cell.
fn copy_cell(v: Option<&str>) -> String {
    v.map_or("\\N".into(), |v| {
        v.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r")
    })
}

/// `rows` rows and `rejections` rejections masked under k1, written as the sink writes them.
fn seed(run: &Run, k1: &Key, rows: usize, rejections: usize) {
    let mut t = transformer(&[k1]);
    let mut generator = Generator::new(7, rows, 20);
    let (mut copy, mut rejected) = (String::new(), Vec::new());
    let mut n_rows = 0;
    while n_rows < rows || rejected.len() < rejections {
        let body = generator.next_body();
        let message = Message { id: "seed", body: body.as_bytes(), sent_timestamp_ms: SEEDED_MS };
        match t.transform(&message) {
            Ok(row) if n_rows < rows => {
                n_rows += 1;
                let cells: Vec<String> = row.values().map(copy_cell).collect();
                copy += &(cells.join("\t") + "\n");
            }
            Err(r) if rejected.len() < rejections => {
                rejected.push((r.reason.code().to_owned(), r.message, r.encrypted_body))
            }
            _ => {}
        }
    }
    let mut db = run.db();
    let mut writer = db.copy_in("COPY user_logins FROM STDIN").unwrap();
    writer.write_all(copy.as_bytes()).unwrap();
    writer.finish().unwrap();
    let ids: Vec<String> = (0..rejected.len()).map(|i| format!("seed-{i:06}")).collect();
    let reasons: Vec<&String> = rejected.iter().map(|r| &r.0).collect();
    let messages: Vec<&String> = rejected.iter().map(|r| &r.1).collect();
    let sealed: Vec<&String> = rejected.iter().map(|r| &r.2).collect();
    db.execute(
        "INSERT INTO user_logins_rejected (message_id, reason, message, encrypted_body)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])",
        &[&ids, &reasons, &messages, &sealed],
    )
    .unwrap();
}

/// Clear values of the rows (all columns but the date), by unmasking with `t`, as a multiset.
fn clear_rows(
    run: &Run,
    t: &Transformer,
    table: &str,
    filter: &str,
) -> BTreeMap<Vec<String>, usize> {
    let clear = |m: Option<String>| {
        m.map_or("NULL".into(), |m| {
            String::from_utf8(t.unmask(&m).expect("unmasks").value).unwrap()
        })
    };
    let sql = format!("SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version::text FROM {table} WHERE {filter}");
    let mut rows = BTreeMap::new();
    for r in run.db().query(&sql, &[]).unwrap() {
        let text = |i: usize| r.get::<_, Option<String>>(i).unwrap_or_else(|| "NULL".into());
        let key = vec![text(0), text(1), clear(r.get(2)), clear(r.get(3)), text(4), text(5)];
        *rows.entry(key).or_default() += 1;
    }
    rows
}

/// Duplicate groups of `column`: clear value -> group size.
fn groups(
    run: &Run,
    t: &Transformer,
    column: &str,
    table: &str,
    filter: &str,
) -> HashMap<String, i64> {
    let sql = format!("SELECT {column}, count(*) FROM {table} WHERE {filter} GROUP BY 1");
    run.db()
        .query(&sql, &[])
        .unwrap()
        .iter()
        .map(|r| {
            let clear = r
                .get::<_, Option<String>>(0)
                .map_or("NULL".into(), |m| String::from_utf8(t.unmask(&m).unwrap().value).unwrap());
            (clear, r.get(1))
        })
        .collect()
}

fn bodies(run: &Run, t: &Transformer, table: &str) -> BTreeMap<String, Vec<u8>> {
    let sql = format!("SELECT message_id, encrypted_body FROM {table}");
    let rows = run.db().query(&sql, &[]).unwrap();
    rows.iter().map(|r| (r.get(0), t.unmask(r.get(1)).unwrap().value)).collect()
}

fn under(run: &Run, key: &str) -> i64 {
    run.count(&format!(
        "SELECT (SELECT count(*) FROM user_logins WHERE masked_ip LIKE '{key}.%')
              + (SELECT count(*) FROM user_logins WHERE masked_device_id LIKE '{key}.%')
              + (SELECT count(*) FROM user_logins_rejected WHERE encrypted_body LIKE '{key}.%')"
    ))
}

/// Starts a rekey while `blocker` holds a row lock it needs, waits until it waits on it, and
/// SIGKILLs it; then the blocker lets go and the killed rekey's backend is gone.
fn kill_while_blocked(run: &Run, keys: &str, lock_sql: &str, while_blocked: impl FnOnce()) {
    let mut blocker = run.db();
    let mut tx = blocker.transaction().unwrap();
    assert_eq!(tx.execute(lock_sql, &[]).unwrap(), 1, "{lock_sql}");
    let mut rekey = spawn(run, keys, &["rekey", "--to", "k2", "--pages-per-step", "8"]);
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'maskflow rekey' AND wait_event_type = 'Lock'";
    wait_until("the rekey to wait on the locked row", Duration::from_secs(60), || {
        assert!(rekey.try_wait().unwrap().is_none(), "the rekey ended before it was blocked");
        run.count(waiting) == 1
    });
    while_blocked();
    rekey.kill().unwrap(); // SIGKILL
    rekey.wait().unwrap();
    tx.rollback().unwrap();
    let alive = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'maskflow rekey'";
    wait_until("the killed rekey's session to end", Duration::from_secs(30), || {
        run.count(alive) == 0
    });
}

#[test]
fn rekey_killed_twice_under_a_running_host_re_masks_everything_once() {
    let services = Services::get();
    let run = Run::new(&services, "rekey");
    let (k1, k2) = keys();
    let (only_k1, k2_first) = (key_text(&[&k1]), key_text(&[&k2, &k1]));
    let (rows, rejections, new) = scale();

    // Tables and k1's fingerprint, by a host on k1; then history under k1, and a copy of it.
    let out = maskflow(&run, &only_k1, &["run", "--drain"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    seed(&run, &k1, rows, rejections);
    run.db()
        .batch_execute("CREATE TABLE copy_rows AS TABLE user_logins; CREATE TABLE copy_rejected AS TABLE user_logins_rejected")
        .unwrap();
    let seeded = format!("create_date = '{SEEDED_DATE}'");
    let t1 = transformer(&[&k1]);
    let before = clear_rows(&run, &t1, "copy_rows", "true");
    let before_groups: Vec<_> = ["masked_ip", "masked_device_id"]
        .iter()
        .map(|c| groups(&run, &t1, c, "copy_rows", "true"))
        .collect();
    let before_bodies = bodies(&run, &t1, "copy_rejected");

    // A host on k2 writes new rows meanwhile.
    let mut g = Generator::new(99, new, 0);
    let new_bodies: Vec<String> = (0..new).map(|_| g.next_body()).collect();
    services.send(&run.queue_url, &new_bodies);
    let mut host = spawn(&run, &k2_first, &["run", "--drain"]);

    // Kill 1: in the rows, halfway through the table.
    let pages = run.count("SELECT pg_relation_size('user_logins') / 8192");
    kill_while_blocked(
        &run,
        &k2_first,
        &format!("SELECT 1 FROM user_logins WHERE ctid = '({},1)' FOR UPDATE", pages / 2),
        || {},
    );
    let (k1_left, k2_seeded) = (
        under(&run, "k1"),
        run.count(&format!(
            "SELECT count(*) FROM user_logins WHERE {seeded} AND masked_ip LIKE 'k2.%'"
        )),
    );
    assert!(
        k1_left > 0 && k2_seeded > 0,
        "not killed midway: {k1_left} under k1, {k2_seeded} seeded rows under k2"
    );
    let refused = maskflow(&run, &k2_first, &["keys", "retire", "k1"]);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "retire must be refused: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused: masks under `k1` remain"));

    // Kill 2: in the rejections (the rows are done by then).
    let bodies_left = "SELECT count(*) FROM user_logins_rejected WHERE encrypted_body LIKE 'k1.%'";
    let blocked_bodies = std::cell::Cell::new(0);
    kill_while_blocked(
        &run,
        &k2_first,
        &format!(
            "SELECT 1 FROM user_logins_rejected WHERE message_id = 'seed-{:06}' FOR UPDATE",
            rejections / 2
        ),
        || {
            // Blocked in the rejections (256 a batch): the rows are done, the bodies are not.
            let rows_left = format!("SELECT count(*) FROM user_logins WHERE {seeded} AND (masked_ip LIKE 'k1.%' OR masked_device_id LIKE 'k1.%')");
            assert_eq!(run.count(&rows_left), 0);
            blocked_bodies.set(run.count(bodies_left));
        },
    );
    // The killed batch was rolled back: as many bodies left as while it was blocked.
    assert!(blocked_bodies.get() > 0 && blocked_bodies.get() as usize <= rejections);
    assert_eq!(run.count(bodies_left), blocked_bodies.get());

    // The rerun finishes the job; the host finishes its queue.
    let done = maskflow(&run, &k2_first, &["rekey", "--to", "k2"]);
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{log}");
    let rekey_done = maskflow_tests::run::events_of(&done.stderr);
    let rekey_done =
        rekey_done.last("rekey_done").unwrap_or_else(|| panic!("no rekey_done: {log}"));
    assert!(
        rekey_done["bodies"].as_u64() > Some(0),
        "the second run re-sealed the bodies left: {log}"
    );
    let status = host.wait().unwrap();
    assert!(status.success(), "the host on k2 failed: {status}");

    // Everything under k2, nothing lost or doubled, the same clear values and duplicate groups.
    assert_eq!(under(&run, "k1"), 0);
    assert_eq!(run.count("SELECT count(*) FROM user_logins") as usize, rows + new);
    assert_eq!(run.count("SELECT count(*) FROM user_logins_rejected") as usize, rejections);
    let t2 = transformer(&[&k2]);
    assert_eq!(clear_rows(&run, &t2, "user_logins", &seeded), before);
    for (column, before) in ["masked_ip", "masked_device_id"].iter().zip(&before_groups) {
        assert_eq!(&groups(&run, &t2, column, "user_logins", &seeded), before, "{column} groups");
    }
    assert_eq!(bodies(&run, &t2, "user_logins_rejected"), before_bodies);
    let mut t_new = transformer(&[&k2]);
    let mut expected_new: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for body in &new_bodies {
        let row = t_new
            .transform(&Message { id: "m", body: body.as_bytes(), sent_timestamp_ms: 1 })
            .unwrap();
        let mut cells: Vec<String> =
            row.values().take(6).map(|v| v.unwrap_or("NULL").to_owned()).collect();
        for i in [2, 3] {
            if cells[i] != "NULL" {
                cells[i] = String::from_utf8(t2.unmask(&cells[i]).unwrap().value).unwrap();
            }
        }
        *expected_new.entry(cells).or_default() += 1;
    }
    assert_eq!(clear_rows(&run, &t2, "user_logins", &format!("NOT {seeded}")), expected_new);

    // k1 is unused now: retired, and gone from maskflow_keys.
    let retired = maskflow(&run, &k2_first, &["keys", "retire", "k1"]);
    assert!(retired.status.success(), "{}", String::from_utf8_lossy(&retired.stderr));
    assert_eq!(run.count("SELECT count(*) FROM maskflow_keys WHERE key_id = 'k1'"), 0);
    let listing = maskflow(&run, &key_text(&[&k2]), &["keys"]);
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let k2_line =
        listing.lines().find(|l| l.starts_with("k2")).unwrap_or_else(|| panic!("{listing}"));
    assert!(k2_line.contains(&format!("{}", rows + new)), "{listing}");
    assert!(!listing.lines().any(|l| l.starts_with("k1")), "{listing}");
}
