//! What each request leaves behind: its kind (a metrics label), a record
//! for `--explain`, the observer that counts it, and the byte budget that
//! all reads of one image draw from.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::backoff::CircuitState;
use super::error::{RegistryError, RegistryErrorKind};

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
    pub(super) fn push(&self, r: RequestRecord) {
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
    pub(super) fn take(&self, n: u64, registry: &str, context: &str) -> Result<(), RegistryError> {
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
