//! The memory the host holds, bounded in bytes, not only in messages: SQS allows bodies of
//! 256 KiB, and extra fields are legal, so 500-message batches of big events would need
//! hundreds of MiB. Pollers reserve the bytes of each receive before handing it on, and wait
//! while the budget is spent; each message gives its share back when it is dropped (acked,
//! released, or abandoned). The budget can be overshot by at most one receive per poller.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// `--max-in-flight-bytes` when not given: a quarter of the memory limit of the process's
/// cgroup (a container's limit), at most this.
pub(crate) const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 64 << 20;

/// The default budget: [`DEFAULT_MAX_IN_FLIGHT_BYTES`], or a quarter of the cgroup memory
/// limit if that is lower (bodies are held about twice: as received and inside the module).
pub(crate) fn default_max_in_flight_bytes() -> usize {
    let limit = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|text| text.trim().parse::<usize>().ok());
    limit.map_or(DEFAULT_MAX_IN_FLIGHT_BYTES, |l| {
        (l / 4).clamp(1 << 20, DEFAULT_MAX_IN_FLIGHT_BYTES)
    })
}

#[derive(Clone)]
pub(crate) struct ByteBudget {
    semaphore: Arc<Semaphore>,
    total: u32,
    metrics: Metrics,
}

impl ByteBudget {
    pub(crate) fn new(bytes: usize, metrics: Metrics) -> Self {
        let total = bytes.clamp(1, u32::MAX as usize) as u32;
        ByteBudget { semaphore: Arc::new(Semaphore::new(total as usize)), total, metrics }
    }

    /// Waits until `sizes` (one per message) fit, then returns one share per message, in
    /// order. A receive larger than the whole budget waits for all of it.
    pub(crate) async fn reserve(&self, sizes: &[usize]) -> Vec<Share> {
        if sizes.is_empty() {
            return Vec::new();
        }
        let want: usize = sizes.iter().sum();
        let want = want.clamp(1, self.total as usize) as u32;
        let mut permit =
            self.semaphore.clone().acquire_many_owned(want).await.expect("never closed");
        self.metrics.in_flight_bytes.inc_by(want as i64);
        self.metrics.messages_in_flight.inc_by(sizes.len() as i64);
        let mut left = want as usize;
        let mut shares: Vec<Share> = sizes
            .iter()
            .map(|&size| {
                let take = size.min(left);
                left -= take;
                Share { permit: permit.split(take), metrics: self.metrics.clone() }
            })
            .collect();
        // What a clamp left over (an empty receive still reserves a byte) goes with the last.
        if let (Some(last), true) = (shares.last_mut(), permit.num_permits() > 0) {
            match &mut last.permit {
                Some(p) => p.merge(permit),
                None => last.permit = Some(permit),
            }
        }
        shares
    }
}

/// One message's part of the budget, given back when dropped; while it lives the message is
/// counted in flight (`maskflow_messages_in_flight`: received, not yet committed or handed back).
pub(crate) struct Share {
    permit: Option<OwnedSemaphorePermit>,
    metrics: Metrics,
}

impl Drop for Share {
    fn drop(&mut self) {
        if let Some(permit) = &self.permit {
            self.metrics.in_flight_bytes.dec_by(permit.num_permits() as i64);
        }
        self.metrics.messages_in_flight.dec();
    }
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share({})", self.permit.as_ref().map_or(0, |p| p.num_permits()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn receives_wait_while_the_budget_is_spent_and_shares_come_back_when_dropped() {
        let metrics = Metrics::default();
        let budget = ByteBudget::new(1000, metrics.clone());
        let first = budget.reserve(&[300, 300]).await;
        let second = budget.reserve(&[400]).await;
        // Held messages are in flight from their receipt until their share is dropped.
        assert_eq!(metrics.messages_in_flight.get(), 3);
        assert_eq!(metrics.in_flight_bytes.get(), 1000);
        // 1000 held: the next receive must wait.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.reserve(&[10]));
        assert!(waiting.await.is_err(), "the budget is spent");
        let mut first = first;
        drop(first.pop()); // one 300-byte message acked: 700 held
        let third =
            tokio::time::timeout(std::time::Duration::from_secs(1), budget.reserve(&[250])).await;
        assert!(third.is_ok(), "room again");
        drop(second); // 550 held
                      // Larger than the whole budget: admitted alone once everything else is back.
        let huge = budget.reserve(&[5000]);
        let mut huge = std::pin::pin!(huge);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), huge.as_mut()).await;
        assert!(waited.is_err(), "waits for the whole budget");
        drop((first, third));
        let admitted = tokio::time::timeout(std::time::Duration::from_secs(1), huge).await;
        assert_eq!(admitted.map(|shares| shares.len()).ok(), Some(1), "then admitted alone");
        assert_eq!(metrics.messages_in_flight.get(), 0, "every share given back");
        assert_eq!(metrics.in_flight_bytes.get(), 0);
    }
}
