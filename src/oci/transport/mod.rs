//! The registry transport: bounded HTTP with per-host credentials.
//!
//! `oci-client` reads every body without a limit, follows redirects with
//! reqwest's defaults, ignores pagination and keeps one credential per host
//! for the whole client, so provgate talks the (small) distribution protocol
//! here, on reqwest, with these guarantees:
//!
//! - every body is read with a byte limit; a `Content-Length` above it is
//!   refused before reading, an endless body is cut off at the limit, and all
//!   reads of one image draw from one byte budget;
//! - every request has a timeout (and discovery as a whole a deadline);
//! - redirects are followed by hand, at most `max_redirects` times, and the
//!   `Authorization` header is only ever sent to the registry host itself
//!   (never across a redirect to another host, and basic credentials only to
//!   a token realm on the same host or on a host configured for it);
//! - plain HTTP only where the registry's options allow it;
//! - one [`Transport`] per (registry host, credential set), so tenants'
//!   credentials and tokens never mix;
//! - a host that answers 429 or 5xx, times out or refuses connections is
//!   left alone for its back-off (`Retry-After`, or an exponential back-off
//!   with jitter): requests to it fail at once, without touching the
//!   network, and after the back-off one probe request is sent
//!   ([`super::backoff`]).

mod failure;
mod token;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::HeaderMap;

use super::auth::{Credential, parse_challenge};
use super::backoff::{Circuits, Trip};
use super::error::{CredentialKind, CredentialsUsed, RegistryError, RegistryErrorKind};
use super::limits::{Limits, RegistryOptions};
use super::record::{Budget, RequestKind, RequestLog, RequestObserver, RequestRecord};

const MAX_ERROR_BODY: u64 = 4 * 1024;

/// Per-discovery context passed to every request.
pub struct Ctx<'a> {
    /// The repository (token scope).
    pub repo: &'a str,
    /// Where requests are recorded.
    pub log: &'a RequestLog,
    /// The byte budget.
    pub budget: &'a Budget,
}

/// A response: status, headers and a bounded body.
#[derive(Debug)]
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (only for 2xx GETs; empty otherwise).
    pub body: Bytes,
}

impl Fetched {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The HTTP side of one registry host for one credential set.
pub struct Transport {
    host: String,
    scheme: &'static str,
    http: reqwest::Client,
    credential: Option<Credential>,
    /// What `credential` is, for the messages of 401/403 (no secret).
    credentials_used: CredentialsUsed,
    options: RegistryOptions,
    limits: Limits,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    bearer_seen: AtomicBool,
    /// One token fetch at a time: concurrent requests that met the same
    /// challenge wait for it instead of each fetching a token.
    token_fetch: tokio::sync::Mutex<()>,
    observer: Arc<dyn RequestObserver>,
    /// The hosts' circuits (shared by every transport of a [`super::Registries`]).
    circuits: Arc<Circuits>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("host", &self.host)
            .field("scheme", &self.scheme)
            .field("credential", &self.credential)
            .finish()
    }
}

/// Why a transport could not be built.
#[derive(Debug, thiserror::Error)]
#[error("registry {host}: {reason}")]
pub struct TransportError {
    host: String,
    reason: String,
}

impl Transport {
    /// A transport to `host` (`host[:port]`) with these options and the
    /// credential for it from the credentials set named `credentials_set`
    /// (empty: no set applies).
    pub fn new(
        host: &str,
        options: RegistryOptions,
        limits: Limits,
        credential: Option<Credential>,
        credentials_set: &str,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Self, TransportError> {
        let err = |reason: String| TransportError {
            host: host.into(),
            reason,
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("provgate/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(8);
        if let Some(pem) = &options.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| err(format!("bad CA bundle: {e}")))?;
            if certs.is_empty() {
                return Err(err("CA bundle holds no certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| err(e.to_string()))?;
        let credentials_used = CredentialsUsed {
            set: credentials_set.to_owned(),
            credential: credential.as_ref().map(|c| match c {
                Credential::Basic { username, .. } => CredentialKind::Basic {
                    username: username.clone(),
                },
                Credential::IdentityToken { .. } => CredentialKind::IdentityToken,
                Credential::Bearer { .. } => CredentialKind::RegistryToken,
            }),
        };
        Ok(Transport {
            host: host.into(),
            scheme: if options.insecure { "http" } else { "https" },
            http,
            credential,
            credentials_used,
            options,
            limits,
            tokens: Mutex::new(HashMap::new()),
            bearer_seen: AtomicBool::new(false),
            token_fetch: tokio::sync::Mutex::new(()),
            circuits: Arc::new(Circuits::new(observer.clone())),
            observer,
        })
    }

    /// Shares `circuits` (every transport to one host must see the same
    /// circuit) instead of this transport's own.
    #[must_use]
    pub fn with_circuits(mut self, circuits: Arc<Circuits>) -> Self {
        self.circuits = circuits;
        self
    }

    /// The `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The limits this transport's reads are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The options.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// `GET` (`head == false`) or `HEAD` a path under `/v2/`, following
    /// redirects and the auth challenge, reading at most `max` body bytes of
    /// a 2xx response. Fails at once, sending nothing, while the host is
    /// backing off ([`RegistryErrorKind::BackingOff`]); reports what the
    /// answer says about the host's health to its circuit.
    pub async fn request(
        &self,
        ctx: &Ctx<'_>,
        kind: RequestKind,
        head: bool,
        path: &str,
        accept: Option<&str>,
        max: u64,
    ) -> Result<Fetched, RegistryError> {
        let permit = match self.circuits.admit(&self.host, self.limits.backoff()) {
            Ok(p) => p,
            Err(refusal) => return Err(refusal.error(&self.host, &describe(kind, path))),
        };
        // Boxed: the request's state machine is large, and discovery runs
        // several at once inside the engine's futures (debug builds ran out
        // of a worker thread's 2 MiB stack without it).
        let result = Box::pin(self.send(ctx, kind, head, path, accept, max)).await;
        let trip = match &result {
            Ok(f) => Trip::for_status(f.status, f.header("retry-after")),
            Err(e) => Trip::for_error(e),
        };
        match trip {
            Some(t) => permit.failed(t),
            None => permit.succeeded(),
        }
        result
    }

    /// [`Transport::request`] without the circuit.
    async fn send(
        &self,
        ctx: &Ctx<'_>,
        kind: RequestKind,
        head: bool,
        path: &str,
        accept: Option<&str>,
        max: u64,
    ) -> Result<Fetched, RegistryError> {
        let context = describe(kind, path);
        let mut url = reqwest::Url::parse(&format!("{}://{}/v2/{}", self.scheme, self.host, path))
            .map_err(|e| {
                RegistryError::new(
                    &self.host,
                    &context,
                    RegistryErrorKind::BadRedirect(e.to_string()),
                )
            })?;
        let mut authorized = false;
        let mut redirects = 0;
        let method_name = if head { "HEAD" } else { "GET" };
        loop {
            let same_host = host_port(&url) == self.host;
            let req = self.build(ctx, head, &url, accept, same_host);
            let started = Instant::now();
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = self.map_reqwest(&context, &e);
                    self.record(ctx, kind, method_name, &url, err.label(), 0, started);
                    return Err(err);
                }
            };
            let status = resp.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                self.record(
                    ctx,
                    kind,
                    method_name,
                    &url,
                    &status.to_string(),
                    0,
                    started,
                );
                redirects += 1;
                if redirects > self.limits.max_redirects {
                    return Err(RegistryError::new(
                        &self.host,
                        &context,
                        RegistryErrorKind::TooMany {
                            what: "redirects",
                            limit: self.limits.max_redirects,
                        },
                    ));
                }
                url = self.redirect_target(&context, &url, resp.headers())?;
                continue;
            }
            if status == 401 && !authorized && same_host {
                self.record(ctx, kind, method_name, &url, "401", 0, started);
                authorized = true;
                let challenge = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                if let Some(c) = challenge
                    && self.authorize(ctx, c).await?
                {
                    continue;
                }
                return Err(self.unauthorized(&context, 401));
            }
            let headers = resp.headers().clone();
            let body = if head {
                Bytes::new()
            } else if (200..300).contains(&status) {
                match read_limited(resp, max, kind, self, &context, ctx.budget).await {
                    Ok(b) => b,
                    Err(e) => {
                        self.record(ctx, kind, "GET", &url, e.label(), 0, started);
                        return Err(e);
                    }
                }
            } else {
                // Drain a little for the connection's sake; never more.
                let _ = read_limited(resp, MAX_ERROR_BODY, kind, self, &context, ctx.budget).await;
                Bytes::new()
            };
            self.record(
                ctx,
                kind,
                method_name,
                &url,
                &status.to_string(),
                body.len() as u64,
                started,
            );
            return Ok(Fetched {
                status,
                headers,
                body,
            });
        }
    }

    /// One attempt's request: the `Authorization` header goes only to the
    /// registry host itself.
    fn build(
        &self,
        ctx: &Ctx<'_>,
        head: bool,
        url: &reqwest::Url,
        accept: Option<&str>,
        same_host: bool,
    ) -> reqwest::RequestBuilder {
        let auth = if same_host {
            self.auth_header(ctx.repo)
        } else {
            None
        };
        let method = if head {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::GET
        };
        let mut req = self.http.request(method, url.clone());
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        req
    }

    /// Where a redirect answer points: its `Location`, resolved against
    /// `url`, over HTTPS (or plain HTTP where the registry's options allow
    /// it).
    fn redirect_target(
        &self,
        context: &str,
        url: &reqwest::Url,
        headers: &HeaderMap,
    ) -> Result<reqwest::Url, RegistryError> {
        let location = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::new(
                    &self.host,
                    context,
                    RegistryErrorKind::BadRedirect("no Location".into()),
                )
            })?;
        let next = url.join(location).map_err(|e| {
            RegistryError::new(
                &self.host,
                context,
                RegistryErrorKind::BadRedirect(e.to_string()),
            )
        })?;
        match next.scheme() {
            "https" => {}
            "http" if self.options.insecure => {}
            other => {
                return Err(RegistryError::new(
                    &self.host,
                    context,
                    RegistryErrorKind::BadRedirect(format!("to a {other}: URL")),
                ));
            }
        }
        Ok(next)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        ctx: &Ctx<'_>,
        kind: RequestKind,
        method: &'static str,
        url: &reqwest::Url,
        outcome: &str,
        bytes: u64,
        started: Instant,
    ) {
        self.observer.observe(&self.host, kind, outcome);
        ctx.log.push(RequestRecord {
            kind,
            method,
            url: format!("{}{}", host_port(url), url.path()),
            outcome: outcome.into(),
            bytes,
            millis: started.elapsed().as_millis() as u64,
        });
    }
}

/// A request as messages name it: `resolve app:v1`, `manifest
/// app@sha256:…`, `blob app@sha256:…`, `referrers app@sha256:…`.
fn describe(kind: RequestKind, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    for (segment, by_digest) in [
        ("/manifests/", false),
        ("/blobs/", true),
        ("/referrers/", true),
    ] {
        if let Some((repo, reference)) = path.rsplit_once(segment) {
            let sep = if by_digest || reference.contains(':') {
                '@'
            } else {
                ':'
            };
            return format!("{} {repo}{sep}{reference}", kind.as_str());
        }
    }
    format!("{} {path}", kind.as_str())
}

/// `host[:port]` of a URL, with the port only when it is not the default.
pub fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

pub(super) async fn read_limited(
    mut resp: reqwest::Response,
    limit: u64,
    kind: RequestKind,
    transport: &Transport,
    context: &str,
    budget: &Budget,
) -> Result<Bytes, RegistryError> {
    let host = transport.host.as_str();
    let what = match kind {
        RequestKind::Blob => "blob",
        RequestKind::Token => "token response",
        _ => "manifest",
    };
    if let Some(len) = resp.content_length()
        && len > limit
    {
        return Err(RegistryError::new(
            host,
            context,
            RegistryErrorKind::TooLarge {
                what,
                limit,
                size: len,
            },
        ));
    }
    let mut buf = BytesMut::new();
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(transport.map_reqwest(context, &e)),
        };
        let size = buf.len() as u64 + chunk.len() as u64;
        if size > limit {
            return Err(RegistryError::new(
                host,
                context,
                RegistryErrorKind::TooLarge { what, limit, size },
            ));
        }
        budget.take(chunk.len() as u64, host, context)?;
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_described_as_references() {
        assert_eq!(
            describe(RequestKind::Resolve, "acme/app/manifests/v1"),
            "resolve acme/app:v1"
        );
        assert_eq!(
            describe(RequestKind::Manifest, "acme/app/manifests/sha256:ab"),
            "manifest acme/app@sha256:ab"
        );
        assert_eq!(
            describe(RequestKind::Tag, "acme/app/manifests/sha256-ab.sig"),
            "tag acme/app:sha256-ab.sig"
        );
        assert_eq!(
            describe(RequestKind::Blob, "acme/app/blobs/sha256:ab"),
            "blob acme/app@sha256:ab"
        );
        assert_eq!(
            describe(RequestKind::Referrers, "acme/app/referrers/sha256:ab?n=1"),
            "referrers acme/app@sha256:ab"
        );
    }
}
