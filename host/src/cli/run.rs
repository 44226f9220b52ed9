//! `maskflow run`'s flags: the queue, the database, the module and the pipeline's shape.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipeline::RunConfig;
use crate::sink::PostgresConfig;
use crate::source::{Queue, SqsConfig};

use super::module::ModuleArgs;

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sqs: SqsArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub module: ModuleArgs,
    /// Parallel pipelines: each is one SQS poller and one worker (wasm instance + connection).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Messages per transaction (several SQS receives are grouped into one batch).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// How long a worker waits to fill a batch before writing what it has.
    #[arg(long, default_value_t = 100)]
    pub linger_ms: u64,
    /// SQS visibility timeout of received messages; extended for as long as the host holds them.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=43_200))]
    pub visibility_timeout_secs: u64,
    /// Exit once the queue is empty, instead of running until SIGINT/SIGTERM.
    #[arg(long)]
    pub drain: bool,
}

impl RunArgs {
    pub fn into_config(self) -> Result<RunConfig> {
        Ok(RunConfig {
            sqs: self.sqs.into_config(),
            postgres: self.postgres.into_config()?,
            module: self.module.into_config()?,
            concurrency: self.concurrency.into(),
            batch_size: self.batch_size as usize,
            linger: Duration::from_millis(self.linger_ms),
            visibility: Duration::from_secs(self.visibility_timeout_secs),
            drain: self.drain,
        })
    }
}

/// Which queue, and where it is. Defaults reach LocalStack on localhost.
#[derive(Debug, Clone, clap::Args)]
pub struct SqsArgs {
    /// Queue URL; overrides --queue-name.
    #[arg(long, env = "MASKFLOW_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// Queue name, resolved to a URL with GetQueueUrl.
    #[arg(long, default_value = "login-queue")]
    pub queue_name: String,
    /// SQS endpoint. `aws` uses the SDK's own endpoint resolution (real AWS).
    #[arg(long, env = "AWS_ENDPOINT_URL", default_value = "http://localhost:4566")]
    pub sqs_endpoint: String,
    /// Region when the AWS chain (AWS_REGION, profile) gives none.
    #[arg(long, default_value = "us-east-1")]
    pub default_region: String,
}

impl SqsArgs {
    pub fn into_config(self) -> SqsConfig {
        // An empty MASKFLOW_QUEUE_URL means "not set", not a queue named "".
        let queue = match self.queue_url.filter(|u| !u.trim().is_empty()) {
            Some(url) => Queue::Url(url),
            None => Queue::Name(self.queue_name),
        };
        let endpoint = (self.sqs_endpoint != "aws").then_some(self.sqs_endpoint);
        // LocalStack takes any credentials: supply some on localhost unless the user set their own.
        let local = endpoint.as_deref().is_some_and(|e| {
            ["://localhost", "://127.0.0.1", "://[::1]"].iter().any(|h| e.contains(h))
        });
        let own_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            || std::env::var_os("AWS_PROFILE").is_some();
        SqsConfig {
            queue,
            endpoint,
            default_region: self.default_region,
            localstack_credentials: local && !own_credentials,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PostgresArgs {
    /// PostgreSQL connection (libpq URL or `key=value` string). Without it, the standard
    /// PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE variables are used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Target table; `user_logins` is created with its fixed DDL if missing.
    #[arg(long, default_value = "user_logins")]
    pub table: String,
}

impl PostgresArgs {
    pub fn into_config(self) -> Result<PostgresConfig> {
        let text = match &self.database_url {
            Some(url) => url.clone(),
            None => ["host", "port", "user", "password", "dbname"]
                .iter()
                .zip(["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"])
                .filter_map(|(key, var)| {
                    std::env::var(var).ok().map(|v| format!("{key}='{}'", v.replace('\'', "\\'")))
                })
                .collect::<Vec<_>>()
                .join(" "),
        };
        let mut client: postgres::Config = text
            .parse()
            .map_err(|e| Error::Usage(format!("invalid --database-url / DATABASE_URL: {e}")))?;
        if client.get_hosts().is_empty() {
            client.host("localhost");
        }
        if client.get_user().is_none() {
            client.user(&std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
        }
        Ok(PostgresConfig { client, table: self.table })
    }
}
