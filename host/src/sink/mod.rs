//! Where rows go: PostgreSQL, one transaction per batch, with a ledger for exactly-once.

pub mod postgres;

pub use self::postgres::{PostgresArgs, PostgresSink, SinkItem, WriteStats};
