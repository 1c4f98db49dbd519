//! The engine's in-memory caches: their keys, the remembered failures
//! with a TTL each, and how each cache is bounded (entries, or bytes for
//! verified evidence). `Engine` decides what goes in; this module only
//! builds and clears them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::sync::Cache as SyncCache;

use super::{Evaluated, EvidenceSet, PipelineError, VerdictKey};
use crate::config::Config;
use crate::digest::Digest;
use crate::image::ImageRef;
use crate::oci::Resolved;

#[derive(Clone, Hash, PartialEq, Eq)]
pub(super) struct TagKey {
    pub(super) image: ImageRef,
    pub(super) creds: String,
    pub(super) registries: Digest,
}

#[derive(Clone, Hash, PartialEq, Eq)]
pub(super) struct EvidenceKey {
    pub(super) name: String,
    pub(super) digest: Digest,
    pub(super) creds: String,
    pub(super) registries: Digest,
    pub(super) trust: Digest,
    /// Whether cosign's legacy tags were searched: a discovery without them
    /// never serves a contract that accepts them (one with them serves
    /// everyone).
    pub(super) cosign: bool,
}

pub(super) type Shared<T> = Arc<T>;

/// A remembered failure, with how long it is remembered (each entry its
/// own: permanent failures for `negativeTtl`, transient ones for seconds).
#[derive(Clone)]
pub(super) struct Negative {
    pub(super) error: Shared<PipelineError>,
    pub(super) ttl: Duration,
    pub(super) until: Instant,
    pub(super) transient: bool,
}

/// Expires each [`Negative`] after its own TTL.
pub(super) struct NegativeExpiry;

impl<K> moka::Expiry<K, Negative> for NegativeExpiry {
    fn expire_after_create(&self, _: &K, v: &Negative, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
    fn expire_after_update(
        &self,
        _: &K,
        v: &Negative,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

pub(super) struct Caches {
    // Coalescing caches (concurrent misses of one key share one fetch).
    pub(super) tags: Cache<TagKey, Shared<Resolved>>,
    pub(super) evidence: Cache<EvidenceKey, Shared<EvidenceSet>>,
    // Plain caches.
    pub(super) tags_negative: SyncCache<TagKey, Negative>,
    pub(super) evidence_negative: SyncCache<EvidenceKey, Negative>,
    pub(super) verdicts: SyncCache<VerdictKey, Shared<Evaluated>>,
    pub(super) lkg_tags: SyncCache<TagKey, Shared<(Resolved, jiff::Timestamp)>>,
    pub(super) lkg_evidence: SyncCache<EvidenceKey, Shared<EvidenceSet>>,
    /// Image strings already parsed: the reference grammar is a regex,
    /// and a rollout names the same few images in every pod. Only
    /// successes are kept (a reference is at most 1 KiB, so the cache is
    /// bounded in bytes too); the parse does not depend on configuration.
    pub(super) references: SyncCache<Box<str>, ImageRef>,
}

impl Caches {
    pub(super) fn new(config: &Config) -> Self {
        let c = &config.spec.cache;
        let n = c.max_entries.max(1);
        let lkg = config
            .registry_policies
            .values()
            .map(|p| p.last_known_good_window)
            .chain(std::iter::once(
                config.registry_policy_default.last_known_good_window,
            ))
            .max()
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_secs(1));
        let build = |ttl: Duration| ttl.max(Duration::from_millis(1));
        Caches {
            tags: Cache::builder()
                .max_capacity(n)
                .time_to_live(build(c.tag_ttl.0))
                .build(),
            tags_negative: SyncCache::builder()
                .max_capacity(n)
                .expire_after(NegativeExpiry)
                .build(),
            // Weighed in bytes (caches.evidenceBytes), not entries: one
            // image's evidence may be 2 KiB or, with a large SBOM, 600.
            evidence: Cache::builder()
                .max_capacity(c.evidence_bytes.0.max(1))
                .weigher(|_, v: &Shared<EvidenceSet>| v.weight())
                .time_to_live(build(c.evidence_ttl.0))
                .build(),
            evidence_negative: SyncCache::builder()
                .max_capacity(n)
                .expire_after(NegativeExpiry)
                .build(),
            verdicts: SyncCache::builder()
                .max_capacity(n.saturating_mul(4))
                .time_to_live(build(c.verdict_ttl.0))
                .build(),
            lkg_tags: SyncCache::builder()
                .max_capacity(n)
                .time_to_live(lkg)
                .build(),
            lkg_evidence: SyncCache::builder()
                .max_capacity(c.evidence_bytes.0.max(1))
                .weigher(|_, v: &Shared<EvidenceSet>| v.weight())
                .time_to_live(lkg)
                .build(),
            references: SyncCache::builder().max_capacity(4096).build(),
        }
    }

    pub(super) fn invalidate_all(&self) {
        self.tags.invalidate_all();
        self.tags_negative.invalidate_all();
        self.evidence.invalidate_all();
        self.evidence_negative.invalidate_all();
        self.verdicts.invalidate_all();
    }
}
