//! How a module failed, and at which step. A module that cannot be loaded or initialised is a
//! setting to fix (`--module`, or the keys and mapping it is given): nothing can run. A call
//! that fails is a batch failure: the stage drops the instance and retries the batch in halves
//! (`pipeline::stage`), and only a module that fails on everything stops the host.

use maskflow_transform::wire::{ModuleFailure, WireError};
use thiserror::Error;

use crate::kind::Kind;

/// Where in the module's life it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the engine, validating and compiling the module (or loading it from the cache).
    Compile,
    /// Instantiating it, checking its exports and ABI version.
    Instantiate,
    /// `init(config)`: the keys and the mapping.
    Init,
    /// A `transform_batch` call (with its `alloc` and `dealloc`).
    Transform,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Compile => "compile",
            Step::Instantiate => "instantiate",
            Step::Init => "init",
            Step::Transform => "transform_batch",
        }
    }
}

/// What went wrong.
#[derive(Debug, Error)]
pub enum Failure {
    #[error("interrupted: the call ran past its deadline (--module-timeout-ms)")]
    Deadline,
    #[error("trapped: {0}")]
    Trap(wasmtime::Trap),
    #[error("alloc({bytes}) failed: the module is out of memory (see --module-memory-mb)")]
    OutOfMemory { bytes: u32 },
    /// An error value the module returned (ABI.md: "errors are values, never traps"), with
    /// the kind its status byte names (ABI.md "Status codes").
    #[error("the module reported: {0}")]
    Reported(ModuleFailure),
    #[error("not a valid WebAssembly module")]
    Invalid(#[source] wasmtime::Error),
    #[error("the module imports `{module}.{name}`; a maskflow module is pure computation and imports nothing (ABI.md)")]
    Imports { module: String, name: String },
    #[error(
        "export `{name}` {signature} is missing or mistyped; is this a maskflow ABI v{abi} module?"
    )]
    Export {
        name: &'static str,
        signature: &'static str,
        abi: u32,
        #[source]
        source: wasmtime::Error,
    },
    #[error("the module exports no `memory`")]
    NoMemory,
    #[error("the module speaks ABI version {found}; this maskflow speaks {expected}")]
    AbiVersion { found: u32, expected: u32 },
    #[error("{what} points outside the module's memory")]
    OutOfBounds { what: &'static str },
    #[error("malformed result")]
    Malformed(#[source] WireError),
    #[error("an input of {bytes} bytes is over the 4 GiB a wasm32 module can address")]
    InputTooLarge { bytes: usize },
    /// wasmtime itself failed (an engine that cannot be made, a store that cannot be used).
    #[error("wasmtime")]
    Wasmtime(#[source] wasmtime::Error),
    /// The OS refused the epoch thread that enforces deadlines.
    #[error("cannot start the wasm epoch thread")]
    EpochThread(#[source] std::io::Error),
}

#[derive(Debug, Error)]
#[error("wasm module: {}: {failure}", step.as_str())]
pub struct ModuleError {
    step: Step,
    #[source]
    failure: Failure,
}

impl ModuleError {
    pub(crate) fn new(step: Step, failure: Failure) -> Self {
        ModuleError { step, failure }
    }

    /// A failed call of `step` from wasmtime's error: a deadline, a trap, or wasmtime itself.
    pub(crate) fn call(step: Step, e: wasmtime::Error) -> Self {
        let failure = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => Failure::Deadline,
            Some(trap) => Failure::Trap(*trap),
            None => Failure::Wasmtime(e),
        };
        ModuleError { step, failure }
    }

    pub fn step(&self) -> Step {
        self.step
    }

    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// A module that cannot be set up is a setting; a call that fails is a batch that cannot
    /// be transformed (when it reaches the top: the stage could not isolate it).
    pub fn kind(&self) -> Kind {
        match self.step {
            Step::Compile | Step::Instantiate | Step::Init => Kind::Config,
            Step::Transform => Kind::Stopped,
        }
    }
}
