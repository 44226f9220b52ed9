//! `maskflow prune`: the ledger only has to remember a message id for as long as SQS may
//! deliver that message again, which is the queue's retention period at most.

use std::time::{Duration, Instant};

use super::connection::open_for_command;
use super::{schema, PostgresConfig, PostgresError};

/// Deletes ledger entries processed more than `older_than` ago; returns how many.
pub(crate) fn prune_ledger(
    config: &PostgresConfig,
    older_than: Duration,
) -> Result<u64, PostgresError> {
    let conn = open_for_command(config, "maskflow prune")?;
    // A large delete may take a while: the commit budget, at least a minute.
    let deadline = Instant::now() + config.timeouts.commit.max(Duration::from_secs(60));
    schema::ensure_ledger_index(&conn, deadline)?;
    conn.wait(
        deadline,
        conn.client().execute(
            "DELETE FROM maskflow_ledger WHERE processed_at < now() - make_interval(secs => $1)",
            &[&older_than.as_secs_f64()],
        ),
    )
}
