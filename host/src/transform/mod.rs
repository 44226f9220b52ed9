//! The transform stage: the wasm module run by wasmtime ([`wasm`]), with the isolation that
//! keeps one bad message, or one bad call, from holding up a batch ([`stage`]).

mod args;
pub mod stage;
pub mod wasm;

pub use args::ModuleArgs;
pub use stage::TransformStage;
pub use wasm::{ModuleLimits, Outcome, WasmInstance, WasmModule};
