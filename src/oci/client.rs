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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Serialize;

use super::auth::{Challenge, Credential, TokenResponse, parse_challenge};
use super::backoff::{BackoffPolicy, CircuitState, Circuits, Trip};
use super::error::{
    ConnectFailure, CredentialKind, CredentialsUsed, RegistryError, RegistryErrorKind, TimeoutKind,
};

/// Per-registry connection options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryOptions {
    /// Allow plain HTTP to this registry.
    pub insecure: bool,
    /// Extra CA certificates (PEM) to trust for this registry.
    pub ca_pem: Option<Vec<u8>>,
    /// Timeout of one request (connect, headers and body).
    pub timeout: Duration,
    /// Hosts, besides the registry itself, that may receive the registry's
    /// credentials when they are the token `realm` (e.g. `auth.docker.io`).
    pub token_hosts: Vec<String>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: false,
            ca_pem: None,
            timeout: Duration::from_secs(10),
            token_hosts: Vec::new(),
        }
    }
}

/// Limits on what one image's discovery may fetch. All configurable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Manifest or index bytes (default 4 MiB).
    pub max_manifest_bytes: u64,
    /// Blob bytes (default 16 MiB).
    pub max_blob_bytes: u64,
    /// Sigstore referrers considered per digest (default 64).
    pub max_referrers: usize,
    /// Referrers API pages followed (default 8).
    pub max_pages: usize,
    /// Layers read from one cosign `.sig`/`.att` manifest (default 32).
    pub max_layers: usize,
    /// Platform manifests of an index searched for evidence (default 16).
    pub max_platforms: usize,
    /// Bytes downloaded for one image in total (default 64 MiB).
    pub max_image_bytes: u64,
    /// Wall-clock time for one image's discovery, in milliseconds (default 20 s).
    pub max_image_millis: u64,
    /// Redirects followed per request (default 5).
    pub max_redirects: usize,
    /// Concurrent requests within one image's discovery (default 8).
    pub concurrency: usize,
    /// The first back-off from a registry host that failed (429, 5xx, a
    /// timeout, a refused connection) without a `Retry-After`, in
    /// milliseconds; doubled per consecutive failure, with jitter (default
    /// 1 s).
    pub backoff_millis: u64,
    /// The longest back-off, in milliseconds, `Retry-After` included
    /// (default 60 s; 0 turns back-off off).
    pub max_backoff_millis: u64,
}

impl Limits {
    /// The back-off policy of these limits.
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(self.backoff_millis),
            max: Duration::from_millis(self.max_backoff_millis),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_bytes: 16 * 1024 * 1024,
            max_referrers: 64,
            max_pages: 8,
            max_layers: 32,
            max_platforms: 16,
            max_image_bytes: 64 * 1024 * 1024,
            max_image_millis: 20_000,
            max_redirects: 5,
            concurrency: 8,
            backoff_millis: 1000,
            max_backoff_millis: 60_000,
        }
    }
}

const MAX_TOKEN_BYTES: u64 = 64 * 1024;
const MAX_ERROR_BODY: u64 = 4 * 1024;

/// What a request is for (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// Tag → digest.
    Resolve,
    /// The referrers API.
    Referrers,
    /// A tag lookup (tag schema, cosign tags).
    Tag,
    /// A manifest by digest.
    Manifest,
    /// A blob.
    Blob,
    /// The token endpoint.
    Token,
}

impl RequestKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Resolve => "resolve",
            RequestKind::Referrers => "referrers",
            RequestKind::Tag => "tag",
            RequestKind::Manifest => "manifest",
            RequestKind::Blob => "blob",
            RequestKind::Token => "token",
        }
    }
}

/// Receives one call per registry request (for metrics), and the changes
/// of each host's circuit.
pub trait RequestObserver: Send + Sync {
    /// `outcome` is the HTTP status (`"200"`) or an error label (`"timeout"`).
    fn observe(&self, registry: &str, kind: RequestKind, outcome: &str);
    /// A host's circuit changed state.
    fn circuit(&self, _registry: &str, _state: CircuitState) {}
    /// A host's circuit opened (a back-off began); `cause` is `429`,
    /// `5xx`, `timeout` or `connect`.
    fn backoff(&self, _registry: &str, _cause: &str) {}
    /// A request to a backing-off host was not sent.
    fn shed(&self, _registry: &str) {}
}

/// An observer that does nothing.
pub struct NoObserver;
impl RequestObserver for NoObserver {
    fn observe(&self, _: &str, _: RequestKind, _: &str) {}
}

/// One request, for `--explain`.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// What it was for.
    pub kind: RequestKind,
    /// GET or HEAD (POST for token refresh).
    pub method: &'static str,
    /// Host and path (no query, no credentials).
    pub url: String,
    /// The final status, or the error label.
    pub outcome: String,
    /// Body bytes read.
    pub bytes: u64,
    /// Duration in milliseconds.
    pub millis: u64,
}

/// The requests of one discovery, in order.
#[derive(Debug, Default)]
pub struct RequestLog(Mutex<Vec<RequestRecord>>);

impl RequestLog {
    fn push(&self, r: RequestRecord) {
        if let Ok(mut v) = self.0.lock()
            && v.len() < 10_000
        {
            v.push(r);
        }
    }
    /// A copy of the records.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
    /// Number of requests.
    pub fn len(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }
    /// Whether no request was made.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The byte budget of one image.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    used: AtomicU64,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Budget {
            limit,
            used: AtomicU64::new(0),
        }
    }
    fn take(&self, n: u64, registry: &str, context: &str) -> Result<(), RegistryError> {
        let used = self.used.fetch_add(n, Ordering::Relaxed) + n;
        if used > self.limit {
            return Err(RegistryError::new(
                registry,
                context,
                RegistryErrorKind::BudgetExceeded { limit: self.limit },
            ));
        }
        Ok(())
    }
    /// Bytes used so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

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
    /// A transport to `host` (host[:port]) with these options and the
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

    /// The host[:port].
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The options.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    fn unauthorized(&self, context: &str, status: u16) -> RegistryError {
        RegistryError::new(
            &self.host,
            context,
            RegistryErrorKind::Unauthorized {
                status,
                credentials: self.credentials_used.clone(),
            },
        )
    }

    /// Maps a non-success status of a request to a classified error.
    pub fn status_error(&self, context: &str, f: &Fetched) -> RegistryError {
        let kind = match f.status {
            404 => RegistryErrorKind::NotFound,
            401 | 403 => return self.unauthorized(context, f.status),
            429 => RegistryErrorKind::RateLimited {
                retry_after: retry_after(&f.headers),
            },
            s if s >= 500 => RegistryErrorKind::Server(s),
            s => RegistryErrorKind::Status(s),
        };
        RegistryError::new(&self.host, context, kind)
    }

    /// Classifies a failed request: timeout, or why the connection failed.
    fn map_reqwest(&self, context: &str, e: &reqwest::Error) -> RegistryError {
        let kind = if e.is_timeout() {
            RegistryErrorKind::Timeout(TimeoutKind::Request(self.options.timeout))
        } else {
            match connect_failure(e, self.options.ca_pem.is_some()) {
                Some(ConnectFailure::Other(_)) | None if is_timed_out(e) => {
                    RegistryErrorKind::Timeout(TimeoutKind::Request(self.options.timeout))
                }
                Some(c) => RegistryErrorKind::Connect(c),
                None => RegistryErrorKind::Connect(ConnectFailure::Other(root_cause(e))),
            }
        };
        RegistryError::new(&self.host, context, kind)
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
        loop {
            let same_host = host_port(&url) == self.host;
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
            let started = Instant::now();
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = self.map_reqwest(&context, &e);
                    self.record(
                        ctx,
                        kind,
                        if head { "HEAD" } else { "GET" },
                        &url,
                        err.label(),
                        0,
                        started,
                    );
                    return Err(err);
                }
            };
            let status = resp.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                self.record(
                    ctx,
                    kind,
                    if head { "HEAD" } else { "GET" },
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
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        RegistryError::new(
                            &self.host,
                            &context,
                            RegistryErrorKind::BadRedirect("no Location".into()),
                        )
                    })?;
                let next = url.join(location).map_err(|e| {
                    RegistryError::new(
                        &self.host,
                        &context,
                        RegistryErrorKind::BadRedirect(e.to_string()),
                    )
                })?;
                match next.scheme() {
                    "https" => {}
                    "http" if self.options.insecure => {}
                    other => {
                        return Err(RegistryError::new(
                            &self.host,
                            &context,
                            RegistryErrorKind::BadRedirect(format!("to a {other}: URL")),
                        ));
                    }
                }
                url = next;
                continue;
            }
            if status == 401 && !authorized && same_host {
                self.record(
                    ctx,
                    kind,
                    if head { "HEAD" } else { "GET" },
                    &url,
                    "401",
                    0,
                    started,
                );
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
                if head { "HEAD" } else { "GET" },
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

    /// Whether a token for `repo`'s pull scope is cached and fresh.
    fn fresh_token(&self, repo: &str) -> bool {
        let scope = pull_scope(repo);
        self.tokens
            .lock()
            .map(|t| {
                t.get(&scope)
                    .is_some_and(|(_, expiry)| *expiry > Instant::now())
            })
            .unwrap_or(false)
    }

    /// The Authorization header for a request to the registry host itself.
    fn auth_header(&self, repo: &str) -> Option<HeaderValue> {
        let scope = pull_scope(repo);
        if let Ok(tokens) = self.tokens.lock()
            && let Some((token, expiry)) = tokens.get(&scope)
            && *expiry > Instant::now()
        {
            return HeaderValue::from_str(&format!("Bearer {token}")).ok();
        }
        match &self.credential {
            Some(Credential::Basic { username, password })
                if !self.bearer_seen.load(Ordering::Relaxed) =>
            {
                basic_header(username, password)
            }
            Some(Credential::Bearer { token }) => {
                HeaderValue::from_str(&format!("Bearer {token}")).ok()
            }
            _ => None,
        }
    }

    /// Answers a challenge; returns whether retrying may now succeed.
    async fn authorize(&self, ctx: &Ctx<'_>, challenge: Challenge) -> Result<bool, RegistryError> {
        match challenge {
            // Basic: we already sent the credential if we have one.
            Challenge::Basic => Ok(false),
            Challenge::Bearer { realm, service, .. } => {
                self.bearer_seen.store(true, Ordering::Relaxed);
                let _fetching = self.token_fetch.lock().await;
                if self.fresh_token(ctx.repo) {
                    // Fetched by a concurrent request while this one waited.
                    return Ok(true);
                }
                let context = "token";
                let realm_url = reqwest::Url::parse(&realm).map_err(|e| {
                    RegistryError::new(
                        &self.host,
                        context,
                        RegistryErrorKind::Token(format!("bad realm \"{realm}\": {e}")),
                    )
                })?;
                match realm_url.scheme() {
                    "https" => {}
                    "http" if self.options.insecure => {}
                    s => {
                        return Err(RegistryError::new(
                            &self.host,
                            context,
                            RegistryErrorKind::Token(format!("realm scheme {s} is not allowed")),
                        ));
                    }
                }
                let realm_host = host_port(&realm_url);
                // Credentials go to the realm only when it is this registry,
                // or a host the operator listed for it (auth.docker.io).
                let may_send = realm_host == self.host
                    || self.options.token_hosts.iter().any(|h| h == &realm_host);
                let scope = pull_scope(ctx.repo);
                let query = {
                    let mut query = url::form_urlencoded::Serializer::new(String::new());
                    if let Some(s) = &service {
                        query.append_pair("service", s);
                    }
                    query.append_pair("scope", &scope);
                    query.finish()
                };
                let credential = if may_send {
                    self.credential.as_ref()
                } else {
                    None
                };
                let started = Instant::now();
                let (method, req) = match credential {
                    Some(Credential::IdentityToken { token }) => {
                        let mut body = url::form_urlencoded::Serializer::new(String::new());
                        body.append_pair("grant_type", "refresh_token")
                            .append_pair("refresh_token", token)
                            .append_pair("client_id", "provgate")
                            .append_pair("scope", &scope);
                        if let Some(s) = &service {
                            body.append_pair("service", s);
                        }
                        (
                            "POST",
                            self.http
                                .post(realm_url.clone())
                                .header(
                                    reqwest::header::CONTENT_TYPE,
                                    "application/x-www-form-urlencoded",
                                )
                                .body(body.finish()),
                        )
                    }
                    Some(Credential::Basic { username, password }) => {
                        let mut u = realm_url.clone();
                        u.set_query(Some(&query));
                        let mut r = self.http.get(u);
                        if let Some(h) = basic_header(username, password) {
                            r = r.header(reqwest::header::AUTHORIZATION, h);
                        }
                        ("GET", r)
                    }
                    // A registry token is sent as is; the challenge means it
                    // was refused.
                    Some(Credential::Bearer { .. }) => return Ok(false),
                    None => {
                        let mut u = realm_url.clone();
                        u.set_query(Some(&query));
                        ("GET", self.http.get(u))
                    }
                };
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) => {
                        let err = self.map_reqwest(context, &e);
                        self.record(
                            ctx,
                            RequestKind::Token,
                            method,
                            &realm_url,
                            err.label(),
                            0,
                            started,
                        );
                        return Err(err);
                    }
                };
                let status = resp.status().as_u16();
                if !(200..300).contains(&status) {
                    self.record(
                        ctx,
                        RequestKind::Token,
                        method,
                        &realm_url,
                        &status.to_string(),
                        0,
                        started,
                    );
                    return match status {
                        401 | 403 => Err(self.unauthorized(context, status)),
                        429 => Err(RegistryError::new(
                            &self.host,
                            context,
                            RegistryErrorKind::RateLimited {
                                retry_after: retry_after(resp.headers()),
                            },
                        )),
                        s if s >= 500 => Err(RegistryError::new(
                            &self.host,
                            context,
                            RegistryErrorKind::Server(s),
                        )),
                        s => Err(RegistryError::new(
                            &self.host,
                            context,
                            RegistryErrorKind::Token(format!("status {s}")),
                        )),
                    };
                }
                let body = read_limited(
                    resp,
                    MAX_TOKEN_BYTES,
                    RequestKind::Token,
                    self,
                    context,
                    ctx.budget,
                )
                .await?;
                self.record(
                    ctx,
                    RequestKind::Token,
                    method,
                    &realm_url,
                    &status.to_string(),
                    body.len() as u64,
                    started,
                );
                let tr: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                    RegistryError::new(
                        &self.host,
                        context,
                        RegistryErrorKind::Token(format!("bad token response: {e}")),
                    )
                })?;
                let token = tr
                    .token
                    .or(tr.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        RegistryError::new(
                            &self.host,
                            context,
                            RegistryErrorKind::Token("no token in response".into()),
                        )
                    })?;
                if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
                    return Err(RegistryError::new(
                        &self.host,
                        context,
                        RegistryErrorKind::Token("token is not a valid header value".into()),
                    ));
                }
                // Refresh 10% early; never trust more than an hour.
                let ttl = tr.expires_in.unwrap_or(60).clamp(10, 3600);
                let expiry = Instant::now() + Duration::from_secs(ttl - ttl / 10);
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(scope, (token, expiry));
                }
                Ok(true)
            }
        }
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

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn basic_header(username: &str, password: &str) -> Option<HeaderValue> {
    let raw = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {raw}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// host[:port] of a URL, with the port only when it is not the default.
pub fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// `Retry-After`: delay-seconds, or an HTTP date (then the time until it).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())?;
    super::backoff::parse_retry_after(v, std::time::SystemTime::now())
}

/// Every error of a chain, outermost first, looking inside `io::Error`s
/// (whose `source()` skips the error they wrap).
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let cur = next?;
        next = match cur.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => cur.source(),
            },
            None => cur.source(),
        };
        Some(cur)
    })
}

/// Why a request could not connect, from the error chain: rustls errors,
/// refused connections, DNS failures; `None` when nothing is recognised.
fn connect_failure(
    e: &(dyn std::error::Error + 'static),
    ca_configured: bool,
) -> Option<ConnectFailure> {
    for cur in chain(e) {
        if let Some(t) = cur.downcast_ref::<rustls::Error>() {
            return Some(tls_failure(t, ca_configured));
        }
        if let Some(io) = cur.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some(ConnectFailure::Refused);
        }
    }
    // hyper-util's connector says "dns error" around the resolver's error
    // ("failed to lookup address information: …"); neither has a type or
    // kind of its own. The innermost message is the resolver's.
    let dns = chain(e).any(|c| {
        let text = c.to_string();
        text == "dns error" || text.starts_with("failed to lookup address information")
    });
    if dns {
        return Some(ConnectFailure::Dns(root_cause(e)));
    }
    None
}

/// Whether the chain holds an `io::Error` of kind `TimedOut`.
fn is_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// The innermost error's message (without reqwest's and hyper's wrappers,
/// which repeat the URL or show debug forms such as `client error (Connect)`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e)
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "unknown error".into())
}

fn tls_failure(e: &rustls::Error, ca_configured: bool) -> ConnectFailure {
    use rustls::{CertificateError as C, Error as E, InvalidMessage};
    match e {
        // The first bytes were not a TLS record: an HTTP answer ("HTTP/1.1
        // 400 …") to the ClientHello.
        E::InvalidMessage(InvalidMessage::InvalidContentType) => ConnectFailure::PlainHttp,
        E::InvalidCertificate(C::UnknownIssuer) => ConnectFailure::UnknownCa { ca_configured },
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            ConnectFailure::CertificateName
        }
        E::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => ConnectFailure::CertificateExpired,
        E::InvalidCertificate(c) => {
            // rustls prints the variants without context in debug form.
            let text = c.to_string();
            let text = if text.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                words(&text)
            } else {
                text
            };
            ConnectFailure::Tls(format!("certificate rejected: {text}"))
        }
        E::InvalidMessage(m) => {
            ConnectFailure::Tls(format!("corrupt TLS message: {}", words(&format!("{m:?}"))))
        }
        E::AlertReceived(a) => ConnectFailure::Tls(format!(
            "the registry sent the TLS alert {}",
            words(&format!("{a:?}"))
        )),
        E::PeerIncompatible(p) => ConnectFailure::Tls(format!(
            "the registry's TLS is incompatible: {}",
            words(&format!("{p:?}"))
        )),
        E::PeerMisbehaved(p) => ConnectFailure::Tls(format!(
            "the registry's TLS misbehaved: {}",
            words(&format!("{p:?}"))
        )),
        other => ConnectFailure::Tls(other.to_string()),
    }
}

/// `UnknownIssuer` → `unknown issuer`; anything that is not a bare
/// identifier (a variant with fields) keeps only its name.
fn words(ident: &str) -> String {
    let name: String = ident
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push(' ');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

async fn read_limited(
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

    /// An error with a source, like hyper-util's `ConnectError`.
    #[derive(Debug)]
    struct Wrap(
        &'static str,
        Box<dyn std::error::Error + Send + Sync + 'static>,
    );
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.1)
        }
    }

    fn io_around(e: rustls::Error) -> Wrap {
        Wrap(
            "client error (Connect)",
            Box::new(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        )
    }

    #[test]
    fn a_non_tls_answer_to_the_handshake_means_plain_http() {
        let e = io_around(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(connect_failure(&e, false), Some(ConnectFailure::PlainHttp));
    }

    #[test]
    fn an_unknown_issuer_is_an_unknown_ca_remembering_whether_a_ca_file_was_set() {
        let e = || {
            io_around(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        };
        assert_eq!(
            connect_failure(&e(), false),
            Some(ConnectFailure::UnknownCa {
                ca_configured: false
            })
        );
        assert_eq!(
            connect_failure(&e(), true),
            Some(ConnectFailure::UnknownCa {
                ca_configured: true
            })
        );
    }

    #[test]
    fn other_tls_failures_are_described_without_debug_forms() {
        let e = io_around(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(
            connect_failure(&e, false),
            Some(ConnectFailure::Tls(
                "the registry sent the TLS alert handshake failure".into()
            ))
        );
        let e = io_around(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadSignature,
        ));
        assert_eq!(
            connect_failure(&e, false),
            Some(ConnectFailure::Tls(
                "certificate rejected: bad signature".into()
            ))
        );
        let e = io_around(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName,
        ));
        assert_eq!(
            connect_failure(&e, false),
            Some(ConnectFailure::CertificateName)
        );
    }

    #[test]
    fn refused_and_dns_failures_are_recognised_in_the_chain() {
        let refused = Wrap(
            "tcp connect error",
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        );
        let outer = Wrap("client error (Connect)", Box::new(refused));
        assert_eq!(
            connect_failure(&outer, false),
            Some(ConnectFailure::Refused)
        );

        let dns = Wrap(
            "dns error",
            Box::new(std::io::Error::other(
                "failed to lookup address information: Name or service not known",
            )),
        );
        let outer = Wrap("client error (Connect)", Box::new(dns));
        assert_eq!(
            connect_failure(&outer, false),
            Some(ConnectFailure::Dns(
                "failed to lookup address information: Name or service not known".into()
            ))
        );

        let reset = Wrap(
            "client error (Connect)",
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        );
        assert_eq!(connect_failure(&reset, false), None);
        assert_eq!(root_cause(&reset), "connection reset");
        let timed_out = Wrap(
            "client error (Connect)",
            Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        );
        assert!(is_timed_out(&timed_out));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("120"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_str(&date).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!((3590..=3600).contains(&d.as_secs()), "{date} → {d:?}");
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }

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

    #[test]
    fn words_splits_identifiers() {
        assert_eq!(words("UnknownIssuer"), "unknown issuer");
        assert_eq!(words("Other(OtherError)"), "other");
    }
}
