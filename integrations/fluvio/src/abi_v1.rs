//! The ABI v1 module (transform/ABI.md) under plain wasmtime 34, the engine's own wasmtime:
//! a like-for-like speed figure for the SmartModule (same rules, same records, same run).
//! Only what a benchmark needs; the maskflow host's driver is host/src/transform/wasm.rs.

use anyhow::{bail, Context, Result};
use wasmtime::{Config, Engine, Instance, Memory, Module, Store, TypedFunc};

use crate::Msg;

pub struct AbiV1 {
    store: Store<()>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    dealloc: TypedFunc<(u32, u32), ()>,
    transform_batch: TypedFunc<(u32, u32), u64>,
    input: Vec<u8>,
}

impl AbiV1 {
    /// `fuel`: meter instructions as fluvio-smartengine does (`consume_fuel`), to tell its cost
    /// apart from the rest of the engine's.
    pub fn new(wasm: &[u8], config_json: &str, fuel: bool) -> Result<Self> {
        let engine = Engine::new(Config::new().consume_fuel(fuel))?;
        let mut store = Store::new(&engine, ());
        if fuel {
            store.set_fuel(u64::MAX / 4)?;
        }
        let instance = Instance::new(&mut store, &Module::new(&engine, wasm)?, &[])?;
        let memory = instance.get_memory(&mut store, "memory").context("no memory export")?;
        let init = instance.get_typed_func::<(u32, u32), u64>(&mut store, "init")?;
        let mut module = AbiV1 {
            alloc: instance.get_typed_func(&mut store, "alloc")?,
            dealloc: instance.get_typed_func(&mut store, "dealloc")?,
            transform_batch: instance.get_typed_func(&mut store, "transform_batch")?,
            store,
            memory,
            input: Vec::new(),
        };
        module.call(init, config_json.as_bytes().to_vec())?;
        Ok(module)
    }

    /// One `transform_batch` call; returns the result payload (count, then outcomes).
    pub fn transform(&mut self, messages: &[Msg]) -> Result<Vec<u8>> {
        let mut input = std::mem::take(&mut self.input);
        input.clear();
        input.extend_from_slice(&(messages.len() as u32).to_le_bytes());
        for m in messages {
            put_bytes(&mut input, m.id.as_bytes());
            input.extend_from_slice(&m.sent_timestamp_ms.to_le_bytes());
            put_bytes(&mut input, m.body);
        }
        let out = self.call(self.transform_batch.clone(), input)?;
        let count = u32::from_le_bytes(out.get(..4).context("short result")?.try_into()?);
        if count as usize != messages.len() {
            bail!("{count} outcomes for {} messages", messages.len());
        }
        Ok(out)
    }

    fn call(&mut self, func: TypedFunc<(u32, u32), u64>, input: Vec<u8>) -> Result<Vec<u8>> {
        let len = input.len() as u32;
        let ptr = self.alloc.call(&mut self.store, len)?;
        self.memory.write(&mut self.store, ptr as usize, &input)?;
        self.input = input;
        let packed = func.call(&mut self.store, (ptr, len))?;
        let (at, n) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let result = self.memory.data(&self.store).get(at..at + n).context("result outside memory")?.to_vec();
        self.dealloc.call(&mut self.store, (ptr, len))?;
        match result.split_first() {
            Some((0, payload)) => Ok(payload.to_vec()),
            Some((1, message)) => bail!("module error: {}", String::from_utf8_lossy(message)),
            _ => bail!("malformed result"),
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}
