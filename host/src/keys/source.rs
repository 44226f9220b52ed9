//! `--key-source URI` (and `--key-file`, `MASKFLOW_KEY`): which source, and reading the local
//! ones. The AWS ones are in `aws/`.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{KeyError, KeySource};

/// A key source, as `--key-source` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceSpec {
    /// `file:PATH` (`--key-file PATH`): a key file, mode 0600.
    File(PathBuf),
    /// `env:VAR` (`MASKFLOW_KEY`): a variable holding a key file's text.
    Env(String),
    /// `aws-secretsmanager:SECRET_ID[:VERSION_STAGE]`: a secret whose string is a key file's
    /// text. SECRET_ID is a name or an ARN; the stage defaults to AWSCURRENT.
    SecretsManager { secret_id: String, stage: Option<String> },
}

/// What `--key-source` takes, for messages.
pub(crate) const FORMS: &str = "file:PATH, env:VAR or aws-secretsmanager:SECRET_ID[:VERSION_STAGE]";

impl SourceSpec {
    /// Parses `--key-source`'s URI; the error says what is wrong (a usage error).
    pub(crate) fn parse(uri: &str) -> Result<SourceSpec, String> {
        let (scheme, rest) =
            uri.split_once(':').ok_or_else(|| format!("`{uri}`: not one of {FORMS}"))?;
        let empty = |what: &str| format!("--key-source {scheme}: names no {what}; use {FORMS}");
        match scheme {
            "file" if rest.is_empty() => Err(empty("file")),
            "file" => Ok(SourceSpec::File(PathBuf::from(rest))),
            "env" if rest.is_empty() => Err(empty("variable")),
            "env" => Ok(SourceSpec::Env(rest.to_owned())),
            "aws-secretsmanager" => {
                let (secret_id, stage) = split_stage(rest);
                if secret_id.is_empty() || stage == Some("") {
                    return Err(empty(if secret_id.is_empty() {
                        "secret"
                    } else {
                        "version stage"
                    }));
                }
                Ok(SourceSpec::SecretsManager {
                    secret_id: secret_id.to_owned(),
                    stage: stage.map(str::to_owned),
                })
            }
            other => Err(format!("--key-source `{other}:...`: not one of {FORMS}")),
        }
    }

    /// The source, for messages.
    pub(crate) fn describe(&self) -> KeySource {
        match self {
            SourceSpec::File(path) => KeySource::File(path.clone()),
            SourceSpec::Env(var) => KeySource::Env(var.clone()),
            SourceSpec::SecretsManager { secret_id, stage } => {
                KeySource::SecretsManager { secret_id: secret_id.clone(), stage: stage.clone() }
            }
        }
    }
}

/// `SECRET_ID[:VERSION_STAGE]`. A secret's name holds no `:`; its ARN holds six
/// (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`), so a seventh starts the stage.
fn split_stage(rest: &str) -> (&str, Option<&str>) {
    let colons_in_id = if rest.starts_with("arn:") { 6 } else { 0 };
    match rest.match_indices(':').nth(colons_in_id) {
        Some((at, _)) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    }
}

/// The text of the variable `var`: a key file's content.
pub(super) fn read_env(var: &str) -> Result<Zeroizing<String>, KeyError> {
    let text = std::env::var_os(var).ok_or_else(|| match var {
        "MASKFLOW_KEY" => KeyError::Missing,
        other => KeyError::Unset { var: other.to_owned() },
    })?;
    let bytes = Zeroizing::new(text.into_encoded_bytes());
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| KeyError::NotText { from: KeySource::Env(var.to_owned()) })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// A key file's text, refused when group or others may read it (as libpq does for its key files).
pub(super) fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyError> {
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

#[cfg(test)]
mod tests {
    use super::SourceSpec::{self, *};

    #[test]
    fn key_source_uris() {
        let parse = SourceSpec::parse;
        assert_eq!(parse("file:/etc/maskflow/key"), Ok(File("/etc/maskflow/key".into())));
        assert_eq!(parse("env:MY_KEY"), Ok(Env("MY_KEY".into())));
        let secret = |id: &str, stage: Option<&str>| {
            Ok(SecretsManager { secret_id: id.into(), stage: stage.map(Into::into) })
        };
        assert_eq!(parse("aws-secretsmanager:maskflow/key"), secret("maskflow/key", None));
        assert_eq!(
            parse("aws-secretsmanager:maskflow/key:AWSPREVIOUS"),
            secret("maskflow/key", Some("AWSPREVIOUS"))
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:maskflow/key-AbCdEf";
        assert_eq!(parse(&format!("aws-secretsmanager:{arn}")), secret(arn, None));
        assert_eq!(
            parse(&format!("aws-secretsmanager:{arn}:AWSPENDING")),
            secret(arn, Some("AWSPENDING"))
        );
        for bad in [
            "",
            "file:",
            "env:",
            "aws-secretsmanager:",
            "aws-secretsmanager:k:",
            "s3:x",
            "/etc/key",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
