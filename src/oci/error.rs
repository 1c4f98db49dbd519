//! Registry errors, classified for caching, failure policy and exit codes,
//! each saying what went wrong *and* what fixes it.
//!
//! *Transient* errors (timeouts, refused connections, 5xx, 429, a host
//! backing off) may succeed on retry: they are cached for seconds at most
//! (`cache.transientNegativeTtl`, never past the host's back-off), and a
//! registry's failure policy may degrade them. *Permanent* errors (the image
//! does not exist, access denied after authenticating, an invalid manifest,
//! a digest mismatch) are cached for `cache.negativeTtl` and never degrade.
//! Answers over a limit (oversized, endless paging, too many referrers) are
//! permanent too, so they never degrade (whoever can push to a repository
//! must not be able to turn a deny into a degraded allow), but
//! [`RegistryError::is_over_limit`] tells the cache to keep them only as
//! long as a transient error: a registry that misbehaved for a moment must
//! not keep a signed digest denied for the whole negative TTL.
//!
//! Orthogonally, [`RegistryError::category`] tells an *operational* problem
//! (provgate could not talk to the registry: unreachable, TLS, credentials,
//! 5xx, 429, timeouts; exit code 1 for `provgate check`) from an *evidence*
//! problem (the registry answered, and what it holds is missing, invalid or
//! too large).
//!
//! Every message names the setting that fixes it, as it is spelled in the
//! configuration file (`registries.hosts."HOST".insecure`, `…caFile`,
//! `credentials[]`, `registries.limits.*`), and never shows Rust debug
//! forms.

use std::fmt;
use std::time::Duration;

/// Whether an error may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Retry may succeed; cached for seconds at most; may degrade.
    Transient,
    /// Retry will not help; cached briefly; never degrades.
    Permanent,
}

/// Whose problem an error is: the operator's (the registry could not be
/// talked to as configured) or the image's (its evidence is missing or
/// unusable). `provgate check` exits 1 for operational errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCategory {
    /// Unreachable, TLS, credentials, 5xx, 429, timeouts, misconfiguration.
    Operational,
    /// Not found, invalid or mismatching content, over a limit.
    Evidence,
}

/// Why a connection could not be made (a [`RegistryErrorKind::Connect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The TLS handshake got an answer that is not TLS: the registry speaks
    /// plain HTTP on that port.
    PlainHttp,
    /// The certificate does not chain to a trusted CA (rustls
    /// `UnknownIssuer`): a private CA not given in `caFile`, or a
    /// self-signed certificate.
    UnknownCa {
        /// Whether `caFile` is set for this registry (then it is the wrong CA).
        ca_configured: bool,
    },
    /// The certificate is not valid for the registry's name.
    CertificateName,
    /// The certificate has expired or is not valid yet.
    CertificateExpired,
    /// Another certificate or TLS failure, described.
    Tls(String),
    /// Nothing listens on the port (connection refused).
    Refused,
    /// The host name does not resolve.
    Dns(String),
    /// Anything else (reset, unreachable network, client setup), described.
    Other(String),
}

impl ConnectFailure {
    /// Whether the failure happened in TLS.
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            ConnectFailure::PlainHttp
                | ConnectFailure::UnknownCa { .. }
                | ConnectFailure::CertificateName
                | ConnectFailure::CertificateExpired
                | ConnectFailure::Tls(_)
        )
    }
}

/// Which time limit ran out (a [`RegistryErrorKind::Timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// One request got no (complete) answer within the registry's
    /// `timeout`.
    Request(Duration),
    /// One image's discovery as a whole exceeded `limits.maxImageMillis`.
    Deadline(Duration),
}

/// The credentials a refused request was made with (for the message of a
/// [`RegistryErrorKind::Unauthorized`]). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialsUsed {
    /// The credentials set's name (`credentials[].name`); empty when no set
    /// applied.
    pub set: String,
    /// What was sent, when the set has an entry for the registry.
    pub credential: Option<CredentialKind>,
}

/// The kind of credential sent (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialKind {
    /// Username and password (or token as password).
    Basic {
        /// The username.
        username: String,
    },
    /// An OAuth2 refresh token (`identitytoken`).
    IdentityToken,
    /// A registry token used as is (`registrytoken`).
    RegistryToken,
}

/// What went wrong talking to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryErrorKind {
    /// The request or the whole discovery ran out of time.
    Timeout(TimeoutKind),
    /// The connection failed (refused, DNS, TLS …).
    Connect(ConnectFailure),
    /// The registry answered 5xx.
    Server(u16),
    /// The registry answered 429.
    RateLimited {
        /// `Retry-After`, when given (seconds or an HTTP date).
        retry_after: Option<Duration>,
    },
    /// The image (or pinned digest) does not exist.
    NotFound,
    /// 401/403 after authenticating (or with no credentials to offer).
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// What was sent.
        credentials: CredentialsUsed,
    },
    /// Another unexpected status.
    Status(u16),
    /// The manifest or index is not valid JSON of the expected shape.
    InvalidManifest(String),
    /// The content does not hash to the digest it was fetched by.
    DigestMismatch {
        /// The requested digest.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A response is larger than its limit.
    TooLarge {
        /// What was fetched.
        what: &'static str,
        /// The configured limit in bytes.
        limit: u64,
        /// The announced or observed size.
        size: u64,
    },
    /// More items than the limit (referrers, pages, layers, platforms, redirects).
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The per-image byte budget is spent.
    BudgetExceeded {
        /// The limit in bytes.
        limit: u64,
    },
    /// A redirect points somewhere unusable (bad URL, plain HTTP not allowed).
    BadRedirect(String),
    /// The token endpoint misbehaved.
    Token(String),
    /// The host is backing off after it failed (429, 5xx, timeouts,
    /// refused connections): the request was not sent.
    BackingOff {
        /// When the host may be asked again.
        until: jiff::Timestamp,
        /// What made it back off, e.g. `429 Too Many Requests
        /// (Retry-After: 2)`.
        cause: String,
        /// Whether the back-off is over and one probe request is in
        /// flight (the circuit is half-open).
        probing: bool,
    },
}

/// A classified registry error, with the registry it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RegistryError {
    /// The registry host.
    pub registry: String,
    /// What happened.
    pub kind: RegistryErrorKind,
    /// What was being fetched, e.g. `manifest demo/app:v1`.
    pub context: String,
}

impl RegistryError {
    pub(crate) fn new(registry: &str, context: impl Into<String>, kind: RegistryErrorKind) -> Self {
        RegistryError {
            registry: registry.to_owned(),
            kind,
            context: context.into(),
        }
    }

    /// Transient or permanent.
    pub fn class(&self) -> ErrorClass {
        use RegistryErrorKind::*;
        match &self.kind {
            // Every connection failure counts as transient, TLS ones too: a
            // certificate rotation or a middlebox can cause them, and the
            // failure policy decides what an outage means.
            Timeout(_) | Connect(_) | Server(_) | RateLimited { .. } | BackingOff { .. } => {
                ErrorClass::Transient
            }
            NotFound
            | Unauthorized { .. }
            | Status(_)
            | InvalidManifest(_)
            | DigestMismatch { .. }
            | TooLarge { .. }
            | TooMany { .. }
            | BudgetExceeded { .. }
            | BadRedirect(_)
            | Token(_) => ErrorClass::Permanent,
        }
    }

    /// Operational (exit code 1 for `provgate check`) or an evidence
    /// problem.
    pub fn category(&self) -> ErrorCategory {
        use RegistryErrorKind::*;
        match &self.kind {
            Timeout(_)
            | Connect(_)
            | Server(_)
            | RateLimited { .. }
            | BackingOff { .. }
            | Unauthorized { .. }
            | Status(_)
            | BadRedirect(_)
            | Token(_) => ErrorCategory::Operational,
            NotFound
            | InvalidManifest(_)
            | DigestMismatch { .. }
            | TooLarge { .. }
            | TooMany { .. }
            | BudgetExceeded { .. } => ErrorCategory::Evidence,
        }
    }

    /// Whether the registry's answer was over a limit (too large, too many
    /// pages, referrers, layers or redirects, the per-image byte budget).
    /// Permanent (it never degrades), but cached only briefly: see the
    /// module documentation.
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self.kind,
            RegistryErrorKind::TooLarge { .. }
                | RegistryErrorKind::TooMany { .. }
                | RegistryErrorKind::BudgetExceeded { .. }
        )
    }

    /// Whether the error is operational (see [`ErrorCategory`]).
    pub fn is_operational(&self) -> bool {
        self.category() == ErrorCategory::Operational
    }

    /// A short label for metrics (`timeout`, `5xx`, `not-found`, …).
    pub fn label(&self) -> &'static str {
        use RegistryErrorKind::*;
        match &self.kind {
            Timeout(_) => "timeout",
            Connect(c) if c.is_tls() => "tls",
            Connect(_) => "connect",
            Server(_) => "5xx",
            RateLimited { .. } => "429",
            NotFound => "not-found",
            Unauthorized { .. } => "unauthorized",
            Status(_) => "status",
            InvalidManifest(_) => "invalid-manifest",
            DigestMismatch { .. } => "digest-mismatch",
            TooLarge { .. } => "too-large",
            TooMany { .. } => "too-many",
            BudgetExceeded { .. } => "budget",
            BadRedirect(_) => "bad-redirect",
            Token(_) => "token",
            BackingOff { .. } => "backing-off",
        }
    }

    /// The name of this registry under `registries.hosts` (Docker Hub's
    /// API host is configured as `docker.io`).
    fn config_name(&self) -> &str {
        config_name(&self.registry)
    }
}

/// The key of a registry host under `registries.hosts`.
pub(crate) fn config_name(host: &str) -> &str {
    if host == "registry-1.docker.io" {
        crate::image::DOCKER_HUB
    } else {
        host
    }
}

/// Seconds as `1 s`, `90 s`, fractions as milliseconds.
fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The config field that limits `what` (for `TooLarge`/`TooMany`).
fn limit_field(what: &str) -> &'static str {
    match what {
        "manifest" => "registries.limits.maxManifestBytes",
        "blob" => "registries.limits.maxBlobBytes",
        "Sigstore referrers" => "registries.limits.maxReferrers",
        "referrers pages" => "registries.limits.maxPages",
        "cosign layers" | "bundle layers" => "registries.limits.maxLayers",
        "platforms" => "registries.limits.maxPlatforms",
        "redirects" => "registries.limits.maxRedirects",
        _ => "a built-in limit",
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hints need the host; `RegistryError`'s Display adds them.
        match self {
            ConnectFailure::PlainHttp => f.write_str("TLS handshake failed: the answer is not TLS"),
            ConnectFailure::UnknownCa { .. } => {
                f.write_str("TLS certificate not trusted: unknown issuer")
            }
            ConnectFailure::CertificateName => {
                f.write_str("TLS certificate is not valid for this host name")
            }
            ConnectFailure::CertificateExpired => {
                f.write_str("TLS certificate has expired or is not valid yet")
            }
            ConnectFailure::Tls(e) => write!(f, "TLS failed: {e}"),
            ConnectFailure::Refused => f.write_str("connection refused"),
            ConnectFailure::Dns(e) => write!(f, "the host name does not resolve: {e}"),
            ConnectFailure::Other(e) => write!(f, "connection failed: {e}"),
        }
    }
}

impl fmt::Display for CredentialsUsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.credential, self.set.is_empty()) {
            (None, true) => f.write_str("anonymously (no credentials set applies)"),
            (None, false) => write!(
                f,
                "anonymously (credentials set \"{}\" has no entry for this registry)",
                self.set
            ),
            (Some(c), _) => {
                match c {
                    CredentialKind::Basic { username } => {
                        write!(f, "with basic credentials of user \"{username}\"")?
                    }
                    CredentialKind::IdentityToken => f.write_str("with an identity token")?,
                    CredentialKind::RegistryToken => f.write_str("with a registry token")?,
                }
                write!(f, " from credentials set \"{}\"", self.set)
            }
        }
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RegistryErrorKind::*;
        let name = self.config_name();
        if let BackingOff {
            until,
            cause,
            probing,
        } = &self.kind
        {
            return self.fmt_backing_off(f, until, cause, *probing, name);
        }
        write!(f, "registry {}: {}: ", self.registry, self.context)?;
        match &self.kind {
            Timeout(TimeoutKind::Request(d)) => write!(
                f,
                "no answer within {}; if the registry is slow but up, raise registries.hosts.\"{name}\".timeout",
                duration(*d)
            ),
            Timeout(TimeoutKind::Deadline(d)) => write!(
                f,
                "discovery did not finish within {}; if the registry is slow but up, raise registries.limits.maxImageMillis",
                duration(*d)
            ),
            Connect(c) => self.fmt_connect(f, c, name),
            Server(s) => write!(
                f,
                "server error {s}: the registry failed; retry later, or set registries.hosts.\"{name}\".failure to degrade during outages"
            ),
            RateLimited {
                retry_after: Some(d),
            } => write!(
                f,
                "rate limited (429): the registry asks to retry after {}; use credentials with a higher quota (credentials[]) or a mirror (registries.hosts.\"{name}\".mirrors)",
                duration(*d)
            ),
            RateLimited { retry_after: None } => write!(
                f,
                "rate limited (429), no Retry-After given; use credentials with a higher quota (credentials[]) or a mirror (registries.hosts.\"{name}\".mirrors)"
            ),
            NotFound => write!(f, "not found"),
            Unauthorized {
                status,
                credentials,
            } => self.fmt_unauthorized(f, *status, credentials, name),
            Status(s) => write!(f, "unexpected status {s}"),
            InvalidManifest(e) => write!(f, "invalid manifest: {e}"),
            DigestMismatch { expected, actual } => {
                write!(
                    f,
                    "content digest mismatch: expected {expected}, got {actual}"
                )
            }
            TooLarge { what, limit, size } => write!(
                f,
                "{what} of {size} bytes exceeds the limit of {limit} bytes ({})",
                limit_field(what)
            ),
            TooMany { what, limit } => write!(
                f,
                "more {what} than the limit of {limit} ({})",
                limit_field(what)
            ),
            BudgetExceeded { limit } => write!(
                f,
                "the per-image download budget of {limit} bytes is exhausted (registries.limits.maxImageBytes)"
            ),
            BadRedirect(e) => write!(f, "bad redirect: {e}"),
            Token(e) => write!(f, "token request failed: {e}"),
            BackingOff { .. } => Ok(()),
        }
    }
}

impl RegistryError {
    /// A request refused by the host's circuit.
    fn fmt_backing_off(
        &self,
        f: &mut fmt::Formatter<'_>,
        until: &jiff::Timestamp,
        cause: &str,
        probing: bool,
        name: &str,
    ) -> fmt::Result {
        let what = if probing {
            format!("is backing off after {cause}: a probe request is in flight")
        } else {
            format!(
                "is backing off until {} after {cause}",
                until.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            )
        };
        write!(
            f,
            "registry {} {what}: {} was not sent; the registry is asked again after the back-off, and until then registries.hosts.\"{name}\".failure decides",
            self.registry, self.context
        )
    }

    /// A connection that failed, with the setting that fixes it.
    fn fmt_connect(
        &self,
        f: &mut fmt::Formatter<'_>,
        c: &ConnectFailure,
        name: &str,
    ) -> fmt::Result {
        match c {
            c @ ConnectFailure::PlainHttp => write!(
                f,
                "{c}: the registry speaks plain HTTP; if that is intended set registries.hosts.\"{name}\".insecure: true"
            ),
            c @ ConnectFailure::UnknownCa { ca_configured } => {
                if *ca_configured {
                    write!(
                        f,
                        "{c}: the CA in registries.hosts.\"{name}\".caFile did not issue the registry's certificate; set caFile to the PEM of the CA that did"
                    )
                } else {
                    write!(
                        f,
                        "{c}: the registry's certificate is not issued by a publicly trusted CA; if it uses a private CA set registries.hosts.\"{name}\".caFile to that CA's PEM file"
                    )
                }
            }
            c @ ConnectFailure::CertificateName => write!(
                f,
                "{c}: the certificate does not name {}; use the registry name its certificate was issued for",
                self.registry
            ),
            c @ ConnectFailure::CertificateExpired => write!(
                f,
                "{c}: the registry must renew its certificate (or the clock here is wrong)"
            ),
            c @ ConnectFailure::Tls(_) => write!(
                f,
                "{c}; check that the registry speaks HTTPS on this port (registries.hosts.\"{name}\".insecure: true if it speaks plain HTTP)"
            ),
            c @ ConnectFailure::Refused => write!(
                f,
                "{c}: nothing listens on {}; check that the registry is running and that the image names the right host and port",
                self.registry
            ),
            c @ ConnectFailure::Dns(_) => write!(
                f,
                "{c}; check the registry name in the image reference (and this machine's DNS)"
            ),
            c @ ConnectFailure::Other(_) => write!(f, "{c}"),
        }
    }

    /// A 401/403, with what was sent and which credential to add or fix.
    fn fmt_unauthorized(
        &self,
        f: &mut fmt::Formatter<'_>,
        status: u16,
        credentials: &CredentialsUsed,
        name: &str,
    ) -> fmt::Result {
        let what = if status == 403 {
            "forbidden"
        } else {
            "access denied"
        };
        write!(f, "{what} ({status}) {credentials}; ")?;
        match (&credentials.credential, credentials.set.is_empty()) {
            (None, true) => write!(
                f,
                "give provgate credentials for {} with a credentials[] entry (name, file: a Docker config.json with an auths.\"{}\" entry)",
                self.registry, name
            ),
            (None, false) => write!(
                f,
                "add an auths.\"{name}\" entry to the Docker config file of credentials[] \"{}\" (its file field)",
                credentials.set
            ),
            (Some(_), _) if status == 403 => write!(
                f,
                "grant these credentials pull access, or change the auths.\"{name}\" entry in the Docker config file of credentials[] \"{}\" (its file field)",
                credentials.set
            ),
            (Some(_), _) => write!(
                f,
                "check the auths.\"{name}\" entry in the Docker config file of credentials[] \"{}\" (its file field)",
                credentials.set
            ),
        }
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
