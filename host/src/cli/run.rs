//! `maskflow run`'s flags: the queue, the database, the module and the pipeline's shape.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipeline::{default_max_in_flight_bytes, PollerBounds, RunConfig};
use crate::source::{Queue, SqsConfig};

use super::module::{aws_endpoint, ModuleArgs};
use super::postgres::PostgresArgs;

/// Shown at the end of `maskflow run --help` (README "Exit codes" says the same).
pub(crate) const EXIT_CODES: &str = "Exit codes:\n  \
    0  done (--drain emptied the queue, or SIGINT/SIGTERM after the batches in flight)\n  \
    1  an unexpected error (I/O; a bug: a worker panicked)\n  \
    2  usage: a bad or conflicting flag\n  \
    3  configuration: credentials, permissions (SQS receive, delete or visibility calls refused), a missing queue or database, TLS, the table's shape, the key or its source (a missing secret, a refused permission, a disabled KMS key)\n  \
    4  unreachable: SQS, PostgreSQL or the key source (Secrets Manager, KMS) did not answer within --startup-timeout\n  \
    5  stopped, nothing deleted: the module failed on, or PostgreSQL refused, 3 messages in a row with nothing accepted between\n  \
    130 a second SIGINT/SIGTERM: stopped at once";

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) sqs: SqsArgs,
    #[command(flatten)]
    pub(crate) postgres: PostgresArgs,
    #[command(flatten)]
    pub(crate) module: ModuleArgs,
    /// Workers: each transforms and commits batches with its own wasm instance and PostgreSQL
    /// connection.
    #[arg(long, env = "MASKFLOW_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) concurrency: u16,
    /// SQS receives out at once, pinned. Default: sized by the queue, from --concurrency up
    /// to 16 while receives come back full and the workers keep up, halved when one comes back
    /// empty (down to one long poll when the queue is idle).
    #[arg(long, env = "MASKFLOW_POLLERS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) pollers: Option<u16>,
    /// Messages per transaction (several SQS receives are grouped into one batch).
    #[arg(long, env = "MASKFLOW_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) batch_size: u32,
    /// How long a worker waits to fill a batch before writing what it has.
    #[arg(long, env = "MASKFLOW_LINGER_MS", default_value_t = 100)]
    pub(crate) linger_ms: u64,
    /// SQS visibility timeout of received messages; extended for as long as the host holds them.
    #[arg(long, env = "MASKFLOW_VISIBILITY_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=43_200))]
    pub(crate) visibility_timeout_secs: u64,
    /// Exit once the queue is empty, instead of running until SIGINT/SIGTERM.
    #[arg(long, env = "MASKFLOW_DRAIN")]
    pub(crate) drain: bool,
    /// Serve /metrics (Prometheus/OpenMetrics), /healthz and /readyz on this address, e.g.
    /// 0.0.0.0:9898 [default: off; an empty value is off too].
    #[arg(long, env = "MASKFLOW_METRICS_ADDR", value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<String>,
    /// Bytes of message bodies held at once (received and not yet committed), e.g. 64MiB;
    /// pollers wait while it is spent. Default: a quarter of the container's memory limit, at
    /// most 64MiB.
    #[arg(long, env = "MASKFLOW_MAX_IN_FLIGHT_BYTES", value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_in_flight_bytes: Option<usize>,
    /// /healthz answers 503 when any poller, worker or the lease task has not gone round its
    /// loop for this long (waiting out an outage counts as going round).
    #[arg(long, env = "MASKFLOW_HEALTH_STUCK_AFTER", default_value = "2m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) health_stuck_after: Duration,
    /// When stderr is not a terminal, log a stats line this often (e.g. 30s, 1m; 0: never).
    #[arg(long, env = "MASKFLOW_STATS_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) stats_interval: Duration,
}

impl RunArgs {
    pub fn into_config(self) -> Result<RunConfig> {
        let keys = self.module.key.config()?;
        let startup_timeout = self.module.key.startup_timeout();
        Ok(RunConfig {
            sqs: self.sqs.into_config()?,
            postgres: self.postgres.into_config()?,
            module: self.module.into_config()?,
            keys,
            concurrency: self.concurrency.into(),
            pollers: match self.pollers {
                Some(n) => PollerBounds::pinned(n.into()),
                None => PollerBounds::adaptive(self.concurrency.into()),
            },
            batch_size: self.batch_size as usize,
            linger: Duration::from_millis(self.linger_ms),
            visibility: Duration::from_secs(self.visibility_timeout_secs),
            startup_timeout,
            drain: self.drain,
            max_in_flight_bytes: self
                .max_in_flight_bytes
                .unwrap_or_else(default_max_in_flight_bytes),
            stuck_after: self.health_stuck_after,
            metrics_addr: parse_metrics_addr(self.metrics_addr.as_deref().unwrap_or(""))?,
            stats_interval: self.stats_interval,
        })
    }
}

/// `65536`, `64KiB`, `64MiB`, `1GiB` (also KB, MB, GB as powers of 1000, and K, M, G as KiB...).
fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().map_err(|_| format!("`{text}`: not a size like 64MiB"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("`{other}`: use B, KiB, MiB or GiB")),
    };
    match number.checked_mul(scale) {
        Some(bytes) if bytes >= 1 << 20 => Ok(bytes),
        _ => Err(format!("`{text}`: between 1MiB and the machine's memory")),
    }
}

/// Which queue, and where it is. Without an endpoint, the AWS SDK resolves it (real AWS, or
/// AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SQS / a profile's endpoint_url).
#[derive(Debug, Clone, clap::Args)]
pub struct SqsArgs {
    /// Queue URL (its region is the one used).
    #[arg(long, env = "MASKFLOW_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// Queue name, resolved to a URL with GetQueueUrl [default: login-queue].
    #[arg(long, env = "MASKFLOW_QUEUE_NAME")]
    pub queue_name: Option<String>,
    /// SQS endpoint URL for LocalStack and the like (`scripts/services env` sets it). Without
    /// it the AWS SDK's own resolution applies.
    #[arg(long, env = "MASKFLOW_SQS_ENDPOINT", value_name = "URL")]
    pub sqs_endpoint: Option<String>,
    /// Region when neither the queue URL nor the AWS chain (AWS_REGION, profile) gives one.
    #[arg(long, env = "MASKFLOW_DEFAULT_REGION", default_value = "us-east-1")]
    pub default_region: String,
}

impl SqsArgs {
    pub fn into_config(self) -> Result<SqsConfig> {
        // An empty value means "not set", not a queue named "".
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let queue = match (set(self.queue_url), set(self.queue_name)) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    "both a queue URL (--queue-url or MASKFLOW_QUEUE_URL) and --queue-name are given: keep one",
                ))
            }
            (Some(url), None) => Queue::Url(url),
            (None, name) => Queue::Name(name.unwrap_or_else(|| "login-queue".into())),
        };
        let url_region = match &queue {
            Queue::Url(url) => region_of_queue_url(url),
            Queue::Name(_) => None,
        };
        if let (Some(from_url), Some(env)) =
            (&url_region, std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        {
            if *from_url != env {
                return Err(Error::usage(format!(
                    "the queue URL is in region {from_url} but AWS_REGION is {env}: make them agree"
                )));
            }
        }
        let endpoint = aws_endpoint(set(self.sqs_endpoint));
        Ok(SqsConfig {
            queue,
            endpoint: endpoint.url,
            region: url_region,
            default_region: self.default_region,
            localstack_credentials: endpoint.localstack_credentials,
        })
    }
}

pub(crate) fn parse_metrics_addr(value: &str) -> Result<Option<std::net::SocketAddr>> {
    match value.trim() {
        "" => Ok(None),
        addr => addr.parse().map(Some).map_err(|e| {
            Error::usage(format!(
                "--metrics-addr `{addr}`: {e}; give HOST:PORT with an IP address, e.g. 0.0.0.0:9898"
            ))
        }),
    }
}

/// The region in an SQS queue URL: `https://sqs.<region>.amazonaws.com/...`,
/// `https://<region>.queue.amazonaws.com/...`, or LocalStack's `.../queue/<region>/<account>/<name>`.
pub(crate) fn region_of_queue_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let labels: Vec<&str> = host.split('.').collect();
    if host.contains(".amazonaws.com") {
        return match labels.as_slice() {
            ["sqs", region, ..] => Some(region.to_string()),
            [region, "queue", ..] => Some(region.to_string()),
            _ => None,
        };
    }
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["queue", region, _account, _name] => Some(region.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::region_of_queue_url;

    #[test]
    fn regions_come_from_every_queue_url_form() {
        let region = |u| region_of_queue_url(u);
        assert_eq!(
            region("https://sqs.eu-west-1.amazonaws.com/123456789012/q").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region("https://ap-south-1.queue.amazonaws.com/123456789012/q").as_deref(),
            Some("ap-south-1")
        );
        assert_eq!(
            region("https://sqs.cn-north-1.amazonaws.com.cn/1/q").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(
            region("http://127.0.0.1:4566/queue/us-east-2/000000000000/q").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region("http://127.0.0.1:4566/000000000000/q"), None);
    }
}
