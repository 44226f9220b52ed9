//! Batch assembly: receives (up to 10 messages each) from the pollers' channel, grouped into
//! batches of up to `batch_size` messages or `batch_bytes` of bodies, waiting at most `linger`
//! after the first message.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::batch::{Batch, Held};

/// The pollers' end of the channel: one receive per send (a hand-off wakes a worker thread,
/// so one per message cost more CPU than the message).
pub(crate) type Receives = flume::Receiver<Vec<Held>>;

/// The next batch; `None` once the pollers have stopped and the channel is drained. What does
/// not fit stays in `carry` for the next batch. `idle` runs while nothing arrives.
pub(crate) fn fill_batch(
    rx: &Receives,
    carry: &mut VecDeque<Held>,
    batch_size: usize,
    batch_bytes: usize,
    linger: Duration,
    idle: impl Fn(),
) -> Option<Batch> {
    while carry.is_empty() {
        idle();
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(received) => carry.extend(received),
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => return None,
        }
    }
    let mut batch = Batch::default();
    let deadline = Instant::now() + linger;
    loop {
        while batch.len() < batch_size && (batch.is_empty() || batch.bytes() < batch_bytes) {
            let Some(held) = carry.pop_front() else { break };
            batch.push(held);
        }
        if batch.len() >= batch_size || batch.bytes() >= batch_bytes {
            break;
        }
        match rx.recv_deadline(deadline) {
            Ok(received) => carry.extend(received),
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::batch::tests::held;

    fn receive(prefix: &str, n: usize, body: &str) -> Vec<Held> {
        (0..n).map(|i| held(&format!("{prefix}{i}"), &format!("r-{prefix}{i}"), body)).collect()
    }

    fn batches(
        receives: &[(&str, usize)],
        size: usize,
        bytes: usize,
        body: &str,
    ) -> Vec<Vec<String>> {
        let (tx, rx) = flume::unbounded();
        for (prefix, n) in receives {
            tx.send(receive(prefix, *n, body)).unwrap();
        }
        drop(tx);
        let mut carry = VecDeque::new();
        let mut out = Vec::new();
        while let Some(batch) =
            fill_batch(&rx, &mut carry, size, bytes, Duration::from_secs(5), || {})
        {
            out.push(batch.received().map(|m| m.id.clone()).collect());
        }
        assert!(carry.is_empty());
        out
    }

    #[test]
    fn receives_are_split_across_batches_without_losing_or_repeating_a_message() {
        let receives = [("a", 10), ("b", 10), ("c", 3), ("d", 0), ("e", 1)];
        let out = batches(&receives, 7, usize::MAX, "");
        let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(sizes, [7, 7, 7, 3], "full batches, then what is left when the pollers stop");
        let expected: Vec<String> =
            receives.iter().flat_map(|(p, n)| receive(p, *n, "")).map(|h| h.message.id).collect();
        assert_eq!(out.concat(), expected, "every message once, in order");
    }

    #[test]
    fn big_bodies_make_small_batches_and_one_huge_body_still_goes_alone() {
        let body = "x".repeat(1000);
        let out = batches(&[("a", 10), ("b", 10)], 500, 2500, &body);
        let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 3, 3, 3, 3, 2], "stops at the first message reaching 2,500 bytes");
        let out = batches(&[("a", 2)], 500, 10, &body);
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1], "never an empty batch");
    }
}
