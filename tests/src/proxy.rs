//! A TCP relay between the host and a service that the test can cut or silence: an SQS outage
//! that keeps LocalStack's state (stopping LocalStack loses every queue here), so messages the
//! host holds across the outage come back to it afterwards; or a PostgreSQL whose network path
//! goes silent (connections stay open, nothing comes back), as behind a blackholed proxy.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

const UP: u8 = 0;
const CUT: u8 = 1;
const SILENT: u8 = 2;

pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Relays 127.0.0.1:<free port> to `upstream` until cut or silenced.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(UP));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (mode2, open2) = (mode.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server = match mode2.load(Ordering::SeqCst) {
                    UP => TcpStream::connect(upstream).ok(),
                    // Silent: accepted, held open, never answered.
                    SILENT => {
                        open2.lock().unwrap().push(client);
                        continue;
                    }
                    _ => None,
                };
                // Down: every connection is closed at once, as a dead endpoint would.
                let Some(server) = server else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let mut open = open2.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                relay(client.try_clone().unwrap(), server.try_clone().unwrap(), mode2.clone());
                relay(server, client, mode2.clone());
            }
        });
        Proxy { addr, mode, open }
    }

    /// `http://<addr>`, for AWS_ENDPOINT_URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Unreachable: open connections are closed, new ones refused.
    pub fn cut(&self) {
        self.mode.store(CUT, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Silent: open connections stay open but nothing more crosses; new ones are accepted and
    /// never answered.
    pub fn silence(&self) {
        self.mode.store(SILENT, Ordering::SeqCst);
    }

    /// Relaying again (connections silenced meanwhile are closed: their streams lost bytes).
    pub fn restore(&self) {
        if self.mode.swap(UP, Ordering::SeqCst) == SILENT {
            for stream in self.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies `from` to `to` while up, drops what arrives while silent, ends when either closes.
fn relay(mut from: TcpStream, mut to: TcpStream, mode: Arc<AtomicU8>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if mode.load(Ordering::SeqCst) == SILENT {
                continue;
            }
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
