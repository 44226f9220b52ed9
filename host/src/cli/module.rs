//! Flags for the key and the module: `run` and `transform` share them.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use maskflow_transform::Key;

use super::mapping::load_mapping;
use crate::aws::Endpoint;
use crate::error::{Error, Result};
use crate::keys::{self, AwsKeySettings, KeyConfig, SourceSpec};
use crate::pipeline::ModuleConfig;
use crate::runtime::{ModuleCache, ModuleLimits, EMBEDDED_MODULE};

/// Where the key comes from.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KeyArgs {
    /// Key file: `id:base64` lines, the first masks, all unmask (see `maskflow keygen`).
    /// Without it (or --key-source), MASKFLOW_KEY holds the key file's content.
    #[arg(long, env = "MASKFLOW_KEY_FILE", value_name = "PATH", global = true)]
    pub(crate) key_file: Option<PathBuf>,
    /// Where the key file's text comes from: `file:PATH`, `env:VAR`, or
    /// `aws-secretsmanager:SECRET_ID[:VERSION_STAGE]` (a secret whose string is the key file's
    /// text; SECRET_ID a name or an ARN). In any of them a line may be KMS-wrapped
    /// (`maskflow keygen --kms-key-id`). SIGHUP makes `run` read it again (README "Key sources").
    #[arg(long, env = "MASKFLOW_KEY_SOURCE", value_name = "URI", global = true)]
    pub(crate) key_source: Option<String>,
    /// Secrets Manager endpoint URL for LocalStack and the like (`scripts/services env` sets
    /// it). Without it the AWS SDK's own resolution applies.
    #[arg(long, env = "MASKFLOW_SECRETSMANAGER_ENDPOINT", value_name = "URL", global = true)]
    pub(crate) secretsmanager_endpoint: Option<String>,
    /// KMS endpoint URL (for KMS-wrapped key lines) for LocalStack and the like.
    #[arg(long, env = "MASKFLOW_KMS_ENDPOINT", value_name = "URL", global = true)]
    pub(crate) kms_endpoint: Option<String>,
    /// Budget for reaching what the command needs at start: the key source (Secrets Manager,
    /// KMS) and, for `run`, SQS and PostgreSQL. Throttling and timeouts are retried within it;
    /// what does not answer within it is fatal (exit code 4).
    #[arg(
        long,
        env = "MASKFLOW_STARTUP_TIMEOUT",
        default_value_t = 30,
        value_name = "SECS",
        global = true
    )]
    pub(crate) startup_timeout: u64,
}

impl KeyArgs {
    /// The key source: `--key-source`, else `--key-file`, else `MASKFLOW_KEY` (never two of
    /// the first: which one was meant?).
    pub(crate) fn config(&self) -> Result<KeyConfig> {
        let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let source =
            match (set(&self.key_source), &self.key_file) {
                (Some(_), Some(_)) => return Err(Error::usage(
                    "both --key-source (MASKFLOW_KEY_SOURCE) and --key-file (MASKFLOW_KEY_FILE) \
                     are given: keep one",
                )),
                (Some(uri), None) => SourceSpec::parse(&uri).map_err(Error::usage)?,
                (None, Some(path)) => SourceSpec::File(path.clone()),
                (None, None) => SourceSpec::Env("MASKFLOW_KEY".into()),
            };
        Ok(KeyConfig {
            source,
            aws: AwsKeySettings {
                secretsmanager: aws_endpoint(set(&self.secretsmanager_endpoint)),
                kms: aws_endpoint(set(&self.kms_endpoint)),
            },
            budget: self.startup_timeout(),
        })
    }

    pub(crate) fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout)
    }

    /// The keys, the masking one first.
    pub(crate) fn load(&self) -> Result<Vec<Key>> {
        keys::load(&self.config()?)
    }

    /// Whether a key source is given (`maskflow keys` runs without one).
    pub(crate) fn given(&self) -> bool {
        self.key_source.is_some()
            || self.key_file.is_some()
            || std::env::var_os("MASKFLOW_KEY").is_some()
    }
}

/// An AWS endpoint override; LocalStack takes any credentials, so on localhost some are
/// supplied unless the user set their own.
pub(crate) fn aws_endpoint(url: Option<String>) -> Endpoint {
    let local = url.as_deref().is_some_and(|e| {
        ["://localhost", "://127.0.0.1", "://[::1]"].iter().any(|h| e.contains(h))
    });
    let own_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        || std::env::var_os("AWS_PROFILE").is_some();
    Endpoint { url, localstack_credentials: local && !own_credentials }
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
    /// The stage's config (the keys in it, the masking one first).
    pub(crate) fn into_config(self) -> Result<ModuleConfig> {
        let keys = self.key.load()?;
        let bytes = match &self.module {
            None => Cow::Borrowed(EMBEDDED_MODULE),
            Some(path) => Cow::Owned(
                std::fs::read(path)
                    .map_err(Error::io(format!("cannot read module {}", path.display())))?,
            ),
        };
        Ok(ModuleConfig {
            bytes,
            limits: ModuleLimits {
                memory_bytes: self.module_memory_mb << 20,
                call_timeout: Duration::from_millis(self.module_timeout_ms),
            },
            keys,
            mapping: load_mapping(self.mapping.as_deref())?,
            mask_cache: self.mask_cache,
            cache: module_cache(self.module_cache),
        })
    }
}
