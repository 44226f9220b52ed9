//! Where messages come from: an SQS queue ([`SqsSource`]), and the [`Leases`] task that keeps
//! every message the host holds hidden from other consumers until it is committed, then
//! deletes it (the pattern of Vector's SQS source finalizer: the sink never calls the source).

mod batch;
mod error;
mod lease;
mod sqs;

pub use crate::aws::https_client;
pub use batch::EntryFailure;
pub use error::SqsError;
pub(crate) use lease::Leases;
pub use sqs::{Received, SqsSource, SQS_BATCH};

/// Which queue, and how to reach it (built by the CLI layer).
#[derive(Debug, Clone)]
pub struct SqsConfig {
    pub queue: Queue,
    /// An endpoint URL (LocalStack); `None` uses the AWS SDK's own endpoint resolution.
    pub endpoint: Option<String>,
    /// The queue URL's region: it wins over the AWS chain.
    pub region: Option<String>,
    /// Region when neither the queue URL nor the AWS chain (AWS_REGION, profile) gives one.
    pub default_region: String,
    /// Use dummy static credentials (LocalStack accepts any) instead of the AWS chain.
    pub localstack_credentials: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queue {
    Url(String),
    /// Resolved to a URL with GetQueueUrl.
    Name(String),
}
