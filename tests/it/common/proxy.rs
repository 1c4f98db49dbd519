//! A TCP proxy in front of the kit registry that can be made to fail: the
//! real registry cannot go down, answer 503 or stall on purpose.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

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
}

/// A running proxy.
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    connections: Arc<AtomicU64>,
    generation: tokio::sync::watch::Sender<u64>,
    _rt: tokio::runtime::Runtime,
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
        let upstream = upstream.to_owned();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (m, c) = (mode.clone(), connections.clone());
        let (generation, gen_rx) = tokio::sync::watch::channel(0u64);
        rt.spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                c.fetch_add(1, Ordering::Relaxed);
                let mode = m.load(Ordering::Relaxed);
                let upstream = upstream.clone();
                let mut gen_rx = gen_rx.clone();
                gen_rx.mark_unchanged();
                tokio::spawn(async move {
                    match mode {
                        1 => drop(inbound),
                        2 => loop {
                            // Answer each request on the connection with 503,
                            // until the mode changes.
                            let mut buf = vec![0u8; 16 * 1024];
                            let read = tokio::select! {
                                r = inbound.read(&mut buf) => r,
                                _ = gen_rx.changed() => break,
                            };
                            match read {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {
                                    let _ = inbound
                                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                                        .await;
                                }
                            }
                        },
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
            generation,
            _rt: rt,
        }
    }

    /// `127.0.0.1:PORT`, as a registry name.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Sets the mode for new connections.
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}
