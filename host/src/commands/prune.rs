//! `maskflow prune`: deletes ledger entries older than the queue can redeliver.

use std::time::Duration;

use crate::error::Result;
use crate::sink::{prune_ledger, PostgresConfig};

pub(crate) struct PruneConfig {
    pub(crate) postgres: PostgresConfig,
    pub(crate) older_than: Duration,
}

/// Returns how many entries were deleted.
pub(crate) fn run(config: &PruneConfig) -> Result<u64> {
    Ok(prune_ledger(&config.postgres, config.older_than)?)
}
