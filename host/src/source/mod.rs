//! Where messages come from: an SQS queue.

pub mod sqs;

pub use sqs::{Received, SqsArgs, SqsSource};
