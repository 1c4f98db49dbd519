//! A small misbehaving HTTP/1.1 server for the hostile-registry tests.
//!
//! The real registry cannot misbehave on purpose, so these tests talk to a
//! hand-written server on a tokio `TcpListener`: every connection carries
//! one request and one scripted [`Reply`] (then `Connection: close`), every
//! request is logged with its headers, and every body byte written is
//! counted, so a test can prove what the client did and did not receive or
//! send. [`Content`] serves a well-formed little registry (manifests by tag
//! and digest, blobs) for the requests a test does not script.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provgate::digest::Digest;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Req {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// Path and query, e.g. `/v2/app/manifests/v1`.
    pub target: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Req {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
    /// The query, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response. `Content-Length` is the body length unless the
    /// headers set one (to lie about it).
    Full {
        /// Status code.
        status: u16,
        /// Headers.
        headers: Vec<(String, String)>,
        /// Body (not sent for HEAD).
        body: Vec<u8>,
    },
    /// A chunked body of `count` copies of `chunk` (`None`: forever), with
    /// `delay` before each chunk.
    Chunked {
        /// Status code.
        status: u16,
        /// Headers.
        headers: Vec<(String, String)>,
        /// One chunk.
        chunk: Vec<u8>,
        /// How many chunks; `None` streams until the client goes away.
        count: Option<usize>,
        /// Pause before each chunk.
        delay: Duration,
    },
    /// Say nothing for this long, then hang up.
    Stall(Duration),
}

impl Reply {
    /// A response with a body and a content type.
    pub fn ok(content_type: &str, body: Vec<u8>) -> Self {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }
    /// An empty response with a status.
    pub fn status(status: u16) -> Self {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    /// A status with headers and no body.
    pub fn with_headers(status: u16, headers: &[(&str, &str)]) -> Self {
        Reply::Full {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
        }
    }
    /// A redirect.
    pub fn redirect(status: u16, location: &str) -> Self {
        Reply::with_headers(status, &[("Location", location)])
    }
    /// 404 with a registry-style error body.
    pub fn not_found() -> Self {
        Reply::Full {
            status: 404,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                .to_vec(),
        }
    }
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// A running fake server.
pub struct FakeServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
    sent: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FakeServer {
    /// Binds `ip:0` and serves every request with `handler`.
    pub async fn start(ip: &str, handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind(format!("{ip}:0")).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let handler: Handler = Arc::new(handler);
        let accept = {
            let log = log.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (log, sent, handler) = (log.clone(), sent.clone(), handler.clone());
                    tokio::spawn(async move {
                        let _ = serve_one(stream, &log, &sent, &handler).await;
                    });
                }
            })
        };
        FakeServer {
            addr,
            log,
            sent,
            accept,
        }
    }

    /// `ip:port`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    /// Body bytes written so far (across all connections).
    pub fn body_bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

async fn serve_one(
    mut stream: TcpStream,
    log: &Mutex<Vec<Req>>,
    sent: &AtomicU64,
    handler: &Handler,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let req = Req {
        method,
        target,
        headers,
    };
    log.lock().unwrap().push(req.clone());
    let head_only = req.method == "HEAD";
    match handler(&req) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            let has_len = headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
            for (k, v) in &headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            if !has_len {
                out.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            if !head_only && !body.is_empty() {
                stream.write_all(&body).await?;
                sent.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
            stream.flush().await?;
            // Let the client read before the socket closes.
            let _ = stream.shutdown().await;
        }
        Reply::Chunked {
            status,
            headers,
            chunk,
            count,
            delay,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
            );
            for (k, v) in &headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            let mut i = 0usize;
            while count.is_none_or(|c| i < c) {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                // Fails once the client hangs up: that ends an endless body.
                stream.write_all(&frame).await?;
                stream.flush().await?;
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                i += 1;
            }
            stream.write_all(b"0\r\n\r\n").await?;
            let _ = stream.shutdown().await;
        }
        Reply::Stall(d) => {
            tokio::time::sleep(d).await;
        }
    }
    Ok(())
}

/// Well-formed registry content: manifests by digest and tag, blobs.
#[derive(Debug, Clone, Default)]
pub struct Content {
    /// Repository name.
    pub repo: String,
    manifests: HashMap<String, (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
}

/// A descriptor as JSON.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": Digest::sha256_of(bytes).to_string(),
        "size": bytes.len(),
    })
}

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The Sigstore bundle v0.3 media type.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The OCI empty descriptor's media type.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

impl Content {
    /// Empty content for `repo`.
    pub fn new(repo: &str) -> Self {
        Content {
            repo: repo.to_owned(),
            ..Content::default()
        }
    }

    /// Stores a blob; returns its digest.
    pub fn blob(&mut self, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        self.blobs.insert(d.to_string(), bytes.to_vec());
        d
    }

    /// Stores a manifest (serialised once); returns its digest and bytes.
    pub fn manifest(&mut self, media_type: &str, value: &Value) -> (Digest, Vec<u8>) {
        let bytes = serde_json::to_vec(value).unwrap();
        let d = Digest::sha256_of(&bytes);
        self.manifests
            .insert(d.to_string(), (media_type.to_owned(), bytes.clone()));
        (d, bytes)
    }

    /// Tags a stored manifest.
    pub fn tag(&mut self, tag: &str, digest: &Digest) {
        let m = self.manifests[&digest.to_string()].clone();
        self.manifests.insert(tag.to_owned(), m);
    }

    /// A small image (empty config, one layer); returns its digest and bytes.
    pub fn image(&mut self, seed: &str) -> (Digest, Vec<u8>) {
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let layer = format!("layer {seed}").into_bytes();
        self.blob(&config);
        self.blob(&layer);
        let m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
        });
        self.manifest(OCI_MANIFEST, &m)
    }

    /// A Sigstore-bundle referrer of `subject` (as `attach` makes them);
    /// returns the descriptor of the referrer manifest, for an index.
    pub fn bundle_referrer(&mut self, subject: (&Digest, &[u8]), bundle: &[u8]) -> Value {
        self.blob(b"{}");
        self.blob(bundle);
        let m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_V03,
            "config": descriptor(OCI_EMPTY, b"{}"),
            "layers": [descriptor(BUNDLE_V03, bundle)],
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": subject.0.to_string(),
                "size": subject.1.len(),
            },
        });
        let (_, bytes) = self.manifest(OCI_MANIFEST, &m);
        let mut d = descriptor(OCI_MANIFEST, &bytes);
        d["artifactType"] = json!(BUNDLE_V03);
        d
    }

    /// Serves `/v2/`, manifests (HEAD and GET) and blobs; 404 otherwise.
    pub fn serve(&self, req: &Req) -> Reply {
        let path = req.path();
        if path == "/v2/" {
            return Reply::ok("application/json", b"{}".to_vec());
        }
        let prefix = format!("/v2/{}/", self.repo);
        let Some(rest) = path.strip_prefix(&prefix) else {
            return Reply::not_found();
        };
        if let Some(reference) = rest.strip_prefix("manifests/") {
            return match self.manifests.get(reference) {
                Some((mt, bytes)) => Reply::Full {
                    status: 200,
                    headers: vec![
                        ("Content-Type".into(), mt.clone()),
                        (
                            "Docker-Content-Digest".into(),
                            Digest::sha256_of(bytes).to_string(),
                        ),
                    ],
                    body: bytes.clone(),
                },
                None => Reply::not_found(),
            };
        }
        if let Some(d) = rest.strip_prefix("blobs/") {
            return match self.blobs.get(d) {
                Some(bytes) => Reply::ok("application/octet-stream", bytes.clone()),
                None => Reply::not_found(),
            };
        }
        Reply::not_found()
    }
}
