//! SIGHUP: the key source is read again, without a restart (README "Key sources": rotation).
//! New keys are checked as at start (the database's fingerprints in `maskflow_keys`: a
//! different key under a known id is refused; the module's `init` with them) and then made the
//! current ones: each worker masks with the new first key from its next batch on (never within
//! a batch), while the compiled module stays. A source that fails keeps the running keys and
//! says so (`keys_reload_failed`, `maskflow_key_reloads_total{outcome="failed"}`): no outage.

use std::sync::Arc;
use std::time::Instant;

use tokio::signal::unix::{signal, SignalKind};

use super::stage::{fingerprints, Keyed, PreparedModule};
use super::startup::within_budget;
use crate::error::{Error, Result};
use crate::events::{event, Event};
use crate::keys::{self, KeyConfig};
use crate::metrics::{KeyReload, Metrics};
use crate::shutdown::Shutdown;
use crate::sink::{PostgresConfig, PostgresSink};

/// What one reload did.
enum Outcome {
    Applied { previous: Arc<Keyed>, next: Arc<Keyed> },
    Unchanged(Arc<Keyed>),
}

enum Message {
    Reload,
    Stop,
}

/// The thread that reloads on SIGHUP, one reload at a time.
pub(crate) struct Reloader {
    tx: flume::Sender<Message>,
    thread: std::thread::JoinHandle<()>,
}

/// What a reload reads and checks.
pub(crate) struct Reload {
    pub(crate) keys: KeyConfig,
    pub(crate) postgres: PostgresConfig,
    pub(crate) module: Arc<PreparedModule>,
    pub(crate) metrics: Metrics,
    pub(crate) shutdown: Shutdown,
}

impl Reloader {
    /// Installs the SIGHUP handler on `runtime` (from then on SIGHUP no longer ends the
    /// process) and starts the thread that reloads.
    pub(crate) fn start(runtime: &tokio::runtime::Runtime, reload: Reload) -> Result<Reloader> {
        let (tx, rx) = flume::unbounded();
        let mut hangup = {
            let _guard = runtime.enter();
            signal(SignalKind::hangup()).map_err(Error::io("cannot install the SIGHUP handler"))?
        };
        let on_signal = tx.clone();
        runtime.spawn(async move {
            while hangup.recv().await.is_some() {
                if on_signal.send(Message::Reload).is_err() {
                    break;
                }
            }
        });
        reload.metrics.set_masking_key(reload.module.keyed().masking_key(), None);
        let thread = std::thread::Builder::new()
            .name("key-reload".into())
            .spawn(move || {
                while let Ok(Message::Reload) = rx.recv() {
                    // Signals that came meanwhile are answered by this one read of the source.
                    let stop = rx.drain().any(|m| matches!(m, Message::Stop));
                    reload.once();
                    if stop {
                        break;
                    }
                }
            })
            .map_err(Error::io("cannot start the key reload thread"))?;
        Ok(Reloader { tx, thread })
    }

    /// Ends the thread once a reload under way is done.
    pub(crate) fn stop(self) {
        let _ = self.tx.send(Message::Stop);
        let _ = self.thread.join();
    }
}

impl Reload {
    fn once(&self) {
        match self.read_and_check() {
            Ok(Outcome::Applied { previous, next }) => {
                self.metrics.key_reloaded(KeyReload::Applied);
                self.metrics.set_masking_key(next.masking_key(), Some(previous.masking_key()));
                event!(
                    info,
                    Event::KeysReloaded,
                    outcome = KeyReload::Applied.as_str(),
                    masking_key = next.masking_key(),
                    previous = previous.masking_key(),
                    key_ids = ids(&next),
                    generation = next.generation,
                    "keys reloaded: `{}` masks from each worker's next batch on",
                    next.masking_key()
                );
            }
            Ok(Outcome::Unchanged(current)) => {
                self.metrics.key_reloaded(KeyReload::Unchanged);
                event!(
                    info,
                    Event::KeysReloaded,
                    outcome = KeyReload::Unchanged.as_str(),
                    masking_key = current.masking_key(),
                    previous = current.masking_key(),
                    key_ids = ids(&current),
                    generation = current.generation,
                    "keys reloaded: unchanged"
                );
            }
            Err(e) => {
                self.metrics.key_reloaded(KeyReload::Failed);
                let (kind, error) = (e.kind().as_str(), e.report());
                event!(
                    error,
                    Event::KeysReloadFailed,
                    kind,
                    %error,
                    masking_key = self.module.keyed().masking_key(),
                    "key reload failed; the running keys stay"
                );
            }
        }
    }

    fn read_and_check(&self) -> Result<Outcome> {
        let keys = keys::load(&self.keys)?;
        let current = self.module.keyed();
        let fingerprints = fingerprints(&keys);
        if fingerprints == current.fingerprints {
            return Ok(Outcome::Unchanged(current));
        }
        // As at start: new ids are recorded, and a known id with another key is refused.
        let deadline = Instant::now() + self.keys.budget;
        let mut sink = PostgresSink::new(&self.postgres, self.module.columns().to_vec())?;
        let what = format!("PostgreSQL at {}", sink.endpoint());
        within_budget(&what, deadline, &self.shutdown, || {
            sink.prepare(&fingerprints, deadline).map_err(Error::from)
        })?;
        let next = self.module.rekey(&keys)?;
        Ok(Outcome::Applied { previous: current, next })
    }
}

/// `k2,k1`: the key ids, the masking one first.
fn ids(keyed: &Keyed) -> String {
    keyed.fingerprints.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(",")
}
