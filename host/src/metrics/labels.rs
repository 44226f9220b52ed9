//! The metrics' label sets, typed: a label's values are a closed set (bounded cardinality,
//! as Prometheus needs), written as the text the rest of the host uses.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::commands::replay::Unsealable;

/// A label value written as the text the rest of the host uses.
macro_rules! label_value {
    ($ty:ty) => {
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    };
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub reason: &'static str,
}

/// A column of the rows: the mapping's names (a handful, fixed for the run).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ColumnLabel {
    pub column: String,
}

/// Where a message's time goes, for the summary and `scripts/bench`'s profile.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum Phase {
    /// ReceiveMessage calls, long-poll waits included.
    Receive,
    /// The wasm module (and the host's framing around it).
    Module,
    /// The PostgreSQL transaction: ledger, rows, rejections, commit.
    Commit,
    /// DeleteMessageBatch calls after the commit.
    Delete,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Receive => "receive",
            Phase::Module => "module",
            Phase::Commit => "commit",
            Phase::Delete => "delete",
        }
    }
}
label_value!(Phase);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PhaseLabel {
    pub phase: Phase,
}

/// What a retry was for: the `kind` label of `maskflow_retries_total`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A commit (or connect) waiting for PostgreSQL to come back.
    Postgres,
    /// ReceiveMessage failed and will be called again.
    Receive,
    /// A DeleteMessageBatch entry failed and is sent again.
    Delete,
    /// ChangeMessageVisibilityBatch failed and is sent again.
    Extend,
}

impl Retry {
    pub(crate) const ALL: [Retry; 4] =
        [Retry::Postgres, Retry::Receive, Retry::Delete, Retry::Extend];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Retry::Postgres => "postgres",
            Retry::Receive => "receive",
            Retry::Delete => "delete",
            Retry::Extend => "extend",
        }
    }
}
label_value!(Retry);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RetryLabel {
    pub kind: Retry,
}

/// The SQS batch call an entry failure came from.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum BatchCall {
    Delete,
    ChangeVisibility,
}

impl BatchCall {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BatchCall::Delete => "delete",
            BatchCall::ChangeVisibility => "change_visibility",
        }
    }
}
label_value!(BatchCall);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EntryFailureLabels {
    pub call: BatchCall,
    /// SQS' error code (`ReceiptHandleIsInvalid`, `InternalError`, ...).
    pub code: String,
}

/// Why messages went back to SQS uncommitted.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum Released {
    /// Another open transaction holds their ledger entries.
    Locked,
}

impl Released {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Released::Locked => "locked",
        }
    }
}
label_value!(Released);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReleasedLabel {
    pub why: Released,
}

label_value!(Unsealable);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SkippedLabels {
    /// The key id in front of the sealed body (a few per deployment).
    pub key_id: String,
    pub why: Unsealable,
}

/// What a SIGHUP did to the keys: the `outcome` label of `maskflow_key_reloads_total`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum KeyReload {
    /// New keys read, checked and taken: workers mask with them from their next batch.
    Applied,
    /// The source holds the keys already running.
    Unchanged,
    /// The source could not be read or its keys were refused: the running keys stay.
    Failed,
}

impl KeyReload {
    pub(crate) const ALL: [KeyReload; 3] =
        [KeyReload::Applied, KeyReload::Unchanged, KeyReload::Failed];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeyReload::Applied => "applied",
            KeyReload::Unchanged => "unchanged",
            KeyReload::Failed => "failed",
        }
    }
}
label_value!(KeyReload);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KeyReloadLabel {
    pub outcome: KeyReload,
}

/// A key id (`k2`): a handful per deployment, never the key.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KeyIdLabel {
    pub key_id: String,
}
