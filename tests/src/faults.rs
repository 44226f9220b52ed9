//! Endpoints that fail the way real deployments do, for the edge tests (tests/tests/edges.rs):
//! - [`SilentListener`]: accepts TCP connections and never answers (a blackholed proxy, NLB or
//!   PgBouncer);
//! - [`SslThenReset`]: answers PostgreSQL's SSLRequest with `S`, then resets the connection in
//!   the middle of the TLS handshake (a failover);
//! - [`SqsFaults`]: an HTTP relay in front of LocalStack that answers chosen SQS operations with
//!   an error status, or fails chosen entries of the batch calls inside a 200 answer, and
//!   records every call it relays.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// Accepts connections on 127.0.0.1 and holds them open without a byte of answer.
pub struct SilentListener {
    pub addr: SocketAddr,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream); // never read, never written, never closed
            }
        });
        SilentListener { addr }
    }
}

/// Answers the 8-byte SSLRequest with `S` (TLS offered), reads the ClientHello, then resets.
pub struct SslThenReset {
    pub addr: SocketAddr,
}

impl SslThenReset {
    pub fn start() -> SslThenReset {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 8];
                if stream.read_exact(&mut request).is_ok() && stream.write_all(b"S").is_ok() {
                    let mut hello = [0u8; 64];
                    let _ = stream.read(&mut hello);
                }
                // SO_LINGER 0: close with RST, as a node going away mid-handshake does.
                let socket = socket2::SockRef::from(&stream);
                let _ = socket.set_linger(Some(std::time::Duration::ZERO));
                drop(stream);
            }
        });
        SslThenReset { addr }
    }
}

/// What to do to one SQS operation.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP status and SQS error code (e.g. 400 `AccessDenied`).
    Status(u16, &'static str),
    /// Relay the call without every second entry, and report those as failed inside the 200
    /// answer with this code (`sender_fault`: the request's fault, not SQS').
    FailEntries { code: &'static str, sender_fault: bool },
    /// Relay the call after this long (SQS farther away, or slow to answer).
    Delay(std::time::Duration),
}

/// One relayed call: the operation and the receipt handles of its entries (batch calls).
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    pub receipts: Vec<String>,
    /// The receipts reported as failed (by a [`Fault::FailEntries`]).
    pub failed: Vec<String>,
}

#[derive(Default)]
struct Rules {
    /// (operation, fault, how many more times; None: always)
    faults: Vec<(String, Fault, Option<usize>)>,
    calls: Vec<Call>,
}

/// An HTTP/1.1 relay to LocalStack's SQS (JSON protocol) that injects [`Fault`]s.
pub struct SqsFaults {
    pub addr: SocketAddr,
    rules: Arc<Mutex<Rules>>,
}

impl SqsFaults {
    pub fn start(upstream: SocketAddr) -> SqsFaults {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let rules: Arc<Mutex<Rules>> = Arc::default();
        let shared = rules.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let rules = shared.clone();
                std::thread::spawn(move || serve(client, upstream, &rules));
            }
        });
        SqsFaults { addr, rules }
    }

    /// `http://<addr>`, for `--sqs-endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `fault` to `operation` (e.g. `DeleteMessageBatch`) `times` times, or always.
    pub fn inject(&self, operation: &str, fault: Fault, times: Option<usize>) {
        self.rules.lock().unwrap().faults.push((operation.to_owned(), fault, times));
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().faults.clear();
    }

    pub fn calls(&self, operation: &str) -> Vec<Call> {
        let rules = self.rules.lock().unwrap();
        rules.calls.iter().filter(|c| c.operation == operation).cloned().collect()
    }
}

struct Request {
    head: Vec<String>,
    body: Vec<u8>,
}

fn serve(client: TcpStream, upstream: SocketAddr, rules: &Mutex<Rules>) {
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut writer = client;
    while let Some(request) = read_message(&mut reader) {
        let operation = header(&request.head, "x-amz-target")
            .and_then(|t| t.rsplit('.').next().map(str::to_owned))
            .unwrap_or_default();
        let fault = {
            let mut rules = rules.lock().unwrap();
            let found = rules
                .faults
                .iter_mut()
                .find(|(op, _, left)| *op == operation && left.is_none_or(|n| n > 0));
            found.map(|(_, fault, left)| {
                if let Some(n) = left {
                    *n -= 1;
                }
                fault.clone()
            })
        };
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let receipts = entries(&body).iter().map(|(_, r)| r.clone()).collect();
        let mut call = Call { operation: operation.clone(), receipts, failed: Vec::new() };
        let (status, answer) = match fault {
            Some(Fault::Status(status, code)) => (status, error_body(code)),
            Some(Fault::FailEntries { code, sender_fault }) => {
                let all = entries(&body);
                let (kept, dropped): (Vec<_>, Vec<_>) =
                    all.iter().enumerate().partition(|(i, _)| i % 2 == 0);
                let mut forwarded = body.clone();
                let kept: Vec<Value> = body["Entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| kept.iter().any(|(k, _)| k == i))
                    .map(|(_, e)| e.clone())
                    .collect();
                forwarded["Entries"] = Value::Array(kept);
                let (status, upstream_answer) = relay(upstream, &request, &forwarded);
                let mut answer: Value =
                    serde_json::from_slice(&upstream_answer).unwrap_or(json!({}));
                let failed: Vec<Value> = dropped
                    .iter()
                    .map(|(_, (id, receipt))| {
                        call.failed.push(receipt.clone());
                        json!({"Id": id, "SenderFault": sender_fault, "Code": code, "Message": "injected"})
                    })
                    .collect();
                answer["Failed"] = Value::Array(failed);
                (status, serde_json::to_vec(&answer).unwrap())
            }
            Some(Fault::Delay(wait)) => {
                std::thread::sleep(wait);
                relay(upstream, &request, &body)
            }
            None => relay(upstream, &request, &body),
        };
        rules.lock().unwrap().calls.push(call);
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n{}\r\n",
            answer.len(),
            match status {
                200 => String::new(),
                _ => format!("x-amzn-query-error: {};Sender\r\n", code_of(&answer)),
            }
        );
        if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&answer)).is_err() {
            return;
        }
    }
}

/// (Id, ReceiptHandle) of a batch call's entries.
fn entries(body: &Value) -> Vec<(String, String)> {
    body["Entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                    (text("Id"), text("ReceiptHandle"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn error_body(code: &str) -> Vec<u8> {
    let body = json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": "injected by the test relay"});
    serde_json::to_vec(&body).unwrap()
}

fn code_of(answer: &[u8]) -> String {
    let body: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
    let kind = body["__type"].as_str().unwrap_or("InternalError");
    kind.rsplit('#').next().unwrap_or(kind).to_owned()
}

/// Sends the request (with `body` in place of its own) to LocalStack on a fresh connection and
/// returns the status and body of the answer.
fn relay(upstream: SocketAddr, request: &Request, body: &Value) -> (u16, Vec<u8>) {
    let body = serde_json::to_vec(body).unwrap();
    let mut stream = TcpStream::connect(upstream).expect("connect to LocalStack");
    let mut head = request.head[0].clone() + "\r\n";
    for line in &request.head[1..] {
        let name = line.split(':').next().unwrap_or_default().to_ascii_lowercase();
        if name != "content-length" && name != "connection" {
            head += line;
            head += "\r\n";
        }
    }
    head += &format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut reader = BufReader::new(stream);
    let answer = read_message(&mut reader).expect("an answer from LocalStack");
    let status = answer.head[0].split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    (status, answer.body)
}

/// One HTTP/1.1 message (request or response): its head lines and its body (Content-Length or
/// chunked). `None` at the end of the stream.
fn read_message(reader: &mut impl BufRead) -> Option<Request> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let mut body = Vec::new();
    if let Some(length) = header(&head, "content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    } else if header(&head, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(Request { head, body })
}

fn header(head: &[String], name: &str) -> Option<String> {
    head.iter().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}
