//! `tracing` to stderr, text or JSON, filtered by RUST_LOG. Nothing logged anywhere in the
//! host formats a message body, a clear value or the key.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::progress::bar_suspend;

/// Quiet by default for the chatty dependencies (the AWS SDK logs every request at info).
const DEFAULT_FILTER: &str = "info,aws_config=warn,aws_smithy_runtime=warn,aws_runtime=warn,aws_sdk_sqs=warn,aws_sdk_kms=warn,aws_sdk_secretsmanager=warn,hyper=warn,tokio_postgres=warn,wasmtime=warn,cranelift=warn";

/// The AWS SDK logs whole responses (message bodies, so clear PII; a secret's value; KMS's
/// plaintext) at debug and trace. Those levels stay off for its crates whatever RUST_LOG says.
const BODY_LOGGING_TARGETS: [&str; 11] = [
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_json",
    "aws_smithy_types",
    "aws_sdk_sqs",
    "aws_sdk_kms",
    "aws_sdk_secretsmanager",
    "aws_runtime",
    "aws_config",
];

/// How log lines look on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

pub(crate) fn init(format: Format) {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    for target in BODY_LOGGING_TARGETS {
        filter = filter.add_directive(format!("{target}=info").parse().expect("valid directive"));
    }
    // Colours only for a person: a container's log collector would store the escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| StderrAroundBar);
    let _ = match format {
        Format::Text => builder.with_target(false).try_init(),
        // Fields at the top level (`"event": "batch_committed"`), not under "fields": the
        // documented events are read by log pipelines and tests (docs/events.md).
        Format::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Stderr that hides the progress bar while a line is written.
struct StderrAroundBar;

impl Write for StderrAroundBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bar_suspend(|| std::io::stderr().write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
