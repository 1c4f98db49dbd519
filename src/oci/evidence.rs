//! What discovery and resolution hand back: evidence as found in the
//! registry (unverified until `crate::verify` says otherwise), the
//! platforms of an index, a resolved digest, and the requests made.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::error::RegistryError;
use super::record::RequestRecord;
use crate::digest::Digest;
use crate::image::PlatformManifest;

use crate::verify::EvidenceSource;

/// The raw content of one piece of evidence.
#[derive(Debug, Clone)]
pub enum EvidenceContent {
    /// A Sigstore bundle (JSON).
    Bundle(Bytes),
    /// A cosign `.sig` simple-signing layer and its annotations.
    CosignSignature {
        /// The layer bytes.
        payload: Bytes,
        /// The layer's annotations.
        annotations: BTreeMap<String, String>,
    },
    /// A cosign `.att` DSSE layer and its annotations.
    CosignAttestation {
        /// The layer bytes.
        envelope: Bytes,
        /// The layer's annotations.
        annotations: BTreeMap<String, String>,
    },
}

/// Evidence as found in the registry: not yet verified.
#[derive(Debug, Clone)]
pub struct UnverifiedEvidence {
    /// The digest it was attached to (the image, or one of its platforms).
    pub subject: Digest,
    /// Where it was found.
    pub source: EvidenceSource,
    /// The bytes.
    pub content: EvidenceContent,
}

/// The result of discovery for one image.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The digest judged.
    pub digest: Digest,
    /// The manifest media type, when known.
    pub media_type: Option<String>,
    /// Platform manifests, for an index.
    pub platforms: Vec<PlatformManifest>,
    /// Everything found, deduplicated.
    pub evidence: Vec<UnverifiedEvidence>,
    /// Things skipped, with the reason (for `--explain`).
    pub notes: Vec<String>,
    /// The registry host that answered (a mirror, or the origin).
    pub registry: String,
    /// The manifest (or index) of the digest judged, when it was fetched
    /// (checked against the digest). The shared tier keeps it so another
    /// replica can derive the platforms from it instead of trusting a list.
    pub manifest: Option<Bytes>,
}

/// A resolved reference.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The digest.
    pub digest: Digest,
    /// The manifest media type, when the registry said.
    pub media_type: Option<String>,
    /// Whether the reference was already pinned (no request made).
    pub pinned: bool,
}

/// Options of one discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiscoverOptions {
    /// Look up cosign's `sha256-<hex>.sig`/`.att` tags (two requests per
    /// digest searched). The engine turns this off when no bound contract
    /// accepts legacy cosign evidence; a discovery made without them finds
    /// less, so it must never be cached under the key of one made with them.
    pub cosign_tags: bool,
}

impl Default for DiscoverOptions {
    /// Everything is looked up (cosign tags included).
    fn default() -> Self {
        DiscoverOptions { cosign_tags: true }
    }
}

/// The result of [`crate::oci::Registries::discover`] with its request log.
#[derive(Debug, Clone)]
pub struct Traced<T> {
    /// The result.
    pub result: Result<T, RegistryError>,
    /// The requests made.
    pub requests: Vec<RequestRecord>,
}
