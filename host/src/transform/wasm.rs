//! The host side of the ABI in transform/ABI.md, in wasmtime's embedding steps: engine,
//! module, store (with limits), linker, instance, typed functions.

use std::sync::Arc;
use std::time::Duration;

use maskflow_transform::Message;
use wasmtime::{Engine, Instance, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, TypedFunc};

use crate::error::{Error, Result};

/// The module built from transform/ at compile time (host/build.rs), so the binary is self-contained.
pub static EMBEDDED_MODULE: &[u8] = include_bytes!(env!("MASKFLOW_MODULE_PATH"));

pub const ABI_VERSION: u32 = maskflow_transform::ABI_VERSION;
/// Epoch ticks are this far apart; deadlines are whole ticks.
const TICK: Duration = Duration::from_millis(10);

/// Sandbox limits for every instance.
#[derive(Debug, Clone, Copy)]
pub struct ModuleLimits {
    /// Linear memory cap; `memory.grow` past it fails inside the module.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call; a module still running then is interrupted (trap).
    pub call_timeout: Duration,
}

/// One message's result as the module returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Text (PostgreSQL input syntax) or NULL per column, in `WasmInstance::columns` order.
    Row(Vec<Option<String>>),
    Rejected { reason: String, message: String, encrypted_body: String },
}

/// A compiled module, shared by all workers; each worker instantiates its own.
#[derive(Clone)]
pub struct WasmModule {
    engine: Engine,
    module: Module,
    limits: ModuleLimits,
    config_json: Arc<str>,
}

impl WasmModule {
    pub fn compile(bytes: &[u8], limits: ModuleLimits, config_json: &str) -> Result<Self> {
        // 1. Engine: Cranelift, with epoch interruption so a looping module can be stopped.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| Error::Module(format!("cannot create the wasmtime engine: {e}")))?;

        // 2. Module: validated and compiled once, here.
        let module = Module::new(&engine, bytes).map_err(|e| Error::Module(format!("not a valid WebAssembly module: {e:#}")))?;
        if let Some(import) = module.imports().next() {
            return Err(Error::Module(format!(
                "the module imports `{}.{}`; a maskflow module is pure computation and imports nothing (ABI.md)",
                import.module(),
                import.name()
            )));
        }

        // The clock behind every deadline: one thread ticking the engine's epoch, ending with it.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(Error::io("cannot start the wasm epoch thread"))?;

        Ok(WasmModule { engine, module, limits, config_json: config_json.into() })
    }

    /// A fresh instance, initialised with the config. Errors here are the module's or the
    /// config's fault, not a message's: callers stop rather than reject messages.
    pub fn instantiate(&self) -> Result<WasmInstance> {
        // 3. Store: per-instance state, holding the memory cap.
        let limits = StoreLimitsBuilder::new().memory_size(self.limits.memory_bytes).instances(1).tables(4).memories(1).build();
        let mut store = Store::new(&self.engine, limits);
        store.limiter(|limits| limits);
        store.set_epoch_deadline(self.deadline_ticks());

        // 4. Linker: empty on purpose, the ABI has no imports.
        let linker: Linker<StoreLimits> = Linker::new(&self.engine);
        let instance = linker.instantiate(&mut store, &self.module).map_err(|e| Error::Module(format!("cannot instantiate: {e:#}")))?;

        // 5. Typed exports: a missing or mistyped one means this is not a maskflow ABI module.
        let abi_version: TypedFunc<(), u32> = typed(&instance, &mut store, "abi_version", "() -> i32")?;
        let version = abi_version.call(&mut store, ()).map_err(|e| Error::Module(format!("abi_version trapped: {e}")))?;
        if version != ABI_VERSION {
            return Err(Error::Module(format!("the module speaks ABI version {version}; this maskflow speaks {ABI_VERSION}")));
        }
        let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| Error::Module("the module exports no `memory`".into()))?;
        let mut wasm = WasmInstance {
            alloc: typed(&instance, &mut store, "alloc", "(i32) -> i32")?,
            dealloc: typed(&instance, &mut store, "dealloc", "(i32, i32) -> ()")?,
            init: typed(&instance, &mut store, "init", "(i32, i32) -> i64")?,
            transform_batch: typed(&instance, &mut store, "transform_batch", "(i32, i32) -> i64")?,
            store,
            memory,
            deadline_ticks: self.deadline_ticks(),
            columns: Vec::new(),
            input: Vec::new(),
        };

        // 6. init(config): the key and the mapping; the answer names the output columns.
        let config = self.config_json.as_bytes().to_vec();
        let init = wasm.init.clone();
        let result = wasm.call(init, &config).map_err(|e| Error::Module(format!("init failed: {e}")))?;
        let mut reader = Reader::new(&result);
        let count = reader.u32()?;
        wasm.columns = (0..count).map(|_| reader.string()).collect::<Result<_>>()?;
        Ok(wasm)
    }

    fn deadline_ticks(&self) -> u64 {
        (self.limits.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64
    }
}

fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    instance: &Instance,
    store: &mut Store<StoreLimits>,
    name: &str,
    signature: &str,
) -> Result<TypedFunc<P, R>> {
    instance
        .get_typed_func(store, name)
        .map_err(|e| Error::Module(format!("export `{name}` {signature} is missing or mistyped ({e}); is this a maskflow ABI v{ABI_VERSION} module?")))
}

/// A live instance: one per worker, used for many batches.
pub struct WasmInstance {
    store: Store<StoreLimits>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    dealloc: TypedFunc<(u32, u32), ()>,
    init: TypedFunc<(u32, u32), u64>,
    transform_batch: TypedFunc<(u32, u32), u64>,
    deadline_ticks: u64,
    columns: Vec<String>,
    input: Vec<u8>,
}

impl WasmInstance {
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// One `transform_batch` call. An error (trap, deadline, memory cap, malformed answer) leaves
    /// the instance unusable: drop it and instantiate again.
    pub fn transform(&mut self, messages: &[Message]) -> Result<Vec<Outcome>> {
        let mut input = std::mem::take(&mut self.input);
        input.clear();
        input.extend_from_slice(&(messages.len() as u32).to_le_bytes());
        for m in messages {
            put_bytes(&mut input, m.id.as_bytes());
            input.extend_from_slice(&m.sent_timestamp_ms.to_le_bytes());
            put_bytes(&mut input, m.body);
        }
        let transform_batch = self.transform_batch.clone();
        let result = self.call(transform_batch, &input);
        self.input = input;
        let result = result?;

        let mut reader = Reader::new(&result);
        let count = reader.u32()? as usize;
        if count != messages.len() {
            return Err(Error::Module(format!("answered {count} outcomes for {} messages", messages.len())));
        }
        let outcomes = (0..count)
            .map(|_| match reader.u8()? {
                0 => Ok(Outcome::Row((0..self.columns.len()).map(|_| reader.nullable_string()).collect::<Result<_>>()?)),
                1 => Ok(Outcome::Rejected { reason: reader.string()?, message: reader.string()?, encrypted_body: reader.string()? }),
                kind => Err(Error::Module(format!("unknown outcome kind {kind}"))),
            })
            .collect::<Result<Vec<_>>>()?;
        reader.finish()?;
        Ok(outcomes)
    }

    /// Copies `input` into module memory, calls `func`, copies the result out and frees the input.
    /// Returns the result payload after a status of 0; a status of 1 is the module's error text.
    fn call(&mut self, func: TypedFunc<(u32, u32), u64>, input: &[u8]) -> Result<Vec<u8>> {
        let trap = |what: &str, e: wasmtime::Error| Error::Module(format!("{what}: {}", describe_trap(&e)));
        self.store.set_epoch_deadline(self.deadline_ticks);
        let len = u32::try_from(input.len()).map_err(|_| Error::Module("input over 4 GiB".into()))?;
        let ptr = self.alloc.call(&mut self.store, len).map_err(|e| trap("alloc", e))?;
        if ptr == 0 && len > 0 {
            return Err(Error::Module(format!("alloc({len}) failed: the module is out of memory (see --module-memory-mb)")));
        }
        self.memory.write(&mut self.store, ptr as usize, input).map_err(|_| Error::Module("alloc returned memory out of bounds".into()))?;
        let packed = func.call(&mut self.store, (ptr, len)).map_err(|e| trap("call", e))?;
        let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        // One copy out of module memory: the payload after the status byte.
        let result = match self.memory.data(&self.store).get(out_ptr..out_ptr + out_len).map(<[u8]>::split_first) {
            None => Err(Error::Module("result points outside memory".into())),
            Some(Some((0, payload))) => Ok(payload.to_vec()),
            Some(Some((1, message))) => Err(Error::Module(format!("the module reported: {}", String::from_utf8_lossy(message)))),
            Some(_) => Err(Error::Module("malformed result status".into())),
        };
        self.dealloc.call(&mut self.store, (ptr, len)).map_err(|e| trap("dealloc", e))?;
        result
    }
}

fn describe_trap(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "interrupted: the call ran past its deadline (--module-timeout-ms)".into(),
        Some(trap) => format!("trapped: {trap}"),
        None => format!("{e:#}"),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads the module's little-endian result framing (ABI.md), refusing anything malformed.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader(bytes)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Module("result ends early".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn nullable_string(&mut self) -> Result<Option<String>> {
        match self.u32()? {
            u32::MAX => Ok(None),
            n => {
                let bytes = self.take(n as usize)?;
                String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| Error::Module("result text is not UTF-8".into()))
            }
        }
    }
    fn string(&mut self) -> Result<String> {
        self.nullable_string()?.ok_or_else(|| Error::Module("NULL where text was required".into()))
    }
    fn finish(&self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Module("trailing bytes in the result".into()))
        }
    }
}
