//! One pipeline under test: a fresh queue and database, and the `maskflow` binary run against them.

use std::process::{Child, Command, Output, Stdio};

use maskflow::commands::send::Generator;
use maskflow_transform::{Message, Transformer};

use crate::{maskflow_bin, maskflow_env, test_config, Services};

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
