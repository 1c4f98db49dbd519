//! The shared tier's value format: versioned, bounded, and checked on read.
//!
//! ```text
//! "PGSE" | version (u8, 1) | metadata length (u32 BE) | metadata (JSON)
//!        | manifest bytes (when fetched) | one blob per piece, in order
//! ```
//!
//! The metadata names what the entry is for (registry, repository, digest,
//! the registry-settings/credentials scope and whether cosign tags were
//! searched), the manifest's media type and length, and for each piece of
//! evidence its subject, source, content kind, annotations and length.
//! Blobs are stored raw (no base64), so an entry costs about what the
//! registry sent.
//!
//! [`decode`] trusts nothing: it refuses (with a reason) an entry whose
//! framing is short or long, whose version it does not know, whose key
//! fields differ from the key asked for (an entry swapped between digests),
//! whose manifest does not hash to the digest, whose blobs do not hash to
//! their recorded layer digests, whose pieces claim a subject that is
//! neither the digest nor one of the platforms derived from the manifest,
//! whose source does not fit its content, or that exceeds the
//! `registries.limits` a network read obeys. What passes is still only
//! [`UnverifiedEvidence`]: the engine verifies it like registry evidence.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::SharedKey;
use crate::digest::Digest;
use crate::oci::{Discovery, EvidenceContent, Limits, UnverifiedEvidence};
use crate::verify::{EvidenceSource, SourceKind};

/// The first bytes of every entry.
pub const MAGIC: &[u8; 4] = b"PGSE";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Magic, version and metadata length.
pub const HEADER_LEN: usize = 4 + 1 + 4;
/// The largest metadata block read (annotations included).
pub const MAX_META_BYTES: u64 = 1 << 20;
/// The longest registry host name accepted from an entry.
const MAX_HOST_LEN: usize = 255;

/// Why an entry read from the shared tier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a provgate entry.
    #[error("it is not a provgate shared-cache entry (bad magic)")]
    Magic,
    /// A format version this build does not read.
    #[error("its format version {found} is not one this provgate reads ({VERSION})")]
    Version {
        /// The version found.
        found: u8,
    },
    /// Shorter than its framing says.
    #[error("it is truncated: {0}")]
    Truncated(String),
    /// Longer than its framing says.
    #[error("it has {0} bytes after its last piece")]
    Trailing(usize),
    /// Larger than a limit.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes ({setting})")]
    TooLarge {
        /// What was measured.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
        /// The setting that sets the limit.
        setting: &'static str,
    },
    /// More items than a limit.
    #[error("it lists {count} {what}, over the limit of {limit} ({setting})")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
        /// The setting that sets the limit.
        setting: &'static str,
    },
    /// The metadata is not valid.
    #[error("its metadata is invalid: {0}")]
    Meta(String),
    /// The entry is about something else than the key asked for.
    #[error("it is for {found}, not {asked} (an entry moved between keys)")]
    Swapped {
        /// What the entry says.
        found: String,
        /// The key asked for.
        asked: String,
    },
    /// The manifest does not hash to the digest.
    #[error("its manifest hashes to {actual}, not {expected}")]
    ManifestDigest {
        /// The digest asked for.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A platform list cannot be derived from the manifest.
    #[error("its manifest is not a valid index: {0}")]
    Index(String),
    /// A piece is inconsistent.
    #[error("evidence piece {index}: {reason}")]
    Piece {
        /// The piece's position.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The registry-independent description of an entry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Meta {
    registry: String,
    repository: String,
    digest: String,
    scope: String,
    cosign: bool,
    host: String,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifest_len: Option<u64>,
    pieces: Vec<PieceMeta>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PieceMeta {
    subject: String,
    source: Source,
    #[serde(default)]
    manifest: Option<String>,
    layer: String,
    content: Content,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Source {
    Referrers,
    TagSchema,
    CosignSig,
    CosignAtt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Content {
    Bundle,
    CosignSignature,
    CosignAttestation,
}

impl Source {
    fn of(kind: SourceKind) -> Option<Self> {
        match kind {
            SourceKind::Referrers => Some(Source::Referrers),
            SourceKind::TagSchema => Some(Source::TagSchema),
            SourceKind::CosignSig => Some(Source::CosignSig),
            SourceKind::CosignAtt => Some(Source::CosignAtt),
            SourceKind::File => None,
        }
    }

    fn kind(self) -> SourceKind {
        match self {
            Source::Referrers => SourceKind::Referrers,
            Source::TagSchema => SourceKind::TagSchema,
            Source::CosignSig => SourceKind::CosignSig,
            Source::CosignAtt => SourceKind::CosignAtt,
        }
    }

    /// The content discovery produces from this source, and nothing else.
    fn fits(self, content: Content) -> bool {
        matches!(
            (self, content),
            (Source::Referrers | Source::TagSchema, Content::Bundle)
                | (Source::CosignSig, Content::CosignSignature)
                | (Source::CosignAtt, Content::CosignAttestation)
        )
    }
}

/// The largest entry [`decode`] accepts under `limits` and the tier's own
/// bound: a manifest, the per-image byte budget and the metadata.
pub fn read_bound(limits: &Limits, max_entry_bytes: u64) -> u64 {
    let network = (HEADER_LEN as u64)
        .saturating_add(MAX_META_BYTES)
        .saturating_add(limits.max_manifest_bytes)
        .saturating_add(limits.max_image_bytes);
    max_entry_bytes.min(network)
}

/// The entry for `discovery` under `key`, or `None` when it cannot be
/// stored: larger than `max_entry_bytes`, or holding a piece without a
/// layer digest (which could not be checked on read).
pub fn encode(key: &SharedKey, d: &Discovery, max_entry_bytes: u64) -> Option<Vec<u8>> {
    let mut pieces = Vec::with_capacity(d.evidence.len());
    let mut blobs: Vec<&Bytes> = Vec::with_capacity(d.evidence.len());
    for e in &d.evidence {
        let (content, bytes, annotations) = match &e.content {
            EvidenceContent::Bundle(b) => (Content::Bundle, b, BTreeMap::new()),
            EvidenceContent::CosignSignature {
                payload,
                annotations,
            } => (Content::CosignSignature, payload, annotations.clone()),
            EvidenceContent::CosignAttestation {
                envelope,
                annotations,
            } => (Content::CosignAttestation, envelope, annotations.clone()),
        };
        pieces.push(PieceMeta {
            subject: e.subject.to_string(),
            source: Source::of(e.source.kind)?,
            manifest: e.source.manifest.as_ref().map(ToString::to_string),
            layer: e.source.layer.as_ref()?.to_string(),
            content,
            annotations,
            len: bytes.len() as u64,
        });
        blobs.push(bytes);
    }
    let meta = Meta {
        registry: key.registry.clone(),
        repository: key.repository.clone(),
        digest: key.digest.to_string(),
        scope: key.scope.clone(),
        cosign: key.cosign,
        host: d.registry.clone(),
        media_type: d.media_type.clone(),
        manifest_len: d.manifest.as_ref().map(|m| m.len() as u64),
        pieces,
    };
    let meta = serde_json::to_vec(&meta).ok()?;
    if meta.len() as u64 > MAX_META_BYTES {
        return None;
    }
    let total = HEADER_LEN as u64
        + meta.len() as u64
        + d.manifest.as_ref().map_or(0, |m| m.len() as u64)
        + blobs.iter().map(|b| b.len() as u64).sum::<u64>();
    if total > max_entry_bytes {
        return None;
    }
    let mut out = Vec::with_capacity(usize::try_from(total).ok()?);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&u32::try_from(meta.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&meta);
    if let Some(m) = &d.manifest {
        out.extend_from_slice(m);
    }
    for b in blobs {
        out.extend_from_slice(b);
    }
    Some(out)
}

/// A cursor over the entry's bytes that never reads past the end.
struct Reader {
    bytes: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: u64, what: &str) -> Result<Bytes, Refusal> {
        let left = self.bytes.len() - self.at;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > left {
            return Err(Refusal::Truncated(format!(
                "{what} needs {n} bytes, {left} are left"
            )));
        }
        let out = self.bytes.slice(self.at..self.at + n);
        self.at += n;
        Ok(out)
    }
}

fn digest(s: &str, what: &str) -> Result<Digest, Refusal> {
    s.parse::<Digest>()
        .map_err(|e| Refusal::Meta(format!("{what} {s:?}: {e}")))
}

/// Reads an entry for `key`, checking everything that can be checked
/// without the registry (see the module docs). `limits` are the
/// `registries.limits` a network read obeys.
pub fn decode(bytes: Bytes, key: &SharedKey, limits: &Limits) -> Result<Discovery, Refusal> {
    let (mut r, meta) = read_meta(bytes)?;
    check_meta(&meta, key)?;

    // Size limits, as on a network read.
    let mut budget: u64 = 0;
    let manifest = match meta.manifest_len {
        Some(n) => {
            if n > limits.max_manifest_bytes {
                return Err(Refusal::TooLarge {
                    what: "its manifest".into(),
                    size: n,
                    limit: limits.max_manifest_bytes,
                    setting: "registries.limits.maxManifestBytes",
                });
            }
            budget = budget.saturating_add(n);
            Some(r.take(n, "the manifest")?)
        }
        None => None,
    };
    let max_pieces = limits
        .max_referrers
        .saturating_mul(limits.max_layers.max(1))
        .saturating_add(limits.max_layers.saturating_mul(2))
        .saturating_mul(limits.max_platforms.saturating_add(1));
    if meta.pieces.len() > max_pieces {
        return Err(Refusal::TooMany {
            what: "pieces of evidence",
            count: meta.pieces.len(),
            limit: max_pieces,
            setting: "registries.limits.maxReferrers, maxLayers and maxPlatforms",
        });
    }

    // The platforms come from the manifest bytes, never from a stored list.
    let mut notes = Vec::new();
    let platforms = match &manifest {
        Some(m) => {
            if !key.digest.matches(m) {
                return Err(Refusal::ManifestDigest {
                    expected: key.digest.to_string(),
                    actual: Digest::compute(key.digest.algorithm(), m).to_string(),
                });
            }
            crate::oci::index_platforms(
                m,
                meta.media_type.as_deref(),
                limits.max_platforms,
                &mut notes,
            )
            .map_err(Refusal::Index)?
        }
        None => Vec::new(),
    };
    let subjects: HashSet<&Digest> = std::iter::once(&key.digest)
        .chain(platforms.iter().map(|p| &p.digest))
        .collect();

    let mut evidence = Vec::with_capacity(meta.pieces.len());
    for (index, p) in meta.pieces.iter().enumerate() {
        evidence.push(piece(
            &mut r,
            index,
            p,
            key,
            &subjects,
            limits,
            &mut budget,
        )?);
    }
    let trailing = r.bytes.len() - r.at;
    if trailing != 0 {
        return Err(Refusal::Trailing(trailing));
    }
    Ok(Discovery {
        digest: key.digest.clone(),
        media_type: meta.media_type,
        platforms,
        evidence,
        notes,
        registry: meta.host,
        manifest,
    })
}

/// The header and metadata of an entry, and a reader positioned after
/// them.
fn read_meta(bytes: Bytes) -> Result<(Reader, Meta), Refusal> {
    if bytes.len() < HEADER_LEN {
        return Err(if bytes.len() >= 4 && &bytes[..4] != MAGIC {
            Refusal::Magic
        } else {
            Refusal::Truncated(format!("{} bytes, shorter than its header", bytes.len()))
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(Refusal::Magic);
    }
    if bytes[4] != VERSION {
        return Err(Refusal::Version { found: bytes[4] });
    }
    let meta_len = u64::from(u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]));
    if meta_len > MAX_META_BYTES {
        return Err(Refusal::TooLarge {
            what: "its metadata".into(),
            size: meta_len,
            limit: MAX_META_BYTES,
            setting: "fixed",
        });
    }
    let mut r = Reader {
        bytes,
        at: HEADER_LEN,
    };
    let meta_bytes = r.take(meta_len, "the metadata")?;
    let meta: Meta =
        serde_json::from_slice(&meta_bytes).map_err(|e| Refusal::Meta(e.to_string()))?;
    Ok((r, meta))
}

/// The key fields inside the value must be the key asked for; the host and
/// media type must look like what they claim to be.
fn check_meta(meta: &Meta, key: &SharedKey) -> Result<(), Refusal> {
    // The key fields inside the value must be the key asked for.
    let found_digest = digest(&meta.digest, "digest")?;
    if meta.registry != key.registry
        || meta.repository != key.repository
        || found_digest != key.digest
        || meta.scope != key.scope
        || meta.cosign != key.cosign
    {
        return Err(Refusal::Swapped {
            found: describe(
                &meta.registry,
                &meta.repository,
                &meta.digest,
                meta.cosign,
                &meta.scope,
            ),
            asked: describe(
                &key.registry,
                &key.repository,
                &key.digest.to_string(),
                key.cosign,
                &key.scope,
            ),
        });
    }
    if meta.host.is_empty()
        || meta.host.len() > MAX_HOST_LEN
        || !meta
            .host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err(Refusal::Meta(format!(
            "registry host {:?} is not a host name",
            meta.host
        )));
    }
    if let Some(mt) = &meta.media_type
        && (mt.len() > 255 || mt.chars().any(|c| c.is_control()))
    {
        return Err(Refusal::Meta("media type is not a media type".into()));
    }
    Ok(())
}

/// One piece of evidence, with its bytes, checked against the limits (its
/// size counted into `budget`), the subjects the entry may name, its
/// source and its recorded layer digest.
fn piece(
    r: &mut Reader,
    index: usize,
    p: &PieceMeta,
    key: &SharedKey,
    subjects: &HashSet<&Digest>,
    limits: &Limits,
    budget: &mut u64,
) -> Result<UnverifiedEvidence, Refusal> {
    let bad = |reason: String| Refusal::Piece { index, reason };
    if p.len > limits.max_blob_bytes {
        return Err(Refusal::TooLarge {
            what: format!("evidence piece {index}"),
            size: p.len,
            limit: limits.max_blob_bytes,
            setting: "registries.limits.maxBlobBytes",
        });
    }
    *budget = budget.saturating_add(p.len);
    if *budget > limits.max_image_bytes {
        return Err(Refusal::TooLarge {
            what: "its evidence".into(),
            size: *budget,
            limit: limits.max_image_bytes,
            setting: "registries.limits.maxImageBytes",
        });
    }
    let subject = digest(&p.subject, "subject")?;
    if !subjects.contains(&subject) {
        return Err(bad(format!(
            "its subject {subject} is neither {} nor one of its platforms",
            key.digest
        )));
    }
    if !p.source.fits(p.content) {
        return Err(bad(format!(
            "{:?} content cannot come from a {:?} source",
            p.content, p.source
        )));
    }
    if !key.cosign && matches!(p.source, Source::CosignSig | Source::CosignAtt) {
        return Err(bad(
            "cosign-tag evidence in the entry of a discovery that did not search cosign tags"
                .into(),
        ));
    }
    let layer = digest(&p.layer, "layer")?;
    let manifest_digest = p
        .manifest
        .as_deref()
        .map(|m| digest(m, "manifest"))
        .transpose()?;
    let blob = r.take(p.len, &format!("evidence piece {index}"))?;
    if !layer.matches(&blob) {
        return Err(bad(format!(
            "its bytes hash to {}, not to its recorded layer digest {layer}",
            Digest::compute(layer.algorithm(), &blob)
        )));
    }
    let content = match p.content {
        Content::Bundle => EvidenceContent::Bundle(blob),
        Content::CosignSignature => EvidenceContent::CosignSignature {
            payload: blob,
            annotations: p.annotations.clone(),
        },
        Content::CosignAttestation => EvidenceContent::CosignAttestation {
            envelope: blob,
            annotations: p.annotations.clone(),
        },
    };
    Ok(UnverifiedEvidence {
        subject,
        source: EvidenceSource {
            kind: p.source.kind(),
            manifest: manifest_digest,
            layer: Some(layer),
        },
        content,
    })
}

fn describe(registry: &str, repo: &str, digest: &str, cosign: bool, scope: &str) -> String {
    format!(
        "{registry}/{repo}@{digest} (cosign tags {}, scope {})",
        if cosign { "searched" } else { "not searched" },
        scope.get(..12).unwrap_or(scope)
    )
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
