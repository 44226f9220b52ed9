//! `maskflow rejections`: what `user_logins_rejected` holds, to find the cause of a wave before
//! replaying it (README "When messages are rejected"). Counts by reason, by day and by the key
//! id that sealed the bodies; or, with `--limit N`, the rejections themselves: message id,
//! reason, times and the rejection's message (which names the field and rule, never a value).
//! Bodies stay sealed.

use std::io::Write;
use std::time::SystemTime;

use serde_json::json;

use crate::error::{Error, Result};
use crate::sink::{list_rejections, report_rejections, Listed, PostgresConfig, Report, Selection};

/// `maskflow rejections`' settings (built by `crate::cli`).
pub(crate) struct RejectionsConfig {
    pub(crate) postgres: PostgresConfig,
    pub(crate) selection: Selection,
    /// List this many rejections (the oldest first) instead of counting them.
    pub(crate) limit: Option<i64>,
    /// JSON instead of aligned text (one object; one per line when listing).
    pub(crate) json: bool,
}

pub(crate) fn run(config: RejectionsConfig) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let written = match config.limit {
        Some(limit) => {
            let listed = list_rejections(&config.postgres, &config.selection, limit)?;
            write_list(&mut out, &listed, config.json)
        }
        None => {
            let report = report_rejections(&config.postgres, &config.selection)?;
            match config.json {
                true => writeln!(out, "{}", report_json(&report)),
                false => write_report(&mut out, &report),
            }
        }
    };
    written.and_then(|()| out.flush()).map_err(Error::io("cannot write stdout"))
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn write_report(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    if report.by_reason.is_empty() {
        return writeln!(out, "no rejections selected");
    }
    let mut reasons: Vec<_> = report.by_reason.iter().collect();
    reasons.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    writeln!(out, "{:<20} {:>10}  {:<24}  {:<24}", "reason", "rejections", "oldest", "newest")?;
    for (reason, c) in &reasons {
        let (oldest, newest) = (time(c.oldest), time(c.newest));
        writeln!(out, "{reason:<20} {:>10}  {oldest:<24}  {newest:<24}", c.count)?;
    }
    let total: i64 = reasons.iter().map(|(_, c)| c.count).sum();
    let oldest = reasons.iter().map(|(_, c)| c.oldest).min().map(time).unwrap_or_default();
    let newest = reasons.iter().map(|(_, c)| c.newest).max().map(time).unwrap_or_default();
    writeln!(out, "{:<20} {total:>10}  {oldest:<24}  {newest:<24}", "total")?;
    writeln!(out, "\n{:<10}  {:<20} {:>10}", "day (UTC)", "reason", "rejections")?;
    for ((day, reason), n) in &report.by_day {
        writeln!(out, "{day:<10}  {reason:<20} {n:>10}")?;
    }
    writeln!(out, "\n{:<16} {:>10}", "sealed under", "rejections")?;
    for (key, n) in &report.by_key {
        writeln!(out, "{key:<16} {n:>10}")?;
    }
    if report.without_sent_time > 0 {
        writeln!(
            out,
            "\n{} recorded before their sent time was kept: a replay dates them by rejected_at",
            report.without_sent_time
        )?;
    }
    Ok(())
}

fn report_json(report: &Report) -> serde_json::Value {
    let by_reason: serde_json::Map<String, serde_json::Value> = report
        .by_reason
        .iter()
        .map(|(reason, c)| {
            let counts =
                json!({"count": c.count, "oldest": time(c.oldest), "newest": time(c.newest)});
            (reason.clone(), counts)
        })
        .collect();
    let by_day: Vec<_> = report
        .by_day
        .iter()
        .map(|((day, reason), n)| json!({"day": day, "reason": reason, "count": n}))
        .collect();
    json!({
        "total": report.by_reason.values().map(|c| c.count).sum::<i64>(),
        "oldest": report.by_reason.values().map(|c| c.oldest).min().map(time),
        "newest": report.by_reason.values().map(|c| c.newest).max().map(time),
        "by_reason": by_reason,
        "by_day": by_day,
        "by_key": report.by_key,
        "without_sent_time": report.without_sent_time,
    })
}

fn write_list(out: &mut impl Write, listed: &[Listed], json: bool) -> std::io::Result<()> {
    for r in listed {
        let sent = r.sent_at.map(time);
        match json {
            true => writeln!(
                out,
                "{}",
                json!({"message_id": r.message_id, "reason": r.reason, "message": r.message,
                       "rejected_at": time(r.rejected_at), "sent_at": sent})
            )?,
            false => writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                r.message_id,
                r.reason,
                time(r.rejected_at),
                sent.as_deref().unwrap_or("-"),
                r.message
            )?,
        }
    }
    Ok(())
}
