//! Steps 2 and 3 (the engine's first stage, per image): resolve the tag,
//! then discover and verify the evidence of the digest, each through its
//! cache. A hit is answered before any registry exchange is built;
//! concurrent misses of one key share one fetch; only verified evidence is
//! ever cached.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use moka::future::Cache;
use moka::sync::Cache as SyncCache;

use super::cache::{EvidenceKey, Negative, Shared, TagKey};
use super::decision::RejectedEvidence;
use super::{BoundUse, Engine, EvidenceSet, PipelineError, Runtime};
use crate::digest::Digest;
use crate::image::ImageRef;
use crate::metrics::{Metrics, observe};
use crate::oci::{
    CredentialSet, ErrorClass, EvidenceContent, RequestRecord, Resolved, UnverifiedEvidence,
};
use crate::policy::Evidence;
use crate::verify::Verifier;

impl Engine {
    /// [`ImageRef::parse`], remembered.
    pub(super) fn parse_reference(
        &self,
        image: &str,
    ) -> Result<ImageRef, crate::image::ReferenceError> {
        if let Some(r) = self.caches.references.get(image) {
            return Ok(r);
        }
        let r = ImageRef::parse(image)?;
        self.caches.references.insert(image.into(), r.clone());
        Ok(r)
    }

    pub(super) fn tag_key(&self, rt: &Runtime, image: &ImageRef, creds: &CredentialSet) -> TagKey {
        TagKey {
            image: image.clone(),
            creds: creds.name().to_owned(),
            registries: rt.config.registry_fingerprint.clone(),
        }
    }

    fn evidence_key(
        &self,
        rt: &Runtime,
        image: &ImageRef,
        resolved: &Resolved,
        creds: &CredentialSet,
        cosign: bool,
    ) -> EvidenceKey {
        EvidenceKey {
            cosign,
            name: image.name(),
            // Not the media type: a tag (which tells it) and a pinned
            // digest (which does not) must share one discovery.
            digest: resolved.digest.clone(),
            creds: creds.name().to_owned(),
            registries: rt.config.registry_fingerprint.clone(),
            trust: rt.config.trust.fingerprint().clone(),
        }
    }

    /// Tag → digest, cached and coalesced.
    pub(super) async fn resolve(
        &self,
        rt: &Runtime,
        image: &ImageRef,
        creds: &Arc<CredentialSet>,
    ) -> Result<(Resolved, Vec<RequestRecord>), PipelineError> {
        if let Some(d) = image.digest() {
            return Ok((
                Resolved {
                    digest: d.clone(),
                    media_type: None,
                    pinned: true,
                },
                Vec::new(),
            ));
        }
        let key = self.tag_key(rt, image, creds);
        if let Some(r) = self.caches.tags.get(&key).await {
            // A hit writes nothing (the last-known-good copy was written
            // when this answer was fetched) and reports no requests.
            self.metrics.cache_result("tag", "hit");
            return Ok(((*r).clone(), Vec::new()));
        }
        // The miss is boxed: its state machine (the registry exchange) is
        // large, and a hit should not carry or move it.
        Box::pin(self.resolve_miss(rt, image, creds, key)).await
    }

    /// [`Engine::resolve`] after a cache miss: coalesced with concurrent
    /// misses of the same tag, remembered (also as last-known-good).
    async fn resolve_miss(
        &self,
        rt: &Runtime,
        image: &ImageRef,
        creds: &Arc<CredentialSet>,
        key: TagKey,
    ) -> Result<(Resolved, Vec<RequestRecord>), PipelineError> {
        // As for evidence: the requests go to the call that made them, not
        // into the cache.
        let made = std::sync::Mutex::new(Vec::new());
        let fetch = async {
            let traced = rt.registries.resolve(image, creds).await;
            let requests = traced.requests;
            match traced.result {
                Ok(r) => {
                    if let Ok(mut m) = made.lock() {
                        *m = requests;
                    }
                    Ok(r)
                }
                Err(e) => Err(PipelineError::registry(requests)(e)),
            }
        };
        let (r, missed) = self
            .coalesced(
                "tag",
                &self.caches.tags,
                &self.caches.tags_negative,
                key.clone(),
                fetch,
            )
            .await?;
        if !missed {
            // A hit writes nothing (the last-known-good copy was written
            // when this answer was fetched) and reports no requests.
            return Ok(((*r).clone(), Vec::new()));
        }
        if rt.config.uses_last_known_good() {
            self.caches
                .lkg_tags
                .insert(key, Arc::new(((*r).clone(), self.clock.now())));
        }
        Ok(((*r).clone(), made.into_inner().unwrap_or_default()))
    }

    /// The cache keys whose evidence serves a request that needs (or not)
    /// cosign's legacy tags: its own, then the wider discovery.
    pub(super) fn evidence_keys(
        &self,
        rt: &Runtime,
        image: &ImageRef,
        resolved: &Resolved,
        creds: &CredentialSet,
        cosign: bool,
    ) -> [EvidenceKey; 2] {
        [
            self.evidence_key(rt, image, resolved, creds, cosign),
            self.evidence_key(rt, image, resolved, creds, true),
        ]
    }

    /// Discovery + verification, cached and coalesced. `cosign`: whether a
    /// bound contract accepts evidence under cosign's legacy tags (when none
    /// does, discovery does not look for them).
    pub(super) async fn evidence(
        &self,
        rt: &Runtime,
        image: &ImageRef,
        resolved: &Resolved,
        creds: &Arc<CredentialSet>,
        cosign: bool,
        deadline: Option<Instant>,
    ) -> Result<(Shared<EvidenceSet>, Vec<RequestRecord>), PipelineError> {
        let key = self.evidence_key(rt, image, resolved, creds, cosign);
        // The exact key first (the warm path: one lookup); then, for a
        // request that does not need the cosign tags, a discovery that
        // searched them too serves it.
        if let Some(set) = self.caches.evidence.get(&key).await {
            self.metrics.cache_result("evidence", "hit");
            return Ok((set, Vec::new()));
        }
        if !cosign {
            let wider = self.evidence_key(rt, image, resolved, creds, true);
            if let Some(set) = self.caches.evidence.get(&wider).await {
                self.metrics.cache_result("evidence", "hit");
                return Ok((set, Vec::new()));
            }
        }
        // Boxed, as for tags: discovery and verification are a large state
        // machine that a hit should not carry.
        Box::pin(self.evidence_miss(rt, image, resolved, creds, cosign, deadline, key)).await
    }

    /// [`Engine::evidence`] after a cache miss: one discovery and
    /// verification, coalesced with concurrent misses of the same key.
    #[allow(clippy::too_many_arguments)]
    async fn evidence_miss(
        &self,
        rt: &Runtime,
        image: &ImageRef,
        resolved: &Resolved,
        creds: &Arc<CredentialSet>,
        cosign: bool,
        deadline: Option<Instant>,
        key: EvidenceKey,
    ) -> Result<(Shared<EvidenceSet>, Vec<RequestRecord>), PipelineError> {
        // The requests of a discovery go to the call that made it, not into
        // the cache (a hit reports none).
        let made = std::sync::Mutex::new(Vec::new());
        let fetch = async {
            let (set, requests) = self
                .fetch_and_verify(rt, image, resolved, creds, cosign, deadline)
                .await?;
            if let Ok(mut m) = made.lock() {
                *m = requests;
            }
            Ok(set)
        };
        let (set, missed) = self
            .coalesced(
                "evidence",
                &self.caches.evidence,
                &self.caches.evidence_negative,
                key.clone(),
                fetch,
            )
            .await?;
        if !missed {
            return Ok((set, Vec::new()));
        }
        if rt.config.uses_last_known_good() {
            self.caches.lkg_evidence.insert(key, set.clone());
        }
        self.record_evidence_size();
        let requests = made.into_inner().unwrap_or_default();
        Ok((set, requests))
    }

    /// One lookup of a coalescing cache: a cached error, a hit, or one
    /// `fetch` shared by every concurrent caller of `key`. Errors are
    /// remembered in `negative` for [`Engine::negative_ttl`]. Returns the
    /// value and whether this call fetched it.
    pub(super) async fn coalesced<K, V>(
        &self,
        name: &'static str,
        cache: &Cache<K, Shared<V>>,
        negative: &SyncCache<K, Negative>,
        key: K,
        fetch: impl std::future::Future<Output = Result<V, PipelineError>>,
    ) -> Result<(Shared<V>, bool), PipelineError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        // A positive entry first: the warm path is one lookup, no key
        // clone and no coalescing machinery. (A failure is only recorded
        // when a fetch ran, and a fetch only runs when there is no
        // positive entry, so a present value is never shadowed by a newer
        // failure.)
        if let Some(v) = cache.get(&key).await {
            self.metrics.cache_result(name, "hit");
            return Ok((v, false));
        }
        if let Some(n) = negative.get(&key) {
            // Checked here too: moka reclaims per-entry expiry lazily.
            if n.until > Instant::now() {
                self.metrics.cache_result(
                    name,
                    if n.transient {
                        "transient-negative-hit"
                    } else {
                        "negative-hit"
                    },
                );
                return Err((*n.error).clone());
            }
            negative.invalidate(&key);
        }
        let missed = AtomicBool::new(false);
        let result = cache
            .try_get_with(key.clone(), async {
                missed.store(true, Ordering::Relaxed);
                fetch.await.map(Arc::new)
            })
            .await;
        let missed = missed.load(Ordering::Relaxed);
        self.metrics
            .cache_result(name, if missed { "miss" } else { "hit" });
        match result {
            Ok(v) => Ok((v, missed)),
            Err(e) => {
                let e = (*e).clone();
                let ttl = self.negative_ttl(&e);
                if !ttl.is_zero() {
                    negative.insert(
                        key,
                        Negative {
                            error: Arc::new(e.clone()),
                            ttl,
                            until: Instant::now() + ttl,
                            transient: e.class() == ErrorClass::Transient,
                        },
                    );
                }
                Err(e)
            }
        }
    }

    async fn fetch_and_verify(
        &self,
        rt: &Runtime,
        image: &ImageRef,
        resolved: &Resolved,
        creds: &CredentialSet,
        cosign_tags: bool,
        deadline: Option<Instant>,
    ) -> Result<(EvidenceSet, Vec<RequestRecord>), PipelineError> {
        let started = Instant::now();
        let discover = || {
            let opts = crate::oci::DiscoverOptions { cosign_tags };
            let media_type = resolved.media_type.as_deref();
            rt.registries
                .discover(image, &resolved.digest, media_type, creds, opts)
        };
        // The shared tier (Redis), when configured: its evidence is verified
        // below like the registry's.
        let fp = &rt.config.registry_fingerprint;
        let key =
            crate::shared::SharedKey::new(image, &resolved.digest, fp, creds.name(), cosign_tags);
        let limits = rt.registries.limits();
        let traced =
            crate::shared::discover(rt.shared.as_ref(), &key, limits, deadline, discover).await;
        observe(&self.metrics.registry_seconds, started.elapsed());
        let requests = traced.requests;
        let discovery = match traced.result {
            Ok(d) => d,
            Err(e) => return Err(PipelineError::registry(requests)(e)),
        };
        let verifier = rt.verifier.clone();
        let metrics = self.metrics.clone();
        let pieces = discovery.evidence;
        let (evidence, rejected) =
            tokio::task::spawn_blocking(move || verify_all(&verifier, &metrics, pieces))
                .await
                .map_err(|e| PipelineError::Internal(format!("verification task: {e}")))?;
        let mut ids: Vec<Digest> = evidence
            .iter()
            .map(|e| e.facts().evidence_digest().clone())
            .collect();
        ids.sort();
        let set = EvidenceSet {
            digest: discovery.digest,
            platforms: discovery.platforms,
            evidence,
            ids: ids.into(),
            rejected,
            notes: discovery.notes,
            registry: discovery.registry,
            fetched_at: self.clock.now(),
        };
        Ok((set, requests))
    }

    /// Publishes the evidence cache's size (bytes and entries).
    fn record_evidence_size(&self) {
        let label = crate::metrics::CacheNameLabels {
            cache: "evidence".into(),
        };
        let c = &self.caches.evidence;
        self.metrics
            .cache_bytes
            .get_or_create(&label)
            .set(i64::try_from(c.weighted_size()).unwrap_or(i64::MAX));
        self.metrics
            .cache_entries
            .get_or_create(&label)
            .set(i64::try_from(c.entry_count()).unwrap_or(i64::MAX));
    }
}

/// Whether any bound contract accepts evidence under cosign's legacy tags.
pub(super) fn wants_cosign(bound: &[BoundUse<'_>]) -> bool {
    bound.iter().any(|b| b.contract.legacy_cosign)
}

/// Verifies every discovered piece; runs on a blocking thread.
fn verify_all(
    verifier: &Verifier,
    metrics: &Metrics,
    pieces: Vec<UnverifiedEvidence>,
) -> (Vec<Evidence>, Vec<RejectedEvidence>) {
    let mut verified: Vec<Evidence> = Vec::new();
    let mut rejected = Vec::new();
    let mut seen: BTreeMap<Digest, ()> = BTreeMap::new();
    for e in pieces {
        let started = Instant::now();
        let result = match &e.content {
            EvidenceContent::Bundle(b) => verifier.verify_bundle(b, &e.subject, e.source.clone()),
            EvidenceContent::CosignSignature {
                payload,
                annotations,
            } => {
                verifier.verify_cosign_signature(payload, annotations, &e.subject, e.source.clone())
            }
            EvidenceContent::CosignAttestation {
                envelope,
                annotations,
            } => verifier.verify_cosign_attestation(
                envelope,
                annotations,
                &e.subject,
                e.source.clone(),
            ),
        };
        observe(&metrics.verification_seconds, started.elapsed());
        match result.map_err(|e| e.to_string()).map(Evidence::new) {
            Ok(v) => {
                let digest = v.facts().evidence_digest().clone();
                if seen.insert(digest, ()).is_none() {
                    verified.push(v);
                }
            }
            Err(err) => rejected.push(RejectedEvidence {
                source: e.source.kind,
                subject: e.subject.clone(),
                layer: e.source.layer.clone(),
                reason: err,
            }),
        }
    }
    (verified, rejected)
}
