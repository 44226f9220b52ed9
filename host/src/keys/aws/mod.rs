//! Key sources on AWS: Secrets Manager (`secrets.rs`) and KMS-wrapped key lines (`kms.rs`),
//! through the same SDK set-up, credential and region chains as SQS (`crate::aws`), each call
//! within the start-up budget (`calls.rs`), every failure sorted by its code (`error.rs`).

mod calls;
mod error;
mod kms;
mod secrets;

pub(crate) use calls::Calls;
pub use error::{AwsKeyError, AwsService};
pub(crate) use kms::Kms;
pub(crate) use secrets::get_secret;

use crate::aws::Endpoint;

/// Where the key sources' AWS calls go (built by the CLI layer).
#[derive(Debug, Clone, Default)]
pub(crate) struct AwsKeySettings {
    pub(crate) secretsmanager: Endpoint,
    pub(crate) kms: Endpoint,
}
