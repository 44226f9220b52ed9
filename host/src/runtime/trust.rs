//! Opening the module cache by descriptor, trusting only what this user controls.
//!
//! A cache entry is machine code the host will run, so whoever can write it, or rename any
//! directory on its way, can run code as the host. The trust model (README "Module cache"):
//! - the directory's path is resolved once (`canonicalize`), then walked from `/` one
//!   component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)`: a symlink swapped in after
//!   the resolution fails the walk instead of being followed;
//! - every directory on the way is owned by root or by this user (the effective uid) and
//!   nobody else may write it, except a root-owned sticky directory such as `/tmp` (others can
//!   create names there, but not replace ours, and what they create is not theirs to us: the
//!   next component must pass the same test);
//! - the cache directory itself and each entry (opened `O_NOFOLLOW`, checked with `fstat` on
//!   the opened descriptor, never by path) belong to this user, and nobody else may write them;
//!   an entry is a regular file.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

/// An open, trusted cache directory.
pub(super) struct TrustedDir {
    dir: File,
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `openat(dir, name, flags)` as a `File`.
fn open_at(
    dir: Option<&File>,
    name: &[u8],
    flags: libc::c_int,
    mode: libc::mode_t,
) -> std::io::Result<File> {
    let name = CString::new(name).map_err(|_| std::io::Error::other("NUL in a path"))?;
    let base = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: `name` is NUL-terminated and outlives the call; `base` is an open descriptor or
    // AT_FDCWD; the returned descriptor is owned by nothing else.
    let fd =
        unsafe { libc::openat(base, name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is not owned elsewhere.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;

/// Why a directory on the way to the cache is not trusted, if it is not.
fn check_ancestor(uid: u32, mode: u32, me: u32) -> Result<(), String> {
    if uid != 0 && uid != me {
        return Err(format!("owned by uid {uid}, neither root nor this user ({me})"));
    }
    let sticky_root = uid == 0 && mode & libc::S_ISVTX != 0;
    if mode & 0o022 != 0 && !sticky_root {
        return Err(format!("mode {:o}: group or others can write it", mode & 0o7777));
    }
    Ok(())
}

impl TrustedDir {
    /// Opens `path` (created 0700 if missing), or says why it is not trusted.
    pub(super) fn open(path: &Path) -> Result<Self, String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode_0700()
            .create(path)
            .map_err(|e| format!("cannot create it ({e})"))?;
        let real = path.canonicalize().map_err(|e| format!("cannot resolve it ({e})"))?;
        let me = euid();
        let mut dir =
            open_at(None, b"/", DIR_FLAGS, 0).map_err(|e| format!("cannot open / ({e})"))?;
        let mut walked = std::path::PathBuf::from("/");
        for component in real.components() {
            let Component::Normal(name) = component else { continue };
            let meta = dir.metadata().map_err(|e| e.to_string())?;
            check_ancestor(meta.uid(), meta.mode(), me)
                .map_err(|why| format!("{}: {why}", walked.display()))?;
            walked.push(name);
            dir = open_at(Some(&dir), name.as_bytes(), DIR_FLAGS, 0).map_err(|e| {
                format!("cannot open {} without following links ({e})", walked.display())
            })?;
        }
        let meta = dir.metadata().map_err(|e| e.to_string())?;
        if meta.uid() != me {
            return Err(format!("owned by uid {}, not this user ({me})", meta.uid()));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!("mode {:o}: group or others can write it", meta.mode() & 0o777));
        }
        Ok(TrustedDir { dir })
    }

    /// The entry `name`'s bytes, if it exists and is trusted; `Err` says why it is refused.
    pub(super) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        use std::io::Read;
        let mut file =
            match open_at(Some(&self.dir), name.as_bytes(), libc::O_RDONLY | libc::O_NOFOLLOW, 0) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot open it without following links ({e})")),
            };
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        if meta.uid() != euid() {
            return Err(format!("owned by uid {}, not this user ({})", meta.uid(), euid()));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!("mode {:o}: group or others can write it", meta.mode() & 0o777));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(Some(bytes))
    }

    /// Writes `parts` to a new temporary entry (0600, `O_EXCL`) and renames it to `name`
    /// inside the opened directory, so a reader never sees half a file.
    pub(super) fn write(&self, name: &str, parts: &[&[u8]]) -> std::io::Result<()> {
        use std::io::Write;
        let temporary = format!("{name}.{}.tmp", std::process::id());
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let written =
            open_at(Some(&self.dir), temporary.as_bytes(), flags, 0o600).and_then(|mut file| {
                parts.iter().try_for_each(|part| file.write_all(part))?;
                file.sync_all()?;
                self.rename(&temporary, name)
            });
        if written.is_err() {
            self.unlink(&temporary);
        }
        written
    }

    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        let (from, to) = (cstring(from)?, cstring(to)?);
        let fd = self.dir.as_raw_fd();
        // SAFETY: both names are NUL-terminated and outlive the call; `fd` is open.
        if unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn unlink(&self, name: &str) {
        if let Ok(name) = cstring(name) {
            // SAFETY: as in `rename`.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
        }
    }
}

fn cstring(name: &str) -> std::io::Result<CString> {
    CString::new(name).map_err(|_| std::io::Error::other("NUL in a name"))
}

trait Mode0700 {
    fn mode_0700(&mut self) -> &mut Self;
}

impl Mode0700 for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("maskflow-trust-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_private_directory_is_trusted_and_round_trips_entries() {
        let dir = scratch("ok");
        let cache = TrustedDir::open(&dir.join("modules")).unwrap();
        assert_eq!(cache.read("a.cwasm").unwrap(), None);
        cache.write("a.cwasm", &[b"ab", b"c"]).unwrap();
        assert_eq!(cache.read("a.cwasm").unwrap().as_deref(), Some(&b"abc"[..]));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn writable_directories_and_entries_and_symlinked_entries_are_refused() {
        let dir = scratch("refused");
        let modules = dir.join("modules");
        let cache = TrustedDir::open(&modules).unwrap();
        cache.write("a.cwasm", &[b"abc"]).unwrap();

        // An entry others can write.
        let entry = modules.join("a.cwasm");
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = cache.read("a.cwasm").unwrap_err();
        assert!(err.contains("group or others can write it"), "{err}");

        // An entry that is a symlink (to a file this user owns: still refused, never followed).
        std::fs::remove_file(&entry).unwrap();
        std::fs::write(dir.join("elsewhere"), b"abc").unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), &entry).unwrap();
        let err = cache.read("a.cwasm").unwrap_err();
        assert!(err.contains("without following links"), "{err}");

        // A directory on the way that others can write.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = TrustedDir::open(&modules).err().unwrap();
        assert!(err.contains(&format!("{}: mode 777", dir.display())), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

        // The cache directory itself.
        std::fs::set_permissions(&modules, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = TrustedDir::open(&modules).err().unwrap();
        assert!(err.contains("mode 770"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ancestors_owned_by_someone_else_or_writable_are_refused_unless_root_sticky() {
        let me = 1000;
        for (uid, mode) in [(0, 0o40755), (me, 0o40700), (me, 0o40755), (0, 0o41777)] {
            check_ancestor(uid, mode, me).unwrap();
        }
        for (uid, mode, why) in [
            (1001, 0o40755, "neither root nor this user"),
            (1001, 0o41777, "neither root nor this user"),
            (me, 0o40775, "mode 775"),
            (me, 0o41777, "mode 1777"),
            (0, 0o40777, "mode 777"),
        ] {
            let err = check_ancestor(uid, mode, me).unwrap_err();
            assert!(err.contains(why), "uid {uid} mode {mode:o}: {err}");
        }
    }
}
