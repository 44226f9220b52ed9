//! The host's documented events: log records with a stable `event` field and typed fields,
//! part of maskflow's interface like its metrics and exit codes (docs/events.md lists each,
//! with its level and fields; a test keeps that list and this enum in step). With
//! `--log-format json` each is one JSON object per line:
//!
//! ```text
//! {"timestamp":"...","level":"DEBUG","event":"batch_committed","messages":500,"rows":490,...,"message":"batch committed","target":"maskflow::pipeline::worker"}
//! ```
//!
//! Everything else the host logs is free text for people, and may change.

/// A documented event. Emit it with `event!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// info: the host passed its start-up checks and receives.
    Started,
    /// info: SIGINT/SIGTERM: the batches in flight are finished, then the host exits.
    Stopping,
    /// error: the run (or command) ends on an error: `kind`, `exit_code`, `error`.
    Failed,
    /// info: the run's end: every count of the summary line.
    Done,
    /// info: the periodic stats line (`--stats-interval`, when stderr is not a terminal).
    Stats,
    /// debug: a receive handed messages to the workers.
    BatchReceived,
    /// debug: a batch goes into the module.
    BatchTransforming,
    /// debug: a batch's transaction begins.
    BatchCommitting,
    /// debug: a batch's transaction committed.
    BatchCommitted,
    /// debug: SQS deleted committed messages.
    BatchDeleted,
    /// info: SQS delivered messages again (the ledger skips any already committed).
    Redelivered,
    /// warn: a call failed in a way that heals and is retried: `retry` is the kind of
    /// `maskflow_retries_total` (`postgres`, `receive`, `delete`, `extend`).
    Retrying,
    /// warn: a service did not answer at start; the host waits within --startup-timeout.
    StartupWaiting,
    /// warn: SQS refused an entry of a batch call (`call`, `code`, `sender_fault`).
    EntryRefused,
    /// warn: committed messages could not be deleted; they will come back and be skipped.
    DeleteAbandoned,
    /// warn: another open transaction holds these messages' ledger entries (`held_by`); they
    /// go back to the queue uncommitted.
    MessagesReleased,
    /// info: PostgreSQL refused a row the module accepted; it is recorded as `sink_refused`.
    RowRefused,
    /// warn: a module call failed (trap, deadline, memory cap); the batch is retried in halves.
    ModuleCallFailed,
    /// warn: the module fails on this message alone; it is recorded as `module_failed`.
    MessageModuleFailed,
    /// debug or warn: what the compiled-module cache did (`outcome`).
    ModuleCache,
    /// error: a stage stops the host (a worker's error, or SQS refusing deletes).
    StageFailed,
    /// info: a pass of `maskflow rekey`; `rekey_done` at its end.
    RekeyPass,
    RekeyDone,
    /// info: `maskflow prune` deleted ledger entries.
    Pruned,
    /// info: `maskflow replay` finished (or, with `--dry-run`, counted): its end line's counts.
    ReplayDone,
    /// warn: `maskflow replay` left rejections whose bodies do not unseal (`key_id`, `why`).
    ReplaySkipped,
    /// info: a host added a column to one of maskflow's own tables (an older database upgraded
    /// in place at start).
    SchemaUpgraded,
    /// debug or warn: whether the process could be made not dumpable (`dumpable`).
    Hardening,
    /// info: /metrics, /healthz and /readyz are served.
    Serving,
    /// warn: a call of a key source failed (`source`: `aws-secretsmanager` or `kms`; `call`,
    /// `code`, `needs`: the refused permission, `transient`, `retry_in_ms` when retried).
    KeySourceFailed,
    /// info: SIGHUP read the key source again (`outcome`: `applied` or `unchanged`;
    /// `masking_key`, `previous`, `key_ids`, `generation`).
    KeysReloaded,
    /// error: SIGHUP could not read or use the key source; the running keys stay (`kind`,
    /// `error`, `masking_key`).
    KeysReloadFailed,
    /// debug: a worker masks with the new keys from this batch on (`generation`, `masking_key`).
    KeysFollowed,
    /// warn: a fail point fired (builds with the `failpoints` feature only).
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    Failpoint,
}

impl Event {
    #[cfg(test)]
    pub(crate) const ALL: [Event; 34] = [
        Event::Started,
        Event::Stopping,
        Event::Failed,
        Event::Done,
        Event::Stats,
        Event::BatchReceived,
        Event::BatchTransforming,
        Event::BatchCommitting,
        Event::BatchCommitted,
        Event::BatchDeleted,
        Event::Redelivered,
        Event::Retrying,
        Event::StartupWaiting,
        Event::EntryRefused,
        Event::DeleteAbandoned,
        Event::MessagesReleased,
        Event::RowRefused,
        Event::ModuleCallFailed,
        Event::MessageModuleFailed,
        Event::ModuleCache,
        Event::StageFailed,
        Event::RekeyPass,
        Event::RekeyDone,
        Event::Pruned,
        Event::ReplayDone,
        Event::ReplaySkipped,
        Event::SchemaUpgraded,
        Event::Hardening,
        Event::Serving,
        Event::KeySourceFailed,
        Event::KeysReloaded,
        Event::KeysReloadFailed,
        Event::KeysFollowed,
        Event::Failpoint,
    ];

    /// The `event` field's value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Stopping => "stopping",
            Event::Failed => "failed",
            Event::Done => "done",
            Event::Stats => "stats",
            Event::BatchReceived => "batch_received",
            Event::BatchTransforming => "batch_transforming",
            Event::BatchCommitting => "batch_committing",
            Event::BatchCommitted => "batch_committed",
            Event::BatchDeleted => "batch_deleted",
            Event::Redelivered => "redelivered",
            Event::Retrying => "retrying",
            Event::StartupWaiting => "startup_waiting",
            Event::EntryRefused => "entry_refused",
            Event::DeleteAbandoned => "delete_abandoned",
            Event::MessagesReleased => "messages_released",
            Event::RowRefused => "row_refused",
            Event::ModuleCallFailed => "module_call_failed",
            Event::MessageModuleFailed => "message_module_failed",
            Event::ModuleCache => "module_cache",
            Event::StageFailed => "stage_failed",
            Event::RekeyPass => "rekey_pass",
            Event::RekeyDone => "rekey_done",
            Event::Pruned => "pruned",
            Event::ReplayDone => "replay_done",
            Event::ReplaySkipped => "replay_skipped",
            Event::SchemaUpgraded => "schema_upgraded",
            Event::Hardening => "hardening",
            Event::Serving => "serving",
            Event::KeySourceFailed => "key_source_failed",
            Event::KeysReloaded => "keys_reloaded",
            Event::KeysReloadFailed => "keys_reload_failed",
            Event::KeysFollowed => "keys_followed",
            Event::Failpoint => "failpoint",
        }
    }
}

/// Emits a documented event: `event!(debug, Event::BatchCommitted, messages = n, "batch committed")`.
/// The level is tracing's macro name; fields and message are tracing's syntax.
macro_rules! event {
    ($level:ident, $event:expr, $($rest:tt)+) => {
        tracing::$level!(event = $crate::events::Event::as_str($event), $($rest)+)
    };
}
pub(crate) use event;

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn docs_list_every_event_and_nothing_else() {
        let docs = include_str!("../../docs/events.md");
        let documented: Vec<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let ours: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(documented, ours, "docs/events.md's table, in this order");
    }
}
