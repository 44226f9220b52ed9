use std::path::PathBuf;

use crate::error::Result;
use crate::keys;

/// Creates a new random AES-256-SIV key.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Write the key file here (mode 0600; never overwrites) instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Key id, the prefix of every mask made with this key (`k2` when rotating from `k1`).
    #[arg(long, default_value = "k1")]
    pub id: String,
}

pub fn run(args: KeygenArgs) -> Result<()> {
    let key = keys::generate(&args.id)?;
    match &args.out {
        Some(path) => {
            keys::write_key_file(path, &key)?;
            eprintln!("maskflow: wrote key `{}` to {} (mode 0600). Keep it safe: without it no mask can be recovered.", key.id(), path.display());
        }
        None => println!("{}", key.to_key_file_line()),
    }
    Ok(())
}
