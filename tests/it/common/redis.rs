//! A real `redis-server` (Debian's package) on loopback, on a free port,
//! for the shared-tier tests; and a request-logging HTTP proxy in front of
//! the kit registry that counts what the replicas ask.
//!
//! Each server is killed when its handle drops and, should the test
//! process die first, by a watchdog that polls the test process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running `redis-server`.
pub struct RedisServer {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts one with no persistence; `extra` are more `redis-server`
    /// arguments (e.g. `--requirepass`).
    pub fn start(extra: &[&str]) -> RedisServer {
        Self::start_with(extra, false)
    }

    /// Starts one that speaks only TLS, with a certificate for 127.0.0.1
    /// from a CA of its own (written to `ca_out`).
    pub fn start_tls(ca_out: &std::path::Path) -> RedisServer {
        let certs = tempfile::tempdir().unwrap();
        provgate::server::dev_certs::generate(
            &["127.0.0.1".into(), "localhost".into()],
            certs.path(),
        )
        .unwrap();
        std::fs::copy(certs.path().join("ca.crt"), ca_out).unwrap();
        let p = |f: &str| certs.path().join(f).to_str().unwrap().to_owned();
        let (crt, key, ca) = (p("tls.crt"), p("tls.key"), p("ca.crt"));
        let server = Self::start_with(
            &[
                "--tls-cert-file",
                &crt,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
            ],
            true,
        );
        // redis-server has read its files.
        drop(certs);
        server
    }

    fn start_with(extra: &[&str], tls: bool) -> RedisServer {
        let bin = which("redis-server").unwrap_or_else(|| {
            panic!("redis-server is not installed: apt-get install -y redis-server (.ci/run does)")
        });
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(if tls {
                    ["--port", "0", "--tls-port"]
                } else {
                    ["--tls-port", "0", "--port"]
                })
                .args([
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",
                    "--dir",
                    dir.path().to_str().unwrap(),
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start redis-server");
            watchdog(child.id());
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return RedisServer {
                        addr,
                        child: Some(child),
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut last);
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// A synchronous client connection.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// Keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.conn())
            .unwrap()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query(&mut self.conn()).unwrap()
    }

    /// Sets `key` (keeping no TTL).
    pub fn set(&self, key: &str, value: &[u8]) {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query::<()>(&mut self.conn())
            .unwrap();
    }

    /// Kills the server (SIGKILL): an outage.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills `pid` when this test process exits, however it exits.
pub fn watchdog(pid: u32) {
    let me = std::process::id();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -9 {pid} 2>/dev/null; exit 0"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Sends one inline command to `addr` and returns the first reply line
/// (for a server started with a password, say).
pub fn raw_command(addr: SocketAddr, line: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim().to_owned()
}

/// A plain-HTTP proxy that records every request line (`METHOD PATH`).
pub struct RequestLog {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl RequestLog {
    /// A proxy to `upstream` (host:port).
    pub fn start(upstream: &str) -> RequestLog {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = lines.clone();
        let upstream = upstream.to_owned();
        rt.spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(out) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = out.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut ro, &mut wi).await;
                        let _ = wi.shutdown().await;
                    });
                    // Client → registry: request heads (and any body, by
                    // Content-Length) are parsed to log each request line.
                    let mut pending: Vec<u8> = Vec::new();
                    let mut body_left: usize = 0;
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match ri.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if wo.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let mut chunk = &buf[..n];
                        loop {
                            if body_left > 0 {
                                let k = body_left.min(chunk.len());
                                body_left -= k;
                                chunk = &chunk[k..];
                            }
                            if chunk.is_empty() {
                                break;
                            }
                            pending.extend_from_slice(chunk);
                            chunk = &[];
                            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n")
                            {
                                let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                                let rest = pending.split_off(end + 4);
                                pending = rest;
                                let mut it = head.lines();
                                if let Some(first) = it.next() {
                                    let mut parts = first.split(' ');
                                    let line = format!(
                                        "{} {}",
                                        parts.next().unwrap_or(""),
                                        parts.next().unwrap_or("")
                                    );
                                    log.lock().unwrap().push(line);
                                }
                                let len = it
                                    .filter_map(|h| h.split_once(':'))
                                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                                    .unwrap_or(0);
                                let k = len.min(pending.len());
                                pending.drain(..k);
                                body_left = len - k;
                            }
                        }
                    }
                    let _ = wo.shutdown().await;
                    let _ = down.await;
                });
            }
        });
        RequestLog {
            addr,
            lines,
            _rt: rt,
        }
    }

    /// `127.0.0.1:PORT`, as a registry name.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Forgets the lines so far.
    pub fn clear(&self) {
        self.lines.lock().unwrap().clear();
    }
}
