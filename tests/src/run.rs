//! One pipeline under test: a fresh queue and database, and the `maskflow` binary run against them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maskflow::Generator;
use maskflow_transform::{Message, Transformer};
use serde_json::Value;

use crate::{maskflow_bin, maskflow_env, maskflow_failpoints_bin, test_config, Services};

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

    /// `maskflow ARGS` against this queue and database, logging JSON events
    /// (docs/events.md) at info.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(maskflow_bin(), args)
    }

    /// [`Run::command`] with the fail-point build of the host (`FAILPOINTS=...`).
    pub fn command_with_failpoints(&self, args: &[&str], failpoints: &str) -> Command {
        let mut cmd = self.command_of(maskflow_failpoints_bin(), args);
        cmd.env("FAILPOINTS", failpoints);
        cmd
    }

    fn command_of(&self, bin: std::path::PathBuf, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .envs(maskflow_env(self.services, &self.database_url, &self.queue_url))
            .env("RUST_LOG", "info")
            .env("MASKFLOW_LOG_FORMAT", "json");
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

    /// [`Run::spawn_watched`] with the fail-point build of the host, `FAILPOINTS` set.
    pub fn spawn_failpoints(&self, args: &[&str], failpoints: &str) -> Watched {
        let mut cmd = self.command_with_failpoints(args, failpoints);
        cmd.env("RUST_LOG", "warn,maskflow=debug").stdout(Stdio::null()).stderr(Stdio::piped());
        Watched::new(cmd.spawn().expect("spawn maskflow"))
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

    /// [`Run::spawn`] with the host's stderr read as it comes, in JSON (`--log-format json`)
    /// with the batch events on (docs/events.md: `batch_received`, `batch_transforming`,
    /// `batch_committing`, `batch_committed`, `batch_deleted`).
    pub fn spawn_watched(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Watched {
        let mut env = vec![("RUST_LOG", "warn,maskflow=debug"), ("MASKFLOW_LOG_FORMAT", "json")];
        env.extend_from_slice(extra_env);
        Watched::new(self.spawn(args, &env))
    }
}

/// The documented events (docs/events.md) among log lines: every line that is a JSON object
/// with an `event` field. Lines of other shapes (the final `maskflow: error: ...`) are skipped.
#[derive(Debug, Clone, Default)]
pub struct Events(Vec<Value>);

impl Events {
    pub fn parse(log: &str) -> Events {
        Events(
            log.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v.get("event").is_some())
                .collect(),
        )
    }

    /// The events named `name`, in order.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.0.iter().filter(move |v| v["event"] == name)
    }

    pub fn count(&self, name: &str) -> usize {
        self.named(name).count()
    }

    /// The sum of the integer field `field` over the events named `name`.
    pub fn sum(&self, name: &str, field: &str) -> u64 {
        self.named(name).filter_map(|v| v[field].as_u64()).sum()
    }

    /// The last event named `name`.
    pub fn last(&self, name: &str) -> Option<&Value> {
        self.0.iter().rev().find(|v| v["event"] == name)
    }

    /// How many `retrying` events of this kind (`postgres`, `receive`, `delete`, `extend`).
    pub fn retries(&self, kind: &str) -> usize {
        self.named("retrying").filter(|v| v["retry"] == kind).count()
    }

    /// The `kind` of the `failed` event (the command's error), if it failed.
    pub fn failure_kind(&self) -> Option<&str> {
        self.last("failed").and_then(|e| e["kind"].as_str())
    }

    /// The `done` event's integer `field` (a run's summary); panics if the run did not finish.
    pub fn done(&self, field: &str) -> u64 {
        let done = self.last("done").unwrap_or_else(|| panic!("no `done` event: {:?}", self.0));
        done[field].as_u64().unwrap_or_else(|| panic!("`done` has no {field}: {done}"))
    }

    /// Where the batch events put the host (see [`Phase`]).
    pub fn tally(&self) -> Tally {
        Tally {
            received: self.sum("batch_received", "messages"),
            transforming: self.sum("batch_transforming", "messages"),
            committing: self.sum("batch_committing", "messages"),
            committed: self.sum("batch_committed", "messages"),
            deleted: self.sum("batch_deleted", "messages"),
        }
    }

    /// The phase the last batch event names (the pollers' `batch_received` aside): a kill
    /// after `batch_transforming` lands in the module, after `batch_committing` in the
    /// PostgreSQL transaction, after `batch_committed` while the lease task deletes, and after
    /// `batch_deleted` (or before any batch) while the host receives.
    pub fn last_phase(&self) -> Phase {
        self.0
            .iter()
            .rev()
            .find_map(|v| match v["event"].as_str()? {
                "batch_deleted" => Some(Phase::Receive),
                "batch_transforming" => Some(Phase::Transform),
                "batch_committing" => Some(Phase::Commit),
                "batch_committed" => Some(Phase::Delete),
                _ => None,
            })
            .unwrap_or(Phase::Receive)
    }
}

/// The events of a finished command's stderr (run with `MASKFLOW_LOG_FORMAT=json`).
pub fn events_of(stderr: &[u8]) -> Events {
    Events::parse(&String::from_utf8_lossy(stderr))
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
    fn new(mut child: Child) -> Watched {
        let stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<String>> = Arc::default();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Watched { child, log, reader: Some(reader) }
    }

    /// What the host printed so far, for failure messages.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The host's events so far.
    pub fn events(&self) -> Events {
        Events::parse(&self.log())
    }

    /// Waits until `done(events so far)`; panics with the log after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Events) -> bool) {
        let started = Instant::now();
        while !done(&self.events()) {
            assert!(started.elapsed() < timeout, "timed out waiting for {what}: {}", self.log());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` (`-KILL`, `-TERM`, `-INT`) and waits for the exit, at most
    /// [`STOP_LIMIT`]: a host that ignores a stop fails the test instead of hanging the suite.
    /// Returns the status and everything the host printed.
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

/// Where a batch is, by the host's last batch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Receive,
    Transform,
    Commit,
    Delete,
}

/// Message counts per batch event (docs/events.md).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub received: u64,
    pub transforming: u64,
    pub committing: u64,
    pub committed: u64,
    pub deleted: u64,
}

impl Tally {
    /// Received and not yet deleted.
    pub fn in_flight(&self) -> u64 {
        self.received.saturating_sub(self.deleted)
    }
}

/// Polls `done` every 100 ms; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
