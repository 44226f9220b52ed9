//! A network in the benchmark: a TCP relay in front of LocalStack (or PostgreSQL) that delays
//! each direction by half the round trip, with optional jitter and a bandwidth cap, so that a
//! consumer on this machine meets SQS as it is in a region, 10-50 ms away, instead of 0.3 ms.
//!
//! It also counts the SQS requests that pass through it, by action (`x-amz-target:
//! AmazonSQS.<Action>`, the JSON protocol every current SDK speaks; `Action=<Action>` for the
//! old query protocol), so the benchmark reports requests per 1,000 messages (SQS bills per
//! request) for every consumer the same way, without trusting any consumer's own figures.
//!
//! Run: `maskflow-bench relay --upstream 127.0.0.1:4566 --rtt-ms 20`. It prints
//! `{"listen": "127.0.0.1:<port>"}` once it accepts, and on SIGTERM or SIGINT
//! `{"requests": {"ReceiveMessage": n, ...}, "connections": n, "bytes": n}`.
//!
//! What it does not model: the TCP and TLS handshakes (the client connects to the relay at
//! once), so a consumer that opens a connection per request looks better here than it would be;
//! every SDK measured keeps its connections alive. Packet loss is not modelled either.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Where to accept (port 0: a free one, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The service behind the relay.
    #[arg(long)]
    upstream: SocketAddr,
    /// Round trip added: half of it each way.
    #[arg(long, default_value_t = 0.0)]
    rtt_ms: f64,
    /// Each chunk's one-way delay varies uniformly by up to this much either way (order kept).
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Bandwidth of each direction of each connection, in Mbit/s (none: unlimited).
    #[arg(long)]
    mbit_per_s: Option<f64>,
}

/// The shape of the link, the same for both directions.
#[derive(Debug, Clone, Copy)]
struct Link {
    one_way: Duration,
    jitter: Duration,
    bytes_per_s: Option<f64>,
}

/// What passed through, printed at exit.
#[derive(Default)]
pub struct Counts {
    requests: BTreeMap<String, u64>,
    connections: u64,
    bytes: u64,
}

pub async fn run(args: &RelayArgs) -> Result<()> {
    let link = Link {
        one_way: Duration::from_secs_f64(args.rtt_ms.max(0.0) / 2000.0),
        jitter: Duration::from_secs_f64(args.jitter_ms.max(0.0) / 1000.0),
        bytes_per_s: args.mbit_per_s.map(|m| m * 1e6 / 8.0),
    };
    let listener = TcpListener::bind(args.listen).await.context("bind the relay")?;
    println!("{}", serde_json::json!({"listen": listener.local_addr()?.to_string()}));
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        failed = accept(listener, args.upstream, link, counts.clone()) => match failed? {},
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let counts = counts.lock().unwrap();
    println!(
        "{}",
        serde_json::json!({"requests": counts.requests, "connections": counts.connections,
                           "bytes": counts.bytes})
    );
    Ok(())
}

/// Accepts clients, each relayed on its own task, until the process is told to stop.
async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    link: Link,
    counts: Arc<Mutex<Counts>>,
) -> Result<std::convert::Infallible> {
    loop {
        let (client, _) = listener.accept().await?;
        counts.lock().unwrap().connections += 1;
        tokio::spawn(relay_connection(client, upstream, link, counts.clone()));
    }
}

/// One client connection: its own upstream connection and a delayed pump each way.
async fn relay_connection(
    client: TcpStream,
    upstream: SocketAddr,
    link: Link,
    counts: Arc<Mutex<Counts>>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let requests = RequestCounter::new(counts.clone());
    tokio::join!(
        pump(client_read, server_write, link, Some(requests), counts.clone()),
        pump(server_read, client_write, link, None, counts),
    );
}

/// Copies one direction: each chunk read is due `one_way` (± jitter) later, and no earlier
/// than the chunk before it has left at the link's bandwidth. A reader task stamps chunks; this
/// task writes them when due, so a delay never slows the reading (the delay is latency, not a
/// throughput cap, as on a real path).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    mut requests: Option<RequestCounter>,
    counts: Arc<Mutex<Counts>>,
) {
    // Bounded: a consumer that stops reading stops the relay reading for it, as TCP would.
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(1024);
    let reader = async move {
        let mut rng = Jitter::new(link.jitter);
        let mut last_due = Instant::now();
        // One read buffer; each queued chunk is a copy of what was read, not a 64 KiB buffer
        // (up to 1,024 of those waiting per direction would be the relay's memory).
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = buf[..n].to_vec();
            if let Some(requests) = requests.as_mut() {
                requests.scan(&chunk);
            }
            counts.lock().unwrap().bytes += n as u64;
            let delay = link.one_way.saturating_sub(link.jitter) + rng.next();
            let mut due = (Instant::now() + delay).max(last_due);
            if let Some(rate) = link.bytes_per_s {
                due += Duration::from_secs_f64(n as f64 / rate);
            }
            last_due = due;
            if tx.send((due, chunk)).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The reader saw the end: pass the half-close on, as late as the data before it.
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Finds SQS actions in a client's byte stream, across chunk boundaries.
struct RequestCounter {
    counts: Arc<Mutex<Counts>>,
    /// The end of the previous chunk, lower-cased: a marker split across two reads.
    carry: Vec<u8>,
}

impl RequestCounter {
    const MARKERS: [&'static [u8]; 2] = [b"x-amz-target: amazonsqs.", b"action="];

    fn new(counts: Arc<Mutex<Counts>>) -> Self {
        RequestCounter { counts, carry: Vec::new() }
    }

    fn scan(&mut self, chunk: &[u8]) {
        let mut text = std::mem::take(&mut self.carry);
        let carried = text.len();
        text.extend(chunk.iter().map(u8::to_ascii_lowercase));
        let mut found = Vec::new();
        for marker in Self::MARKERS {
            let mut at = 0;
            while let Some(i) = find(&text[at..], marker) {
                let start = at + i + marker.len();
                let name: Vec<u8> =
                    text[start..].iter().take_while(|b| b.is_ascii_alphabetic()).copied().collect();
                // A name cut by the chunk's end waits for the next chunk (carried below).
                if start + name.len() == text.len() {
                    break;
                }
                // One that ended before the carry's end was counted with the previous chunk.
                if start + name.len() >= carried && !name.is_empty() {
                    found.push(name);
                }
                at = start;
            }
        }
        let keep = text.len().saturating_sub(64);
        self.carry = text[keep..].to_vec();
        if found.is_empty() {
            return;
        }
        let mut counts = self.counts.lock().unwrap();
        for name in found {
            let name = String::from_utf8_lossy(&name).into_owned();
            let action = ACTIONS.iter().find(|a| a.eq_ignore_ascii_case(&name));
            *counts.requests.entry(action.map_or(name, |a| a.to_string())).or_default() += 1;
        }
    }
}

/// The actions' names as AWS spells them (the scan sees them lower-cased).
const ACTIONS: [&str; 10] = [
    "ReceiveMessage",
    "DeleteMessageBatch",
    "DeleteMessage",
    "ChangeMessageVisibilityBatch",
    "ChangeMessageVisibility",
    "GetQueueAttributes",
    "GetQueueUrl",
    "SendMessageBatch",
    "SendMessage",
    "CreateQueue",
];

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Uniform jitter in ±`spread` (xorshift: the figures need spread, not cryptography).
struct Jitter {
    spread: Duration,
    state: u64,
}

impl Jitter {
    fn new(spread: Duration) -> Self {
        Jitter { spread, state: 0x9E37_79B9_7F4A_7C15 }
    }

    /// An offset in [0, 2 * spread]: `pump` adds it to `one_way - spread`.
    fn next(&mut self) -> Duration {
        if self.spread.is_zero() {
            return Duration::ZERO;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let unit = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        self.spread.mul_f64(2.0 * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests of three SDK styles, split at every byte: each is counted once.
    #[test]
    fn every_request_is_counted_once_wherever_the_reads_split_it() {
        let stream = b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ReceiveMessage\r\n\r\n{}\
            POST / HTTP/1.1\r\nx-amz-target: AmazonSQS.DeleteMessageBatch\r\n\r\n{}\
            POST / HTTP/1.1\r\n\r\nAction=GetQueueAttributes&QueueUrl=x\r\n";
        for split in 0..=stream.len() {
            let counts = Arc::new(Mutex::new(Counts::default()));
            let mut counter = RequestCounter::new(counts.clone());
            counter.scan(&stream[..split]);
            counter.scan(&stream[split..]);
            counter.scan(b"POST");
            let got = counts.lock().unwrap().requests.clone();
            let want: BTreeMap<String, u64> =
                [("DeleteMessageBatch", 1), ("GetQueueAttributes", 1), ("ReceiveMessage", 1)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
            assert_eq!(got, want, "split at {split}");
        }
    }
}
