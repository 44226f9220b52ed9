//! The compiled-module cache. Cranelift needs about 0.2 CPU seconds (1.5 G instructions) to
//! compile the module: at start-up of every `run` and every `maskflow transform`, and as much
//! as 9,000 messages' worth of the host's own work (docs/benchmarks.md). A start with the same
//! module and the same wasmtime loads the machine code from here instead, in milliseconds.
//!
//! Loading machine code means running it, so the cache is trusted only as far as the binary:
//! - it is read only from a directory this user owns that nobody else can write (it is
//!   created 0700), reached through directories nobody else controls, and only entries this
//!   user owns that nobody else can write, all checked on descriptors opened without
//!   following links (`trust.rs`); anything else is refused with a warning and the module
//!   compiled;
//! - each file carries the SHA-256 of its contents, checked before use, so a damaged file is
//!   compiled again rather than loaded;
//! - files are written under a temporary name and renamed, so a crash or a second host
//!   starting at the same moment never leaves half a file under the real name;
//! - the name is the SHA-256 of the module's bytes and of wasmtime's compatibility hash (its
//!   version and engine settings), so another module or another wasmtime never matches.
//!
//! Nothing here fails a run: a cache that cannot be read or written costs a compile.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use crate::events::{event, Event};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::trust::TrustedDir;

const DIGEST_LEN: usize = 32;

/// A directory of compiled modules (`--module-cache`).
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    pub fn new(dir: PathBuf) -> Self {
        ModuleCache { dir }
    }

    /// The module compiled for `engine`: loaded from the cache when a good entry is there,
    /// compiled (and stored) otherwise.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<Module> {
        let dir = match TrustedDir::open(&self.dir) {
            Ok(dir) => dir,
            Err(why) => {
                let dir = self.dir.display();
                event!(warn, Event::ModuleCache, outcome = "unused", %dir, %why, "module cache not used: {why}; compiling the module");
                return Module::new(engine, bytes);
            }
        };
        let name = entry_name(engine, bytes);
        let path = self.dir.join(&name);
        if let Some(module) = load(engine, &dir, &name, &path) {
            event!(debug, Event::ModuleCache, outcome = "loaded", path = %path.display(), "module loaded from the cache");
            return Ok(module);
        }
        let module = Module::new(engine, bytes)?;
        match module.serialize() {
            Ok(artifact) => match dir.write(&name, &[&Sha256::digest(&artifact), &artifact]) {
                Ok(()) => {
                    event!(debug, Event::ModuleCache, outcome = "stored", path = %path.display(), "compiled module cached")
                }
                Err(e) => {
                    event!(warn, Event::ModuleCache, outcome = "unwritable", path = %path.display(), error = %e, "cannot write the module cache")
                }
            },
            Err(e) => {
                event!(warn, Event::ModuleCache, outcome = "unwritable", error = %e, "cannot serialise the compiled module")
            }
        }
        Ok(module)
    }
}

/// The name of `bytes`' entry compiled by `engine`.
fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut compatibility = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compatibility);
    let digest = Sha256::new()
        .chain_update(bytes)
        .chain_update(compatibility.finish().to_le_bytes())
        .finalize();
    format!("{}.cwasm", hex(&digest))
}

/// A cached module, if the entry is there, trusted, intact, and accepted by this wasmtime.
fn load(engine: &Engine, dir: &TrustedDir, name: &str, path: &std::path::Path) -> Option<Module> {
    let file = match dir.read(name) {
        Ok(file) => file?,
        Err(why) => {
            event!(warn, Event::ModuleCache, outcome = "refused", path = %path.display(), %why, "module cache entry refused: {why}; compiling again");
            return None;
        }
    };
    let (digest, artifact) = file.split_at_checked(DIGEST_LEN)?;
    if Sha256::digest(artifact).as_slice() != digest {
        event!(warn, Event::ModuleCache, outcome = "damaged", path = %path.display(), "damaged module cache entry; compiling again");
        return None;
    }
    // SAFETY: `artifact` is what `Module::serialize` wrote into a directory only this user
    // controls, read from a file only this user can write (`TrustedDir`), unchanged since (the
    // digest above); wasmtime itself checks that it was compiled by this version with these
    // settings and refuses it otherwise.
    match unsafe { Module::deserialize(engine, artifact) } {
        Ok(module) => Some(module),
        Err(e) => {
            event!(warn, Event::ModuleCache, outcome = "refused", path = %path.display(), error = %e, "module cache entry refused; compiling again");
            None
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
