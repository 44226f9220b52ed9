//! Isolation around module calls. A failed call (trap, deadline, memory cap) loses nothing:
//! the instance is replaced and the batch is retried in halves, so the messages that are
//! fine go through and a message that fails on its own, twice, is rejected as `module_failed`
//! (its body encrypted like any rejection). If no message of a batch can be transformed the
//! module itself is broken: that is an error, and the caller stops without deleting anything.

use maskflow_transform::{Message, Transformer};
use tracing::warn;

use super::wasm::{Outcome, WasmInstance, WasmModule};
use crate::error::{Error, Result};

pub const MODULE_FAILED: &str = "module_failed";

pub struct TransformStage {
    module: WasmModule,
    instance: Option<WasmInstance>,
    /// Native twin of the module's key setup, to encrypt bodies of messages the module failed on.
    sealer: Transformer,
    /// Whether this module has transformed anything yet: a module that never has is not trusted
    /// to judge single messages.
    proven: bool,
}

impl TransformStage {
    pub fn new(module: WasmModule, sealer: Transformer) -> Result<Self> {
        let instance = module.instantiate()?;
        Ok(TransformStage { module, instance: Some(instance), sealer, proven: false })
    }

    /// A body encrypted as rejections carry it (for messages the host itself rejects).
    pub fn encrypt_body(&self, body: &[u8]) -> String {
        self.sealer.encrypt_body(body)
    }

    /// One outcome per message, in order.
    pub fn run(&mut self, messages: &[Message]) -> Result<Vec<Outcome>> {
        let outcomes = self.run_isolated(messages)?;
        let failed = outcomes.iter().filter(|o| matches!(o, Outcome::Rejected { reason, .. } if reason == MODULE_FAILED)).count();
        if failed > 0 && (failed == messages.len() && messages.len() > 1 || !self.proven) {
            return Err(Error::Module(format!(
                "the module failed on every message it was given ({failed}); nothing was deleted. Check --module, --module-timeout-ms and --module-memory-mb"
            )));
        }
        Ok(outcomes)
    }

    fn run_isolated(&mut self, messages: &[Message]) -> Result<Vec<Outcome>> {
        match self.call(messages)? {
            Ok(outcomes) => {
                self.proven = true;
                return Ok(outcomes);
            }
            Err(e) => warn!(messages = messages.len(), error = %e, "module call failed; retrying in smaller batches"),
        }
        if messages.len() > 1 {
            let (left, right) = messages.split_at(messages.len() / 2);
            let mut outcomes = self.run_isolated(left)?;
            outcomes.extend(self.run_isolated(right)?);
            return Ok(outcomes);
        }
        // A single message: one more try on a fresh instance, then it is the message.
        if let Ok(outcomes) = self.call(messages)? {
            return Ok(outcomes);
        }
        let message = &messages[0];
        warn!(message_id = message.id, "module fails on this message alone; rejecting it as {MODULE_FAILED}");
        Ok(vec![Outcome::Rejected {
            reason: MODULE_FAILED.into(),
            message: "the transform module failed on this message (trap, deadline or memory cap)".into(),
            encrypted_body: self.sealer.encrypt_body(message.body),
        }])
    }

    /// The outer error is fatal (the module cannot even be instantiated); the inner one is a
    /// failed call.
    fn call(&mut self, messages: &[Message]) -> Result<Result<Vec<Outcome>>> {
        let instance = match self.instance.as_mut() {
            Some(instance) => instance,
            None => self.instance.insert(self.module.instantiate()?),
        };
        let result = instance.transform(messages);
        if result.is_err() {
            self.instance = None; // a trapped store is not reused
        }
        Ok(result)
    }
}
