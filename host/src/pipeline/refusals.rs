//! Rows PostgreSQL refuses although the module accepted them (SQLSTATE class 22 or 23: a value
//! that does not fit, a CHECK). The commit isolates them by halving, so the rest of the batch
//! lands; each refused row is then recorded as a `sink_refused` rejection (its body sealed),
//! unless the refusals would complete a run of [`STREAK`]: then the table refuses what the
//! module writes, and the host stops with nothing of them recorded or deleted.

use maskflow_transform::{BodySealer, Outcome, Reason};

use super::batch::Batch;
use super::outage::{Patience, Waited};
use super::streak::{record_unless_streak, STREAK};
use crate::error::Result;
use crate::events::{event, Event};
use crate::isolate::{bisect, Attempt, Merge};
use crate::sink::{CommitStats, Item, PgKind, PostgresError, PostgresSink};
use crate::source::Received;
use crate::stop::Stop;

/// What a (partial) commit did, and the rows refused on their own, with why.
#[derive(Default)]
pub(crate) struct Committed<'a> {
    pub(crate) stats: CommitStats,
    refused: Vec<(&'a Received, PostgresError)>,
}

impl Merge for Committed<'_> {
    fn merge(&mut self, other: Self) {
        self.stats += other.stats;
        self.refused.extend(other.refused);
    }
}

/// Commits the batch; rows PostgreSQL refuses on their own are isolated by halving and
/// returned, not recorded, while the rest of the batch lands.
pub(crate) fn commit_isolating<'b>(
    sink: &mut PostgresSink,
    batch: &'b Batch,
) -> Result<Committed<'b>, PostgresError> {
    let pairs: Vec<(&Received, Item)> = batch.received().zip(batch.items()).collect();
    let attempt = &mut |sink: &mut PostgresSink, slice: &[(&'b Received, Item<'b>)]| {
        let items: Vec<Item> = slice.iter().map(|(_, item)| *item).collect();
        match sink.commit(&items) {
            Ok(stats) => Attempt::Done(Committed { stats, refused: Vec::new() }),
            Err(e) if e.is(PgKind::Refused) => Attempt::Bisect(e),
            Err(e) => Attempt::Stop(e),
        }
    };
    let alone = &mut |_: &mut PostgresSink, (message, _): &(&'b Received, Item<'b>), why| {
        Ok(Committed { stats: CommitStats::default(), refused: vec![(*message, why)] })
    };
    bisect(sink, &pairs, attempt, alone)
}

/// Records the rows PostgreSQL refused on their own as `sink_refused` rejections (see the
/// module's comment), and returns what the whole batch did. When nothing of the batch was
/// accepted, the record is guarded ([`record_unless_streak`]): it is made only if it does not
/// complete a run of [`STREAK`] refusals.
pub(crate) fn record_refused(
    sink: &mut PostgresSink,
    patience: &Patience,
    sealer: &BodySealer,
    committed: Committed,
) -> Result<Waited<CommitStats>> {
    let Committed { mut stats, refused } = committed;
    if refused.is_empty() {
        return Ok(Waited::Done(stats));
    }
    let outcomes: Vec<(&Received, Outcome)> = refused
        .iter()
        .map(|(message, why)| {
            let outcome = Outcome::Rejected {
                reason: Reason::SinkRefused,
                message: format!("PostgreSQL refused the row: {}", why.data_problem()),
                encrypted_body: sealer.seal(message.body.as_bytes()),
            };
            (*message, outcome)
        })
        .collect();
    let items: Vec<Item> = outcomes
        .iter()
        .map(|(message, outcome)| Item {
            id: &message.id,
            sent_timestamp_ms: message.sent_timestamp_ms,
            outcome,
        })
        .collect();
    let recorded = match stats.rows {
        0 => record_unless_streak(sink, patience, &items, Reason::SinkRefused)?,
        _ => patience.wait("PostgreSQL unavailable; retrying", || {
            sink.commit(&items).map(Some).map_err(|e| match e.kind() {
                PgKind::Refused => {
                    e.into_fatal("the sink_refused record was refused too; nothing was deleted")
                }
                _ => e,
            })
        })?,
    };
    let recorded = match recorded {
        Waited::Done(Some(recorded)) => recorded,
        Waited::Done(None) => {
            let first = refused.into_iter().next().expect("not empty").1;
            return Err(Stop::TableRefusesEverything { streak: STREAK, first }.into());
        }
        Waited::Shutdown => return Ok(Waited::Shutdown),
    };
    for (message, why) in &refused {
        let problem = why.data_problem();
        event!(info, Event::RowRefused, message_id = message.id, %problem, "PostgreSQL refused a row the module accepted; rejected it as sink_refused");
    }
    stats += recorded;
    Ok(Waited::Done(stats))
}
