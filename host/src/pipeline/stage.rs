//! The module stage: the wasm runtime with the isolation that keeps one bad message, or one
//! bad call, from holding up a batch. A failed call (trap, deadline, memory cap) loses
//! nothing: the instance is replaced and the batch is retried in halves ([`bisect`]), so the
//! messages that are fine go through and a message that fails on its own, twice, is rejected
//! as `module_failed` (its body encrypted like any rejection). If no message of a batch can be
//! transformed the module itself is broken: that is an error, and the caller stops without
//! deleting anything.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use maskflow_transform::{BodySealer, Key, Mapping, Message, Outcome, Reason};

use crate::error::{Error, Result};
use crate::events::{event, Event};
use crate::isolate::{bisect, Attempt};
use crate::runtime::{
    init_config, ModuleCache, ModuleError, ModuleLimits, WasmInstance, WasmModule,
};
use crate::stop::Stop;

/// An instance whose memory grew past this (a batch of big events) is dropped after its call
/// and a fresh one made for the next: wasm memory never shrinks, so it would be held for good.
const RECYCLE_ABOVE_BYTES: usize = 16 << 20;

/// What the stage is made of (built by the CLI layer).
pub(crate) struct ModuleConfig {
    /// The module's bytes: the embedded one or `--module PATH`.
    pub(crate) bytes: Cow<'static, [u8]>,
    pub(crate) limits: ModuleLimits,
    /// The keys, the masking one first: they go into the `init` config JSON (ABI.md) with the
    /// mapping and the cache size, and are wiped once it is made.
    pub(crate) keys: Vec<Key>,
    pub(crate) mapping: Mapping,
    /// Slots of the module's mask cache.
    pub(crate) mask_cache: usize,
    /// Where compiled modules are kept between starts, if anywhere.
    pub(crate) cache: Option<ModuleCache>,
}

/// The module under one set of keys: what a stage masks and seals with.
pub(crate) struct Keyed {
    /// 0 at start, one more at each change of keys (SIGHUP): a stage that sees another
    /// generation than its own takes this one at its next batch.
    pub(crate) generation: u64,
    module: WasmModule,
    /// Encrypts bodies of messages the host rejects itself.
    sealer: BodySealer,
    /// `(key id, fingerprint)` of every key, the masking one first.
    pub(crate) fingerprints: Vec<(String, String)>,
}

impl Keyed {
    /// The id of the key that masks.
    pub(crate) fn masking_key(&self) -> &str {
        &self.fingerprints[0].0
    }
}

/// `(key id, fingerprint)` of each key, in order (never the key).
pub(crate) fn fingerprints(keys: &[Key]) -> Vec<(String, String)> {
    keys.iter().map(|k| (k.id().to_owned(), k.fingerprint())).collect()
}

/// The module compiled once and checked against its config: each worker makes its own
/// [`ModuleStage`] from it. The one constructor used by `run` and `transform`. Its keys can be
/// replaced while workers run ([`PreparedModule::rekey`]); each worker follows at a batch
/// boundary.
pub(crate) struct PreparedModule {
    keyed: RwLock<Arc<Keyed>>,
    mapping: Mapping,
    mask_cache: usize,
    columns: Vec<String>,
}

impl PreparedModule {
    pub(crate) fn prepare(config: ModuleConfig) -> Result<Self> {
        let (_, init_json) = init_config(&config.keys, config.mapping.clone(), config.mask_cache);
        let module =
            WasmModule::compile(&config.bytes, config.limits, &init_json, config.cache.as_ref())?;
        // Fail fast on a bad module or config, and learn the output columns.
        let columns = module.instantiate()?.columns().to_vec();
        let keyed = Keyed {
            generation: 0,
            module,
            sealer: BodySealer::new(&config.keys)?,
            fingerprints: fingerprints(&config.keys),
        };
        Ok(PreparedModule {
            keyed: RwLock::new(Arc::new(keyed)),
            mapping: config.mapping,
            mask_cache: config.mask_cache,
            columns,
        })
    }

    /// The module's output columns, in row order.
    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The keys stages mask with now.
    pub(crate) fn keyed(&self) -> Arc<Keyed> {
        self.keyed.read().expect("keys lock").clone()
    }

    /// Makes `keys` the ones stages mask with from their next batch on, once the module has
    /// taken them (`init` of a fresh instance). The compiled module stays.
    pub(crate) fn rekey(&self, keys: &[Key]) -> Result<Arc<Keyed>> {
        let current = self.keyed();
        let (_, init_json) = init_config(keys, self.mapping.clone(), self.mask_cache);
        let module = current.module.with_config(&init_json);
        drop(module.instantiate()?);
        let next = Arc::new(Keyed {
            generation: current.generation + 1,
            module,
            sealer: BodySealer::new(keys)?,
            fingerprints: fingerprints(keys),
        });
        *self.keyed.write().expect("keys lock") = next.clone();
        Ok(next)
    }

    /// A stage of its own (its own instance), for one worker.
    pub(crate) fn stage(&self) -> Result<ModuleStage> {
        let keyed = self.keyed();
        let mut stage = ModuleStage::new(keyed.module.clone(), keyed.sealer.clone())?;
        stage.generation = keyed.generation;
        Ok(stage)
    }
}

pub struct ModuleStage {
    module: WasmModule,
    instance: Option<WasmInstance>,
    sealer: BodySealer,
    /// The generation of keys this stage masks with ([`Keyed`]).
    generation: u64,
    /// Whether this module has transformed anything yet: a module that never has is not trusted
    /// to judge single messages.
    proven: bool,
    /// The last failed call's error, for the report when the module fails on everything.
    last_failure: Option<ModuleError>,
}

impl ModuleStage {
    pub fn new(module: WasmModule, sealer: BodySealer) -> Result<Self> {
        let instance = module.instantiate()?;
        Ok(ModuleStage {
            module,
            instance: Some(instance),
            sealer,
            generation: 0,
            proven: false,
            last_failure: None,
        })
    }

    /// Takes `keyed` if it is another generation than this stage's: the instance is dropped
    /// and the next call instantiates with the new keys. Called between batches, never within
    /// one. Returns whether the keys changed.
    pub(crate) fn follow(&mut self, keyed: &Keyed) -> bool {
        if keyed.generation == self.generation {
            return false;
        }
        self.module = keyed.module.clone();
        self.sealer = keyed.sealer.clone();
        self.generation = keyed.generation;
        self.instance = None;
        true
    }

    /// Seals bodies with the key this stage masks with.
    pub(crate) fn sealer(&self) -> &BodySealer {
        &self.sealer
    }

    /// One outcome per message, in order.
    pub fn run(&mut self, messages: &[Message]) -> Result<Vec<Outcome>> {
        let outcomes = bisect(self, messages, &mut Self::attempt, &mut Self::alone)?;
        let failed = outcomes.iter().filter(|o| is_rejected_as(o, Reason::ModuleFailed)).count();
        // A module that has never transformed anything is not trusted to judge messages one
        // by one; a run of failures of a module that has is the worker's to judge.
        if failed > 0 && !self.proven {
            return Err(Stop::ModuleNeverWorked { failed, last: self.last_failure.take() }.into());
        }
        Ok(outcomes)
    }

    fn attempt(&mut self, messages: &[Message]) -> Attempt<Vec<Outcome>, (), Error> {
        match self.call(messages) {
            Ok(Ok(outcomes)) => {
                self.proven = true;
                Attempt::Done(outcomes)
            }
            Ok(Err(e)) => {
                let error = crate::cause::report(&e);
                event!(warn, Event::ModuleCallFailed, messages = messages.len(), %error, "module call failed; retrying in smaller batches");
                self.last_failure = Some(e);
                Attempt::Bisect(())
            }
            Err(fatal) => Attempt::Stop(fatal.into()),
        }
    }

    /// A single message failed: one more try on a fresh instance, then it is the message.
    fn alone(&mut self, message: &Message, _why: ()) -> Result<Vec<Outcome>> {
        match self.call(std::slice::from_ref(message))? {
            Ok(outcomes) => return Ok(outcomes),
            Err(e) => self.last_failure = Some(e),
        }
        event!(
            warn,
            Event::MessageModuleFailed,
            message_id = message.id,
            "module fails on this message alone; rejecting it as module_failed"
        );
        Ok(vec![Outcome::Rejected {
            reason: Reason::ModuleFailed,
            message: "the transform module failed on this message (trap, deadline or memory cap)"
                .into(),
            encrypted_body: self.sealer.seal(message.body),
        }])
    }

    /// The outer error is fatal (the module cannot even be instantiated); the inner one is a
    /// failed call.
    fn call(
        &mut self,
        messages: &[Message],
    ) -> Result<Result<Vec<Outcome>, ModuleError>, ModuleError> {
        let instance = match self.instance.as_mut() {
            Some(instance) => instance,
            None => self.instance.insert(self.module.instantiate()?),
        };
        let result = instance.transform(messages);
        if result.is_err() || instance.memory_bytes() > RECYCLE_ABOVE_BYTES {
            self.instance = None; // a trapped store is not reused; a grown one is let go
        }
        Ok(result)
    }
}

/// Whether `outcome` is a rejection for `reason`.
pub(crate) fn is_rejected_as(outcome: &Outcome, reason: Reason) -> bool {
    matches!(outcome, Outcome::Rejected { reason: r, .. } if *r == reason)
}
