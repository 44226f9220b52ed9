//! Steps 1-2 of wasmtime's embedding (engine, module) and the sandbox limits every instance
//! gets; the instance steps are in `instance.rs`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Module};
use zeroize::Zeroizing;

use super::error::{Failure, ModuleError, Step};
use super::{ModuleCache, WasmInstance};

type Result<T, E = ModuleError> = std::result::Result<T, E>;

/// The module built from transform/ and shipped in the crate (host/module/README.md), so the
/// binary is self-contained and building it needs no wasm toolchain.
pub static EMBEDDED_MODULE: &[u8] = include_bytes!("../../module/maskflow_transform.wasm");

pub(crate) const ABI_VERSION: u32 = maskflow_transform::ABI_VERSION;
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

impl ModuleLimits {
    pub(super) fn deadline_ticks(&self) -> u64 {
        (self.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64
    }
}

/// A compiled module, shared by all workers; each worker instantiates its own.
#[derive(Clone)]
pub struct WasmModule {
    pub(super) engine: Engine,
    pub(super) module: Module,
    pub(super) limits: ModuleLimits,
    /// The `init` JSON (it holds the keys): kept to instantiate again, wiped when the last
    /// clone of the module is dropped.
    pub(super) config_json: Arc<Zeroizing<String>>,
}

impl WasmModule {
    /// `cache`: where compiled modules are kept between starts (`--module-cache`), if anywhere.
    pub fn compile(
        bytes: &[u8],
        limits: ModuleLimits,
        config_json: &str,
        cache: Option<&ModuleCache>,
    ) -> Result<Self> {
        // 1. Engine: Cranelift, with epoch interruption so a looping module can be stopped.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)
            .map_err(|e| ModuleError::new(Step::Compile, Failure::Wasmtime(e)))?;

        // 2. Module: validated and compiled once, here (or loaded, compiled, from the cache).
        let module = match cache {
            Some(cache) => cache.load_or_compile(&engine, bytes),
            None => Module::new(&engine, bytes),
        }
        .map_err(|e| ModuleError::new(Step::Compile, Failure::Invalid(e)))?;
        if let Some(import) = module.imports().next() {
            let (module, name) = (import.module().to_owned(), import.name().to_owned());
            return Err(ModuleError::new(Step::Compile, Failure::Imports { module, name }));
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
            .map_err(|e| ModuleError::new(Step::Compile, Failure::EpochThread(e)))?;

        let config_json = Arc::new(Zeroizing::new(config_json.to_owned()));
        Ok(WasmModule { engine, module, limits, config_json })
    }

    /// The same compiled module, instantiated with another `init` config (new keys): nothing
    /// is compiled again.
    pub(crate) fn with_config(&self, config_json: &str) -> WasmModule {
        WasmModule {
            engine: self.engine.clone(),
            module: self.module.clone(),
            limits: self.limits,
            config_json: Arc::new(Zeroizing::new(config_json.to_owned())),
        }
    }

    /// A fresh instance, initialised with the config. Errors here are the module's or the
    /// config's fault, not a message's: callers stop rather than reject messages.
    pub fn instantiate(&self) -> Result<WasmInstance> {
        WasmInstance::new(self)
    }
}
