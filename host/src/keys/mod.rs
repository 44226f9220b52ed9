//! Where the keys come from, and the rules a source must keep: the key is never logged, printed
//! (but by `keygen`) or passed on a command line, every copy read is wiped once parsed, and a
//! malformed source is reported by where, line and rule, never by any part of its text.
//!
//! Sources (README "Key sources"): a key file, a variable holding its text, a Secrets Manager
//! secret holding its text (`aws/secrets.rs`); in any of them, lines may be KMS-wrapped
//! (`wrapped.rs`, `aws/kms.rs`).

mod aws;
mod error;
mod source;
mod wrapped;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use maskflow_transform::Key;
use zeroize::Zeroizing;

pub(crate) use self::aws::AwsKeySettings;
pub use self::aws::{AwsKeyError, AwsService};
pub use self::error::{KeyError, KeySource, WrappedRule};
pub(crate) use self::source::SourceSpec;

/// Where the keys come from, and how long reaching it may take (built by the CLI layer).
#[derive(Debug, Clone)]
pub(crate) struct KeyConfig {
    pub(crate) source: SourceSpec,
    pub(crate) aws: AwsKeySettings,
    /// Transient failures of AWS calls are retried until this has passed (`--startup-timeout`).
    pub(crate) budget: Duration,
}

/// The source's keys, the masking one first. KMS-wrapped lines are unwrapped; every copy of
/// the text is wiped once parsed.
pub(crate) fn load(config: &KeyConfig) -> Result<Vec<Key>, KeyError> {
    let deadline = Instant::now() + config.budget;
    let mut calls = None;
    let from = config.source.describe();
    let text = match &config.source {
        SourceSpec::File(path) => source::read_private(path)?,
        SourceSpec::Env(var) => source::read_env(var)?,
        SourceSpec::SecretsManager { secret_id, stage } => {
            let calls = calls.insert(aws::Calls::new(deadline)?);
            aws::get_secret(calls, &config.aws.secretsmanager, secret_id, stage.as_deref())?
        }
    };
    let wrapped = wrapped::find(&text, &from)?;
    if wrapped.is_empty() {
        return parse(&text, from);
    }
    let calls = match calls {
        Some(calls) => calls,
        None => aws::Calls::new(deadline)?,
    };
    let mut kms = aws::Kms::new(&calls, &config.aws.kms);
    let mut clear = Vec::with_capacity(wrapped.len());
    for line in &wrapped {
        let wrap = |cause| KeyError::Aws { from: from.clone(), cause };
        clear.push(kms.decrypt(line.key_arn, line.id, &line.ciphertext, line.line, &wrap)?);
    }
    let text = wrapped::substitute(&text, &wrapped, &clear, &from)?;
    parse(&text, from)
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

/// A new random 64-byte key with this id.
pub(crate) fn generate(id: &str) -> Result<Key, KeyError> {
    Key::new(id, *random_key()?).map_err(KeyError::Id)
}

/// A new random key with this id, wrapped by the KMS key `kms_key` (ARN, alias or id): its
/// line `ID:kms:KEY_ARN:base64`. The clear key goes to KMS's `Encrypt` (over TLS) and nowhere
/// else; it is wiped when this returns.
pub(crate) fn generate_wrapped(
    id: &str,
    kms_key: &str,
    endpoint: &crate::aws::Endpoint,
    budget: Duration,
) -> Result<String, KeyError> {
    use base64::Engine;
    let bytes = random_key()?;
    drop(Key::new(id, *bytes).map_err(KeyError::Id)?); // the id is checked before KMS is asked
    let calls = aws::Calls::new(Instant::now() + budget)?;
    let (arn, ciphertext) = aws::Kms::new(&calls, endpoint).encrypt(kms_key, id, &*bytes)?;
    let ciphertext = base64::engine::general_purpose::STANDARD.encode(ciphertext);
    Ok(format!("{id}:kms:{arn}:{ciphertext}"))
}

fn random_key() -> Result<Zeroizing<[u8; maskflow_transform::mask::KEY_LEN]>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; maskflow_transform::mask::KEY_LEN]);
    getrandom::fill(&mut *bytes).map_err(KeyError::NoRandomness)?;
    Ok(bytes)
}

/// Writes a key file line readable by its owner only; refuses to overwrite a key (losing one
/// loses every mask made with it).
pub(crate) fn write_key_file(path: &Path, line: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let unwritable = |source| KeyError::Unwritable { path: path.to_owned(), source };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(unwritable)?;
    writeln!(file, "{line}").map_err(unwritable)
}
