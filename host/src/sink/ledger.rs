//! What the exactly-once ledger (`maskflow_ledger.outcome`) records of each message: enough to
//! tell, from the fleet's latest outcomes, whether a stage fails on everything
//! (`pipeline::streak`).

use maskflow_transform::{Outcome, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LedgerOutcome {
    /// A row was written.
    Row,
    /// The rules rejected the message (any of their reasons: the ledger does not need which).
    Rejected,
    /// The host rejected it itself: `module_failed` or `sink_refused`.
    Host(Reason),
}

impl LedgerOutcome {
    pub(crate) fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Row(_) => LedgerOutcome::Row,
            Outcome::Rejected { reason, .. } if reason.is_host() => LedgerOutcome::Host(*reason),
            Outcome::Rejected { .. } => LedgerOutcome::Rejected,
        }
    }

    /// The text stored in the ledger.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LedgerOutcome::Row => "row",
            LedgerOutcome::Rejected => "rejected",
            LedgerOutcome::Host(reason) => reason.code(),
        }
    }

    /// Reads what [`LedgerOutcome::as_str`] stored.
    pub(crate) fn from_ledger(text: &str) -> Self {
        match text {
            "row" => LedgerOutcome::Row,
            _ => match Reason::from_code(text).filter(|r| r.is_host()) {
                Some(reason) => LedgerOutcome::Host(reason),
                None => LedgerOutcome::Rejected,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_stored_reads_back() {
        for outcome in [
            LedgerOutcome::Row,
            LedgerOutcome::Rejected,
            LedgerOutcome::Host(Reason::ModuleFailed),
            LedgerOutcome::Host(Reason::SinkRefused),
        ] {
            assert_eq!(LedgerOutcome::from_ledger(outcome.as_str()), outcome);
        }
        let rule = Outcome::Rejected {
            reason: Reason::InvalidIp,
            message: String::new(),
            encrypted_body: String::new(),
        };
        assert_eq!(LedgerOutcome::of(&rule), LedgerOutcome::Rejected);
    }
}
