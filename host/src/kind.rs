//! What an error means for a run, and so its exit code (README "Exit codes"): the kinds every
//! part's error is sorted into. A leaf: the parts name their errors' kinds with it, and
//! `error.rs` gathers the errors above them.

/// What an error means for the run, and so its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bad or conflicting flag: the command line must change (exit 2).
    Usage,
    /// A setting to fix: credentials, permissions, a missing queue or database, TLS, the
    /// table's shape, the key, the module. Retrying will not help (exit 3).
    Config,
    /// Trouble that may heal by itself: SQS or PostgreSQL down, silent, throttling, failing
    /// over. Retried while running; at start, until the start-up budget runs out (exit 4).
    Transient,
    /// SQS or PostgreSQL did not answer within the start-up budget (exit 4).
    Unreachable,
    /// The data path cannot go on: a module that fails on everything, a table that refuses
    /// everything. Nothing of the batch was deleted (exit 5).
    Stopped,
    /// A bug (a worker panicked) or the machine failed us (I/O): exit 1.
    Internal,
}

impl Kind {
    /// The process's exit code for an error of this kind (README "Exit codes").
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Internal => 1,
            Kind::Usage => 2,
            Kind::Config => 3,
            Kind::Transient | Kind::Unreachable => 4,
            Kind::Stopped => 5,
        }
    }

    /// The kind's name in logs and events (`--log-format json`: `"kind": "config"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::Config => "config",
            Kind::Transient => "transient",
            Kind::Unreachable => "unreachable",
            Kind::Stopped => "stopped",
            Kind::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_documented_exit_code() {
        // README "Exit codes" and `maskflow run --help` promise these.
        let codes = [
            (Kind::Internal, 1),
            (Kind::Usage, 2),
            (Kind::Config, 3),
            (Kind::Transient, 4),
            (Kind::Unreachable, 4),
            (Kind::Stopped, 5),
        ];
        for (kind, code) in codes {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
        }
    }
}
