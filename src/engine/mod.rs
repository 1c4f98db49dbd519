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
//! Each stage has its file: `binding` for 1, `fetch` for 2 and 3,
//! `judge` for 4. `degrade` turns registry failures into the configured
//! failure policy, `cache` holds the caches and their keys, `fold` folds
//! contract results into one outcome, and [`decision`] is what comes out.
//! Stage 2–3 reach registries only through the [`Registry`] trait, which
//! [`crate::oci::Registries`] implements and the unit tests script.
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

mod binding;
mod cache;
pub mod decision;
mod degrade;
mod fetch;
mod fold;
mod judge;
pub mod namespaces;
mod registry;

pub use registry::Registry;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::bind::EffectiveMode;
use crate::clock::Clock;
use crate::config::{BoundContract, Config, FailurePolicy};
use crate::digest::Digest;
use crate::image::{ImageRef, PlatformManifest};
use crate::metrics::{Metrics, VerdictLabels};
use crate::oci::{ErrorClass, Registries, RegistryError, RequestRecord};
use crate::policy::input::ImageInput;
use crate::policy::{ContextProjection, Evidence, RegoOutcome, RequestContext};
use crate::verify::Verifier;
use cache::{Caches, Shared};
use decision::{ErrorKind, ExemptionInfo, Ignored, ImageDecision, RejectedEvidence};
use fetch::wants_cosign;

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
    /// The configuration revision this runtime was built from.
    pub config: Arc<Config>,
    /// The verifier over its trust material.
    pub verifier: Verifier,
    /// The registries with its options (over HTTP; scripted in unit
    /// tests).
    pub registries: Arc<dyn Registry>,
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
        Self::after(config, metrics, None)
    }

    /// Builds the runtime of a configuration that replaces `previous`
    /// (a reload): hosts backing off keep backing off.
    pub fn after(config: Config, metrics: Arc<Metrics>, previous: Option<&Runtime>) -> Self {
        let shared = config
            .shared
            .clone()
            .map(|s| crate::shared::SharedTier::new(s, metrics.clone()));
        let mut registries = Registries::new(
            config.registry_entries.clone(),
            config.registry_default.clone(),
            config.spec.registries.limits.clone(),
            metrics,
        );
        if let Some(circuits) = previous.and_then(|p| p.registries.circuits()) {
            registries.adopt_circuits(circuits);
        }
        Self::assemble(config, Arc::new(registries), shared)
    }

    /// The runtime of a configuration over `registries` instead of HTTP
    /// (the engine's unit tests script them).
    pub fn with_registry(config: Config, registries: Arc<dyn Registry>) -> Self {
        Self::assemble(config, registries, None)
    }

    fn assemble(
        config: Config,
        registries: Arc<dyn Registry>,
        shared: Option<crate::shared::SharedTier>,
    ) -> Self {
        Runtime {
            verifier: Verifier::new(config.trust.clone(), config.spec.verify.clone()),
            registries,
            shared,
            config: Arc::new(config),
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
        let runtime = Runtime::new(config, metrics.clone());
        Self::with_runtime(caches, runtime, metrics, clock)
    }

    /// An engine over `config` whose registries are `registries` (the unit
    /// tests' script). A reload goes back to HTTP registries.
    pub fn with_registry(
        config: Config,
        registries: Arc<dyn Registry>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let caches = Caches::new(&config);
        let runtime = Runtime::with_registry(config, registries);
        Self::with_runtime(caches, runtime, metrics, clock)
    }

    fn with_runtime(
        caches: Caches,
        runtime: Runtime,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Engine {
            runtime: ArcSwap::from_pointee(runtime),
            generation: std::sync::atomic::AtomicU64::new(0),
            namespaces: arc_swap::ArcSwapOption::empty(),
            caches,
            metrics,
            clock,
        }
    }

    /// The runtime in force: the configuration, verifier and registries
    /// of the current revision (a decision holds one for its whole run).
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

    /// The metrics every stage records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The clock that dates decisions, modes (`enforce_after`) and
    /// exemptions; tests stop it.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Swaps in a new configuration. Caches keyed by what changed (trust
    /// material, registry settings, contract revisions) miss by themselves;
    /// a change of cache settings clears everything.
    pub fn reload(&self, config: Config) {
        let old = self.runtime.load();
        let clear = format!("{:?}", old.config.spec.cache) != format!("{:?}", config.spec.cache);
        let rt = Runtime::after(config, self.metrics.clone(), Some(&old));
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
                    source: d.context.source.as_str(),
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
}

/// Compile-time check: the engine's future can move between worker
/// threads (axum handlers require it).
#[allow(dead_code)]
fn decide_is_send(e: &Engine, r: &DecisionRequest) {
    fn send<T: Send>(_: T) {}
    send(e.decide(r));
}

#[cfg(test)]
mod tests;
