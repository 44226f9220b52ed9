//! Flags of `maskflow rejections` and `maskflow replay` (README "When messages are rejected").

use std::time::SystemTime;

use maskflow_transform::Reason;

use super::module::ModuleArgs;
use super::postgres::PostgresArgs;
use super::run::parse_metrics_addr;
use crate::commands::rejections::RejectionsConfig;
use crate::commands::replay::ReplayConfig;
use crate::error::{Error, Result};
use crate::sink::Selection;

/// Shown at the end of `maskflow replay --help` (README "Exit codes" says the same).
pub(crate) const REPLAY_EXIT_CODES: &str = "Exit codes:\n  \
    0  done: every selected rejection was judged again (those still rejected stay, updated)\n  \
    2  usage: a bad flag (an unknown reason, a time that does not parse)\n  \
    3  configuration: the key, the module, the mapping or the table; another replay holds the \
       database; or some bodies did not unseal (a key missing from the key file): they were \
       skipped, everything else was replayed\n  \
    4  unreachable: PostgreSQL did not come back within 2 minutes\n  \
    5  the module failed on every message of a batch";

/// Which rejections: `--reason` (repeatable), `--since`, `--until` (times of `rejected_at`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SelectionArgs {
    /// Only rejections of this reason code (repeat the flag for several); default: every reason.
    #[arg(long, value_name = "REASON")]
    pub(crate) reason: Vec<String>,
    /// Only rejections recorded at or after this time: RFC 3339 (2026-12-07T10:00:00Z), a day
    /// (2026-12-07, midnight UTC) or how long ago (36h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) since: Option<SystemTime>,
    /// Only rejections recorded before this time (same forms as --since). A replay never takes
    /// what was rejected after it started: that waits for the next one.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) until: Option<SystemTime>,
}

impl SelectionArgs {
    pub(crate) fn into_selection(self) -> Result<Selection> {
        if let Some(unknown) = self.reason.iter().find(|r| Reason::from_code(r).is_none()) {
            let known: Vec<&str> =
                Reason::ALL.iter().chain(&Reason::HOST).map(|r| r.code()).collect();
            return Err(Error::usage(format!(
                "--reason {unknown}: not a reason code; use one of {}",
                known.join(", ")
            )));
        }
        Ok(Selection { reasons: self.reason, since: self.since, until: self.until })
    }
}

/// Counts rejections by reason, day and key id; or lists them (`--limit`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RejectionsArgs {
    #[command(flatten)]
    pub(crate) postgres: PostgresArgs,
    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
    /// List the N oldest selected rejections (message id, reason, rejected and sent times,
    /// message) instead of counting them. Bodies are never shown.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) limit: Option<u32>,
    /// JSON: one object of counts, or one object per line when listing.
    #[arg(long)]
    pub(crate) json: bool,
}

impl RejectionsArgs {
    pub(crate) fn into_config(self) -> Result<RejectionsConfig> {
        Ok(RejectionsConfig {
            postgres: self.postgres.into_config()?,
            selection: self.selection.into_selection()?,
            limit: self.limit.map(i64::from),
            json: self.json,
        })
    }
}

/// Replays rejected messages through the current module and mapping, exactly once.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    pub(crate) postgres: PostgresArgs,
    /// The module, its sandbox, the key file (which unseals the bodies) and `--mapping`: the
    /// fixed mapping the rejections are judged by now.
    #[command(flatten)]
    pub(crate) module: ModuleArgs,
    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
    /// Print what would change, by reason; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Rejections per transaction (fewer if their bodies are large).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) batch_size: u32,
    /// Serve the replay's own counts on /metrics (and /healthz, /readyz) at this address while
    /// it runs, e.g. 0.0.0.0:9899.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<String>,
}

impl ReplayArgs {
    pub(crate) fn into_config(self) -> Result<ReplayConfig> {
        let module = self.module.into_config()?;
        // The bodies are unsealed, and the table's key fingerprints checked, with the same keys.
        let keys = module.keys.clone();
        Ok(ReplayConfig {
            postgres: self.postgres.into_config()?,
            module,
            keys,
            selection: self.selection.into_selection()?,
            dry_run: self.dry_run,
            batch_size: self.batch_size as usize,
            metrics_addr: parse_metrics_addr(self.metrics_addr.as_deref().unwrap_or(""))?,
        })
    }
}

/// RFC 3339 (lax: a space for `T`, no zone means UTC), a day (midnight UTC), or a duration ago.
fn parse_time(text: &str) -> std::result::Result<SystemTime, String> {
    let text = text.trim();
    let is_day = text.len() == 10 && text.as_bytes().get(4) == Some(&b'-');
    let stamp = if is_day { format!("{text}T00:00:00Z") } else { text.to_owned() };
    if let Ok(time) = humantime::parse_rfc3339_weak(&stamp) {
        return Ok(time);
    }
    match humantime::parse_duration(text) {
        Ok(ago) => SystemTime::now().checked_sub(ago).ok_or_else(|| format!("`{text}`: too long ago")),
        Err(_) => Err(format!(
            "`{text}`: give a time (2026-12-07T10:00:00Z), a day (2026-12-07) or how long ago (36h, 7d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn times_are_rfc3339_days_or_durations_ago() {
        let at = |s| parse_time(s).unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(at("2023-11-14T22:13:20Z"), 1_700_000_000);
        assert_eq!(at("2023-11-14 22:13:20"), 1_700_000_000);
        assert_eq!(at("2023-11-14"), 1_699_920_000);
        let then = parse_time("36h").unwrap();
        let ago = SystemTime::now().duration_since(then).unwrap();
        assert!(ago >= Duration::from_secs(36 * 3600) && ago < Duration::from_secs(36 * 3600 + 60));
        assert!(parse_time("yesterday").is_err());
    }
}
