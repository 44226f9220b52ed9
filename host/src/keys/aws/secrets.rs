//! `aws-secretsmanager:SECRET_ID[:VERSION_STAGE]`: the secret's string is a key file's text.

use aws_sdk_secretsmanager::Client;
use zeroize::Zeroizing;

use super::calls::Calls;
use super::error::{AwsKeyError, AwsService};
use crate::aws::{region_of_arn, sdk_config, Endpoint};
use crate::error::{Error, Result};
use crate::keys::{KeyError, KeySource};

const SERVICE: AwsService = AwsService::SecretsManager;

/// The secret string of `secret_id` (a name or an ARN, whose region is then used) at `stage`
/// (default: AWSCURRENT), wiped when dropped.
pub(crate) fn get_secret(
    calls: &Calls,
    endpoint: &Endpoint,
    secret_id: &str,
    stage: Option<&str>,
) -> Result<Zeroizing<String>> {
    let from = KeySource::SecretsManager {
        secret_id: secret_id.to_owned(),
        stage: stage.map(str::to_owned),
    };
    let config = calls
        .by_deadline(sdk_config(endpoint, region_of_arn(secret_id), None))
        .ok_or_else(|| unreachable(&from, "the AWS configuration (region, credentials)"))?;
    let Some(region) = config.region() else {
        return Err(KeyError::NoRegion { service: SERVICE }.into());
    };
    let target = format!(
        "secret `{secret_id}` at {}",
        endpoint
            .url
            .clone()
            .unwrap_or_else(|| format!("the AWS endpoint for Secrets Manager in {region}"))
    );
    let client = one_attempt_client(&config);
    let wrap = |cause| KeyError::Aws { from: from.clone(), cause };
    let mut out = calls.retry(&wrap, SERVICE, "GetSecretValue", &target, || {
        let call = client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_stage(stage.map(str::to_owned));
        let target = target.clone();
        async move {
            call.send()
                .await
                .map_err(|e| AwsKeyError::from_sdk(SERVICE, "GetSecretValue", target, e))
        }
    })?;
    // Taken out of the answer, so that the one copy left is wiped when dropped.
    let text = out.secret_string.take().map(Zeroizing::new);
    let binary = out.secret_binary.take().map(|b| Zeroizing::new(b.into_inner()));
    match text {
        Some(text) if text.trim_start().starts_with('{') => {
            Err(KeyError::NotKeyFile { from, what: "JSON" }.into())
        }
        Some(text) => Ok(text),
        None if binary.is_some() => {
            Err(KeyError::NotKeyFile { from, what: "binary data (SecretBinary)" }.into())
        }
        None => Err(KeyError::Aws {
            cause: AwsKeyError::unusable(
                SERVICE,
                "GetSecretValue",
                target,
                "the answer holds no secret string",
            ),
            from,
        }
        .into()),
    }
}

fn unreachable(from: &KeySource, what: &str) -> Error {
    let cause = AwsKeyError::no_answer(SERVICE, "GetSecretValue", what.to_owned());
    Error::Unreachable {
        service: SERVICE.name().to_owned(),
        last: Box::new(KeyError::Aws { from: from.clone(), cause }.into()),
    }
}

/// A client that makes one attempt per call: retries are `Calls::retry`'s, each one an event,
/// with the start-up budget's backoff (the SDK's own would add attempts unseen).
fn one_attempt_client(config: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_secretsmanager::config::Builder::from(config)
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}
