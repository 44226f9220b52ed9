//! The wasm runtime: a module with the ABI in transform/ABI.md, run by wasmtime in a sandbox
//! (no imports, a memory cap, a deadline per call). [`WasmModule`] is compiled once and shared;
//! each worker owns a [`WasmInstance`].

mod cache;
mod config;
mod error;
mod instance;
mod module;
mod trust;

pub use cache::ModuleCache;
pub(crate) use config::init_config;
pub use error::{Failure, ModuleError, Step};
pub use instance::{WasmInstance, MAX_TABLE_ELEMENTS};
pub use module::{ModuleLimits, WasmModule, EMBEDDED_MODULE};
