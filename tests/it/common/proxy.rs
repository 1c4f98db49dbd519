//! A TCP proxy in front of the kit registry that can be made to fail: the
//! real registry cannot go down, answer 503 or 429, or stall on purpose.
//!
//! In the answering modes ([`Mode::Error503`], [`Mode::Error429`]) the
//! proxy reads each request head itself, answers it (with `Retry-After`
//! when [`Proxy::set_retry_after`] says so) and logs it, so a test can
//! count exactly what reached "the registry" during an outage.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the proxy does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward to the registry.
    Pass = 0,
    /// Accept and close at once (the registry is down).
    Down = 1,
    /// Answer every request `503 Service Unavailable`.
    Error503 = 2,
    /// Hold the connection for 30 s before forwarding.
    Slow = 3,
    /// Answer every request `429 Too Many Requests`.
    Error429 = 4,
}

/// A request the proxy answered itself (in an answering mode).
#[derive(Debug, Clone)]
pub struct Answered {
    /// When its head was read.
    pub at: Instant,
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The status answered.
    pub status: u16,
}

/// A running proxy.
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    connections: Arc<AtomicU64>,
    retry_after: Arc<Mutex<Option<String>>>,
    answered: Arc<Mutex<Vec<Answered>>>,
    generation: tokio::sync::watch::Sender<u64>,
    _rt: tokio::runtime::Runtime,
}

/// Reads request heads off `inbound` and answers each with `status`
/// (and `Retry-After: retry_after`), logging it, until the client goes
/// away or the mode changes.
async fn answer_all(
    mut inbound: tokio::net::TcpStream,
    status: u16,
    retry_after: Option<String>,
    log: Arc<Mutex<Vec<Answered>>>,
    mut gen_rx: tokio::sync::watch::Receiver<u64>,
) {
    let reason = match status {
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let header = retry_after
        .map(|v| format!("Retry-After: {v}\r\n"))
        .unwrap_or_default();
    let reply = format!("HTTP/1.1 {status} {reason}\r\n{header}Content-Length: 0\r\n\r\n");
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            r = inbound.read(&mut buf) => r,
            _ = gen_rx.changed() => return,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
        // Every complete head in the buffer (the client's requests carry
        // no body: GET and HEAD).
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            let line = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let mut parts = line.split(' ');
            let method = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            log.lock().unwrap().push(Answered {
                at: Instant::now(),
                method,
                target,
                status,
            });
            if inbound.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
        if pending.len() > 64 * 1024 {
            return;
        }
    }
}

impl Proxy {
    /// A proxy to `upstream` (host:port).
    pub fn start(upstream: &str) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let connections = Arc::new(AtomicU64::new(0));
        let retry_after: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let answered: Arc<Mutex<Vec<Answered>>> = Arc::new(Mutex::new(Vec::new()));
        let upstream = upstream.to_owned();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (m, c, ra, log) = (
            mode.clone(),
            connections.clone(),
            retry_after.clone(),
            answered.clone(),
        );
        let (generation, gen_rx) = tokio::sync::watch::channel(0u64);
        rt.spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::Relaxed);
                let mode = m.load(Ordering::Relaxed);
                let upstream = upstream.clone();
                let mut gen_rx = gen_rx.clone();
                gen_rx.mark_unchanged();
                let retry_after = ra.lock().unwrap().clone();
                let log = log.clone();
                tokio::spawn(async move {
                    match mode {
                        1 => drop(inbound),
                        2 => answer_all(inbound, 503, retry_after, log, gen_rx).await,
                        4 => answer_all(inbound, 429, retry_after, log, gen_rx).await,
                        _ => {
                            if mode == 3 {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                            }
                            if let Ok(mut out) = tokio::net::TcpStream::connect(&upstream).await {
                                // A mode change closes pooled connections too.
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                                    _ = gen_rx.changed() => {}
                                }
                            }
                        }
                    }
                });
            }
        });
        Proxy {
            addr,
            mode,
            connections,
            retry_after,
            answered,
            generation,
            _rt: rt,
        }
    }

    /// `127.0.0.1:PORT`, as a registry name.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Sets the mode for new connections (and closes the open ones).
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The `Retry-After` value sent with 429 and 503 answers on new
    /// connections (`None`: no header).
    pub fn set_retry_after(&self, value: Option<&str>) {
        *self.retry_after.lock().unwrap() = value.map(str::to_owned);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The requests answered by the proxy itself so far, in order.
    pub fn answered(&self) -> Vec<Answered> {
        self.answered.lock().unwrap().clone()
    }
}
