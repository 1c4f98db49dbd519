//! Evidence discovery in OCI registries.
//!
//! [`Registries`] holds the per-registry options, one [`Transport`] per
//! (registry host, settings, credential set) and what it learnt about the
//! registries (which ones lack the referrers API, [`memo`]);
//! [`Registries::resolve`] turns a tag into a digest and
//! [`Registries::discover`] finds every piece of evidence attached to a
//! digest. Both return the list of requests made alongside the result
//! ([`Traced`]), for `--explain`, and report each request to a
//! [`RequestObserver`] for metrics. Their errors ([`RegistryError`]) say
//! what went wrong and which setting fixes it.
//!
//! Each registry host has a circuit ([`backoff`]): a host that answers 429
//! or 5xx, times out or refuses connections is left alone for its
//! back-off, and the requests meant for it fail at once with a transient
//! error instead of adding to its trouble.
//!
//! Files by job: [`transport`] (bounded HTTP, redirects, the token dance
//! and failure wording), `session` (digest-checked reads under one image's
//! budget), `resolve` (tag to digest), `discover` (referrers, tag schema,
//! cosign tags), `evidence` (what they hand back), [`limits`] and
//! [`record`] (what a request may cost and leaves behind), [`auth`]
//! (credentials), [`error`], [`backoff`] and [`memo`].

pub mod auth;
pub mod backoff;
mod discover;
pub mod error;
mod evidence;
pub mod limits;
pub mod manifest;
pub mod memo;
pub mod record;
mod resolve;
mod session;
pub mod transport;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use auth::{Credential, CredentialError, CredentialSet};
pub use backoff::{BackoffPolicy, CircuitState, Circuits};
pub use error::{
    ConnectFailure, CredentialKind, CredentialsUsed, ErrorCategory, ErrorClass, RegistryError,
    RegistryErrorKind, TimeoutKind,
};
pub use evidence::{
    DiscoverOptions, Discovery, EvidenceContent, Resolved, Traced, UnverifiedEvidence,
};
pub use limits::{Limits, RegistryOptions};
pub use memo::DEFAULT_REFERRERS_MEMO_TTL;

use crate::image::{DOCKER_HUB, ImageRef};
pub use record::{Budget, NoObserver, RequestKind, RequestLog, RequestObserver, RequestRecord};
pub use transport::Transport;

use memo::ReferrersMemo;
pub(crate) use resolve::index_platforms;
use session::{Session, with_deadline};

/// Runs an operation against each host of an image (mirrors first) until
/// one succeeds, each attempt under the per-image deadline and a fresh byte
/// budget; the last error otherwise. Every request is recorded. (A macro:
/// the operation borrows the per-host session, which a closure type cannot
/// name without higher-ranked lifetimes the borrow checker refuses.)
macro_rules! on_hosts {
    ($regs:expr, $image:expr, $creds:expr, $label:expr, $what:expr, |$s:ident| $op:expr) => {{
        let log = RequestLog::default();
        let mut last = None;
        for (host, options) in $regs.hosts($image) {
            let budget = Budget::new($regs.limits.max_image_bytes);
            let permits = tokio::sync::Semaphore::new($regs.limits.concurrency.max(1));
            let result = match $regs.transport(&host, &options, $creds) {
                Ok(t) => {
                    let $s = Session {
                        transport: &t,
                        repo: $image.repository(),
                        log: &log,
                        budget: &budget,
                        permits: &permits,
                        memo: &$regs.referrers_memo,
                    };
                    with_deadline($regs.limits.max_image_millis, &host, $what, $op).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(r) => {
                    return Traced {
                        result: Ok(r),
                        requests: log.records(),
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        Traced {
            result: Err(last.unwrap_or_else(|| {
                RegistryError::new(
                    $image.registry(),
                    $label,
                    RegistryErrorKind::Connect(ConnectFailure::Other("no host to ask".into())),
                )
            })),
            requests: log.records(),
        }
    }};
}

/// Options of one registry (by its name as in image references).
#[derive(Debug, Clone, Default)]
pub struct RegistryEntry {
    /// Connection options.
    pub options: RegistryOptions,
    /// Mirrors tried first, in order, before the registry itself.
    pub mirrors: Vec<String>,
}

/// All registries provgate talks to.
pub struct Registries {
    entries: HashMap<String, RegistryEntry>,
    default: RegistryEntry,
    limits: Limits,
    observer: Arc<dyn RequestObserver>,
    /// One transport per (host, settings, credential set name): tenants'
    /// tokens never mix, and a mirror shared by registries with different
    /// settings gets a transport for each.
    transports: Mutex<HashMap<TransportKey, Arc<Transport>>>,
    referrers_memo: ReferrersMemo,
    /// Each host's circuit, shared by all its transports.
    circuits: Arc<Circuits>,
}

type TransportKey = (String, RegistryOptions, String);

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("entries", &self.entries)
            .field("default", &self.default)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Registries {
    /// Registries with per-name entries, a default for the others, limits and
    /// a metrics observer.
    pub fn new(
        entries: HashMap<String, RegistryEntry>,
        default: RegistryEntry,
        limits: Limits,
        observer: Arc<dyn RequestObserver>,
    ) -> Self {
        Registries {
            entries,
            default,
            limits,
            circuits: Arc::new(Circuits::new(observer.clone())),
            observer,
            transports: Mutex::new(HashMap::new()),
            referrers_memo: ReferrersMemo::new(DEFAULT_REFERRERS_MEMO_TTL),
        }
    }

    /// Takes over circuits of an earlier revision's registries (on a
    /// configuration reload), so that a host backing off keeps backing off.
    /// Transports already made are dropped: they hold the circuits they
    /// were made with.
    pub fn adopt_circuits(&mut self, circuits: Arc<Circuits>) {
        self.circuits = circuits;
        if let Ok(mut map) = self.transports.lock() {
            map.clear();
        }
    }

    /// The per-host circuits.
    pub fn circuits(&self) -> Arc<Circuits> {
        self.circuits.clone()
    }

    /// How long until `host` may be asked again: `None` when it is not
    /// backing off, zero when its back-off is over (a probe may be sent).
    pub fn backoff_remaining(&self, host: &str) -> Option<Duration> {
        self.circuits.remaining(host)
    }

    /// Remember the absence of a registry's referrers API for `ttl` instead
    /// of [`DEFAULT_REFERRERS_MEMO_TTL`] (zero: ask every time).
    #[must_use]
    pub fn with_referrers_memo_ttl(mut self, ttl: Duration) -> Self {
        self.referrers_memo = ReferrersMemo::new(ttl);
        self
    }

    /// The limits every exchange and discovery is held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn entry(&self, registry: &str) -> &RegistryEntry {
        self.entries.get(registry).unwrap_or(&self.default)
    }

    /// The hosts to try for `image`, mirrors first.
    fn hosts(&self, image: &ImageRef) -> Vec<(String, RegistryOptions)> {
        let entry = self.entry(image.registry());
        let mut out: Vec<(String, RegistryOptions)> = entry
            .mirrors
            .iter()
            .map(|m| {
                let opts = self
                    .entries
                    .get(m)
                    .map(|e| e.options.clone())
                    .unwrap_or_else(|| entry.options.clone());
                (m.clone(), opts)
            })
            .collect();
        let mut options = entry.options.clone();
        // Docker Hub, however the name spells it (`docker.io/…` or
        // `registry-1.docker.io/…`), issues tokens from auth.docker.io.
        if image.registry_host() == "registry-1.docker.io" && options.token_hosts.is_empty() {
            options.token_hosts.push("auth.docker.io".into());
        }
        out.push((image.registry_host().to_owned(), options));
        out
    }

    fn transport(
        &self,
        host: &str,
        options: &RegistryOptions,
        creds: &CredentialSet,
    ) -> Result<Arc<Transport>, RegistryError> {
        let key = (host.to_owned(), options.clone(), creds.name().to_owned());
        let mut map = self.transports.lock().map_err(|_| {
            RegistryError::new(
                host,
                "transport",
                RegistryErrorKind::Connect(ConnectFailure::Other(
                    "transport cache poisoned".into(),
                )),
            )
        })?;
        if let Some(t) = map.get(&key) {
            return Ok(t.clone());
        }
        let credential = creds.for_host(host).cloned().or_else(|| {
            // Docker Hub credentials are filed under docker.io.
            if host == "registry-1.docker.io" {
                creds.for_host(DOCKER_HUB).cloned()
            } else {
                None
            }
        });
        let t = Transport::new(
            host,
            options.clone(),
            self.limits.clone(),
            credential,
            creds.name(),
            self.observer.clone(),
        )
        .map_err(|e| {
            RegistryError::new(
                host,
                "transport",
                RegistryErrorKind::Connect(ConnectFailure::Other(e.to_string())),
            )
        })?;
        let t = Arc::new(t.with_circuits(self.circuits.clone()));
        map.insert(key, t.clone());
        Ok(t)
    }

    /// Resolves `image` to a digest (no request when it is pinned).
    pub async fn resolve(&self, image: &ImageRef, creds: &CredentialSet) -> Traced<Resolved> {
        let what = format!("resolve {image}");
        on_hosts!(self, image, creds, "resolve", &what, |s| s.resolve(image))
    }

    /// Discovers the evidence attached to `digest` in `image`'s repository.
    /// `media_type` is the manifest's, when a resolution told it (then an
    /// image manifest is not fetched again).
    pub async fn discover(
        &self,
        image: &ImageRef,
        digest: &Digest,
        media_type: Option<&str>,
        creds: &CredentialSet,
        opts: DiscoverOptions,
    ) -> Traced<Discovery> {
        let what = format!("discover {}@{digest}", image.name());
        on_hosts!(self, image, creds, "discover", &what, |s| s
            .discover(digest, media_type, opts))
    }
}

use std::time::Duration;

use crate::digest::Digest;
