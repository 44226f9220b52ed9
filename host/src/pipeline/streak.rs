//! Telling one bad message from a stage that fails on everything. A row PostgreSQL refuses on
//! its own, or a message the module fails on by itself, is recorded as a rejection (and
//! deleted) so that one bad message does not hold up the queue. But a table that refuses every
//! row (a missing partition, a new CHECK) or a module that fails on every message would turn
//! the whole queue into rejections, one message at a time when traffic is light. So the
//! decision does not depend on the batch size: the ledger records the host's own rejections
//! by reason, and a failure that would make the fleet's latest outcomes a run of [`STREAK`]
//! such rejections, with nothing in between that shows the stage working, stops the host
//! instead (exit 5, nothing of the batch recorded or deleted). A restarted host sees the same
//! run in the ledger and stops again at once, rather than rejecting a few more each time.
//!
//! The reading and the recording are one: the ledger is read inside the transaction that
//! records the rejections, under a lock every such transaction of the database takes
//! ([`Guard`]). Two workers (or hosts) refused at once cannot both read a run of one and both
//! record, so at most `STREAK - 1` = 2 messages are diverted whatever the concurrency.

use maskflow_transform::Reason;

use super::outage::{Patience, Waited};
use crate::error::Result;
use crate::sink::{CommitStats, Guard, Item, LedgerOutcome, PgKind, PostgresSink};

/// Consecutive host rejections of one kind that mean "the stage fails on everything".
pub(crate) const STREAK: usize = 3;
/// How many of the latest ledger entries are read to find the run.
pub(crate) const LOOK_BACK: i64 = 50;

/// Whether `failed` more host rejections for `reason` (`module_failed` or `sink_refused`), on
/// top of the `recent` ledger outcomes (newest first), make a run of [`STREAK`]. What shows the
/// stage working ends the run: for the module, any outcome it produced (a row, a rejection, a
/// row PostgreSQL refused); for PostgreSQL, an accepted row only (a message the module
/// rejected says nothing of the table).
pub(crate) fn completes_streak(recent: &[LedgerOutcome], reason: Reason, failed: usize) -> bool {
    let neutral = |outcome: &LedgerOutcome| match reason {
        Reason::SinkRefused => {
            matches!(outcome, LedgerOutcome::Rejected | LedgerOutcome::Host(Reason::ModuleFailed))
        }
        _ => false,
    };
    let run = recent
        .iter()
        .filter(|outcome| !neutral(outcome))
        .take_while(|outcome| **outcome == LedgerOutcome::Host(reason))
        .count();
    failed + run >= STREAK
}

/// Records `items`, host rejections for `reason` all of them, unless they would complete a run
/// of [`STREAK`]: then nothing is written and the answer is `None` (the caller stops).
pub(crate) fn record_unless_streak(
    sink: &mut PostgresSink,
    patience: &Patience,
    items: &[Item],
    reason: Reason,
) -> Result<Waited<Option<CommitStats>>> {
    if items.len() >= STREAK {
        return Ok(Waited::Done(None));
    }
    let allows = |recent: &[LedgerOutcome]| !completes_streak(recent, reason, items.len());
    let guard = Guard { look_back: LOOK_BACK, allows: &allows };
    patience.wait("PostgreSQL unavailable; retrying", || {
        sink.commit_guarded(items, &guard).map_err(|e| match e.kind() {
            // Rejections alone hold nothing PostgreSQL could refuse but their own record.
            PgKind::Refused => {
                e.into_fatal("the rejections' record was refused; nothing was deleted")
            }
            _ => e,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(list: &[&str]) -> Vec<LedgerOutcome> {
        list.iter().map(|s| LedgerOutcome::from_ledger(s)).collect()
    }

    const REFUSED: Reason = Reason::SinkRefused;
    const FAILED: Reason = Reason::ModuleFailed;

    #[test]
    fn a_run_of_refusals_stops_whatever_the_batch_size_and_an_accepted_row_resets_it() {
        // Light traffic: one row per batch, every one refused.
        assert!(!completes_streak(&outcomes(&["row", "row"]), REFUSED, 1));
        assert!(!completes_streak(&outcomes(&["sink_refused", "row"]), REFUSED, 1));
        assert!(completes_streak(&outcomes(&["sink_refused", "sink_refused", "row"]), REFUSED, 1));
        // Module rejections in between say nothing about the table.
        let mixed = outcomes(&["rejected", "sink_refused", "module_failed", "sink_refused"]);
        assert!(completes_streak(&mixed, REFUSED, 1));
        // An accepted row in between: one bad row at a time, recorded.
        let healed = outcomes(&["sink_refused", "row", "sink_refused"]);
        assert!(!completes_streak(&healed, REFUSED, 1));
        // A whole batch refused is a run by itself.
        assert!(completes_streak(&[], REFUSED, STREAK));
        assert!(!completes_streak(&[], REFUSED, STREAK - 1));
    }

    #[test]
    fn any_outcome_of_the_module_ends_a_run_of_module_failures() {
        let run = outcomes(&["module_failed", "module_failed"]);
        assert!(completes_streak(&run, FAILED, 1));
        for working in ["row", "rejected", "sink_refused"] {
            let broken = outcomes(&["module_failed", working, "module_failed"]);
            assert!(!completes_streak(&broken, FAILED, 1), "{working} ends the run");
        }
    }
}
