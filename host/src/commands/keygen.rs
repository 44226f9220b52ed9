use std::path::PathBuf;

use std::io::Write;

use crate::error::{Error, Result};
use crate::keys;

/// `maskflow keygen`: where to write the new key, and its id.
pub(crate) struct KeygenConfig {
    pub(crate) out: Option<PathBuf>,
    pub(crate) id: String,
}

pub(crate) fn run(config: &KeygenConfig) -> Result<()> {
    let key = keys::generate(&config.id)?;
    match &config.out {
        Some(path) => {
            keys::write_key_file(path, &key)?;
            eprintln!(
                "maskflow: wrote key `{}` to {} (mode 0600). Keep it safe: without it no mask can be recovered.",
                key.id(),
                path.display()
            );
        }
        None => writeln!(std::io::stdout(), "{}", *key.to_key_file_line())
            .map_err(Error::io("cannot write stdout"))?,
    }
    Ok(())
}
