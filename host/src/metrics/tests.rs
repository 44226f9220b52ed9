//! The series as served: names, help texts, per-column NULL counts.

use super::*;

#[test]
fn every_series_is_served_under_its_field_name() {
    let metrics = Metrics::default().with_columns(&["user_id".into(), "masked_ip".into()]);
    metrics.rejections.get_or_create(&ReasonLabel { reason: Reason::InvalidIp.code() }).inc();
    metrics.entry_failed(BatchCall::Delete, "InternalError");
    metrics.add_busy(Phase::Module, Duration::from_millis(1));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry()).unwrap();
    let names = [
        "maskflow_messages_received_total",
        "maskflow_rejections_total{reason=\"invalid_ip\"}",
        "maskflow_null_values_total{column=\"masked_ip\"}",
        "maskflow_retries_total{kind=\"postgres\"}",
        "maskflow_sqs_entry_failures_total{call=\"delete\",code=\"InternalError\"}",
        "maskflow_messages_released_total{why=\"locked\"}",
        "maskflow_in_flight_bytes",
        "maskflow_lag_seconds_bucket",
        "maskflow_last_commit_timestamp_seconds",
        "maskflow_phase_seconds_total{phase=\"module\"}",
        "maskflow_key_reloads_total{outcome=\"failed\"}",
    ];
    for name in names {
        let served = [format!("\n{name} "), format!("\n{name}{{")];
        assert!(served.iter().any(|s| text.contains(s)), "{name} not served: {text}");
    }
    assert!(text.contains("# HELP maskflow_rows_written Rows committed to user_logins"), "{text}");
}

#[test]
fn nulls_are_counted_per_column_by_the_columns_order() {
    let metrics = Metrics::default().with_columns(&["user_id".into(), "masked_ip".into()]);
    metrics.add_written(&CommitStats { rows: 3, null_values: vec![0, 2], ..Default::default() });
    metrics.add_written(&CommitStats { rows: 1, null_values: vec![0, 1], ..Default::default() });
    let count = |column: &str| {
        metrics.null_values.get_or_create(&ColumnLabel { column: column.into() }).get()
    };
    assert_eq!((count("user_id"), count("masked_ip")), (0, 3));
}
