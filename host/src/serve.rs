//! `--metrics-addr`: what an operator (Prometheus, a Kubernetes kubelet) asks a running host.
//!
//! ```text
//! GET /metrics  200  the run's counters (stats.rs), OpenMetrics text
//! GET /healthz  200  the process is up and every loop goes round; 503 naming the loops that
//!                    have not gone round for `--health-stuck-after` (restart me)
//! GET /readyz   200  the last probe reached PostgreSQL and SQS, and no shutdown is under way;
//!               503  otherwise, with the reason (take me out of rotation; I recover by myself)
//! ```
//!
//! The server is hyper's HTTP/1 on the host's tokio runtime. Readiness comes from a probe
//! thread ([`Readiness::probe_every`]) rather than from each request, so a scrape never opens a
//! database connection and a dead database cannot make requests hang.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tracing::debug;

use crate::error::{Error, Result};
use crate::events::{event, Event};
use crate::health::Loops;
use crate::shutdown::Shutdown;

/// What the last probe found.
#[derive(Default)]
pub(crate) struct Readiness {
    postgres: AtomicBool,
    sqs: AtomicBool,
}

impl Readiness {
    /// Always ready: for a command with nothing to probe but its own work (`maskflow replay`).
    pub(crate) fn ready() -> Self {
        Readiness { postgres: AtomicBool::new(true), sqs: AtomicBool::new(true) }
    }

    /// Probes every `period` until `shutdown`, on a thread of its own (the PostgreSQL client
    /// blocks). `postgres` and `sqs` return whether each answered.
    pub(crate) fn probe_every(
        self: &Arc<Self>,
        period: Duration,
        shutdown: Shutdown,
        mut postgres: impl FnMut() -> bool + Send + 'static,
        mut sqs: impl FnMut() -> bool + Send + 'static,
    ) {
        let readiness = self.clone();
        std::thread::Builder::new()
            .name("readiness".into())
            .spawn(move || {
                while !shutdown.requested() {
                    readiness.postgres.store(postgres(), Ordering::Relaxed);
                    readiness.sqs.store(sqs(), Ordering::Relaxed);
                    std::thread::sleep(period);
                }
            })
            .expect("spawn the readiness thread");
    }

    fn why_not(&self, shutdown: &Shutdown) -> Option<&'static str> {
        if shutdown.requested() {
            Some("shutting down")
        } else if !self.postgres.load(Ordering::Relaxed) {
            Some("PostgreSQL unreachable")
        } else if !self.sqs.load(Ordering::Relaxed) {
            Some("SQS unreachable")
        } else {
            None
        }
    }
}

struct Endpoints {
    registry: Registry,
    loops: Loops,
    readiness: Arc<Readiness>,
    shutdown: Shutdown,
    /// A loop that has not gone round for this long is stuck (a healthy idle loop goes round
    /// every 200 ms to 5 s; an outage is waited out in a loop that goes round too).
    stuck_after: Duration,
}

impl Endpoints {
    fn respond(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, content_type, body) = match path {
            "/metrics" => {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &self.registry) {
                    Ok(()) => (
                        StatusCode::OK,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        text,
                    ),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e.to_string()),
                }
            }
            "/healthz" => match self.loops.stuck(self.stuck_after).as_slice() {
                [] => (StatusCode::OK, "text/plain", "ok\n".into()),
                stuck => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    stuck
                        .iter()
                        .map(|(name, since)| {
                            format!(
                                "stuck: {name} has not gone round its loop for {} s\n",
                                since.as_secs()
                            )
                        })
                        .collect(),
                ),
            },
            "/readyz" => match self.readiness.why_not(&self.shutdown) {
                Some(why) => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("{why}\n")),
                None => (StatusCode::OK, "text/plain", "ready\n".into()),
            },
            _ => {
                (StatusCode::NOT_FOUND, "text/plain", "try /metrics, /healthz or /readyz\n".into())
            }
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        response
    }
}

/// Binds `addr` (a failure is a configuration error: exit 3) and serves `registry`, the health
/// of `loops` and `readiness` until the process ends.
pub(crate) fn start(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    registry: Registry,
    loops: Loops,
    readiness: Arc<Readiness>,
    shutdown: Shutdown,
    stuck_after: Duration,
) -> Result<()> {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|source| Error::Listen { addr, source })?;
    event!(info, Event::Serving, %addr, "serving /metrics, /healthz and /readyz");
    let endpoints = Arc::new(Endpoints { registry, loops, readiness, shutdown, stuck_after });
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let endpoints = endpoints.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let response = endpoints.respond(request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok(())
}
