//! The compiled-module cache. Cranelift needs about 0.2 CPU seconds (1.5 G instructions) to
//! compile the module: at start-up of every `run` and every `maskflow transform`, and as much
//! as 9,000 messages' worth of the host's own work (docs/benchmarks.md). A start with the same
//! module and the same wasmtime loads the machine code from here instead, in milliseconds.
//!
//! Loading machine code means running it, so the cache is trusted only as far as the binary:
//! - it is read only from a directory this user owns that nobody else can write (it is
//!   created 0700); anything else is refused with a warning and the module compiled;
//! - each file carries the SHA-256 of its contents, checked before use, so a damaged file is
//!   compiled again rather than loaded;
//! - files are written under a temporary name and renamed, so a crash or a second host
//!   starting at the same moment never leaves half a file under the real name;
//! - the name is the SHA-256 of the module's bytes and of wasmtime's compatibility hash (its
//!   version and engine settings), so another module or another wasmtime never matches.
//!
//! Nothing here fails a run: a cache that cannot be read or written costs a compile.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use wasmtime::{Engine, Module};

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
    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Module> {
        if let Err(why) = self.trusted() {
            warn!(dir = %self.dir.display(), "module cache not used: {why}; compiling the module");
            return Module::new(engine, bytes);
        }
        let path = self.entry(engine, bytes);
        if let Some(module) = load(engine, &path) {
            debug!(path = %path.display(), "module loaded from the cache");
            return Ok(module);
        }
        let module = Module::new(engine, bytes)?;
        match module.serialize().map(|artifact| store(&path, &artifact)) {
            Ok(Ok(())) => debug!(path = %path.display(), "compiled module cached"),
            Ok(Err(e)) => {
                warn!(path = %path.display(), error = %e, "cannot write the module cache")
            }
            Err(e) => warn!(error = %e, "cannot serialise the compiled module"),
        }
        Ok(module)
    }

    /// Creates the directory (0700) if missing; refuses one that someone else could write.
    fn trusted(&self) -> Result<(), String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| format!("cannot create it ({e})"))?;
        let me = std::fs::metadata("/proc/self").map_err(|e| format!("no /proc/self ({e})"))?;
        let dir = std::fs::metadata(&self.dir).map_err(|e| e.to_string())?;
        if dir.uid() != me.uid() {
            return Err(format!("owned by uid {}, not this user ({})", dir.uid(), me.uid()));
        }
        if dir.mode() & 0o022 != 0 {
            return Err(format!("mode {:o}: group or others can write it", dir.mode() & 0o777));
        }
        Ok(())
    }

    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut compatibility = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut compatibility);
        let digest = Sha256::new()
            .chain_update(bytes)
            .chain_update(compatibility.finish().to_le_bytes())
            .finalize();
        self.dir.join(format!("{}.cwasm", hex(&digest)))
    }
}

/// A cached module, if the file is there, intact, and accepted by this wasmtime.
fn load(engine: &Engine, path: &Path) -> Option<Module> {
    let file = std::fs::read(path).ok()?;
    let (digest, artifact) = file.split_at_checked(DIGEST_LEN)?;
    if Sha256::digest(artifact).as_slice() != digest {
        warn!(path = %path.display(), "damaged module cache entry; compiling again");
        return None;
    }
    // SAFETY: `artifact` is what `Module::serialize` wrote into a directory only this user can
    // write (`trusted`), unchanged since (the digest above); wasmtime itself checks that it was
    // compiled by this version with these settings and refuses it otherwise.
    match unsafe { Module::deserialize(engine, artifact) } {
        Ok(module) => Some(module),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "module cache entry refused; compiling again");
            None
        }
    }
}

fn store(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    let written = write_new(&temporary, artifact).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn write_new(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&Sha256::digest(artifact))?;
    file.write_all(artifact)?;
    file.sync_all()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
