//! Handles on the real services: a fresh database and a fresh queue per test, so tests run in
//! parallel without seeing each other's rows or messages.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use maskflow::{Queue, SqsConfig, SqsSource};

pub struct Services {
    /// The variables written by `scripts/services start` (`.state/services.env`).
    pub env: HashMap<String, String>,
    pub runtime: tokio::runtime::Runtime,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Services {
    /// Reads `.state/services.env`; the services must be running (`scripts/services start`,
    /// which `scripts/test` does).
    pub fn get() -> Services {
        let state = std::env::var("MASKFLOW_STATE")
            .map(Into::into)
            .unwrap_or_else(|_| crate::repo_root().join(".state"));
        let path = state.join("services.env");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}. Start the services first: scripts/services start", path.display())
        });
        let env = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches(|c| c == '"' || c == '\'').to_owned()))
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        Services { env, runtime }
    }

    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).unwrap_or_else(|| panic!("{name} missing from services.env"))
    }

    /// A unique lower-case name for this test's database or queue.
    pub fn unique(prefix: &str) -> String {
        format!("{prefix}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    /// A new empty database; returns its URL.
    pub fn fresh_database(&self, prefix: &str) -> String {
        let name = Self::unique(prefix);
        let mut admin = postgres::Client::connect(self.var("DATABASE_URL"), postgres::NoTls)
            .expect("connect to PostgreSQL");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        let base = self.var("DATABASE_URL");
        format!("{}/{name}", &base[..base.rfind('/').expect("URL has a database")])
    }

    /// A new empty queue; returns its URL.
    pub fn fresh_queue(&self, prefix: &str) -> String {
        self.fresh_queue_named(&Self::unique(prefix))
    }

    /// Creates (or finds) the queue `name`; returns its URL.
    pub fn fresh_queue_named(&self, name: &str) -> String {
        let config = self.sqs_config(Queue::Name(name.into()));
        self.runtime
            .block_on(SqsSource::connect(&config, true))
            .expect("create queue")
            .queue_url()
            .to_owned()
    }

    pub fn sqs_config(&self, queue: Queue) -> SqsConfig {
        SqsConfig {
            queue,
            endpoint: Some(self.var("AWS_ENDPOINT_URL").into()),
            region: None,
            default_region: "us-east-1".into(),
            localstack_credentials: true,
        }
    }

    pub fn queue(&self, queue_url: &str) -> SqsSource {
        let config = self.sqs_config(Queue::Url(queue_url.into()));
        self.runtime.block_on(SqsSource::connect(&config, false)).expect("queue")
    }

    /// Visible + in-flight messages.
    pub fn queue_depth(&self, queue_url: &str) -> u64 {
        let (visible, hidden) =
            self.runtime.block_on(self.queue(queue_url).approximate_depth()).expect("queue depth");
        visible + hidden
    }

    pub fn send(&self, queue_url: &str, bodies: &[String]) {
        let queue = self.queue(queue_url);
        for chunk in bodies.chunks(10) {
            self.runtime.block_on(queue.send_batch(chunk)).expect("send");
        }
    }

    /// Sends `bodies` with the tests' own SQS client (not the host's code) and returns the
    /// message ids SQS gave them, in order.
    pub fn send_with_ids(&self, queue_url: &str, bodies: &[String]) -> Vec<String> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let client = self.runtime.block_on(async {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(maskflow::https_client())
                .endpoint_url(self.var("AWS_ENDPOINT_URL"))
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "test", "test", None, None, "tests",
                ))
                .load()
                .await;
            aws_sdk_sqs::Client::new(&config)
        });
        let mut ids = Vec::with_capacity(bodies.len());
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b)
                        .build()
                        .unwrap()
                })
                .collect();
            let out = self
                .runtime
                .block_on(
                    client
                        .send_message_batch()
                        .queue_url(queue_url)
                        .set_entries(Some(entries))
                        .send(),
                )
                .expect("SendMessageBatch");
            assert!(out.failed().is_empty(), "SQS refused some messages: {:?}", out.failed());
            let mut sent: Vec<(usize, String)> = out
                .successful()
                .iter()
                .map(|s| (s.id().parse().unwrap(), s.message_id().to_owned()))
                .collect();
            sent.sort();
            assert_eq!(sent.len(), chunk.len());
            ids.extend(sent.into_iter().map(|(_, id)| id));
        }
        ids
    }

    /// Runs `scripts/services <args>` (stop or start one service, for outage tests).
    pub fn control(&self, args: &[&str]) {
        let status = Command::new(self.var("MASKFLOW_SERVICES"))
            .args(args)
            .status()
            .expect("run scripts/services");
        assert!(status.success(), "scripts/services {args:?} failed");
    }
}
