//! The batch calls (up to 10 entries each: SQS' limit) and the entries SQS refuses inside a
//! successful answer.

use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    SendMessageBatchRequestEntry,
};

use super::error::SqsError;
use super::SqsSource;

type Result<T, E = SqsError> = std::result::Result<T, E>;

impl SqsSource {
    /// Deletes up to 10 messages by receipt handle, in one DeleteMessageBatch call. Returns
    /// the entries SQS refused inside its answer (a stale receipt, a server error).
    pub async fn delete_batch(&self, receipts: &[String]) -> Result<Vec<EntryFailure>> {
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| SqsError::request("a batch entry", e))?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("DeleteMessageBatch", e))?;
        Ok(entry_failures(receipts, out.failed()))
    }

    /// Sets the visibility timeout of up to 10 messages, in one ChangeMessageVisibilityBatch
    /// call: pushed out while the host holds them, or shortened to hand them back. Returns the
    /// entries SQS refused (a stale receipt; a message held 12 hours, SQS' cap).
    pub async fn change_visibility_batch(
        &self,
        receipts: &[String],
        timeout: Duration,
    ) -> Result<Vec<EntryFailure>> {
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .visibility_timeout(timeout.as_secs() as i32)
                    .build()
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| SqsError::request("a batch entry", e))?;
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("ChangeMessageVisibilityBatch", e))?;
        Ok(entry_failures(receipts, out.failed()))
    }

    /// Sends up to 10 bodies in one call.
    pub async fn send_batch(&self, bodies: &[String]) -> Result<()> {
        match self.send_batch_entries(bodies).await?.len() {
            0 => Ok(()),
            failed => {
                Err(SqsError::transient(format!("SendMessageBatch refused {failed} messages")))
            }
        }
    }

    /// Sends up to 10 bodies in one call; the indices of the bodies SQS refused inside its
    /// answer (the others were sent).
    pub async fn send_batch_entries(&self, bodies: &[String]) -> Result<Vec<usize>> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(b).build()
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| SqsError::request("a batch entry", e))?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("SendMessageBatch", e))?;
        let mut failed: Vec<usize> =
            out.failed().iter().filter_map(|f| f.id().parse().ok()).collect();
        if failed.len() < out.failed().len() {
            return Err(SqsError::transient("SendMessageBatch: an entry of unknown id failed"));
        }
        failed.sort_unstable();
        Ok(failed)
    }
}

/// An entry SQS refused inside a successful batch call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    pub receipt: String,
    /// SQS' error code, e.g. `ReceiptHandleIsInvalid`, `InternalError`.
    pub code: String,
    /// The request's fault (will fail again) rather than SQS' (may succeed when sent again).
    pub sender_fault: bool,
}

/// The receipts of the `failed` entries, whose ids are indexes into `receipts`.
fn entry_failures(
    receipts: &[String],
    failed: &[aws_sdk_sqs::types::BatchResultErrorEntry],
) -> Vec<EntryFailure> {
    failed
        .iter()
        .map(|f| EntryFailure {
            receipt: f
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|i| receipts.get(i))
                .cloned()
                .unwrap_or_default(),
            code: f.code().to_owned(),
            sender_fault: f.sender_fault(),
        })
        .collect()
}
