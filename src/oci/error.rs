//! Registry errors, classified for caching and failure policy.
//!
//! *Transient* errors (timeouts, refused connections, 5xx, 429) may succeed
//! on retry: they are never cached, and a registry's failure policy may
//! degrade them. *Permanent* errors (the image does not exist, access denied
//! after authenticating, an invalid or oversized manifest, a digest mismatch)
//! are cached briefly and never degrade.

use std::fmt;
use std::time::Duration;

/// Whether an error may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Retry may succeed; never cached.
    Transient,
    /// Retry will not help; cached briefly.
    Permanent,
}

/// What went wrong talking to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryErrorKind {
    /// The request or the whole discovery ran out of time.
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS).
    Connect(String),
    /// The registry answered 5xx.
    Server(u16),
    /// The registry answered 429.
    RateLimited {
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The image (or pinned digest) does not exist.
    NotFound,
    /// 401/403 after authenticating (or with no credentials to offer).
    Unauthorized(u16),
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
    /// Plain HTTP was needed but is not allowed for this registry.
    InsecureNotAllowed,
    /// The token endpoint misbehaved.
    Token(String),
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
            Timeout | Connect(_) | Server(_) | RateLimited { .. } => ErrorClass::Transient,
            NotFound
            | Unauthorized(_)
            | Status(_)
            | InvalidManifest(_)
            | DigestMismatch { .. }
            | TooLarge { .. }
            | TooMany { .. }
            | BudgetExceeded { .. }
            | BadRedirect(_)
            | InsecureNotAllowed
            | Token(_) => ErrorClass::Permanent,
        }
    }

    /// A short label for metrics (`timeout`, `5xx`, `not-found`, …).
    pub fn label(&self) -> &'static str {
        use RegistryErrorKind::*;
        match &self.kind {
            Timeout => "timeout",
            Connect(_) => "connect",
            Server(_) => "5xx",
            RateLimited { .. } => "429",
            NotFound => "not-found",
            Unauthorized(_) => "unauthorized",
            Status(_) => "status",
            InvalidManifest(_) => "invalid-manifest",
            DigestMismatch { .. } => "digest-mismatch",
            TooLarge { .. } => "too-large",
            TooMany { .. } => "too-many",
            BudgetExceeded { .. } => "budget",
            BadRedirect(_) => "bad-redirect",
            InsecureNotAllowed => "insecure",
            Token(_) => "token",
        }
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RegistryErrorKind::*;
        write!(f, "registry {}: {}: ", self.registry, self.context)?;
        match &self.kind {
            Timeout => write!(f, "timed out"),
            Connect(e) => write!(f, "connection failed: {e}"),
            Server(s) => write!(f, "server error {s}"),
            RateLimited {
                retry_after: Some(d),
            } => {
                write!(f, "rate limited (429), retry after {}s", d.as_secs())
            }
            RateLimited { retry_after: None } => write!(f, "rate limited (429)"),
            NotFound => write!(f, "not found"),
            Unauthorized(s) => write!(
                f,
                "access denied ({s}); check the registry credentials for this host"
            ),
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
                "{what} of {size} bytes exceeds the limit of {limit} bytes (registry limits)"
            ),
            TooMany { what, limit } => write!(f, "more {what} than the limit of {limit}"),
            BudgetExceeded { limit } => write!(
                f,
                "the per-image download budget of {limit} bytes is exhausted"
            ),
            BadRedirect(e) => write!(f, "bad redirect: {e}"),
            InsecureNotAllowed => write!(
                f,
                "plain HTTP is not allowed for this registry (set insecure: true to allow it)"
            ),
            Token(e) => write!(f, "token request failed: {e}"),
        }
    }
}
