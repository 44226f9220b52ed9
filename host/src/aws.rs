//! The AWS SDK as every part of the host sets it up (SQS in `source/`, Secrets Manager and KMS
//! in `keys/aws/`): the SDK's hyper 1 client on rustls + ring (host/Cargo.toml says why not the
//! SDK's default), bounded call times, the standard region and credential chains, and an
//! endpoint override for LocalStack and the like.

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{Credentials, SharedHttpClient, StalledStreamProtectionConfig};
use aws_smithy_http_client::tls;

/// The SDK's hyper 1 client on rustls + ring.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// A call that hangs (an endpoint that accepts and never answers, a dropped connection) fails
/// after this and is retried like any transient error; long polls wait 20 s, so a bit more.
const CALL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where one service's calls go, and as whom (built by the CLI layer).
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoint {
    /// An endpoint URL (LocalStack); `None` uses the AWS SDK's own endpoint resolution.
    pub(crate) url: Option<String>,
    /// Use dummy static credentials (LocalStack accepts any) instead of the AWS chain.
    pub(crate) localstack_credentials: bool,
}

/// The SDK's configuration: `region` wins over the AWS chain (AWS_REGION, profile), which wins
/// over `fallback_region`; without any of them the config has no region.
pub(crate) async fn sdk_config(
    endpoint: &Endpoint,
    region: Option<&str>,
    fallback_region: Option<&str>,
) -> SdkConfig {
    let chain = match region {
        Some(region) => RegionProviderChain::first_try(aws_config::Region::new(region.to_owned())),
        None => RegionProviderChain::default_provider(),
    };
    let chain = match fallback_region {
        Some(fallback) => chain.or_else(aws_config::Region::new(fallback.to_owned())),
        None => chain,
    };
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(CALL_ATTEMPT_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts)
        // Stalled-stream protection watches streaming bodies, which none of our calls has; it
        // costs an interceptor and a timer per call, and the attempt timeout above already
        // cuts a call that hangs.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .region(chain);
    if let Some(url) = &endpoint.url {
        loader = loader.endpoint_url(url);
    }
    if endpoint.localstack_credentials {
        // LocalStack takes any credentials; supply some so a bare machine works out of the box.
        let credentials = Credentials::new("test", "test", None, None, "maskflow-localstack");
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// The region in an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:...`), if it names one.
pub(crate) fn region_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.strip_prefix("arn:")?.split(':');
    let region = parts.nth(2)?;
    (!region.is_empty() && parts.next().is_some()).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::region_of_arn;

    #[test]
    fn regions_come_from_arns() {
        let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:maskflow/key-AbCdEf";
        assert_eq!(region_of_arn(secret), Some("eu-west-1"));
        let key = "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(region_of_arn(key), Some("cn-north-1"));
        assert_eq!(region_of_arn("arn:aws:iam::123456789012:role/x"), None, "IAM has no region");
        assert_eq!(region_of_arn("alias/maskflow"), None);
        assert_eq!(region_of_arn("maskflow/key"), None);
    }
}
