//! What a worker carries through one transaction: envelopes (a message with its receipt and
//! SQS attributes, and its outcome once transformed), deduplicated by message id.

use std::collections::HashMap;

use maskflow_transform::{Message, Outcome};

use super::budget::Share;
use crate::sink::Item;
use crate::source::Received;

/// One message on its way through the pipeline.
#[derive(Debug)]
pub struct Envelope {
    pub id: String,
    pub receipt: String,
    pub body: String,
    pub sent_timestamp_ms: i64,
    /// SQS `ApproximateReceiveCount` (1 on first delivery).
    pub receive_count: u32,
    /// Set by the transform stage.
    pub outcome: Option<Outcome>,
    /// The message's part of the memory budget, given back when the envelope is dropped.
    pub share: Option<Share>,
}

impl Envelope {
    pub fn new(r: Received, share: Option<Share>) -> Self {
        Envelope {
            id: r.id,
            receipt: r.receipt,
            body: r.body,
            sent_timestamp_ms: r.sent_timestamp_ms,
            receive_count: r.receive_count,
            outcome: None,
            share,
        }
    }
}

/// Messages of one transaction. A message received twice (redelivered while still queued
/// here) is kept once, with every receipt handle for the delete.
#[derive(Default)]
pub struct Batch {
    pub envelopes: Vec<Envelope>,
    /// (message id, receipt) of the second and later copies.
    extra_receipts: Vec<(String, String)>,
    index: HashMap<String, usize>,
    /// Body bytes of the distinct messages.
    bytes: usize,
}

impl Batch {
    pub fn push(&mut self, envelope: Envelope) {
        if self.index.contains_key(&envelope.id) {
            self.extra_receipts.push((envelope.id, envelope.receipt));
        } else {
            self.bytes += envelope.body.len();
            self.index.insert(envelope.id.clone(), self.envelopes.len());
            self.envelopes.push(envelope);
        }
    }

    pub fn extend(&mut self, envelopes: impl IntoIterator<Item = Envelope>) {
        for envelope in envelopes {
            self.push(envelope);
        }
    }

    /// Receipts held, duplicates included.
    pub fn len(&self) -> usize {
        self.envelopes.len() + self.extra_receipts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// Body bytes of the distinct messages.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The distinct messages, for the module.
    pub fn messages(&self) -> Vec<Message<'_>> {
        self.envelopes
            .iter()
            .map(|e| Message {
                id: &e.id,
                body: e.body.as_bytes(),
                sent_timestamp_ms: e.sent_timestamp_ms,
            })
            .collect()
    }

    /// Stores the module's outcomes, one per distinct message, in order.
    pub fn set_outcomes(&mut self, outcomes: Vec<Outcome>) {
        debug_assert_eq!(outcomes.len(), self.envelopes.len());
        for (envelope, outcome) in self.envelopes.iter_mut().zip(outcomes) {
            envelope.outcome = Some(outcome);
        }
    }

    /// Every receipt held for this batch, split into those to delete after the commit and
    /// those of the `held` message ids (not committed: to be handed back).
    pub fn into_receipts(self, held: &[String]) -> (Vec<String>, Vec<String>) {
        let (mut acked, mut released) = (Vec::new(), Vec::new());
        let receipts = self.envelopes.into_iter().map(|e| (e.id, e.receipt));
        for (id, receipt) in receipts.chain(self.extra_receipts) {
            match held.contains(&id) {
                true => released.push(receipt),
                false => acked.push(receipt),
            }
        }
        (acked, released)
    }
}

/// What the sink commits of these envelopes: every transformed one.
pub fn items(envelopes: &[Envelope]) -> Vec<Item<'_>> {
    envelopes
        .iter()
        .filter_map(|e| Some(Item { id: &e.id, outcome: e.outcome.as_ref()? }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(id: &str, receipt: &str) -> Envelope {
        Envelope {
            id: id.into(),
            receipt: receipt.into(),
            body: format!("body of {id}"),
            sent_timestamp_ms: 0,
            receive_count: 1,
            outcome: None,
            share: None,
        }
    }

    #[test]
    fn a_message_received_twice_is_transformed_once_and_both_receipts_are_deleted() {
        let mut batch = Batch::default();
        batch.extend([envelope("a", "r1"), envelope("b", "r2")]);
        batch.push(envelope("a", "r3"));
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.messages().iter().map(|m| m.id).collect::<Vec<_>>(), ["a", "b"]);
        batch.set_outcomes(vec![Outcome::Row(vec![]), Outcome::Row(vec![None])]);
        assert_eq!(items(&batch.envelopes).iter().map(|i| i.id).collect::<Vec<_>>(), ["a", "b"]);
        let (acked, released) = batch.into_receipts(&[]);
        assert_eq!((acked, released), (vec!["r1".into(), "r2".into(), "r3".into()], vec![]));
    }

    #[test]
    fn the_receipts_of_held_messages_every_copy_included_are_handed_back_not_deleted() {
        let mut batch = Batch::default();
        batch.extend([envelope("a", "r1"), envelope("b", "r2"), envelope("a", "r3")]);
        let (acked, released): (Vec<String>, Vec<String>) = batch.into_receipts(&["a".into()]);
        assert_eq!(acked, ["r2"]);
        assert_eq!(released, ["r1", "r3"]);
    }
}
