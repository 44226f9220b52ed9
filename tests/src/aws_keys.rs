//! The key source tests' own view of LocalStack's KMS and Secrets Manager: keys made, disabled
//! and used to unwrap a wrapped key line, secrets put and deleted, all with the SDK directly,
//! never through the host's code (the host's results are compared with what these give).

use aws_sdk_kms::primitives::Blob;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::Services;

/// The encryption context key the host uses (README "Key sources"): the test names it itself,
/// so a host that used another would fail to unwrap the test's lines and the other way round.
pub const CONTEXT_KEY: &str = "maskflow-key-id";

pub struct AwsKeys<'a> {
    services: &'a Services,
    pub kms: aws_sdk_kms::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl<'a> AwsKeys<'a> {
    pub fn new(services: &'a Services) -> AwsKeys<'a> {
        let config = services.runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(maskflow::https_client())
                .endpoint_url(services.var("AWS_ENDPOINT_URL"))
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_kms::config::Credentials::new(
                    "test", "test", None, None, "tests",
                ))
                .load(),
        );
        AwsKeys {
            services,
            kms: aws_sdk_kms::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
        }
    }

    /// A new symmetric KMS key; returns its ARN.
    pub fn create_key(&self) -> String {
        let out = self.services.runtime.block_on(self.kms.create_key().send()).expect("CreateKey");
        out.key_metadata().expect("key metadata").arn().expect("key ARN").to_owned()
    }

    pub fn disable_key(&self, arn: &str) {
        self.services
            .runtime
            .block_on(self.kms.disable_key().key_id(arn).send())
            .expect("DisableKey");
    }

    /// The clear 64 bytes of a wrapped line `ID:kms:KEY_ARN:CIPHERTEXT`, decrypted by the test's
    /// own client with the context naming ID: a plain key line `ID:base64`.
    pub fn unwrap_line(&self, line: &str) -> String {
        let (id, rest) = line.trim().split_once(":kms:").expect("a wrapped line");
        let (arn, b64) = rest.rsplit_once(':').expect("ARN:ciphertext");
        let call = self
            .kms
            .decrypt()
            .key_id(arn)
            .ciphertext_blob(Blob::new(STANDARD.decode(b64).expect("base64")))
            .encryption_context(CONTEXT_KEY, id)
            .send();
        let out = self.services.runtime.block_on(call).expect("Decrypt");
        let clear = out.plaintext().expect("plaintext").as_ref().to_vec();
        assert_eq!(clear.len(), 64, "a maskflow key is 64 bytes");
        format!("{id}:{}", STANDARD.encode(clear))
    }

    /// Creates the secret `name` holding `text`, or puts `text` as its new current version.
    pub fn put_secret(&self, name: &str, text: &str) {
        let rt = &self.services.runtime;
        let created =
            rt.block_on(self.secrets.create_secret().name(name).secret_string(text).send());
        if let Err(e) = created {
            let exists = e.as_service_error().is_some_and(|s| s.is_resource_exists_exception());
            assert!(exists, "CreateSecret {name}: {e:?}");
            rt.block_on(self.secrets.put_secret_value().secret_id(name).secret_string(text).send())
                .expect("PutSecretValue");
        }
    }

    /// Deletes the secret: scheduled (recoverable) or at once (`force`).
    pub fn delete_secret(&self, name: &str, force: bool) {
        let call = self.secrets.delete_secret().secret_id(name);
        let call = if force { call.force_delete_without_recovery(true) } else { call };
        self.services.runtime.block_on(call.send()).expect("DeleteSecret");
    }
}
