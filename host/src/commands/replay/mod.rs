//! `maskflow replay`: rejected messages processed again, exactly once, beside running hosts,
//! after their cause was fixed (a mapping, the rules, the table). Each selected rejection's
//! body is unsealed with the key file, judged by the current module and mapping with its
//! original SQS `SentTimestamp` (so `create_date` is its send day), and written back in one
//! transaction per batch (`sink::replay`: rows in, rejections out, ledger updated; what is still
//! rejected stays, its reason and message updated). Streams in batches bounded in count and
//! bytes: memory does not grow with the number of rejections.

mod db;
mod error;
mod tally;
mod unseal;

pub use self::error::{ReplayError, Unsealable};
pub use self::tally::Tally;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use maskflow_transform::{Key, Message, Outcome, Reason};

use self::db::Database;
use self::tally::Fate;
use self::unseal::Unsealer;
use crate::error::{Error, Result};
use crate::isolate::{bisect, Attempt, Merge};
use crate::metrics::ReplayMetrics;
use crate::pipeline::{ModuleConfig, ModuleStage, PreparedModule};
use crate::serve::{self, Readiness};
use crate::shutdown::Shutdown;
use crate::sink::{Applied, Item, PostgresConfig, PostgresError, Rejected, Selection};

/// Sealed bodies read per batch at most (the batch size caps the count): with the clear bodies
/// and the module's copies, a batch holds a few times this.
const MAX_BATCH_BYTES: i64 = 4 << 20;

/// `maskflow replay`'s settings (built by `crate::cli`).
pub(crate) struct ReplayConfig {
    pub(crate) postgres: PostgresConfig,
    /// The current module and mapping: what judges the bodies again.
    pub(crate) module: ModuleConfig,
    /// The key file's keys: they unseal the bodies.
    pub(crate) keys: Vec<Key>,
    pub(crate) selection: Selection,
    /// Count what would change; change nothing (every transaction is rolled back).
    pub(crate) dry_run: bool,
    /// Rejections per transaction.
    pub(crate) batch_size: usize,
    pub(crate) metrics_addr: Option<SocketAddr>,
}

/// Replays the selected rejections; returns what it did (the table and end line are the
/// caller's to print). Bodies that do not unseal are left as they are and make this an error
/// ([`ReplayError::Skipped`]) once everything else is done.
pub(crate) fn run(config: ReplayConfig) -> Result<(Tally, Duration)> {
    let started = Instant::now();
    let fingerprints = config.keys.iter().map(|k| (k.id().to_owned(), k.fingerprint())).collect();
    let unsealer = Unsealer::new(&config.keys)?;
    let module = PreparedModule::prepare(config.module)?;
    let mut stage = module.stage()?;
    let metrics = ReplayMetrics::default();
    let _server = match config.metrics_addr {
        Some(addr) => Some(serve_metrics(addr, &metrics)?),
        None => None,
    };
    let mut db = Database::open(&config.postgres, module.columns().to_vec(), fingerprints)?;
    // The set is fixed at the start: what hosts reject meanwhile waits for the next replay.
    let mut selection = config.selection;
    selection.until.get_or_insert_with(SystemTime::now);
    let (selected, _) = db.call(|r| r.count(&selection))??;
    metrics.replay_selected.set(selected as i64);
    let mut tally = Tally { selected, ..Tally::default() };
    let bar = ProgressBar::new(selected).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rejections {elapsed} (ETA {eta}) {msg}")
            .expect("valid template"),
    );
    let heartbeat = metrics.loops().register("replay");
    let mut after = String::new();
    let mut judge = Judge { stage: &mut stage, unsealer: &unsealer, metrics: &metrics };
    loop {
        heartbeat.beat();
        let limit = config.batch_size as i64;
        let batch = db.call(|r| r.next(&selection, &after, limit, MAX_BATCH_BYTES))??;
        let Some(last) = batch.last() else { break };
        after = last.id.clone();
        judge.batch(&mut db, &batch, !config.dry_run, &mut tally)?;
        metrics.replay_done.inc_by(batch.len() as u64);
        bar.inc(batch.len() as u64);
        bar.set_message(format!("{} rows", tally.rows()));
    }
    bar.finish_and_clear();
    Ok((tally, started.elapsed()))
}

/// What judges and writes one batch.
struct Judge<'a> {
    stage: &'a mut ModuleStage,
    unsealer: &'a Unsealer,
    metrics: &'a ReplayMetrics,
}

impl Judge<'_> {
    fn batch(
        &mut self,
        db: &mut Database,
        batch: &[Rejected],
        commit: bool,
        tally: &mut Tally,
    ) -> Result<()> {
        let mut opened = Vec::with_capacity(batch.len());
        for rejected in batch {
            match self.unsealer.open(&rejected.sealed) {
                Ok(body) => opened.push((rejected, body)),
                Err((key_id, why)) => {
                    self.metrics.skipped(&key_id, why);
                    *tally.skipped.entry((key_id, why)).or_default() += 1;
                    tally.add(&rejected.reason, Fate::Skipped);
                }
            }
        }
        let messages: Vec<Message> = opened
            .iter()
            .map(|(r, body)| Message {
                id: &r.id,
                body,
                sent_timestamp_ms: r.sent_ms.unwrap_or(r.rejected_ms),
            })
            .collect();
        let fallback = opened.iter().filter(|(r, _)| r.sent_ms.is_none()).count() as u64;
        tally.sent_time_fallback += fallback;
        self.metrics.replay_sent_time_fallback.inc_by(fallback);
        let outcomes = self.stage.run(&messages)?;
        drop(messages);
        let items: Vec<Item> = opened
            .iter()
            .zip(&outcomes)
            .map(|((r, _), outcome)| Item {
                id: &r.id,
                sent_timestamp_ms: r.sent_ms.unwrap_or(r.rejected_ms),
                outcome,
            })
            .collect();
        let Isolated { applied, refused } = apply_isolating(db, &items, commit)?;
        // Rows PostgreSQL still refuses stay rejected, as `sink_refused` with today's reason.
        let refusals: Vec<Outcome> = refused
            .iter()
            .map(|(_, why)| Outcome::Rejected {
                reason: Reason::SinkRefused,
                message: format!("PostgreSQL refused the row: {}", why.data_problem()),
                encrypted_body: String::new(),
            })
            .collect();
        let refused_items: Vec<Item> = refused
            .iter()
            .zip(&refusals)
            .map(|((item, _), outcome)| Item { outcome, ..*item })
            .collect();
        let recorded = match refused_items.is_empty() {
            true => Applied::default(),
            false => db.call(|r| r.apply(&refused_items, commit))??,
        };
        tally.changed += applied.changed + recorded.changed;
        let fates = opened.iter().zip(&outcomes).map(|((r, _), outcome)| {
            let refusal = refused_items.iter().find(|i| i.id == r.id);
            let fate = match refusal.map(|i| i.outcome).unwrap_or(outcome) {
                Outcome::Row(_) if applied.landed.contains(&r.id) => Fate::Row,
                Outcome::Row(_) => Fate::Gone,
                Outcome::Rejected { reason, .. } => Fate::Rejected(reason.code()),
            };
            (r, fate)
        });
        for (r, fate) in fates {
            match &fate {
                Fate::Row => _ = self.metrics.replay_rows.inc(),
                Fate::Rejected(reason) => self.metrics.still_rejected(reason, 1),
                Fate::Skipped | Fate::Gone => {}
            }
            tally.add(&r.reason, fate);
        }
        Ok(())
    }
}

/// What a batch's transactions did, and the rows PostgreSQL refused on their own.
#[derive(Default)]
struct Isolated<'i> {
    applied: Applied,
    refused: Vec<(Item<'i>, PostgresError)>,
}

impl Merge for Isolated<'_> {
    fn merge(&mut self, other: Self) {
        let (a, b) = (&mut self.applied, other.applied);
        a.rows += b.rows;
        a.landed.extend(b.landed);
        a.changed += b.changed;
        a.gone += b.gone;
        self.refused.extend(other.refused);
    }
}

/// Applies the batch in one transaction; if PostgreSQL refuses a row, in halves, down to the
/// rows refused on their own (returned, not written), while the rest lands.
fn apply_isolating<'i>(
    db: &mut Database,
    items: &'i [Item<'i>],
    commit: bool,
) -> Result<Isolated<'i>> {
    let attempt =
        &mut |db: &mut Database, slice: &'i [Item<'i>]| match db.call(|r| r.apply(slice, commit)) {
            Ok(Ok(applied)) => Attempt::Done(Isolated { applied, refused: Vec::new() }),
            Ok(Err(refused)) => Attempt::Bisect(refused),
            Err(e) => Attempt::Stop(e),
        };
    let alone = &mut |_: &mut Database, item: &'i Item<'i>, why: PostgresError| {
        Ok::<_, Error>(Isolated { applied: Applied::default(), refused: vec![(*item, why)] })
    };
    bisect(db, items, attempt, alone)
}

/// `--metrics-addr`: the replay's series, on a runtime of their own (kept while it runs).
fn serve_metrics(addr: SocketAddr, metrics: &ReplayMetrics) -> Result<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    let (registry, loops) = (metrics.registry(), metrics.loops().clone());
    let ready = Arc::new(Readiness::ready());
    let stuck_after = Duration::from_secs(600); // a batch waits for PostgreSQL 2 minutes at most
    serve::start(&runtime, addr, registry, loops, ready, Shutdown::default(), stuck_after)?;
    Ok(runtime)
}
