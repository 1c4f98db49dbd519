//! What a registry failure or an expired deadline turns into: the
//! configured failure policy (`fail-closed`, `last-known-good`, `warn`),
//! and how long a failure is remembered. Only transient registry errors and
//! deadline expiry degrade; a bad signature never does.

use std::time::Duration;

use super::cache::{EvidenceKey, Shared};
use super::fetch::wants_cosign;
use super::{DecisionRequest, Engine, EvidenceSet, PipelineError, Prepared, Runtime};
use crate::config::FailurePolicy;
use crate::image::ImageRef;
use crate::metrics::DegradedLabels;
use crate::oci::{CredentialSet, ErrorClass, Resolved};

impl Engine {
    /// The degraded-service warning, counted.
    pub(super) fn degrade(
        &self,
        image: &ImageRef,
        e: &PipelineError,
        policy: &str,
        at: jiff::Timestamp,
    ) -> String {
        self.metrics
            .degraded
            .get_or_create(&DegradedLabels {
                registry: image.registry().to_owned(),
                policy: policy.to_owned(),
            })
            .inc();
        format!(
            "judged on last-known-good evidence verified at {} (failure policy last-known-good): registry {} unavailable: {e}",
            at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            image.registry(),
        )
    }

    /// Applies the failure policy to an error of stage 1.
    pub(super) fn failed<'a>(
        &self,
        mut p: Prepared<'a>,
        rt: &Runtime,
        image: &ImageRef,
        e: PipelineError,
    ) -> Prepared<'a> {
        let policy = rt.config.registry_policy(image.registry());
        if e.class() == ErrorClass::Transient && policy.failure == FailurePolicy::Warn {
            self.metrics
                .degraded
                .get_or_create(&DegradedLabels {
                    registry: image.registry().to_owned(),
                    policy: "warn".into(),
                })
                .inc();
            p.degraded = Some(format!(
                "allowed without verification (failure policy warn): registry {} unavailable: {e}",
                image.registry()
            ));
        }
        p.evidence = Err(e);
        p
    }

    /// What an image gets when the deadline passed before stage 1 finished.
    pub(super) fn after_deadline<'a>(
        &self,
        rt: &'a Runtime,
        image: &str,
        req: &DecisionRequest,
        now: jiff::Timestamp,
        waited_ms: u64,
    ) -> Prepared<'a> {
        let e = PipelineError::Deadline(waited_ms);
        let p = self.bound(rt, image, req, now);
        let Ok(reference) = p.reference.clone() else {
            return p;
        };
        if p.unmatched {
            return p;
        }
        // last-known-good: only what is in memory, no await on the network.
        let policy = rt.config.registry_policy(reference.registry());
        if policy.failure == FailurePolicy::LastKnownGood {
            let creds = rt.config.credentials_for(req.context.namespace.as_deref());
            let tag_key = self.tag_key(rt, &reference, &creds);
            let resolved = match reference.digest() {
                Some(d) => Some(Resolved {
                    digest: d.clone(),
                    media_type: None,
                    pinned: true,
                }),
                None => self
                    .caches
                    .lkg_tags
                    .get(&tag_key)
                    .filter(|v| within(now, v.1, policy.last_known_good_window))
                    .map(|v| v.0.clone()),
            };
            if let Some(r) = resolved {
                let keys = self.evidence_keys(rt, &reference, &r, &creds, wants_cosign(&p.bound));
                if let Some(set) = self.lkg_evidence(keys, now, policy.last_known_good_window) {
                    let at = set.fetched_at;
                    let mut p = p;
                    p.degraded = Some(self.degrade(&reference, &e, "last-known-good", at));
                    p.digest = Some(r.digest.clone());
                    p.evidence = Ok(Some(set));
                    return p;
                }
            }
        }
        self.failed(p, rt, &reference, e)
    }

    pub(super) async fn lkg_resolution(
        &self,
        rt: &Runtime,
        image: &ImageRef,
        creds: &CredentialSet,
        policy: &crate::config::RegistryPolicy,
        now: jiff::Timestamp,
    ) -> Option<(Resolved, jiff::Timestamp)> {
        if policy.failure != FailurePolicy::LastKnownGood {
            return None;
        }
        let v = self.caches.lkg_tags.get(&self.tag_key(rt, image, creds))?;
        within(now, v.1, policy.last_known_good_window).then(|| (v.0.clone(), v.1))
    }

    /// The last-known-good evidence within the window: the set searched
    /// like this request needs, or a wider one (with cosign tags).
    pub(super) fn lkg_evidence(
        &self,
        keys: [EvidenceKey; 2],
        now: jiff::Timestamp,
        window: Duration,
    ) -> Option<Shared<EvidenceSet>> {
        keys.iter()
            .filter_map(|k| self.caches.lkg_evidence.get(k))
            .find(|s| within(now, s.fetched_at, window))
    }

    /// How long a failure is remembered:
    /// - permanent: `cache.negativeTtl`;
    /// - an answer over a limit (oversized, endless paging): permanent, so
    ///   it never degrades, but remembered only `cache.transientNegativeTtl`,
    ///   so a registry that misbehaved for a moment does not keep a signed
    ///   digest denied;
    /// - transient: `cache.transientNegativeTtl`, and never past the
    ///   registry host's back-off (zero, not remembered, while a probe is
    ///   due), so the first review after the back-off asks again.
    pub(super) fn negative_ttl(&self, e: &PipelineError) -> Duration {
        let rt = self.runtime();
        let c = &rt.config.spec.cache;
        let short = c.transient_negative_ttl.0;
        match e {
            PipelineError::Registry { error, .. } if error.class() == ErrorClass::Transient => {
                match rt.registries.backoff_remaining(&error.registry) {
                    Some(remaining) => remaining.min(short),
                    None => short,
                }
            }
            PipelineError::Registry { error, .. } if error.is_over_limit() => short,
            e if e.class() == ErrorClass::Transient => short,
            _ => c.negative_ttl.0,
        }
    }
}

/// Whether `at` is at most `window` before `now`.
pub(super) fn within(now: jiff::Timestamp, at: jiff::Timestamp, window: Duration) -> bool {
    let age = now.as_millisecond().saturating_sub(at.as_millisecond());
    age >= 0 && (age as u128) <= window.as_millis()
}
