//! Flags for the key and the module: `run` and `transform` share them.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use maskflow_transform::{BodySealer, Key};

use super::mapping::load_mapping;
use crate::error::{Error, Result};
use crate::keys;
use crate::pipeline::ModuleConfig;
use crate::runtime::{init_config, ModuleCache, ModuleLimits, EMBEDDED_MODULE};

/// Where the key comes from.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KeyArgs {
    /// Key file: `id:base64` lines, the first masks, all unmask (see `maskflow keygen`).
    /// Without it, MASKFLOW_KEY holds the key file's content.
    #[arg(long, env = "MASKFLOW_KEY_FILE", value_name = "PATH", global = true)]
    pub(crate) key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// `--key-file` wins over `MASKFLOW_KEY` (the key file's text: `id:base64` lines).
    pub(crate) fn load(&self) -> Result<Vec<Key>> {
        Ok(keys::load(self.key_file.as_deref())?)
    }

    /// Whether a key source is given (`maskflow keys` runs without one).
    pub(crate) fn given(&self) -> bool {
        keys::configured(self.key_file.as_deref())
    }
}

/// The transform module, its sandbox, and what `init` is given.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ModuleArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// A WebAssembly module with the maskflow ABI (transform/ABI.md) to use instead of the
    /// built-in one.
    #[arg(long, env = "MASKFLOW_MODULE", value_name = "PATH")]
    pub(crate) module: Option<PathBuf>,
    /// JSON mapping (input paths -> columns) replacing the built-in `user_logins` mapping.
    #[arg(long, env = "MASKFLOW_MAPPING", value_name = "PATH")]
    pub(crate) mapping: Option<PathBuf>,
    /// Wall-clock budget of one module call; a module still running then is stopped.
    #[arg(long, env = "MASKFLOW_MODULE_TIMEOUT_MS", default_value_t = 5_000, value_name = "MS")]
    pub(crate) module_timeout_ms: u64,
    /// Linear memory cap of each module instance.
    #[arg(long, env = "MASKFLOW_MODULE_MEMORY_MB", default_value_t = 64, value_name = "MB")]
    pub(crate) module_memory_mb: usize,
    /// Slots of the per-column mask cache in the module (0 disables it). The cache switches
    /// itself off while its hit rate is below what it costs, and probes again now and then.
    #[arg(long, env = "MASKFLOW_MASK_CACHE", default_value_t = 4096)]
    pub(crate) mask_cache: usize,
    /// Directory of compiled modules, so a restart skips compiling the module (about 0.2 CPU
    /// s); `off` to compile at every start. Default: $XDG_CACHE_HOME/maskflow/modules, else
    /// ~/.cache/maskflow/modules. Used only if this user owns it and nobody else can write it.
    #[arg(long, env = "MASKFLOW_MODULE_CACHE", value_name = "DIR|off")]
    pub(crate) module_cache: Option<PathBuf>,
}

/// `--module-cache`, or the XDG default; `None` when off or when there is no home to put it in.
fn module_cache(flag: Option<PathBuf>) -> Option<ModuleCache> {
    let dir = match flag {
        Some(dir) if dir.as_os_str() == "off" || dir.as_os_str().is_empty() => return None,
        Some(dir) => dir,
        None => {
            let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
            env("XDG_CACHE_HOME")
                .or_else(|| env("HOME").map(|home| home.join(".cache")))?
                .join("maskflow/modules")
        }
    };
    Some(ModuleCache::new(dir))
}

impl ModuleArgs {
    /// The stage's config, and the keys (for their fingerprints).
    pub(crate) fn into_config(self) -> Result<(ModuleConfig, Vec<Key>)> {
        let keys = self.key.load()?;
        let (_, init_json) =
            init_config(&keys, load_mapping(self.mapping.as_deref())?, self.mask_cache);
        let bytes = match &self.module {
            None => Cow::Borrowed(EMBEDDED_MODULE),
            Some(path) => Cow::Owned(
                std::fs::read(path)
                    .map_err(Error::io(format!("cannot read module {}", path.display())))?,
            ),
        };
        let config = ModuleConfig {
            bytes,
            limits: ModuleLimits {
                memory_bytes: self.module_memory_mb << 20,
                call_timeout: Duration::from_millis(self.module_timeout_ms),
            },
            init_json,
            sealer: BodySealer::new(&keys)?,
            cache: module_cache(self.module_cache),
        };
        Ok((config, keys))
    }
}
