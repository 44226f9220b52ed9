use std::path::PathBuf;
use std::time::Duration;

use std::io::Write;

use zeroize::Zeroizing;

use crate::aws::Endpoint;
use crate::error::{Error, Result};
use crate::keys;

/// `maskflow keygen`: where to write the new key, its id, and the KMS key to wrap it with.
pub(crate) struct KeygenConfig {
    pub(crate) out: Option<PathBuf>,
    pub(crate) id: String,
    pub(crate) kms: Option<KmsWrap>,
}

/// `--kms-key-id`: the KMS key, where KMS is, and how long it may take to answer.
pub(crate) struct KmsWrap {
    pub(crate) key: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) budget: Duration,
}

pub(crate) fn run(config: &KeygenConfig) -> Result<()> {
    let line = match &config.kms {
        None => keys::generate(&config.id)?.to_key_file_line(),
        Some(kms) => {
            Zeroizing::new(keys::generate_wrapped(&config.id, &kms.key, &kms.endpoint, kms.budget)?)
        }
    };
    match &config.out {
        Some(path) => {
            keys::write_key_file(path, &line)?;
            let how = match &config.kms {
                Some(_) => "wrapped by KMS: unwrapping it needs kms:Decrypt on that key",
                None => "Keep it safe: without it no mask can be recovered",
            };
            eprintln!(
                "maskflow: wrote key `{}` to {} (mode 0600). {how}.",
                config.id,
                path.display()
            );
        }
        None => {
            writeln!(std::io::stdout(), "{}", *line).map_err(Error::io("cannot write stdout"))?
        }
    }
    Ok(())
}
