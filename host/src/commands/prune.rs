//! `maskflow prune`: deletes ledger entries older than the queue can redeliver.

use std::time::Duration;

use crate::error::Result;
use crate::sink::{prune_ledger, PostgresConfig};

pub struct PruneConfig {
    pub postgres: PostgresConfig,
    pub older_than: Duration,
}

/// Returns how many entries were deleted.
pub fn run(config: &PruneConfig) -> Result<u64> {
    Ok(prune_ledger(&config.postgres, config.older_than)?)
}
