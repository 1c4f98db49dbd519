//! What a registry may cost: per-registry connection options, and the
//! limits on bytes, counts, time and concurrency of every exchange.

use std::time::Duration;

use serde::Serialize;

use super::backoff::BackoffPolicy;

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
