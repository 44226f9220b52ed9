//! Steps 3-6 of wasmtime's embedding: store (with limits), linker, instance, typed exports,
//! then `init(config)`. The bytes crossing the boundary are `maskflow_transform::wire`'s.

use maskflow_transform::wire;
use maskflow_transform::{Message, Outcome};
use wasmtime::{Instance, Linker, Memory, Store, StoreLimits, StoreLimitsBuilder, TypedFunc};

use super::error::{Failure, ModuleError, Step};
use super::module::{WasmModule, ABI_VERSION};

type Result<T, E = ModuleError> = std::result::Result<T, E>;

/// An input buffer larger than this is dropped after its call rather than kept.
const KEEP_INPUT_BYTES: usize = 1 << 20;

/// Elements of any one table: `table.grow` past it fails inside the module, as `memory.grow`
/// does past the memory cap (without it a module could grow a table towards 2^32 entries of
/// host memory). A Rust module's function table holds a few hundred entries at most.
pub const MAX_TABLE_ELEMENTS: usize = 10_000;

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
    /// The encoded batch, reused between calls.
    input: Vec<u8>,
}

impl WasmInstance {
    pub(super) fn new(module: &WasmModule) -> Result<Self> {
        // 3. Store: per-instance state, holding the caps: memory bytes, table elements, and one
        // instance, one memory and a few tables per store.
        let limits = StoreLimitsBuilder::new()
            .memory_size(module.limits.memory_bytes)
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(1)
            .tables(4)
            .memories(1)
            .build();
        let mut store = Store::new(&module.engine, limits);
        store.limiter(|limits| limits);
        let deadline_ticks = module.limits.deadline_ticks();
        store.set_epoch_deadline(deadline_ticks);

        // 4. Linker: empty on purpose, the ABI has no imports.
        let linker: Linker<StoreLimits> = Linker::new(&module.engine);
        let instance = linker
            .instantiate(&mut store, &module.module)
            .map_err(|e| ModuleError::call(Step::Instantiate, e))?;

        // 5. Typed exports: a missing or mistyped one means this is not a maskflow ABI module.
        let abi_version: TypedFunc<(), u32> =
            typed(&instance, &mut store, "abi_version", "() -> i32")?;
        let version = abi_version
            .call(&mut store, ())
            .map_err(|e| ModuleError::call(Step::Instantiate, e))?;
        if version != ABI_VERSION {
            let failure = Failure::AbiVersion { found: version, expected: ABI_VERSION };
            return Err(ModuleError::new(Step::Instantiate, failure));
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(ModuleError::new(Step::Instantiate, Failure::NoMemory))?;
        let mut wasm = WasmInstance {
            alloc: typed(&instance, &mut store, "alloc", "(i32) -> i32")?,
            dealloc: typed(&instance, &mut store, "dealloc", "(i32, i32) -> ()")?,
            init: typed(&instance, &mut store, "init", "(i32, i32) -> i64")?,
            transform_batch: typed(&instance, &mut store, "transform_batch", "(i32, i32) -> i64")?,
            store,
            memory,
            deadline_ticks,
            columns: Vec::new(),
            input: Vec::new(),
        };

        // 6. init(config): the key and the mapping; the answer names the output columns. The
        // config's copy in module memory is wiped after the call (it holds the keys).
        let init = wasm.init.clone();
        let payload = wasm.call(Step::Init, init, module.config_json.as_bytes(), Wipe::Input)?;
        wasm.columns = wire::decode_columns(&payload)
            .map_err(|e| ModuleError::new(Step::Init, Failure::Malformed(e)))?;
        Ok(wasm)
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The size of the module's linear memory, which only grows (wasm cannot shrink it).
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// One `transform_batch` call. An error (trap, deadline, memory cap, malformed answer) leaves
    /// the instance unusable: drop it and instantiate again.
    pub fn transform(&mut self, messages: &[Message]) -> Result<Vec<Outcome>> {
        let mut input = std::mem::take(&mut self.input);
        input.clear();
        wire::encode_batch(&mut input, messages);
        let transform_batch = self.transform_batch.clone();
        let result = self.call(Step::Transform, transform_batch, &input, Wipe::No);
        // Keep the buffer for the next batch, unless a batch of big events grew it.
        if input.capacity() <= KEEP_INPUT_BYTES {
            self.input = input;
        }
        wire::decode_outcomes(&result?, messages.len(), self.columns.len())
            .map_err(|e| ModuleError::new(Step::Transform, Failure::Malformed(e)))
    }

    /// Copies `input` into module memory, calls `func`, copies the result payload out and frees
    /// the input (zeroed first with `Wipe::Input`). A status of 1 (the module's own error) is
    /// an error.
    fn call(
        &mut self,
        step: Step,
        func: TypedFunc<(u32, u32), u64>,
        input: &[u8],
        wipe: Wipe,
    ) -> Result<Vec<u8>> {
        let fail = |failure| ModuleError::new(step, failure);
        self.store.set_epoch_deadline(self.deadline_ticks);
        let len = u32::try_from(input.len())
            .map_err(|_| fail(Failure::InputTooLarge { bytes: input.len() }))?;
        let ptr = self.alloc.call(&mut self.store, len).map_err(|e| ModuleError::call(step, e))?;
        if ptr == 0 && len > 0 {
            return Err(fail(Failure::OutOfMemory { bytes: len }));
        }
        self.memory
            .write(&mut self.store, ptr as usize, input)
            .map_err(|_| fail(Failure::OutOfBounds { what: "alloc's answer" }))?;
        let packed =
            func.call(&mut self.store, (ptr, len)).map_err(|e| ModuleError::call(step, e))?;
        let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        // One copy out of module memory: the payload after the status byte.
        let result = match self
            .memory
            .data(&self.store)
            .get(out_ptr..out_ptr + out_len)
            .map(wire::split_result)
        {
            None => Err(fail(Failure::OutOfBounds { what: "the result" })),
            Some(Ok(Ok(payload))) => Ok(payload.to_vec()),
            Some(Ok(Err(failure))) => Err(fail(Failure::Reported(failure))),
            Some(Err(e)) => Err(fail(Failure::Malformed(e))),
        };
        if wipe == Wipe::Input {
            if let Some(copy) = self
                .memory
                .data_mut(&mut self.store)
                .get_mut(ptr as usize..ptr as usize + input.len())
            {
                copy.fill(0);
            }
        }
        self.dealloc.call(&mut self.store, (ptr, len)).map_err(|e| ModuleError::call(step, e))?;
        result
    }
}

/// Whether `call` zeroes its input in module memory before freeing it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wipe {
    Input,
    No,
}

fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    instance: &Instance,
    store: &mut Store<StoreLimits>,
    name: &'static str,
    signature: &'static str,
) -> Result<TypedFunc<P, R>> {
    instance.get_typed_func(store, name).map_err(|source| {
        let failure = Failure::Export { name, signature, abi: ABI_VERSION, source };
        ModuleError::new(Step::Instantiate, failure)
    })
}
