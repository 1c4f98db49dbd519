//! The decision engine: bind → resolve → discover → verify → decide.
//!
//! [`Engine::decide`] judges every image of one request (an AdmissionReview,
//! a gate call, a report or a CLI run) with the same stages, caches and
//! wording, so a team gets the same answer everywhere:
//!
//! 1. **Bind.** The bindings that cover the image in its context, their
//!    effective mode (`enforce_after`) and exemptions. An image no binding
//!    covers follows `unmatched` (deny by default).
//! 2. **Resolve** the tag to a digest (none for a pinned reference).
//! 3. **Discover + verify** the evidence attached to the digest, as one unit
//!    of work: the cache holds only *verified* evidence, keyed by digest,
//!    repository, credential set, registry settings and trust material.
//! 4. **Decide.** For each bound contract, the evidence its authorities
//!    admit becomes the policy input; the contract's Rego runs over it.
//!
//! Caches (moka) wrap resolution and discovery+verification, never policy
//! alone: the verdict cache key includes the contract revision, the evidence
//! and the whole context. Concurrent misses of one key are coalesced, so a
//! burst of reviews of a new digest costs one discovery. Failures are
//! coalesced and cached the same way: permanent ones for `cache.negativeTtl`;
//! transient ones (and answers over a limit) for seconds, never past the
//! registry's back-off (`cache.transientNegativeTtl`), so reviews of an
//! uncached digest during an outage make one registry attempt per back-off
//! interval, and a recovered registry is asked again as soon as its back-off
//! ends. A registry's failure policy (`fail-closed`, `last-known-good`,
//! `warn`) applies to transient errors and deadline expiry only: a bad
//! signature or an untrusted signer is not an error of the registry and
//! never degrades.

mod cache;
pub mod decision;
mod fold;
pub mod namespaces;

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use moka::future::Cache;
use moka::sync::Cache as SyncCache;

use crate::bind::EffectiveMode;
use crate::clock::Clock;
use crate::config::{BoundContract, Config, FailurePolicy, Unmatched};
use crate::digest::Digest;
use crate::metrics::{DegradedLabels, Metrics, VerdictLabels, observe};
use crate::oci::{
    CredentialSet, ErrorClass, EvidenceContent, ImageRef, PlatformManifest, Registries,
    RegistryError, RequestRecord, Resolved, UnverifiedEvidence,
};
use crate::policy::input::{self, Admitted, ContractInfo, EvidenceKind, ImageInput, PolicyInput};
use crate::policy::{ContextProjection, Evidence, RegoOutcome, RequestContext, Violation};
use crate::verify::{SourceKind, Verifier};
use cache::{Caches, EvidenceKey, Negative, Shared, TagKey};
use decision::{
    CapturedInput, ContractResult, ErrorInfo, ErrorKind, EvidenceEntry, ExemptionInfo, Ignored,
    ImageDecision, Outcome, PlatformVerdict, RejectedEvidence, Verdict,
};

/// One place an image appears in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// The image as written.
    pub image: String,
    /// The container (or volume) name, when there is one.
    pub container: Option<String>,
    /// Where in the object, e.g. `spec.initContainers[0].image`.
    pub path: String,
}

impl ImageUse {
    /// An image with no container (gate, CLI).
    pub fn bare(image: &str) -> Self {
        ImageUse {
            image: image.to_owned(),
            container: None,
            path: String::new(),
        }
    }
}

/// What to judge.
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    /// The images and where they appear.
    pub images: Vec<ImageUse>,
    /// The context (without the container, which comes from each use).
    pub context: RequestContext,
    /// When the answer is due; failure policy applies to what is not done.
    pub deadline: Option<Instant>,
    /// Narrow the bound contracts to these (a gate or CLI selection; it
    /// never adds a contract the bindings do not apply).
    pub contracts: Option<Vec<String>>,
    /// Keep each contract's policy input in its result
    /// (`check --dump-input`); evaluations still go through the cache.
    pub capture_inputs: bool,
}

/// An error of the pipeline that decides an image's outcome.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The registry failed or refused.
    #[error("{error}")]
    Registry {
        /// What failed.
        error: RegistryError,
        /// The requests made until it did (for `--explain`).
        requests: Vec<RequestRecord>,
    },
    /// The deadline passed before the image was judged.
    #[error("no answer within the admission deadline ({0} ms)")]
    Deadline(u64),
    /// A bug: a task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl PipelineError {
    /// Transient errors may degrade and are never cached.
    pub fn class(&self) -> ErrorClass {
        match self {
            PipelineError::Registry { error, .. } => error.class(),
            PipelineError::Deadline(_) => ErrorClass::Transient,
            PipelineError::Internal(_) => ErrorClass::Permanent,
        }
    }

    /// Whether the error is about the environment or the evidence.
    pub fn kind(&self) -> ErrorKind {
        use crate::oci::ErrorCategory;
        match self {
            PipelineError::Registry { error, .. } => match error.category() {
                ErrorCategory::Evidence => ErrorKind::Evidence,
                ErrorCategory::Operational => ErrorKind::Operational,
            },
            PipelineError::Deadline(_) | PipelineError::Internal(_) => ErrorKind::Operational,
        }
    }

    /// The registry requests made before the error.
    pub fn requests(&self) -> &[RequestRecord] {
        match self {
            PipelineError::Registry { requests, .. } => requests,
            _ => &[],
        }
    }

    fn registry(traced_requests: Vec<RequestRecord>) -> impl FnOnce(RegistryError) -> Self {
        move |error| PipelineError::Registry {
            error,
            requests: traced_requests,
        }
    }
}

/// The verified evidence of one digest in one repository.
#[derive(Debug, Clone)]
pub struct EvidenceSet {
    /// The digest judged.
    pub digest: Digest,
    /// Platform manifests, for an index.
    pub platforms: Vec<PlatformManifest>,
    /// Evidence that verified, each converted once to its policy-input form.
    pub evidence: Vec<Evidence>,
    /// The digests of `evidence`, sorted: the evidence part of verdict keys.
    pub ids: Arc<[Digest]>,
    /// Evidence that did not, with the reason.
    pub rejected: Vec<RejectedEvidence>,
    /// Discovery notes.
    pub notes: Vec<String>,
    /// The host that answered.
    pub registry: String,
    /// When it was fetched and verified.
    pub fetched_at: jiff::Timestamp,
}

impl EvidenceSet {
    /// The bytes the set holds, as the evidence cache weighs it (an
    /// estimate of the heap it keeps alive, including per-item overhead).
    pub fn weight(&self) -> u32 {
        let evidence: usize = self.evidence.iter().map(Evidence::weight).sum();
        let rejected: usize = self.rejected.iter().map(|r| r.reason.len() + 256).sum();
        let notes: usize = self.notes.iter().map(|n| n.len() + 32).sum();
        let platforms = self.platforms.len() * 160;
        let total = 512 + evidence + rejected + notes + platforms + self.registry.len();
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// Everything derived from one configuration revision.
pub struct Runtime {
    /// The configuration.
    pub config: Arc<Config>,
    /// The verifier over its trust material.
    pub verifier: Verifier,
    /// The registries with its options.
    pub registries: Registries,
    /// The shared evidence tier (`caches.shared`), when configured.
    pub shared: Option<crate::shared::SharedTier>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds the runtime of a configuration.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Self {
        let verifier = Verifier::new(config.trust.clone(), config.spec.verify.clone());
        let shared = config
            .shared
            .clone()
            .map(|s| crate::shared::SharedTier::new(s, metrics.clone()));
        let registries = Registries::new(
            config.registry_entries.clone(),
            config.registry_default.clone(),
            config.spec.registries.limits.clone(),
            metrics,
        );
        Runtime {
            config: Arc::new(config),
            verifier,
            registries,
            shared,
        }
    }
}

/// A contract's evaluation over one evidence set (the verdict cache value).
#[derive(Debug, Clone)]
struct Evaluated {
    outcome: Result<RegoOutcome, String>,
    used: Vec<Digest>,
    ignored: Vec<Ignored>,
}

/// What a verdict depends on, and nothing else: the contract revision (its
/// Rego, library, parameters, authorities and overrides), the trust
/// material, the image as the input shows it (reference, digest, platform
/// scope), the verified evidence set and the projection of the context onto
/// the fields the contract declares. Compared with `Eq`, so two requests
/// share a verdict only when its input would be identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VerdictKey {
    revision: Digest,
    trust: Digest,
    image: Arc<ImageInput>,
    evidence: Arc<[Digest]>,
    context: ContextProjection,
}

/// The engine. Cheap to share (`Arc<Engine>`); hot-reloadable.
pub struct Engine {
    runtime: ArcSwap<Runtime>,
    generation: std::sync::atomic::AtomicU64,
    namespaces: arc_swap::ArcSwapOption<namespaces::NamespaceLabels>,
    caches: Caches,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// What stage 1 (bind, resolve, discover, verify) produced for one image.
struct Prepared<'a> {
    reference: Result<ImageRef, String>,
    bound: Vec<BoundUse<'a>>,
    unmatched: bool,
    digest: Option<Digest>,
    evidence: Result<Option<Shared<EvidenceSet>>, PipelineError>,
    degraded: Option<String>,
    requests: Vec<RequestRecord>,
}

/// One contract bound to one image, borrowed from the runtime's
/// configuration (nothing deep is cloned per image per review).
#[derive(Clone)]
struct BoundUse<'a> {
    binding: &'a str,
    mode: EffectiveMode,
    exemption: Option<ExemptionInfo>,
    expired_exemption: Option<String>,
    contract: &'a BoundContract,
    pin: bool,
}

impl Engine {
    /// An engine over `config`.
    pub fn new(config: Config, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        let caches = Caches::new(&config);
        Engine {
            runtime: ArcSwap::from_pointee(Runtime::new(config, metrics.clone())),
            generation: std::sync::atomic::AtomicU64::new(0),
            namespaces: arc_swap::ArcSwapOption::empty(),
            caches,
            metrics,
            clock,
        }
    }

    /// The runtime in force.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Where namespace labels come from (for bindings selecting namespaces
    /// by label, when `admission.trustNamespaceLabels` is on).
    pub fn set_namespace_labels(&self, source: namespaces::NamespaceLabels) {
        self.namespaces.store(Some(Arc::new(source)));
    }

    /// Increases on every [`Engine::reload`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Swaps in a new configuration. Caches keyed by what changed (trust
    /// material, registry settings, contract revisions) miss by themselves;
    /// a change of cache settings clears everything.
    pub fn reload(&self, config: Config) {
        let old = self.runtime.load();
        let clear = format!("{:?}", old.config.spec.cache) != format!("{:?}", config.spec.cache);
        let mut rt = Runtime::new(config, self.metrics.clone());
        // A registry backing off keeps backing off.
        rt.registries.adopt_circuits(&old.registries);
        self.runtime.store(Arc::new(rt));
        self.generation.fetch_add(1, Ordering::SeqCst);
        if clear {
            self.caches.invalidate_all();
        }
    }

    /// Judges every image of `req`. The result has one decision per use, in
    /// order.
    pub async fn decide(&self, req: &DecisionRequest) -> Vec<ImageDecision> {
        self.decide_with(self.runtime(), req).await
    }

    /// [`Engine::decide`] under another configuration (an impact preview)
    /// that shares this engine's caches: evidence is keyed by digest,
    /// registry settings and trust material, so only what the proposal
    /// changes is fetched again.
    pub async fn decide_with(&self, rt: Arc<Runtime>, req: &DecisionRequest) -> Vec<ImageDecision> {
        let with_labels;
        let req = match self.namespace_labels(&rt, req).await {
            Some(labels) => {
                with_labels = DecisionRequest {
                    context: RequestContext {
                        namespace_labels: labels,
                        ..req.context.clone()
                    },
                    ..req.clone()
                };
                &with_labels
            }
            None => req,
        };
        let now = self.clock.now();
        let started = Instant::now();
        // Stage 1, once per distinct image string, in parallel.
        let mut distinct: Vec<&str> = Vec::new();
        for u in &req.images {
            if !distinct.contains(&u.image.as_str()) {
                distinct.push(&u.image);
            }
        }
        // Each image's stage 1 is boxed: join_all then moves pointers, not
        // the large state machines of resolve + discover + verify.
        let rt_ref: &Runtime = &rt;
        let prepared = futures_util::future::join_all(distinct.iter().map(|image| {
            Box::pin(async move {
                let fut = self.prepare(rt_ref, image, req, now);
                match req.deadline {
                    Some(d) => match tokio::time::timeout_at(d.into(), fut).await {
                        Ok(p) => p,
                        Err(_) => {
                            let waited = d.saturating_duration_since(started).as_millis() as u64;
                            self.after_deadline(rt_ref, image, req, now, waited)
                        }
                    },
                    None => fut.await,
                }
            })
        }))
        .await;
        let by_image: HashMap<&str, &Prepared<'_>> =
            distinct.iter().copied().zip(prepared.iter()).collect();
        // Stage 2, per use.
        let mut out = Vec::with_capacity(req.images.len());
        for u in &req.images {
            let Some(p) = by_image.get(u.image.as_str()) else {
                continue;
            };
            let mut ctx = req.context.clone();
            ctx.container = u.container.clone();
            out.push(self.judge(&rt, u, ctx, p, now, req.capture_inputs));
        }
        for d in &out {
            self.metrics
                .decisions
                .get_or_create(&crate::metrics::DecisionLabels {
                    source: d.context.source.clone(),
                    namespace: d.context.namespace.clone().unwrap_or_default(),
                    outcome: d.outcome.as_str(),
                })
                .inc();
            for c in &d.contracts {
                self.metrics
                    .verdicts
                    .get_or_create(&VerdictLabels {
                        contract: c.name.clone(),
                        verdict: c.verdict.as_str(),
                        mode: c.mode.mode.as_str(),
                    })
                    .inc();
            }
        }
        out
    }

    /// The namespace's labels, when bindings may select by them and the
    /// request does not carry them.
    async fn namespace_labels(
        &self,
        rt: &Runtime,
        req: &DecisionRequest,
    ) -> Option<BTreeMap<String, String>> {
        if !rt.config.spec.admission.trust_namespace_labels
            || !req.context.namespace_labels.is_empty()
        {
            return None;
        }
        let ns = req.context.namespace.as_deref()?;
        let source = self.namespaces.load_full()?;
        match source.labels(ns).await {
            Ok(l) => Some((*l).clone()),
            Err(e) => {
                // Unknown labels: label-selected bindings do not match, and
                // the image falls to `unmatched` (deny by default).
                tracing::warn!(namespace = ns, error = %e, "namespace labels unavailable");
                None
            }
        }
    }

    /// The bindings that apply, as admission binds them; a gate call's
    /// `contracts` only narrows that set (gate ⊆ admission by
    /// construction: a contract's defaults never replace a binding's
    /// authorities, parameters or mode).
    fn bind<'a>(
        &self,
        rt: &'a Runtime,
        image: &ImageRef,
        req: &DecisionRequest,
        now: jiff::Timestamp,
    ) -> Vec<BoundUse<'a>> {
        let config = &rt.config;
        let trust_labels = config.spec.admission.trust_namespace_labels;
        let mut out = Vec::new();
        for b in &config.bindings {
            if !b.binding.matches(&req.context, image, trust_labels) {
                continue;
            }
            let mode = b.binding.mode_at(now);
            let (active, expired) = b.binding.exemption_for(image, now);
            for c in &b.contracts {
                if let Some(names) = &req.contracts
                    && !names.iter().any(|n| n == &c.name)
                {
                    continue;
                }
                out.push(BoundUse {
                    binding: b.binding.name(),
                    mode,
                    exemption: active.map(|e| ExemptionInfo {
                        reason: e.reason.clone(),
                        expires: e.expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    }),
                    expired_exemption: expired.map(|e| {
                        format!(
                            "exemption of binding {:?} ({}) expired at {}",
                            b.binding.name(),
                            e.reason,
                            e.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
                        )
                    }),
                    contract: c,
                    pin: b.binding.spec.pin_digests,
                });
            }
        }
        out
    }

    /// Checks a gate call's contract selection: every named contract must
    /// be bound, in the request's context, to every image named. Returns
    /// the first (image, contract) pair that is not, for a 400 that names
    /// it; selection never falls back to a contract's defaults.
    pub async fn unbound_selection(&self, req: &DecisionRequest) -> Option<(String, String)> {
        let names = req.contracts.as_ref()?;
        let rt = self.runtime();
        let now = self.clock.now();
        let mut unnarrowed = DecisionRequest {
            contracts: None,
            ..req.clone()
        };
        if let Some(labels) = self.namespace_labels(&rt, req).await {
            unnarrowed.context.namespace_labels = labels;
        }
        for u in &req.images {
            let Ok(image) = ImageRef::parse(&u.image) else {
                // An unreadable reference is denied by the decision itself.
                continue;
            };
            let bound = self.bind(&rt, &image, &unnarrowed, now);
            for n in names {
                if !bound.iter().any(|b| &b.contract.name == n) {
                    return Some((u.image.clone(), n.clone()));
                }
            }
        }
        None
    }

    /// The start of stage 1: the reference parsed and the bindings found,
    /// nothing fetched.
    fn bound<'a>(
        &self,
        rt: &'a Runtime,
        image: &str,
        req: &DecisionRequest,
        now: jiff::Timestamp,
    ) -> Prepared<'a> {
        let mut p = Prepared {
            reference: Err(String::new()),
            bound: Vec::new(),
            unmatched: false,
            digest: None,
            evidence: Ok(None),
            degraded: None,
            requests: Vec::new(),
        };
        match self.parse_reference(image) {
            Ok(r) => {
                p.bound = self.bind(rt, &r, req, now);
                p.unmatched = p.bound.is_empty();
                p.reference = Ok(r);
            }
            Err(e) => p.reference = Err(e.to_string()),
        }
        p
    }

    /// [`ImageRef::parse`], remembered.
    fn parse_reference(&self, image: &str) -> Result<ImageRef, crate::oci::ReferenceError> {
        if let Some(r) = self.caches.references.get(image) {
            return Ok(r);
        }
        let r = ImageRef::parse(image)?;
        self.caches.references.insert(image.into(), r.clone());
        Ok(r)
    }

    /// Stage 1 for one image.
    async fn prepare<'a>(
        &self,
        rt: &'a Runtime,
        image: &str,
        req: &DecisionRequest,
        now: jiff::Timestamp,
    ) -> Prepared<'a> {
        let mut p = self.bound(rt, image, req, now);
        let Ok(reference) = p.reference.clone() else {
            return p;
        };
        if p.unmatched {
            // Nothing to judge: fetch nothing.
            return p;
        }
        let creds = rt.config.credentials_for(req.context.namespace.as_deref());
        let policy = rt.config.registry_policy(reference.registry()).clone();
        let (resolved, resolve_requests) = match self.resolve(rt, &reference, &creds).await {
            Ok(r) => r,
            Err(e) => {
                p.requests = e.requests().to_vec();
                let lkg = self
                    .lkg_resolution(rt, &reference, &creds, &policy, now)
                    .await;
                match (e.class(), lkg) {
                    (ErrorClass::Transient, Some((r, at))) => {
                        p.degraded = Some(self.degrade(&reference, &e, "last-known-good", at));
                        (r, p.requests.clone())
                    }
                    _ => return self.failed(p, rt, &reference, e),
                }
            }
        };
        let cosign = wants_cosign(&p.bound);
        match self
            .evidence(rt, &reference, &resolved, &creds, cosign, req.deadline)
            .await
        {
            Ok((set, requests)) => {
                // Requests are reported by the call that made them only.
                p.requests = resolve_requests;
                p.requests.extend(requests);
                p.digest = Some(resolved.digest.clone());
                p.evidence = Ok(Some(set));
            }
            Err(e) => {
                p.requests = resolve_requests;
                p.requests.extend(e.requests().iter().cloned());
                let lkg = if policy.failure == FailurePolicy::LastKnownGood {
                    let keys = self.evidence_keys(rt, &reference, &resolved, &creds, cosign);
                    self.lkg_evidence(keys, now, policy.last_known_good_window)
                } else {
                    None
                };
                match (e.class(), lkg) {
                    (ErrorClass::Transient, Some(set)) => {
                        p.degraded =
                            Some(self.degrade(&reference, &e, "last-known-good", set.fetched_at));
                        p.digest = Some(resolved.digest.clone());
                        p.evidence = Ok(Some(set));
                    }
                    _ => {
                        p.digest = Some(resolved.digest.clone());
                        return self.failed(p, rt, &reference, e);
                    }
                }
            }
        }
        p
    }

    /// The degraded-service warning, counted.
    fn degrade(
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
    fn failed<'a>(
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
    fn after_deadline<'a>(
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

    fn tag_key(&self, rt: &Runtime, image: &ImageRef, creds: &CredentialSet) -> TagKey {
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

    async fn lkg_resolution(
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

    /// Tag → digest, cached and coalesced.
    async fn resolve(
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

    /// The last-known-good evidence within the window: the set searched
    /// like this request needs, or a wider one (with cosign tags).
    fn lkg_evidence(
        &self,
        keys: [EvidenceKey; 2],
        now: jiff::Timestamp,
        window: Duration,
    ) -> Option<Shared<EvidenceSet>> {
        keys.iter()
            .filter_map(|k| self.caches.lkg_evidence.get(k))
            .find(|s| within(now, s.fetched_at, window))
    }

    /// The cache keys whose evidence serves a request that needs (or not)
    /// cosign's legacy tags: its own, then the wider discovery.
    fn evidence_keys(
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
    async fn evidence(
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
    async fn coalesced<K, V>(
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

    /// How long a failure is remembered:
    /// - permanent: `cache.negativeTtl`;
    /// - an answer over a limit (oversized, endless paging): permanent, so
    ///   it never degrades, but remembered only `cache.transientNegativeTtl`,
    ///   so a registry that misbehaved for a moment does not keep a signed
    ///   digest denied;
    /// - transient: `cache.transientNegativeTtl`, and never past the
    ///   registry host's back-off (zero, not remembered, while a probe is
    ///   due), so the first review after the back-off asks again.
    fn negative_ttl(&self, e: &PipelineError) -> Duration {
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

    /// Stage 2: the decision for one use.
    fn judge(
        &self,
        rt: &Runtime,
        u: &ImageUse,
        ctx: RequestContext,
        p: &Prepared<'_>,
        now: jiff::Timestamp,
        capture_inputs: bool,
    ) -> ImageDecision {
        let mut d = ImageDecision::new(&u.image, ctx);
        let reference = match &p.reference {
            Ok(r) => r,
            Err(e) => {
                d.outcome = Outcome::Deny;
                // An unreadable reference is the caller's mistake (a usage
                // error), not a property of any evidence.
                d.error = Some(ErrorInfo {
                    class: ErrorClass::Permanent,
                    kind: ErrorKind::Operational,
                    message: e.clone(),
                });
                return d;
            }
        };
        d.reference = Some(reference.to_string());
        if p.unmatched {
            d.unmatched = true;
            d.outcome = match rt.config.spec.unmatched {
                Unmatched::Deny => Outcome::Deny,
                Unmatched::Warn => Outcome::Warn,
                Unmatched::Allow => Outcome::Allow,
            };
            return d;
        }
        d.degraded = p.degraded.clone();
        d.requests = p.requests.clone();
        d.digest = p.digest.clone();
        let set = match &p.evidence {
            Ok(set) => set.clone(),
            Err(e) => {
                d.error = Some(ErrorInfo {
                    class: e.class(),
                    kind: e.kind(),
                    message: e.to_string(),
                });
                // Transient + `warn` policy: allowed with the warning; every
                // other failure denies (fail closed), whatever the modes:
                // unless every bound contract is audit-only or warn-only.
                d.outcome = fold::failure_outcome(
                    p.bound.iter().map(|b| (b.mode.mode, b.exemption.is_some())),
                    d.degraded.is_some(),
                );
                return d;
            }
        };
        let Some(set) = set else {
            d.outcome = Outcome::Deny;
            d.error = Some(ErrorInfo {
                class: ErrorClass::Permanent,
                kind: ErrorKind::Operational,
                message: "no evidence was fetched".into(),
            });
            return d;
        };
        d.platforms = set.platforms.clone();
        d.notes = set.notes.clone();
        d.rejected = set.rejected.clone();
        d.evidence = set
            .evidence
            .iter()
            .map(|e| match e.kind() {
                EvidenceKind::Attestation { predicate_type } => EvidenceEntry {
                    kind: "attestation",
                    predicate_type: Some(predicate_type.to_string()),
                    facts: e.facts().clone(),
                },
                EvidenceKind::Signature => EvidenceEntry {
                    kind: "signature",
                    predicate_type: None,
                    facts: e.facts().clone(),
                },
            })
            .collect();
        let scopes = scopes(rt, reference, &set);
        let mut outcome = Outcome::Allow;
        for b in &p.bound {
            let started = Instant::now();
            let projection = b.contract.context.project(&d.context);
            let stage = ImageStage {
                rt,
                set: &set,
                scopes: &scopes,
                now,
                capture: capture_inputs,
            };
            let result = self.judge_contract(&stage, b, &projection);
            observe(&self.metrics.policy_seconds, started.elapsed());
            if let Some(note) = &b.expired_exemption {
                d.notes.push(note.clone());
            }
            outcome = outcome.max(fold::contribution(b.mode.mode, &result));
            d.contracts.push(result);
        }
        if d.degraded.is_some() {
            outcome = outcome.max(Outcome::Warn);
        }
        d.outcome = outcome;
        d.pin_digest = outcome != Outcome::Deny
            && reference.digest().is_none()
            && p.bound.iter().any(|b| b.pin);
        d
    }

    /// One bound contract's result over every scope of the image (the image,
    /// or each judged platform of an index): the worst verdict wins, and
    /// each message names the platform it is about.
    fn judge_contract(
        &self,
        image: &ImageStage<'_>,
        b: &BoundUse<'_>,
        projection: &ContextProjection,
    ) -> ContractResult {
        let ImageStage {
            rt,
            set,
            scopes,
            now,
            capture,
        } = *image;
        let mut result = ContractResult {
            name: b.contract.name.clone(),
            version: b.contract.version.clone(),
            revision: b.contract.revision.clone(),
            binding: b.binding.to_owned(),
            mode: b.mode,
            verdict: Verdict::Pass,
            deny: Vec::new(),
            warn: Vec::new(),
            error: None,
            exemption: None,
            evidence_used: Vec::new(),
            ignored: Vec::new(),
            platforms: Vec::new(),
            inputs: Vec::new(),
        };
        let scopes = match scopes {
            Ok(s) => s,
            Err(e) => {
                result.verdict = Verdict::Error;
                result.error = Some(format!("{e}; denied (fail closed)"));
                return fold::exempt(result, b.exemption.as_ref());
            }
        };
        let mut errors = Vec::new();
        for scope in scopes {
            if capture {
                result.inputs.push(CapturedInput {
                    platform: scope.image.platform.clone(),
                    input: capture_input(b.contract, set, &scope.image, projection, now),
                });
            }
            let evaluated = self.evaluate(rt, b.contract, set, &scope.image, projection, now);
            let verdict = match &evaluated.outcome {
                Ok(o) => {
                    let prefix = |v: &Violation| match &scope.label {
                        Some(l) => Violation {
                            msg: format!("{l}: {}", v.msg),
                            ..v.clone()
                        },
                        None => v.clone(),
                    };
                    result.deny.extend(o.deny.iter().map(prefix));
                    result.warn.extend(o.warn.iter().map(prefix));
                    if !o.deny.is_empty() {
                        Verdict::Deny
                    } else if !o.warn.is_empty() {
                        Verdict::Warn
                    } else {
                        Verdict::Pass
                    }
                }
                Err(e) => {
                    errors.push(match &scope.label {
                        Some(l) => format!("{l}: {e}"),
                        None => e.clone(),
                    });
                    Verdict::Error
                }
            };
            result.verdict = fold::worst(result.verdict, verdict);
            for dg in &evaluated.used {
                if !result.evidence_used.contains(dg) {
                    result.evidence_used.push(dg.clone());
                }
            }
            for i in &evaluated.ignored {
                if !result.ignored.iter().any(|o| o.digest == i.digest) {
                    result.ignored.push(i.clone());
                }
            }
            if let Some(platform) = &scope.image.platform {
                result.platforms.push(PlatformVerdict {
                    platform: platform.clone(),
                    digest: scope.image.digest.clone(),
                    verdict,
                });
            }
        }
        if !errors.is_empty() {
            result.error = Some(format!("{}; denied (fail closed)", errors.join("; ")));
        }
        fold::exempt(result, b.exemption.as_ref())
    }

    /// One contract over one scope of an evidence set, through the verdict
    /// cache. Concurrent misses of one key share one evaluation; only
    /// successful evaluations are cached (an error, e.g. a time limit under
    /// load, is tried again next time).
    fn evaluate(
        &self,
        rt: &Runtime,
        contract: &BoundContract,
        set: &EvidenceSet,
        image: &Arc<ImageInput>,
        projection: &ContextProjection,
        now: jiff::Timestamp,
    ) -> Shared<Evaluated> {
        let key = VerdictKey {
            revision: contract.revision.clone(),
            trust: rt.config.trust.fingerprint().clone(),
            image: image.clone(),
            evidence: set.ids.clone(),
            context: projection.clone(),
        };
        let missed = AtomicBool::new(false);
        let result = self.caches.verdicts.try_get_with(key, || {
            missed.store(true, Ordering::Relaxed);
            let v = Arc::new(evaluate_uncached(contract, set, image, projection, now));
            if v.outcome.is_ok() { Ok(v) } else { Err(v) }
        });
        self.metrics.cache_result(
            "verdict",
            if missed.load(Ordering::Relaxed) {
                "miss"
            } else {
                "hit"
            },
        );
        match result {
            Ok(v) => v,
            Err(e) => (*e).clone(),
        }
    }
}

/// What stage 2 knows of one image while it judges its contracts.
#[derive(Clone, Copy)]
struct ImageStage<'a> {
    rt: &'a Runtime,
    set: &'a EvidenceSet,
    scopes: &'a Result<Vec<Scope>, String>,
    now: jiff::Timestamp,
    /// Keep each input (`check --dump-input`).
    capture: bool,
}

/// A part of an image that is judged on its own.
struct Scope {
    /// The image as the input shows it.
    image: Arc<ImageInput>,
    /// `platform linux/amd64` for a platform of an index.
    label: Option<String>,
}

/// The scopes of an image: the image itself, or, for an index, each
/// platform the cluster runs. Evidence bound to the index counts for every
/// platform (its signature covers the list that names each one); evidence
/// bound to one platform counts for that platform only, so one attested
/// platform never passes the others. `Err` when the index lists no platform
/// that is judged.
fn scopes(rt: &Runtime, reference: &ImageRef, set: &EvidenceSet) -> Result<Vec<Scope>, String> {
    let base = ImageInput {
        reference: reference.to_string(),
        registry: reference.registry().to_owned(),
        repository: reference.repository().to_owned(),
        tag: reference.tag().map(str::to_owned),
        digest: set.digest.clone(),
        platform: None,
        index: None,
    };
    if set.platforms.is_empty() {
        return Ok(vec![Scope {
            image: Arc::new(base),
            label: None,
        }]);
    }
    let filter = &rt.config.platforms;
    let judged: Vec<&PlatformManifest> = set
        .platforms
        .iter()
        .filter(|p| filter.includes(&p.platform))
        .collect();
    if judged.is_empty() {
        let listed: Vec<&str> = set.platforms.iter().map(|p| p.platform.as_str()).collect();
        return Err(format!(
            "the image index lists no platform this cluster runs (index: {}; platforms: {filter})",
            listed.join(", ")
        ));
    }
    Ok(judged
        .into_iter()
        .map(|p| Scope {
            image: Arc::new(ImageInput {
                digest: p.digest.clone(),
                platform: Some(p.platform.clone()),
                index: Some(set.digest.clone()),
                ..base.clone()
            }),
            label: Some(if p.unsearched {
                format!(
                    "platform {} (its own evidence was not searched: the index lists more than registries.limits.maxPlatforms platforms)",
                    p.platform
                )
            } else {
                format!("platform {}", p.platform)
            }),
        })
        .collect())
}

/// The policy input a contract gets for one scope, as JSON (what
/// `check --dump-input` writes), or why it cannot be built.
fn capture_input(
    contract: &BoundContract,
    set: &EvidenceSet,
    image: &ImageInput,
    projection: &ContextProjection,
    now: jiff::Timestamp,
) -> Result<serde_json::Value, String> {
    let (admitted, _, _) = admit_all(contract, set, image);
    build_input(contract, image, &admitted, projection, now)?
        .to_json()
        .map_err(|e| e.to_string())
}

/// The input of one contract over its admitted evidence.
fn build_input(
    contract: &BoundContract,
    image: &ImageInput,
    admitted: &[Admitted<'_>],
    projection: &ContextProjection,
    now: jiff::Timestamp,
) -> Result<PolicyInput, String> {
    if contract.authorities.is_empty() {
        return Err("the contract has no authorities, so no evidence can satisfy it".to_owned());
    }
    PolicyInput::build(
        now,
        image,
        admitted,
        projection,
        ContractInfo {
            name: &contract.name,
            version: &contract.version,
            parameters: &contract.parameters_value,
        },
    )
    .map_err(|e| e.to_string())
}

/// The evaluation behind a verdict-cache miss: the authority check, the
/// input (a deny if it cannot be built) and the Rego.
fn evaluate_uncached(
    contract: &BoundContract,
    set: &EvidenceSet,
    image: &ImageInput,
    projection: &ContextProjection,
    now: jiff::Timestamp,
) -> Evaluated {
    let (admitted, used, ignored) = admit_all(contract, set, image);
    let outcome = build_input(contract, image, &admitted, projection, now)
        .and_then(|input| contract.program.evaluate(&input).map_err(|e| e.to_string()));
    Evaluated {
        outcome,
        used,
        ignored,
    }
}

/// The evidence of `set` that counts for `image` and that the contract's
/// authorities admit; what they did not admit, and why.
fn admit_all<'a>(
    contract: &'a BoundContract,
    set: &'a EvidenceSet,
    image: &ImageInput,
) -> (Vec<Admitted<'a>>, Vec<Digest>, Vec<Ignored>) {
    let mut admitted: Vec<Admitted<'_>> = Vec::new();
    let mut used = Vec::new();
    let mut ignored = Vec::new();
    for ev in &set.evidence {
        let facts = ev.facts();
        // Evidence about another platform of the index is not this scope's.
        if !image.evidence_digests().any(|d| d == facts.subject()) {
            continue;
        }
        if !contract.legacy_cosign
            && matches!(
                facts.source().kind,
                SourceKind::CosignSig | SourceKind::CosignAtt
            )
        {
            ignored.push(Ignored {
                digest: facts.evidence_digest().clone(),
                reason: format!(
                    "found under a legacy cosign tag, which contract {} does not accept (legacyCosign: false)",
                    contract.name
                ),
            });
            continue;
        }
        match input::admit(&contract.authorities, ev) {
            Ok(a) => {
                used.push(facts.evidence_digest().clone());
                admitted.push(a);
            }
            Err(reasons) => ignored.push(Ignored {
                digest: facts.evidence_digest().clone(),
                reason: if reasons.is_empty() {
                    "the contract has no authorities".into()
                } else {
                    format!("signer not trusted: {}", reasons.join("; "))
                },
            }),
        }
    }
    (admitted, used, ignored)
}

/// Whether any bound contract accepts evidence under cosign's legacy tags.
fn wants_cosign(bound: &[BoundUse<'_>]) -> bool {
    bound.iter().any(|b| b.contract.legacy_cosign)
}

/// Whether `at` is at most `window` before `now`.
fn within(now: jiff::Timestamp, at: jiff::Timestamp, window: Duration) -> bool {
    let age = now.as_millisecond().saturating_sub(at.as_millisecond());
    age >= 0 && (age as u128) <= window.as_millis()
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
/// Compile-time check: the engine's future can move between worker
/// threads (axum handlers require it).
#[allow(dead_code)]
fn decide_is_send(e: &Engine, r: &DecisionRequest) {
    fn send<T: Send>(_: T) {}
    send(e.decide(r));
}
