//! Step 4 (the engine's second stage, per use): for each bound contract,
//! the evidence its authorities admit becomes the policy input, and the
//! contract's Rego judges it, once per scope (the image, or each platform
//! of an index). Verdicts are cached by contract revision, evidence and the
//! projected context.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::cache::Shared;
use super::decision::{
    CapturedInput, ContractResult, ErrorInfo, ErrorKind, EvidenceEntry, Ignored, ImageDecision,
    Outcome, PlatformVerdict, Verdict,
};
use super::fold;
use super::{BoundUse, Engine, Evaluated, EvidenceSet, ImageUse, Prepared, Runtime, VerdictKey};
use crate::config::{BoundContract, Unmatched};
use crate::digest::Digest;
use crate::image::{ImageRef, PlatformManifest};
use crate::metrics::observe;
use crate::oci::ErrorClass;
use crate::policy::input::{self, Admitted, ContractInfo, EvidenceKind, ImageInput, PolicyInput};
use crate::policy::{ContextProjection, RequestContext, Violation};
use crate::verify::SourceKind;

impl Engine {
    /// Stage 2: the decision for one use.
    pub(super) fn judge(
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
