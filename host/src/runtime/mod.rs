//! The wasm runtime: a module with the ABI in transform/ABI.md, run by wasmtime in a sandbox
//! (no imports, a memory cap, a deadline per call). [`WasmModule`] is compiled once and shared;
//! each worker owns a [`WasmInstance`].

mod cache;
mod instance;
mod module;
mod trust;

pub use cache::ModuleCache;
pub use instance::{WasmInstance, MAX_TABLE_ELEMENTS};
pub use maskflow_transform::Outcome;
pub use module::{ModuleLimits, WasmModule, ABI_VERSION, EMBEDDED_MODULE};
