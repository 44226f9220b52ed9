//! Flags of the commands besides `run`.

use std::path::PathBuf;

use super::mapping::load_mapping;
use super::module::{aws_endpoint, KeyArgs, ModuleArgs};
use super::postgres::PostgresArgs;
use super::run::SqsArgs;
use crate::commands::keygen::{KeygenConfig, KmsWrap};
use crate::commands::prune::PruneConfig;
use crate::commands::send::{LineSet, SendConfig, SendInput};
use crate::commands::transform::{Rejects, TransformConfig};
use crate::commands::unmask::{Output, UnmaskConfig};
use crate::error::{Error, Result};
use crate::runtime::init_config;

/// Creates a new random AES-256-SIV key.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Write the key file here (mode 0600; never overwrites) instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub(crate) out: Option<PathBuf>,
    /// Key id, the prefix of every mask made with this key (`k2` when rotating from `k1`).
    #[arg(long, default_value = "k1")]
    pub(crate) id: String,
    /// Wrap the new key with this KMS key (ARN, alias/NAME or key id; `kms:Encrypt`, with the
    /// encryption context maskflow-key-id = the id): the line written is `ID:kms:KEY_ARN:...`,
    /// and the clear key never leaves this process but to KMS.
    #[arg(long, value_name = "ARN|ALIAS")]
    pub(crate) kms_key_id: Option<String>,
    /// KMS endpoint URL for LocalStack and the like.
    #[arg(long, env = "MASKFLOW_KMS_ENDPOINT", value_name = "URL")]
    pub(crate) kms_endpoint: Option<String>,
    /// Budget for KMS to answer; throttling and timeouts are retried within it (exit code 4
    /// past it).
    #[arg(long, env = "MASKFLOW_STARTUP_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub(crate) startup_timeout: u64,
}

impl KeygenArgs {
    pub(crate) fn into_config(self) -> KeygenConfig {
        let kms = self.kms_key_id.map(|key| KmsWrap {
            key,
            endpoint: aws_endpoint(self.kms_endpoint.filter(|e| !e.trim().is_empty())),
            budget: std::time::Duration::from_secs(self.startup_timeout),
        });
        KeygenConfig { out: self.out, id: self.id, kms }
    }
}

/// Recovers clear values from masks (authorised operators only: needs the key).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct UnmaskArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// The mapping the masks were made with, if not the built-in one (for its column nonces).
    #[arg(long, value_name = "PATH")]
    pub(crate) mapping: Option<PathBuf>,
    /// Also print which column (or `raw_body`) each value came from, tab-separated.
    #[arg(long)]
    pub(crate) with_column: bool,
    /// `lines`: one value per line, and a value holding a line break is refused (exit 1, with
    /// the flag to use); `nul`: each value ends with a NUL byte (`xargs -0`); `json`: one JSON
    /// object per mask, in order (`{"column", "value"}`, `"value_base64"` for bytes that are
    /// not UTF-8, or `{"error"}`). A stdin line that is not UTF-8 is reported by its number.
    #[arg(long, value_enum, default_value_t = UnmaskOutput::Lines)]
    pub(crate) output: UnmaskOutput,
    /// Masks (`k1.…`); read one per line from stdin when none are given.
    pub(crate) values: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum UnmaskOutput {
    Lines,
    Nul,
    Json,
}

impl UnmaskArgs {
    pub(crate) fn into_config(self) -> Result<UnmaskConfig> {
        let (config, _) = init_config(&self.key.load()?, load_mapping(self.mapping.as_deref())?, 0);
        let output = match self.output {
            UnmaskOutput::Lines => Output::Lines,
            UnmaskOutput::Nul => Output::Nul,
            UnmaskOutput::Json => Output::Json,
        };
        Ok(UnmaskConfig { config, with_column: self.with_column, output, values: self.values })
    }
}

/// Shown at the end of `maskflow transform --help`.
pub(crate) const TRANSFORM_EXIT_CODES: &str = "Exit codes:\n  \
    0  every line read (rejections included, unless --fail-on-reject)\n  \
    2  usage: a bad flag\n  \
    3  configuration: the key or its source, the module or the mapping\n  \
    4  the key source (Secrets Manager, KMS) did not answer within --startup-timeout\n  \
    5  the module failed on a batch\n  \
    6  with --fail-on-reject: at least one line was rejected (all lines are still written)";

/// NDJSON message bodies on stdin -> NDJSON rows on stdout, through the same wasm module as
/// `run`: a streaming stage for shell pipelines and other stream processors' exec stages.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TransformArgs {
    #[command(flatten)]
    pub(crate) module: ModuleArgs,
    /// Where rejections go: `stdout` (interleaved with the rows as `{"rejected": {...}}`
    /// lines) or a file (NDJSON).
    #[arg(long, value_name = "stdout|PATH", default_value = "stdout")]
    pub(crate) rejects: String,
    /// Exit with code 6 when any line was rejected.
    #[arg(long)]
    pub(crate) fail_on_reject: bool,
    /// The sent timestamp of every line (ms since the epoch), which sets `create_date`;
    /// default: the time the line arrives.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub(crate) sent_timestamp_ms: Option<i64>,
    /// Take each line's sent timestamp from this top-level JSON field: milliseconds since the
    /// epoch as a JSON integer, from 100000000000 (1973) on (a smaller number could be seconds
    /// and is refused, not guessed), or an RFC 3339 string with its zone. A line whose field
    /// holds anything else is rejected as invalid_timestamp, naming the field; lines without the
    /// field (or with null) get --sent-timestamp-ms, or their arrival time.
    #[arg(long, value_name = "FIELD")]
    pub(crate) sent_timestamp_field: Option<String>,
    /// Lines per module call, at most.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) batch_size: u32,
    /// A line's row is written at most this long after the line arrives (plus one module call).
    #[arg(long, default_value_t = 20, value_name = "MS")]
    pub(crate) linger_ms: u64,
}

impl TransformArgs {
    pub(crate) fn into_config(self) -> Result<TransformConfig> {
        Ok(TransformConfig {
            module: self.module.into_config()?,
            rejects: match self.rejects.as_str() {
                "stdout" | "-" => Rejects::Stdout,
                path => Rejects::File(PathBuf::from(path)),
            },
            sent_timestamp_ms: self.sent_timestamp_ms,
            sent_timestamp_field: self.sent_timestamp_field,
            batch_size: self.batch_size as usize,
            linger: std::time::Duration::from_millis(self.linger_ms),
        })
    }
}

/// Deletes old entries of the exactly-once ledger (`maskflow_ledger`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    pub(crate) postgres: PostgresArgs,
    /// Delete entries processed longer ago than this (e.g. 14d). Never less than the queue's
    /// message retention period (SQS: 4 days by default, 14 at most): until then SQS may
    /// deliver a message again, and only its ledger entry keeps it from being written twice.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) older_than: std::time::Duration,
}

impl PruneArgs {
    pub(crate) fn into_config(self) -> Result<PruneConfig> {
        if self.older_than < std::time::Duration::from_secs(60) {
            return Err(Error::usage(
                "--older-than is below SQS' shortest retention period (60 s): use the queue's \
                 MessageRetentionPeriod or more",
            ));
        }
        Ok(PruneConfig { postgres: self.postgres.into_config()?, older_than: self.older_than })
    }
}

/// Loads messages into the queue (creating it if missing): a file, or synthetic events.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) sqs: SqsArgs,
    /// A JSON array of events, or NDJSON (each line sent as it is, malformed lines included).
    #[arg(required_unless_present = "generate", conflicts_with = "generate")]
    pub(crate) file: Option<PathBuf>,
    /// Generate this many synthetic login events instead.
    #[arg(long, value_name = "N")]
    pub(crate) generate: Option<usize>,
    /// Seed of the generator (same seed, same messages).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Malformed messages per thousand generated.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub(crate) malformed_per_mille: u32,
    /// Print the bodies as NDJSON on stdout instead of sending them.
    #[arg(long)]
    pub(crate) print: bool,
    /// SendMessageBatch calls in flight at once.
    #[arg(long, default_value_t = 8)]
    pub(crate) parallel: usize,
    /// Send only from this line of FILE on (or message N of --generate); blank lines count, the
    /// items of a JSON array are numbered from 1. A send that stops part-way prints the lines
    /// sent and the flag to send exactly the rest.
    #[arg(long, value_name = "N", conflicts_with = "lines", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) from_line: Option<u64>,
    /// Send only these lines: `2,4-6,9-` (`9-`: to the end).
    #[arg(long, value_name = "RANGES")]
    pub(crate) lines: Option<LineSet>,
}

impl SendArgs {
    pub(crate) fn into_config(self) -> Result<SendConfig> {
        let input = match (self.file, self.generate) {
            (Some(path), _) => SendInput::File(path),
            (None, Some(count)) => SendInput::Generate {
                count,
                seed: self.seed,
                malformed_per_mille: self.malformed_per_mille,
            },
            (None, None) => return Err(Error::usage("give a FILE or --generate N")),
        };
        Ok(SendConfig {
            sqs: self.sqs.into_config()?,
            input,
            print: self.print,
            parallel: self.parallel.max(1),
            lines: match self.from_line {
                Some(n) => Some(LineSet::from_line(n as usize)),
                None => self.lines,
            },
        })
    }
}
