//! One PostgreSQL connection in which nothing waits without a bound.
//!
//! `tokio-postgres` under a current-thread runtime of the connection's own (what the blocking
//! `postgres` crate does too), so that every call can carry a deadline:
//!   - connecting (TCP, TLS, authentication, and the session check below) must finish within
//!     `connect_timeout`, as libpq's `connect_timeout` does: a proxy or load balancer that
//!     accepts the TCP connection and never answers is an outage, not a hang;
//!   - every call of a transaction shares the transaction's deadline, client-side, because a
//!     server-side `statement_timeout` cannot fire when the network path is dead;
//!   - the kernel gives up on a dead peer too: TCP keepalives (15 s idle, 5 s apart, 3 probes)
//!     and `tcp_user_timeout`, unless the connection string sets them.
//!
//! A call that missed its deadline leaves the connection in an unknown state: callers drop it.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::classify::classify;
use super::{tls, PostgresConfig, PostgresError};

/// The kernel's defaults (keepalive after 2 h idle) would notice a dead peer far too late.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

pub(crate) struct Connection {
    // Field order matters: the client goes first, then the runtime that drives its connection.
    client: Client,
    runtime: Runtime,
    endpoint: String,
}

impl Connection {
    /// Connects within `budget`: TCP, TLS, authentication, then a check that the server takes
    /// writes (a standby, or a primary being failed over, answers `transaction_read_only = on`:
    /// that heals, so it is [`PostgresError::Transient`], and no DDL is ever sent to such a node).
    pub(crate) fn open(
        config: &Config,
        tls: &MakeRustlsConnect,
        endpoint: &str,
        budget: Duration,
    ) -> Result<Connection, PostgresError> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
                PostgresError::fatal(format!("cannot start a runtime for PostgreSQL: {e}"))
            })?;
        let config = with_network_defaults(config.clone(), budget);
        let connecting = async {
            let (client, connection) = config.connect(tls.clone()).await.map_err(classify)?;
            // The connection object does the I/O; it ends when the client is dropped.
            tokio::spawn(async move { drop(connection.await) });
            let read_only = client
                .query_one("SELECT current_setting('transaction_read_only')", &[])
                .await
                .map_err(classify)?
                .get::<_, String>(0);
            if read_only == "on" {
                return Err(PostgresError::transient(format!(
                    "PostgreSQL at {endpoint} is read-only (a standby, or a failover in progress); \
                     waiting for a writable primary"
                )));
            }
            Ok(client)
        };
        // Timers are made inside the runtime: they need its clock.
        let client =
            match runtime.block_on(async { tokio::time::timeout(budget, connecting).await }) {
                Ok(result) => result?,
                Err(_) => {
                    return Err(PostgresError::transient(format!(
                        "PostgreSQL at {endpoint} did not complete the connection (TCP, TLS, \
                     authentication) within {budget:?}"
                    )))
                }
            };
        Ok(Connection { client, runtime, endpoint: endpoint.to_owned() })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `call` to completion or until `deadline`, whichever comes first. A missed deadline
    /// is [`PostgresError::Transient`]; the caller must then drop this connection.
    pub(crate) fn wait<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, PostgresError> {
        self.wait_for(deadline, async { call.await.map_err(classify) })
    }

    /// [`Connection::wait`] that hands the call's own error back unsorted, for callers that
    /// act on particular SQLSTATEs; only a missed deadline is sorted (transient).
    pub(crate) fn wait_raw<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<Result<T, tokio_postgres::Error>, PostgresError> {
        self.wait_for(deadline, async { Ok(call.await) })
    }

    /// [`Connection::wait`] for a call whose errors are already sorted.
    pub(crate) fn wait_for<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = Result<T, PostgresError>>,
    ) -> Result<T, PostgresError> {
        let deadline = tokio::time::Instant::from_std(deadline);
        match self.runtime.block_on(async { tokio::time::timeout_at(deadline, call).await }) {
            Ok(result) => result,
            Err(_) => Err(PostgresError::transient(format!(
                "PostgreSQL at {} did not answer in time (the connection is dropped and opened again)",
                self.endpoint
            ))),
        }
    }

    /// Runs SQL statements (no parameters) by `deadline`.
    pub(crate) fn batch(&self, deadline: Instant, sql: &str) -> Result<(), PostgresError> {
        self.wait(deadline, self.client.batch_execute(sql))
    }

    /// Starts a transaction whose statements the server stops too: a lock is waited for at
    /// most `lock_wait`, a statement runs at most until `deadline`, and the transaction is
    /// aborted by the server if this client goes silent in it (a frozen or partitioned host
    /// must not hold its row locks until TCP notices, which takes hours).
    pub(crate) fn begin(
        &self,
        deadline: Instant,
        lock_wait: Duration,
    ) -> Result<(), PostgresError> {
        let budget = deadline.saturating_duration_since(Instant::now()).as_millis().max(1);
        self.batch(
            deadline,
            &format!(
                "BEGIN; SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {budget}; \
                 SET LOCAL idle_in_transaction_session_timeout = {budget}",
                lock_wait.as_millis().max(1)
            ),
        )
    }

    /// Ends a failed transaction; if even that fails, the connection is not reusable.
    pub(crate) fn rollback(&self) -> Result<(), PostgresError> {
        self.batch(Instant::now() + Duration::from_secs(5), "ROLLBACK")
    }
}

/// Keepalives and `tcp_user_timeout` where the connection string left them at their defaults,
/// and `connect_timeout` for each address tried, within the whole budget.
fn with_network_defaults(mut config: Config, budget: Duration) -> Config {
    if config.get_connect_timeout().is_none_or(|t| *t > budget) {
        config.connect_timeout(budget);
    }
    if config.get_application_name().is_none() {
        config.application_name("maskflow");
    }
    if config.get_keepalives() && config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(KEEPALIVE_IDLE);
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVE_RETRIES);
        }
    }
    if config.get_tcp_user_timeout().is_none() {
        // Data the server has not acknowledged for this long means the path is gone.
        config.tcp_user_timeout(KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_RETRIES);
    }
    config
}

/// `host:port` of the first host (never the password).
pub(crate) fn endpoint(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
        _ => "localhost".into(),
    };
    format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432))
}

/// Opens a connection for a one-off command (`prune`, `keys`, `rekey`), named `name` in
/// `pg_stat_activity`, with `search_path` set to the configured schema.
pub(crate) fn open_for_command(
    config: &PostgresConfig,
    name: &str,
) -> Result<Connection, PostgresError> {
    let mut client = config.client.clone();
    client.application_name(name);
    let endpoint = endpoint(&config.client);
    let conn = Connection::open(
        &client,
        &tls::connector(&config.tls)?,
        &endpoint,
        config.timeouts.connect,
    )?;
    if let Some(schema) = &config.schema {
        conn.batch(
            Instant::now() + config.timeouts.connect,
            &format!("SET search_path TO \"{schema}\""),
        )?;
    }
    Ok(conn)
}
