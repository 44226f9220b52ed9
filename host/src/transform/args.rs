use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use maskflow_transform::Config;

use super::wasm::{ModuleLimits, EMBEDDED_MODULE};
use crate::error::{Error, Result};
use crate::keys::{self, KeyArgs};

/// The transform module, its sandbox, and what `init` is given.
#[derive(Debug, Clone, clap::Args)]
pub struct ModuleArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// A WebAssembly module with the maskflow ABI (transform/ABI.md) to use instead of the
    /// built-in one.
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// JSON mapping (input paths -> columns) replacing the built-in `user_logins` mapping.
    #[arg(long, value_name = "PATH")]
    pub mapping: Option<PathBuf>,
    /// Wall-clock budget of one module call; a module still running then is stopped.
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    pub module_timeout_ms: u64,
    /// Linear memory cap of each module instance.
    #[arg(long, default_value_t = 64, value_name = "MB")]
    pub module_memory_mb: usize,
    /// Slots of the per-column mask cache in the module (0 disables it).
    #[arg(long, default_value_t = 4096)]
    pub mask_cache: usize,
}

impl ModuleArgs {
    pub fn transform_config(&self) -> Result<(Config, String)> {
        keys::transform_config(&keys::load(&self.key)?, self.mapping.as_deref(), self.mask_cache)
    }

    pub fn module_bytes(&self) -> Result<Cow<'static, [u8]>> {
        match &self.module {
            None => Ok(Cow::Borrowed(EMBEDDED_MODULE)),
            Some(path) => std::fs::read(path).map(Cow::Owned).map_err(Error::io(format!("cannot read module {}", path.display()))),
        }
    }

    pub fn limits(&self) -> ModuleLimits {
        ModuleLimits { memory_bytes: self.module_memory_mb << 20, call_timeout: Duration::from_millis(self.module_timeout_ms) }
    }
}
