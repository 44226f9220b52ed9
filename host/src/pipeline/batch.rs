//! What a worker carries through one transaction: the messages as SQS gave them, each with its
//! part of the memory budget, deduplicated by message id, and their outcomes once transformed.

use std::collections::HashSet;

use maskflow_transform::{Message, Outcome};

use super::budget::Share;
use crate::sink::Item;
use crate::source::Received;

/// A message the host holds, and its part of the memory budget (given back when dropped).
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) message: Received,
    pub(crate) share: Option<Share>,
}

/// Messages of one transaction. A message received twice (redelivered while still queued
/// here) is kept once, with every receipt handle for the delete.
#[derive(Default)]
pub(crate) struct Batch {
    held: Vec<Held>,
    /// One per held message once the module has run, in order.
    outcomes: Vec<Outcome>,
    /// (message id, receipt) of the second and later copies.
    extra_receipts: Vec<(String, String)>,
    ids: HashSet<String>,
    /// Body bytes of the distinct messages.
    bytes: usize,
}

impl Batch {
    pub(crate) fn push(&mut self, held: Held) {
        let message = held.message;
        if self.ids.contains(&message.id) {
            self.extra_receipts.push((message.id, message.receipt));
        } else {
            self.bytes += message.body.len();
            self.ids.insert(message.id.clone());
            self.held.push(Held { message, share: held.share });
        }
    }

    /// Receipts held, duplicates included.
    pub(crate) fn len(&self) -> usize {
        self.held.len() + self.extra_receipts.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Body bytes of the distinct messages.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The distinct messages, as SQS gave them.
    pub(crate) fn received(&self) -> impl Iterator<Item = &Received> {
        self.held.iter().map(|h| &h.message)
    }

    /// The distinct messages, for the module.
    pub(crate) fn messages(&self) -> Vec<Message<'_>> {
        self.received()
            .map(|m| Message {
                id: &m.id,
                body: m.body.as_bytes(),
                sent_timestamp_ms: m.sent_timestamp_ms,
            })
            .collect()
    }

    /// Stores the module's outcomes, one per distinct message, in order.
    pub(crate) fn set_outcomes(&mut self, outcomes: Vec<Outcome>) {
        debug_assert_eq!(outcomes.len(), self.held.len());
        self.outcomes = outcomes;
    }

    /// What the sink commits: every transformed message.
    pub(crate) fn items(&self) -> Vec<Item<'_>> {
        self.received()
            .zip(&self.outcomes)
            .map(|(m, outcome)| Item { id: &m.id, sent_timestamp_ms: m.sent_timestamp_ms, outcome })
            .collect()
    }

    /// Every receipt held for this batch, split into those to delete after the commit and
    /// those of the `held` message ids (not committed: to be handed back).
    pub(crate) fn into_receipts(self, held: &[String]) -> (Vec<String>, Vec<String>) {
        let (mut acked, mut released) = (Vec::new(), Vec::new());
        let receipts = self.held.into_iter().map(|h| (h.message.id, h.message.receipt));
        for (id, receipt) in receipts.chain(self.extra_receipts) {
            match held.contains(&id) {
                true => released.push(receipt),
                false => acked.push(receipt),
            }
        }
        (acked, released)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn held(id: &str, receipt: &str, body: &str) -> Held {
        let message = Received {
            id: id.into(),
            receipt: receipt.into(),
            body: body.into(),
            sent_timestamp_ms: 0,
            receive_count: 1,
        };
        Held { message, share: None }
    }

    fn batch(messages: &[(&str, &str)]) -> Batch {
        let mut batch = Batch::default();
        for (id, receipt) in messages {
            batch.push(held(id, receipt, &format!("body of {id}")));
        }
        batch
    }

    #[test]
    fn a_message_received_twice_is_transformed_once_and_both_receipts_are_deleted() {
        let mut batch = batch(&[("a", "r1"), ("b", "r2"), ("a", "r3")]);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.messages().iter().map(|m| m.id).collect::<Vec<_>>(), ["a", "b"]);
        batch.set_outcomes(vec![Outcome::Row(vec![]), Outcome::Row(vec![None])]);
        assert_eq!(batch.items().iter().map(|i| i.id).collect::<Vec<_>>(), ["a", "b"]);
        let (acked, released) = batch.into_receipts(&[]);
        assert_eq!((acked, released), (vec!["r1".into(), "r2".into(), "r3".into()], vec![]));
    }

    #[test]
    fn the_receipts_of_held_messages_every_copy_included_are_handed_back_not_deleted() {
        let batch = batch(&[("a", "r1"), ("b", "r2"), ("a", "r3")]);
        let (acked, released): (Vec<String>, Vec<String>) = batch.into_receipts(&["a".into()]);
        assert_eq!(acked, ["r2"]);
        assert_eq!(released, ["r1", "r3"]);
    }
}
