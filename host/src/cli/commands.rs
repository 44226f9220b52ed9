//! Flags of the commands besides `run`.

use std::path::PathBuf;

use super::module::{KeyArgs, ModuleArgs};
use super::run::SqsArgs;
use crate::commands::keygen::KeygenConfig;
use crate::commands::send::{SendConfig, SendInput};
use crate::commands::transform::TransformConfig;
use crate::commands::unmask::UnmaskConfig;
use crate::error::Result;
use crate::keys;

/// Creates a new random AES-256-SIV key.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Write the key file here (mode 0600; never overwrites) instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Key id, the prefix of every mask made with this key (`k2` when rotating from `k1`).
    #[arg(long, default_value = "k1")]
    pub id: String,
}

impl KeygenArgs {
    pub fn into_config(self) -> KeygenConfig {
        KeygenConfig { out: self.out, id: self.id }
    }
}

/// Recovers clear values from masks (authorised operators only: needs the key).
#[derive(Debug, Clone, clap::Args)]
pub struct UnmaskArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// The mapping the masks were made with, if not the built-in one (for its column nonces).
    #[arg(long, value_name = "PATH")]
    pub mapping: Option<PathBuf>,
    /// Also print which column (or `raw_body`) each value came from, tab-separated.
    #[arg(long)]
    pub with_column: bool,
    /// Masks (`k1.…`); read one per line from stdin when none are given.
    pub values: Vec<String>,
}

impl UnmaskArgs {
    pub fn into_config(self) -> Result<UnmaskConfig> {
        let (config, _) = keys::transform_config(&self.key.load()?, self.mapping.as_deref(), 0)?;
        Ok(UnmaskConfig { config, with_column: self.with_column, values: self.values })
    }
}

/// NDJSON message bodies on stdin -> NDJSON rows on stdout, through the same wasm module as
/// `run`. For shell pipelines and other stream processors' exec stages.
#[derive(Debug, Clone, clap::Args)]
pub struct TransformArgs {
    #[command(flatten)]
    pub module: ModuleArgs,
    /// Write rejections (NDJSON) here instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,
    /// The sent timestamp given to every message (ms since the epoch); default: now.
    #[arg(long, value_name = "MS")]
    pub sent_timestamp_ms: Option<i64>,
    /// Lines per module call.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
}

impl TransformArgs {
    pub fn into_config(self) -> Result<TransformConfig> {
        Ok(TransformConfig {
            module: self.module.into_config()?.0,
            rejects: self.rejects,
            sent_timestamp_ms: self.sent_timestamp_ms,
            batch_size: self.batch_size.max(1),
        })
    }
}

/// Loads messages into the queue (creating it if missing): a file, or synthetic events.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub sqs: SqsArgs,
    /// A JSON array of events, or NDJSON (each line sent as it is, malformed lines included).
    #[arg(required_unless_present = "generate", conflicts_with = "generate")]
    pub file: Option<PathBuf>,
    /// Generate this many synthetic login events instead.
    #[arg(long, value_name = "N")]
    pub generate: Option<usize>,
    /// Seed of the generator (same seed, same messages).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Malformed messages per thousand generated.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub malformed_per_mille: u32,
    /// Print the bodies as NDJSON on stdout instead of sending them.
    #[arg(long)]
    pub print: bool,
    /// SendMessageBatch calls in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
}

impl SendArgs {
    pub fn into_config(self) -> Result<SendConfig> {
        let input = match (self.file, self.generate) {
            (Some(path), _) => SendInput::File(path),
            (None, Some(count)) => SendInput::Generate {
                count,
                seed: self.seed,
                malformed_per_mille: self.malformed_per_mille,
            },
            (None, None) => return Err(crate::Error::Usage("give a FILE or --generate N".into())),
        };
        Ok(SendConfig {
            sqs: self.sqs.into_config()?,
            input,
            print: self.print,
            parallel: self.parallel.max(1),
        })
    }
}
