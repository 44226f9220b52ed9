//! Why the keys could not be had. None of these shows any part of a key source's text: a
//! malformed line may hold key material anywhere, so only its number and the rule it breaks
//! are named.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// Where keys were read from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--key-file` / `MASKFLOW_KEY_FILE`.
    File(PathBuf),
    /// A variable holding a key file's text (`MASKFLOW_KEY`).
    Env(&'static str),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "key file {}", path.display()),
            KeySource::Env(var) => f.write_str(var),
        }
    }
}

#[derive(Debug, Error)]
pub enum KeyError {
    #[error(
        "key: no key: set MASKFLOW_KEY to a key file's content or pass --key-file (create one \
         with `maskflow keygen --out maskflow.key`)"
    )]
    Missing,
    #[error("cannot read key file {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "key file {} has mode {mode:o}: group or others can read the key; chmod 600 {}",
        path.display(),
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{from} is not UTF-8 text: it must hold `id:base64` lines")]
    NotText { from: KeySource },
    #[error("key: {from} line {line}: {rule}")]
    Line { from: KeySource, line: usize, rule: maskflow_transform::KeyFileRule },
    #[error("key: {from} holds no key line (`id:base64`)")]
    Empty { from: KeySource },
    #[error("key: {from}")]
    Invalid {
        from: KeySource,
        #[source]
        cause: maskflow_transform::Error,
    },
    #[error(
        "masks under `{id}` are to be re-masked, but `{id}` is not in the key file: add its line \
         after `{active}`'s (or leave it out with --from)"
    )]
    NotLoaded { id: String, active: String },
    /// `keygen --out`: the file exists (a key is never overwritten) or cannot be written.
    #[error("cannot create {} (an existing key is never overwritten)", path.display())]
    Unwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key: the key id is refused")]
    Id(#[source] maskflow_transform::Error),
    #[error("key: no randomness from the OS")]
    NoRandomness(#[source] getrandom::Error),
}
