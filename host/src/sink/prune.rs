//! `maskflow prune`: the ledger only has to remember a message id for as long as SQS may
//! deliver that message again, which is the queue's retention period at most.

use std::time::Duration;

use super::classify::classify;
use super::schema::LEDGER_INDEX_DDL;
use super::{tls, PostgresConfig, SinkError};

/// Deletes ledger entries processed more than `older_than` ago; returns how many.
pub fn prune_ledger(config: &PostgresConfig, older_than: Duration) -> Result<u64, SinkError> {
    let mut client = config.client.clone();
    client.connect_timeout(Duration::from_secs(5)).application_name("maskflow prune");
    let mut client = client.connect(tls::connector(&config.tls)?).map_err(classify)?;
    if let Some(schema) = &config.schema {
        client.batch_execute(&format!("SET search_path TO \"{schema}\"")).map_err(classify)?;
    }
    // Hosts older than the index create nothing; the first prune (or run) adds it.
    client.batch_execute(LEDGER_INDEX_DDL).map_err(classify)?;
    client
        .execute(
            "DELETE FROM maskflow_ledger WHERE processed_at < now() - make_interval(secs => $1)",
            &[&older_than.as_secs_f64()],
        )
        .map_err(classify)
}
