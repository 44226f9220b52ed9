//! SQS through aws-sdk-sqs, pointed at LocalStack or AWS with the standard endpoint settings.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;

use super::error::SqsError;
use super::{Queue, SqsConfig};
use crate::aws::{sdk_config, Endpoint};

type Result<T, E = SqsError> = std::result::Result<T, E>;

/// SQS allows at most this many messages per receive, delete or send call.
pub const SQS_BATCH: usize = 10;

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub body: String,
    pub sent_timestamp_ms: i64,
    /// SQS `ApproximateReceiveCount`: 1 on first delivery, more after a redelivery.
    pub receive_count: u32,
}

impl From<aws_sdk_sqs::types::Message> for Received {
    fn from(m: aws_sdk_sqs::types::Message) -> Self {
        let mut attributes = m.attributes.unwrap_or_default();
        let mut attribute = |name| attributes.remove(&name).and_then(|t| t.parse().ok());
        Received {
            id: m.message_id.unwrap_or_default(),
            receipt: m.receipt_handle.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            // The module rejects -1 as invalid_timestamp: recorded, not guessed.
            sent_timestamp_ms: attribute(MessageSystemAttributeName::SentTimestamp).unwrap_or(-1),
            receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                .unwrap_or(1) as u32,
        }
    }
}

#[derive(Clone)]
pub struct SqsSource {
    pub(super) client: Client,
    pub(super) queue_url: String,
    endpoint: String,
}

impl SqsSource {
    /// Connects and resolves the queue; `create` makes it if missing (for `send`).
    pub async fn connect(config: &SqsConfig, create: bool) -> Result<Self> {
        let endpoint = Endpoint {
            url: config.endpoint.clone(),
            localstack_credentials: config.localstack_credentials,
        };
        let sdk_config =
            sdk_config(&endpoint, config.region.as_deref(), Some(config.default_region.as_str()))
                .await;
        let client = Client::new(&sdk_config);
        // Named in errors: where the calls go.
        let endpoint = config.endpoint.clone().unwrap_or_else(|| {
            let region = sdk_config.region().map_or("<no region>", |r| r.as_ref());
            format!("the AWS endpoint for SQS in {region} (https://sqs.{region}.amazonaws.com)")
        });
        let queue_url = match &config.queue {
            Queue::Url(url) => url.clone(),
            Queue::Name(name) => Self::resolve(&client, name, create, &endpoint).await?,
        };
        Ok(SqsSource { client, queue_url, endpoint })
    }

    async fn resolve(client: &Client, name: &str, create: bool, endpoint: &str) -> Result<String> {
        let what = format!("GetQueueUrl of queue `{name}` at {endpoint}");
        let found = match client.get_queue_url().queue_name(name).send().await {
            Ok(out) => out.queue_url().map(str::to_owned),
            Err(e)
                if create && e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) =>
            {
                None
            }
            Err(e) => return Err(SqsError::from_sdk(what, e)),
        };
        match found {
            Some(url) => Ok(url),
            None => {
                let what = format!("CreateQueue of queue `{name}` at {endpoint}");
                let out = client
                    .create_queue()
                    .queue_name(name)
                    .send()
                    .await
                    .map_err(|e| SqsError::from_sdk(what, e))?;
                Ok(out.queue_url().unwrap_or_default().to_owned())
            }
        }
    }

    /// Where the calls go (an endpoint URL, or the AWS endpoint and its region), for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The start-up check: the queue answers GetQueueAttributes (which needs the same
    /// credentials and permissions as receiving). Returns its redrive policy, if any.
    pub async fn check(&self) -> Result<Option<String>> {
        let what = format!("GetQueueAttributes of {} at {}", self.queue_url, self.endpoint);
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk(what, e))?;
        Ok(out.attributes().and_then(|a| a.get(&QueueAttributeName::RedrivePolicy)).cloned())
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Up to 10 messages, waiting up to `wait` for the first (long polling).
    pub async fn receive(&self, wait: Duration, visibility: Duration) -> Result<Vec<Received>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(SQS_BATCH as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("ReceiveMessage", e))?;
        // Owned strings are moved out of the SDK's answer, not copied: this runs per message.
        Ok(out.messages.unwrap_or_default().into_iter().map(Received::from).collect())
    }

    /// ApproximateNumberOfMessages + ...NotVisible: what is left for `--drain` to wait for.
    pub async fn approximate_depth(&self) -> Result<(u64, u64)> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("GetQueueAttributes", e))?;
        depth(out.attributes())
    }
}

/// (visible, not visible) from GetQueueAttributes' answer. A missing or unreadable count is an
/// error, never 0: `--drain` would take it for an empty queue and stop.
fn depth(attributes: Option<&HashMap<QueueAttributeName, String>>) -> Result<(u64, u64)> {
    let get = |name: QueueAttributeName| {
        let value = attributes.and_then(|a| a.get(&name));
        value.and_then(|v| v.parse().ok()).ok_or_else(|| {
            SqsError::transient(format!(
                "GetQueueAttributes: {} is {value:?}, not a count",
                name.as_str()
            ))
        })
    };
    Ok((
        get(QueueAttributeName::ApproximateNumberOfMessages)?,
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_unreadable_depth_attribute_is_an_error_not_zero() {
        use QueueAttributeName::{
            ApproximateNumberOfMessages as Visible, ApproximateNumberOfMessagesNotVisible as Hidden,
        };
        let attributes = |pairs: &[(QueueAttributeName, &str)]| -> HashMap<_, _> {
            pairs.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
        };
        assert_eq!(depth(Some(&attributes(&[(Visible, "3"), (Hidden, "4")]))).unwrap(), (3, 4));
        assert_eq!(depth(Some(&attributes(&[(Visible, "0"), (Hidden, "0")]))).unwrap(), (0, 0));
        for broken in [
            attributes(&[(Visible, "0")]),
            attributes(&[(Hidden, "0")]),
            attributes(&[(Visible, "0"), (Hidden, "")]),
            attributes(&[(Visible, "many"), (Hidden, "0")]),
            attributes(&[]),
        ] {
            let err = depth(Some(&broken)).expect_err("a missing count is not 0").to_string();
            assert!(err.contains("not a count"), "{err}");
        }
        assert!(depth(None).is_err(), "no attributes at all");
    }
}
