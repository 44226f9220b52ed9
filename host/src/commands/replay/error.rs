//! Why a replay could not start, or could not replay everything it selected.

use thiserror::Error;

/// Why a rejected body did not unseal.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unsealable {
    /// It is sealed under a key id that is not in the key file.
    KeyNotLoaded,
    /// The key file's key of its id does not open it (another key under that id, or damaged).
    Unreadable,
}

impl Unsealable {
    /// As events and metric labels name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unsealable::KeyNotLoaded => "key_not_loaded",
            Unsealable::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(
        "another `maskflow replay` is running on this database (it holds the replay lock): wait \
         for it to finish, or stop it, then run this one again"
    )]
    Busy,
    /// Rejections whose bodies did not unseal: (key id, why, how many). Everything else was
    /// replayed; these were left as they are.
    #[error(
        "{} selected rejections were skipped, their bodies left sealed as they are: {}. Rerun \
         `maskflow replay` once the key file holds their keys (everything else was replayed)",
        .by_key.iter().map(|(_, _, n)| n).sum::<u64>(),
        .by_key.iter().map(|(key, why, n)| describe(key, *why, *n)).collect::<Vec<_>>().join("; ")
    )]
    Skipped { by_key: Vec<(String, Unsealable, u64)> },
}

fn describe(key: &str, why: Unsealable, n: u64) -> String {
    match why {
        Unsealable::KeyNotLoaded => format!(
            "{n} sealed under `{key}`, which is not in the key file (add its line after the \
             masking key's)"
        ),
        Unsealable::Unreadable => format!(
            "{n} sealed under `{key}` that the key file's `{key}` does not open (another key \
             under that id, or a damaged body)"
        ),
    }
}
