//! Flags of the key lifecycle: `mask`, `rekey`, `keys` (README: "Rotating a key").

use std::path::PathBuf;

use super::mapping::load_mapping;
use super::module::KeyArgs;
use super::postgres::PostgresArgs;
use crate::commands::keys::KeysConfig;
use crate::commands::mask::MaskConfig;
use crate::commands::rekey::{masked_columns, RekeyConfig};
use crate::error::Result;

/// Prints the mask a clear value gets in a row, for lookups ("every login from 203.0.113.7").
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MaskArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// The mapping the rows are made with, if not the built-in one.
    #[arg(long, value_name = "PATH")]
    pub(crate) mapping: Option<PathBuf>,
    /// Which masked column: its input field (`ip`, `device_id`) or its name (`masked_ip`).
    #[arg(long, value_name = "ip|device_id")]
    pub(crate) column: String,
    /// One mask per key in the key file (the masking key's first), one per line: for a query
    /// that must also match rows not re-masked yet (`WHERE masked_ip IN (...)`).
    #[arg(long)]
    pub(crate) all_keys: bool,
    /// Clear values; read one per line from stdin when none are given. Never logged.
    pub(crate) values: Vec<String>,
}

impl MaskArgs {
    pub(crate) fn into_config(self) -> Result<MaskConfig> {
        Ok(MaskConfig {
            keys: self.key.load()?,
            mapping: load_mapping(self.mapping.as_deref())?,
            column: self.column,
            all_keys: self.all_keys,
            values: self.values,
        })
    }
}

/// Re-masks history under the masking key, in place and online (README: "Rotating a key").
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RekeyArgs {
    #[command(flatten)]
    pub(crate) postgres: PostgresArgs,
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// The mapping the rows were made with, if not the built-in one.
    #[arg(long, value_name = "PATH")]
    pub(crate) mapping: Option<PathBuf>,
    /// The key id to re-mask to: the key file's first key, which the hosts mask with.
    #[arg(long, value_name = "ID")]
    pub(crate) to: String,
    /// Re-mask only masks under these key ids (repeat the flag); default: every other key id
    /// found in the tables.
    #[arg(long, value_name = "ID")]
    pub(crate) from: Vec<String>,
    /// Count what would change; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Table pages (8 KiB) per transaction: about 60 rows each.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub(crate) pages_per_step: i64,
    /// Passes over the tables before giving up on rows that keep arriving under an old key.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) max_passes: u32,
}

impl RekeyArgs {
    pub(crate) fn into_config(self) -> Result<RekeyConfig> {
        Ok(RekeyConfig {
            postgres: self.postgres.into_config()?,
            keys: self.key.load()?,
            mapping: load_mapping(self.mapping.as_deref())?,
            to: self.to,
            from: (!self.from.is_empty()).then_some(self.from),
            dry_run: self.dry_run,
            pages_per_step: self.pages_per_step,
            max_passes: self.max_passes as usize,
        })
    }
}

/// Lists key ids (key file, `maskflow_keys`) and their masks left in the tables.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    pub(crate) action: Option<KeysAction>,
    #[command(flatten)]
    pub(crate) postgres: PostgresArgs,
    // The key file is optional here: without it, only the database's view is shown.
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// The mapping the rows were made with, if not the built-in one.
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) mapping: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum KeysAction {
    /// Drop a key id from maskflow_keys; refused while any mask under it remains.
    Retire {
        /// The key id (`k1`).
        id: String,
    },
}

impl KeysArgs {
    pub(crate) fn into_config(self) -> Result<KeysConfig> {
        let keys = if self.key.given() { Some(self.key.load()?) } else { None };
        Ok(KeysConfig {
            postgres: self.postgres.into_config()?,
            keys,
            columns: masked_columns(&load_mapping(self.mapping.as_deref())?),
            retire: self.action.map(|KeysAction::Retire { id }| id),
        })
    }
}
