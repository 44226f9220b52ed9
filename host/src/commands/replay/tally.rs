//! What a replay did (or, with `--dry-run`, would do), counted as it goes: the table on stdout,
//! the end line on stderr, the `replay_done` and `replay_skipped` events.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use super::error::Unsealable;
use crate::events::{event, Event};

/// What became of a selected rejection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fate {
    /// A row now (its rejection deleted).
    Row,
    /// Still rejected, with this reason now.
    Rejected(&'static str),
    /// Its body did not unseal: left as it is.
    Skipped,
    /// Replayed by another process between the read and the write.
    Gone,
}

impl Fate {
    fn as_str(&self) -> &str {
        match self {
            Fate::Row => "row",
            Fate::Rejected(reason) => reason,
            Fate::Skipped => "skipped",
            Fate::Gone => "gone",
        }
    }
}

#[derive(Debug, Default)]
pub struct Tally {
    pub(crate) selected: u64,
    /// (reason before, fate) -> count.
    pub(crate) moves: BTreeMap<(String, Fate), u64>,
    /// Still rejected whose reason or message changed (updated in place).
    pub(crate) changed: u64,
    /// (key id, why) -> count.
    pub(crate) skipped: BTreeMap<(String, Unsealable), u64>,
    /// Judged with `rejected_at` for a sent time (recorded before `sent_at` was kept).
    pub(crate) sent_time_fallback: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, before: &str, fate: Fate) {
        *self.moves.entry((before.to_owned(), fate)).or_default() += 1;
    }

    fn count(&self, wanted: impl Fn(&Fate) -> bool) -> u64 {
        self.moves.iter().filter(|((_, fate), _)| wanted(fate)).map(|(_, n)| n).sum()
    }

    pub(crate) fn rows(&self) -> u64 {
        self.count(|f| *f == Fate::Row)
    }

    pub(crate) fn still_rejected(&self) -> u64 {
        self.count(|f| matches!(f, Fate::Rejected(_)))
    }

    pub(crate) fn skipped(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// (key id, why, how many) of the bodies that did not unseal.
    pub(crate) fn skipped_by_key(&self) -> Vec<(String, Unsealable, u64)> {
        self.skipped.iter().map(|((key, why), n)| (key.clone(), *why, *n)).collect()
    }

    /// `reason<TAB>now<TAB>count` lines under a header: what became of each reason's rejections
    /// (`row`, a reason, `skipped` or `gone`).
    pub(crate) fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "reason\tnow\tcount")?;
        for ((before, fate), n) in &self.moves {
            writeln!(out, "{before}\t{}\t{n}", fate.as_str())?;
        }
        out.flush()
    }

    /// The end line, and the events.
    pub(crate) fn finish(&self, dry_run: bool, elapsed: Duration) -> String {
        for ((key_id, why), bodies) in &self.skipped {
            event!(
                warn,
                Event::ReplaySkipped,
                key_id,
                why = why.as_str(),
                bodies,
                "rejections skipped: their bodies do not unseal"
            );
        }
        let (rows, still, skipped) = (self.rows(), self.still_rejected(), self.skipped());
        event!(
            info,
            Event::ReplayDone,
            dry_run,
            selected = self.selected,
            rows,
            still_rejected = still,
            changed = self.changed,
            skipped,
            gone = self.count(|f| *f == Fate::Gone),
            sent_time_fallback = self.sent_time_fallback,
            elapsed_s = elapsed.as_secs_f64(),
            "replay done"
        );
        let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
        for ((_, fate), n) in &self.moves {
            if let Fate::Rejected(reason) = fate {
                *by_reason.entry(reason).or_default() += n;
            }
        }
        let mut still_detail: Vec<String> =
            by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
        if self.changed > 0 {
            still_detail.push(format!("{} with a new reason or message", self.changed));
        }
        let still_detail = match still_detail.is_empty() {
            true => String::new(),
            false => format!(" ({})", still_detail.join("; ")),
        };
        let rate = rows as f64 / elapsed.as_secs_f64().max(1e-3);
        let (head, rows_as, stays, skips) = match dry_run {
            true => (
                "dry run, nothing changed: ",
                "would become rows",
                "would stay rejected",
                "would be skipped",
            ),
            false => ("", "replayed as rows", "still rejected", "skipped"),
        };
        format!(
            "{head}{} selected: {rows} {rows_as}, {still} {stays}{still_detail}, {skipped} {skips}; \
             {} dated by rejected_at (no sent time kept); {:.1} s ({rate:.0} rows/s)",
            self.selected,
            self.sent_time_fallback,
            elapsed.as_secs_f64()
        )
    }
}
