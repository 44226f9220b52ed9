//! `--mapping PATH`: the mapping file a flag names, or the built-in `user_logins` mapping.

use std::path::Path;

use maskflow_transform::Mapping;

use crate::error::{Error, Result};

/// The mapping in `path`, or the built-in `user_logins` one.
pub(crate) fn load_mapping(path: Option<&Path>) -> Result<Mapping> {
    let Some(path) = path else { return Ok(Mapping::user_logins()) };
    let text = std::fs::read_to_string(path)
        .map_err(Error::io(format!("cannot read mapping {}", path.display())))?;
    serde_json::from_str(&text).map_err(|source| Error::Mapping { path: path.to_owned(), source })
}
