//! KMS-wrapped keys (envelope encryption): a key file line `ID:kms:KEY_ARN:CIPHERTEXT` holds the
//! key encrypted by a KMS key, with the encryption context `maskflow-key-id = ID`. It is
//! unwrapped at start with `kms:Decrypt`, which KMS refuses unless the context matches: a
//! wrapped key moved to another id does not decrypt. `maskflow keygen --kms-key-id` makes such
//! lines with `kms:Encrypt` of a key made here (the clear key is never written anywhere).

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::Client;
use zeroize::Zeroizing;

use super::calls::{Calls, Wrap};
use super::error::{AwsKeyError, AwsService};
use crate::aws::{region_of_arn, sdk_config, Endpoint};
use crate::error::{Error, Result};
use crate::keys::KeyError;

/// The encryption context's key; its value is the key id of the line (`k2`). IAM policies can
/// require it (`kms:EncryptionContext:maskflow-key-id`, docs/deploy.md).
pub(crate) const CONTEXT_KEY: &str = "maskflow-key-id";

const SERVICE: AwsService = AwsService::Kms;

/// KMS clients, one per region asked for (a key's ARN names its region).
pub(crate) struct Kms<'a> {
    calls: &'a Calls,
    endpoint: &'a Endpoint,
    clients: Vec<(Option<String>, Client, String)>,
}

impl<'a> Kms<'a> {
    pub(crate) fn new(calls: &'a Calls, endpoint: &'a Endpoint) -> Self {
        Kms { calls, endpoint, clients: Vec::new() }
    }

    /// The client for `key` (an ARN, whose region is used; else the AWS chain's), and where
    /// its calls go.
    fn client(
        &mut self,
        key: &str,
        call: &'static str,
        wrap: Wrap<'_>,
    ) -> Result<(Client, String)> {
        let region = region_of_arn(key).map(str::to_owned);
        if let Some((_, client, at)) = self.clients.iter().find(|(r, ..)| *r == region) {
            return Ok((client.clone(), at.clone()));
        }
        let config = self
            .calls
            .by_deadline(sdk_config(self.endpoint, region.as_deref(), None))
            .ok_or_else(|| Error::Unreachable {
                service: SERVICE.name().to_owned(),
                last: Box::new(wrap(AwsKeyError::no_answer(SERVICE, call, key.to_owned())).into()),
            })?;
        let Some(resolved) = config.region() else {
            return Err(KeyError::NoRegion { service: SERVICE }.into());
        };
        let at = self
            .endpoint
            .url
            .clone()
            .unwrap_or_else(|| format!("the AWS endpoint for KMS in {resolved}"));
        let client = one_attempt_client(&config);
        self.clients.push((region, client.clone(), at.clone()));
        Ok((client, at))
    }

    /// The clear bytes of a wrapped key: `Decrypt` of `ciphertext` under `key_arn`, with the
    /// encryption context naming `id`. `wrap` names the line for errors.
    pub(crate) fn decrypt(
        &mut self,
        key_arn: &str,
        id: &str,
        ciphertext: &[u8],
        line: usize,
        wrap: Wrap<'_>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (client, at) = self.client(key_arn, "Decrypt", wrap)?;
        let target = format!("key {key_arn} (line {line}, key id `{id}`) at {at}");
        let mut out = self.calls.retry(wrap, SERVICE, "Decrypt", &target, || {
            let call = client
                .decrypt()
                .key_id(key_arn)
                .ciphertext_blob(Blob::new(ciphertext))
                .encryption_context(CONTEXT_KEY, id);
            let target = target.clone();
            async move {
                call.send().await.map_err(|e| AwsKeyError::from_sdk(SERVICE, "Decrypt", target, e))
            }
        })?;
        // Taken out of the answer, so that the one copy left is wiped when dropped.
        match out.plaintext.take() {
            Some(blob) => Ok(Zeroizing::new(blob.into_inner())),
            None => Err(wrap(AwsKeyError::unusable(
                SERVICE,
                "Decrypt",
                target,
                "the answer holds no plaintext",
            ))
            .into()),
        }
    }

    /// `Encrypt` of `clear` under `key` (an ARN, alias or key id) with the context naming `id`:
    /// the ARN of the key KMS used, and the ciphertext.
    pub(crate) fn encrypt(
        &mut self,
        key: &str,
        id: &str,
        clear: &[u8],
    ) -> Result<(String, Vec<u8>)> {
        let wrap = |cause| KeyError::Wrap { cause };
        let (client, at) = self.client(key, "Encrypt", &wrap)?;
        let target = format!("key {key} at {at}");
        let mut out = self.calls.retry(&wrap, SERVICE, "Encrypt", &target, || {
            let call = client
                .encrypt()
                .key_id(key)
                .plaintext(Blob::new(clear))
                .encryption_context(CONTEXT_KEY, id);
            let target = target.clone();
            async move {
                call.send().await.map_err(|e| AwsKeyError::from_sdk(SERVICE, "Encrypt", target, e))
            }
        })?;
        match (out.key_id.take(), out.ciphertext_blob.take()) {
            (Some(arn), Some(blob)) => Ok((arn, blob.into_inner())),
            _ => Err(KeyError::Wrap {
                cause: AwsKeyError::unusable(
                    SERVICE,
                    "Encrypt",
                    target,
                    "the answer holds no key ARN or ciphertext",
                ),
            }
            .into()),
        }
    }
}

/// A client that makes one attempt per call: retries are `Calls::retry`'s, each one an event,
/// with the start-up budget's backoff (the SDK's own would add attempts unseen).
fn one_attempt_client(config: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_kms::config::Builder::from(config)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}
