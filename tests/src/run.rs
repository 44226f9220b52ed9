//! One pipeline under test: a fresh queue and database, and the `maskflow` binary run against them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maskflow::commands::send::Generator;
use maskflow_transform::{Message, Transformer};

use crate::{maskflow_bin, maskflow_env, test_config, Services};

/// How long a stopped host may take to exit: a graceful stop finishes its commit (at most the
/// 30 s commit timeout) and its deletes.
const STOP_LIMIT: Duration = Duration::from_secs(120);

pub struct Run<'a> {
    pub services: &'a Services,
    pub database_url: String,
    pub queue_url: String,
}

impl<'a> Run<'a> {
    pub fn new(services: &'a Services, name: &str) -> Self {
        Run {
            services,
            database_url: services.fresh_database(name),
            queue_url: services.fresh_queue(name),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(maskflow_bin());
        cmd.args(args)
            .envs(maskflow_env(self.services, &self.database_url, &self.queue_url))
            .env("RUST_LOG", "info");
        cmd
    }

    pub fn drain(&self, extra: &[&str]) -> Output {
        let mut args = vec!["run", "--drain"];
        args.extend_from_slice(extra);
        let out = self.command(&args).output().expect("run maskflow");
        assert!(
            out.status.success(),
            "maskflow run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn spawn(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Child {
        let mut cmd = self.command(args);
        cmd.envs(extra_env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.spawn().expect("spawn maskflow")
    }

    pub fn db(&self) -> postgres::Client {
        postgres::Client::connect(&self.database_url, postgres::NoTls).expect("connect")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_one(sql, &[]).expect(sql).get(0)
    }

    /// Messages committed so far (0 before the host has created its tables).
    pub fn committed(&self) -> i64 {
        let exists: bool = self
            .db()
            .query_one("SELECT to_regclass('maskflow_ledger') IS NOT NULL", &[])
            .unwrap()
            .get(0);
        if exists {
            self.count("SELECT count(*) FROM maskflow_ledger")
        } else {
            0
        }
    }

    /// Every message once: ledger = sent, rows + rejections = ledger, and no row twice.
    pub fn assert_exactly_once(&self, sent: usize, expected_rows: usize) {
        assert_eq!(self.services.queue_depth(&self.queue_url), 0, "queue not empty");
        assert_eq!(self.count("SELECT count(*) FROM maskflow_ledger") as usize, sent, "ledger");
        assert_eq!(self.count("SELECT count(*) FROM user_logins") as usize, expected_rows, "rows");
        assert_eq!(
            self.count("SELECT count(*) FROM user_logins_rejected") as usize,
            sent - expected_rows,
            "rejections"
        );
        assert_eq!(
            self.count("SELECT count(*) FROM maskflow_ledger WHERE outcome = 'row'") as usize,
            expected_rows
        );
    }
}

/// How many of `bodies` the library turns into rows.
pub fn expected_rows(bodies: &[String]) -> usize {
    let mut t = Transformer::new(test_config()).unwrap();
    bodies
        .iter()
        .filter(|b| {
            t.transform(&Message { id: "m", body: b.as_bytes(), sent_timestamp_ms: 1 }).is_ok()
        })
        .count()
}

pub fn generated(n: usize, seed: u64) -> Vec<String> {
    let mut g = Generator::new(seed, n, 20);
    (0..n).map(|_| g.next_body()).collect()
}

/// The rows `bodies` should become (all columns but `create_date`, which SQS's clock sets),
/// as a sorted multiset of text tuples.
pub fn expected_contents(bodies: &[String]) -> Vec<Vec<Option<String>>> {
    let mut t = Transformer::new(test_config()).unwrap();
    let mut rows: Vec<Vec<Option<String>>> = bodies
        .iter()
        .filter_map(|b| {
            let row =
                t.transform(&Message { id: "m", body: b.as_bytes(), sent_timestamp_ms: 1 }).ok()?;
            Some(row.values().take(6).map(|v| v.map(str::to_owned)).collect())
        })
        .collect();
    rows.sort();
    rows
}

impl Run<'_> {
    /// The table's rows in the shape of [`expected_contents`].
    pub fn contents(&self) -> Vec<Vec<Option<String>>> {
        let sql = "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version::text FROM user_logins";
        let mut rows: Vec<Vec<Option<String>>> = self
            .db()
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| (0..6).map(|i| r.get(i)).collect())
            .collect();
        rows.sort();
        rows
    }
}

impl Run<'_> {
    /// The ledger's message ids, sorted.
    pub fn ledger_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .db()
            .query("SELECT message_id FROM maskflow_ledger", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort();
        ids
    }

    /// [`Run::spawn`] with the host's stderr read as it comes and its debug lines on for the
    /// pipeline (one per batch phase: received, transforming, committing, committed, deleted).
    pub fn spawn_watched(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Watched {
        let mut env = vec![("RUST_LOG", "warn,maskflow=debug")];
        env.extend_from_slice(extra_env);
        let mut child = self.spawn(args, &env);
        let stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<String>> = Arc::default();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&strip_ansi(&line));
                log.push('\n');
            }
        });
        Watched { child, log, reader: Some(reader) }
    }
}

/// A running host whose stderr the test reads while it runs. Dropped while it still runs (a
/// failed assertion), it is killed: a leaked host would hold its queue and ports for good.
pub struct Watched {
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Watched {
    /// What the host printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `done(log so far)`; panics with the log after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) {
        let started = Instant::now();
        while !done(&self.log()) {
            assert!(started.elapsed() < timeout, "timed out waiting for {what}: {}", self.log());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` (`-KILL`, `-TERM`, `-INT`), waits for the exit; returns the status and
    /// everything the host printed.
    /// Sends `signal` and waits for the exit, at most [`STOP_LIMIT`]: a host that ignores a
    /// stop fails the test instead of hanging the suite.
    pub fn stop(self, signal: &str) -> (ExitStatus, String) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
        assert!(status.unwrap().success(), "kill {signal} failed");
        self.wait_at_most(STOP_LIMIT)
    }

    /// Waits at most `limit` for the exit; after that, kills the host and panics with its log
    /// (a hang is a failure, not a test that never ends).
    pub fn wait_at_most(mut self, limit: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the host did not exit within {limit:?}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait()
    }

    pub fn wait(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

/// Where a batch is, by the host's debug line for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Receive,
    Transform,
    Commit,
    Delete,
}

/// Message counts per debug line of a host's log (`batch received messages=10` and so on).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub received: u64,
    pub transforming: u64,
    pub committing: u64,
    pub committed: u64,
    pub deleted: u64,
}

impl Tally {
    pub fn of(log: &str) -> Tally {
        let mut t = Tally::default();
        for line in log.lines() {
            let Some(n) = batch_messages(line) else { continue };
            let slot = match batch_event(line) {
                Some("received") => &mut t.received,
                Some("transforming") => &mut t.transforming,
                Some("committing") => &mut t.committing,
                Some("committed") => &mut t.committed,
                Some("deleted") => &mut t.deleted,
                _ => continue,
            };
            *slot += n;
        }
        t
    }

    /// Received and not yet deleted.
    pub fn in_flight(&self) -> u64 {
        self.received.saturating_sub(self.deleted)
    }
}

fn batch_event(line: &str) -> Option<&str> {
    let rest = &line[line.find("batch ")? + "batch ".len()..];
    rest.split_whitespace().next()
}

fn batch_messages(line: &str) -> Option<u64> {
    let rest = &line[line.find("messages=")? + "messages=".len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The phase the host's last pipeline line names (the pollers' `received` lines aside): a
/// kill after `transforming` lands in the module, after `committing` in the PostgreSQL
/// transaction, after `committed` while the lease task deletes, and after `deleted` (or before
/// any batch) while the host receives.
pub fn last_phase(log: &str) -> Phase {
    log.lines()
        .rev()
        .filter(|l| batch_messages(l).is_some())
        .find_map(|l| match batch_event(l)? {
            "deleted" => Some(Phase::Receive),
            "transforming" => Some(Phase::Transform),
            "committing" => Some(Phase::Commit),
            "committed" => Some(Phase::Delete),
            _ => None,
        })
        .unwrap_or(Phase::Receive)
}

/// `line` without terminal colour codes (`ESC [ ... m`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `done` every 100 ms; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
