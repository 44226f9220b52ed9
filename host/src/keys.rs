//! Keys and the transform config. The key is never logged, printed (but by `keygen`) or
//! passed on a command line (`crate::cli` reads it from a file or MASKFLOW_KEY).

use std::io::Write;
use std::path::Path;

use maskflow_transform::{Config, Key};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The transform config (ABI.md `init`) for these keys and the default `user_logins` mapping,
/// or the mapping in `mapping_file`.
pub fn transform_config(
    keys: &[Key],
    mapping_file: Option<&Path>,
    cache_size: usize,
) -> Result<(Config, Zeroizing<String>)> {
    let mut config = Config::with_keys(keys.to_vec());
    config.cache_size = cache_size;
    if let Some(path) = mapping_file {
        let text = std::fs::read_to_string(path)
            .map_err(Error::io(format!("cannot read mapping {}", path.display())))?;
        config.mapping = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("mapping {}: {e}", path.display())))?;
    }
    // Written into a buffer large enough not to move while it grows (a moved buffer would
    // leave a copy of the keys behind, unwiped), then wiped when dropped.
    let mut json = Zeroizing::new(Vec::with_capacity(64 << 10));
    serde_json::to_writer(&mut *json, &config).expect("config serialises");
    let json = String::from_utf8(std::mem::take(&mut *json)).expect("serde_json writes UTF-8");
    Ok((config, Zeroizing::new(json)))
}

/// A new random 64-byte key as a key-file line.
pub fn generate(id: &str) -> Result<Key> {
    let mut bytes = [0u8; maskflow_transform::mask::KEY_LEN];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::key(format!("no randomness from the OS: {e}")))?;
    Ok(Key::new(id, bytes)?)
}

/// Writes the key file readable by its owner only; refuses to overwrite a key (losing one loses
/// every mask made with it).
pub fn write_key_file(path: &Path, key: &Key) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(
            Error::io(format!(
                "cannot create {} (an existing key is never overwritten)",
                path.display()
            )),
        )?;
    writeln!(file, "{}", *key.to_key_file_line())
        .map_err(Error::io(format!("cannot write {}", path.display())))
}
