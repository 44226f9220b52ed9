//! Where the keys come from, and the rules a source must keep: the key is never logged, printed
//! (but by `keygen`) or passed on a command line, every copy read is wiped once parsed, and a
//! malformed source is reported by where, line and rule, never by any part of its text.

mod error;

use std::io::Write;
use std::path::Path;

use maskflow_transform::Key;
use zeroize::Zeroizing;

pub use self::error::{KeyError, KeySource};

/// The key file's keys, the masking one first: `--key-file` (`path`), else the text of the
/// variable `MASKFLOW_KEY`.
pub(crate) fn load(path: Option<&Path>) -> Result<Vec<Key>, KeyError> {
    let (text, source) = match path {
        Some(path) => (read_private(path)?, KeySource::File(path.to_owned())),
        None => {
            let text = std::env::var_os("MASKFLOW_KEY").ok_or(KeyError::Missing)?;
            let bytes = Zeroizing::new(text.into_encoded_bytes());
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| KeyError::NotText { from: KeySource::Env("MASKFLOW_KEY") })?;
            (Zeroizing::new(text.to_owned()), KeySource::Env("MASKFLOW_KEY"))
        }
    };
    parse(&text, source)
}

/// Whether a key source is set up at all (`maskflow keys` runs without one).
pub(crate) fn configured(path: Option<&Path>) -> bool {
    path.is_some() || std::env::var_os("MASKFLOW_KEY").is_some()
}

/// Parses a key file's text read from `source`.
fn parse(text: &str, source: KeySource) -> Result<Vec<Key>, KeyError> {
    Key::parse_key_file(text).map_err(|e| match e {
        maskflow_transform::Error::KeyFile { line, rule } => {
            KeyError::Line { from: source, line, rule }
        }
        maskflow_transform::Error::NoKey => KeyError::Empty { from: source },
        other => KeyError::Invalid { from: source, cause: other },
    })
}

/// A key file's text, refused when group or others may read it (as libpq does for its key files).
fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let unreadable = |source| KeyError::Unreadable { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.mode() & 0o077 != 0 {
        return Err(KeyError::Exposed { path: path.to_owned(), mode: meta.mode() & 0o777 });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    std::fs::File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(unreadable)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| KeyError::NotText { from: KeySource::File(path.to_owned()) })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// A new random 64-byte key with this id.
pub(crate) fn generate(id: &str) -> Result<Key, KeyError> {
    let mut bytes = Zeroizing::new([0u8; maskflow_transform::mask::KEY_LEN]);
    getrandom::fill(&mut *bytes).map_err(KeyError::NoRandomness)?;
    Key::new(id, *bytes).map_err(KeyError::Id)
}

/// Writes the key file readable by its owner only; refuses to overwrite a key (losing one loses
/// every mask made with it).
pub(crate) fn write_key_file(path: &Path, key: &Key) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let unwritable = |source| KeyError::Unwritable { path: path.to_owned(), source };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(unwritable)?;
    writeln!(file, "{}", *key.to_key_file_line()).map_err(unwritable)
}
