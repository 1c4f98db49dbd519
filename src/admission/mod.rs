//! Kubernetes admission: AdmissionReview in, AdmissionReview out.
//!
//! [`review`] reads an `admission.k8s.io/v1` AdmissionReview, takes every
//! image of the object ([`images`]), asks the [`Engine`] and answers with
//! `allowed`, a short actionable `status.message`, `warnings` for warn-mode
//! contracts and degraded decisions, audit annotations, and — on `/mutate` —
//! a JSONPatch pinning tags to the verified digest.
//!
//! Nothing is allowed silently:
//! - a kind whose pod spec provgate cannot locate is denied, naming the kind
//!   and the fix, unless `admission.skipKinds` lists it (then it is allowed
//!   with the `provgate.dev/skipped` audit annotation);
//! - an image whose evidence could not be fetched or verified, or a contract
//!   that could not be evaluated, is reported in the response: the
//!   [`UNVERIFIED_ANNOTATION`] audit annotation always, and a kubectl
//!   warning naming container, image and reason under `warn` mode.
//!
//! Both endpoints judge: `/validate` runs after every mutating webhook and
//! re-checks whatever digest it is given, so an image pinned by `/mutate` (or
//! changed by another mutator afterwards) never skips validation.

pub mod images;
mod response;
pub use response::to_wire_body;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::Serialize;

use crate::engine::decision::{ImageDecision, Outcome};
use crate::engine::{DecisionRequest, Engine, ImageUse};
use crate::policy::RequestContext;
use crate::request::RequestMeta;
use images::{ObjectImage, images_of};

/// Which webhook was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /validate`.
    Validate,
    /// `POST /mutate`.
    Mutate,
}

impl Endpoint {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

/// An incoming review: only what a request carries. A `response` field, if
/// a client sends one, is ignored (kube's type cannot even read the
/// API server's base64 `patch`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingReview {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    request: Option<AdmissionRequest<DynamicObject>>,
}

/// Lines of `status.message` before the rest is summarised.
const MAX_MESSAGE_LINES: usize = 8;
/// Characters per message line.
const MAX_LINE: usize = 400;
/// Warnings returned (the API server truncates long lists).
const MAX_WARNINGS: usize = 16;
/// Characters per warning (the API server truncates above 256).
const MAX_WARNING: usize = 256;

/// The answer to one review.
#[derive(Debug)]
pub struct Reviewed {
    /// The AdmissionReview to send back.
    pub review: AdmissionReview<DynamicObject>,
    /// Whether it allowed.
    pub allowed: bool,
    /// The request, when it could be read.
    pub meta: Option<RequestMeta>,
    /// One decision per judged image use.
    pub decisions: Vec<ImageDecision>,
    /// A note when nothing was judged (DELETE, no pod spec, no change).
    pub skipped: Option<String>,
}

/// Settings of the admission path.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// The API server's timeout (`?timeout=`), or the default.
    pub timeout: Duration,
    /// Answer this much earlier.
    pub margin: Duration,
}

impl Deadline {
    /// When the answer is due, counted from `start`.
    pub fn at(&self, start: Instant) -> Instant {
        let budget = self
            .timeout
            .saturating_sub(self.margin)
            .max(Duration::from_millis(100));
        start + budget
    }
}

/// Parses the API server's `timeout` query value (`10s`, `30s`, `1m`).
pub fn parse_timeout(query: Option<&str>) -> Option<Duration> {
    let q = query?;
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("timeout=") {
            return crate::units::parse_duration(v)
                .ok()
                .filter(|d| !d.is_zero());
        }
    }
    None
}

fn invalid(reason: impl ToString) -> Reviewed {
    invalid_with_uid(reason, String::new())
}

/// A refusal of an unreadable review, echoing its uid when one can be read
/// (the API server matches answers by uid).
fn invalid_with_uid(reason: impl ToString, uid: String) -> Reviewed {
    let mut response = AdmissionResponse::invalid(reason);
    response.uid = uid;
    response.result.code = 400;
    Reviewed {
        review: response.into_review(),
        allowed: false,
        meta: None,
        decisions: Vec::new(),
        skipped: None,
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Handles one AdmissionReview body.
pub async fn review(
    engine: &Engine,
    body: &[u8],
    endpoint: Endpoint,
    deadline: Deadline,
) -> Reviewed {
    let start = Instant::now();
    let parsed: IncomingReview = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            let uid = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| {
                    v.pointer("/request/uid")
                        .and_then(|u| u.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            return invalid_with_uid(format!("provgate: unreadable AdmissionReview: {e}"), uid);
        }
    };
    if parsed.api_version != "admission.k8s.io/v1" || parsed.kind != "AdmissionReview" {
        return invalid(format!(
            "provgate: expected an admission.k8s.io/v1 AdmissionReview, got {}/{}",
            parsed.api_version, parsed.kind
        ));
    }
    let Some(mut req) = parsed.request else {
        return invalid("provgate: the AdmissionReview has no request");
    };
    req.types = kube::core::TypeMeta {
        api_version: parsed.api_version,
        kind: parsed.kind,
    };
    let rt = engine.runtime();
    let config = &rt.config;
    let kind = req.kind.kind.clone();
    let meta = RequestMeta {
        uid: req.uid.clone(),
        operation: match req.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
        .into(),
        kind: kind.clone(),
        sub_resource: req.sub_resource.clone(),
        namespace: req.namespace.clone(),
        name: req.name.clone(),
        user: req.user_info.username.clone().unwrap_or_default(),
        dry_run: req.dry_run,
    };
    let mut response = AdmissionResponse::from(&req);
    let skip = |mut response: AdmissionResponse, why: String| {
        response
            .audit_annotations
            .insert("provgate.dev/skipped".into(), why.clone());
        Reviewed {
            review: response.into_review(),
            allowed: true,
            meta: Some(meta.clone()),
            decisions: Vec::new(),
            skipped: Some(why),
        }
    };
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return skip(response, format!("{} is not judged", meta.operation));
    }
    let Some(object) = &req.object else {
        return invalid("provgate: the request has no object");
    };
    let object_json = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => return invalid(format!("provgate: unreadable object: {e}")),
    };
    let new_images = match images_of(&kind, &object_json) {
        Ok(Some(i)) => i,
        Ok(None) => {
            let group = req.kind.group.as_str();
            if skip_listed(&config.spec.admission.skip_kinds, group, &kind) {
                return skip(
                    response,
                    format!(
                        "kind {} is listed in admission.skipKinds; allowed without judging",
                        qualified_kind(group, &kind)
                    ),
                );
            }
            let name = object_name(&req, object);
            let label = match &meta.namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name,
            };
            let msg = unreadable_kind_message(group, &req.kind.version, &kind, &label);
            return deny_unreadable(response, meta, msg);
        }
        // A pod spec that does not parse is not "no images": deny.
        Err(e) => {
            let msg = format!("provgate: {e}");
            return deny_unreadable(response, meta, msg);
        }
    };
    let judged: Vec<ObjectImage> = match (&req.operation, &req.old_object) {
        (Operation::Update, Some(old)) if !config.spec.admission.judge_all_on_update => {
            let old_json = serde_json::to_value(old).unwrap_or(serde_json::Value::Null);
            let old_images = images_of(&kind, &old_json)
                .ok()
                .flatten()
                .unwrap_or_default();
            images::changed(new_images, &old_images)
        }
        _ => new_images,
    };
    if judged.is_empty() {
        return skip(response, "no new or changed image".into());
    }
    let max = config.spec.admission.max_images;
    if judged.len() > max {
        let msg = format!(
            "provgate: the object has {} images, more than admission.maxImages ({max})",
            judged.len()
        );
        return deny_unreadable(response, meta, msg);
    }
    let labels = object
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let context = RequestContext {
        source: "admission".into(),
        namespace: req.namespace.clone(),
        kind: Some(kind.clone()),
        name: Some(object_name(&req, object)),
        container: None,
        operation: Some(meta.operation.clone()),
        labels,
        namespace_labels: Default::default(),
        user: req.user_info.username.clone(),
    };
    let request = DecisionRequest {
        images: judged
            .iter()
            .map(|i| ImageUse {
                image: i.image.clone(),
                container: Some(i.name.clone()),
                path: i.pointer.clone(),
            })
            .collect(),
        context,
        deadline: Some(deadline.at(start)),
        contracts: None,
        capture_inputs: false,
    };
    let decisions = engine.decide(&request).await;
    let allowed = !decisions.iter().any(|d| d.outcome == Outcome::Deny);
    let object_label = match &meta.namespace {
        Some(ns) => format!(
            "{kind} {ns}/{}",
            request.context.name.as_deref().unwrap_or("")
        ),
        None => format!("{kind} {}", request.context.name.as_deref().unwrap_or("")),
    };
    if !allowed {
        let mut lines: Vec<String> = decisions.iter().flat_map(|d| d.denial_lines()).collect();
        lines.dedup();
        let total = lines.len();
        let mut msg = format!("provgate denied {object_label}:");
        for l in lines.iter().take(MAX_MESSAGE_LINES) {
            msg.push_str("\n- ");
            msg.push_str(&clip(l, MAX_LINE));
        }
        if total > MAX_MESSAGE_LINES {
            msg.push_str(&format!(
                "\n- … and {} more (see the provgate decision log, uid {})",
                total - MAX_MESSAGE_LINES,
                meta.uid
            ));
        }
        response = response.deny(msg);
        response.result.code = 403;
        response.result.reason = "Forbidden".into();
    }
    let mut warnings: Vec<String> = Vec::new();
    for d in &decisions {
        let lines = d.warning_lines();
        let unverified = unverified_warnings(d, &lines);
        warnings.extend(lines);
        warnings.extend(unverified);
    }
    warnings.dedup();
    if !warnings.is_empty() {
        let total = warnings.len();
        let mut w: Vec<String> = warnings
            .iter()
            .take(MAX_WARNINGS)
            .map(|w| clip(&format!("provgate: {w}"), MAX_WARNING))
            .collect();
        if total > MAX_WARNINGS {
            w.push(format!(
                "provgate: … and {} more warnings",
                total - MAX_WARNINGS
            ));
        }
        response.warnings = Some(w);
    }
    annotate(&mut response, &decisions);
    if endpoint == Endpoint::Mutate && allowed {
        let patch = pin_patch(&judged, &decisions);
        if !patch.is_empty() {
            match serde_json::from_value::<json_patch::Patch>(serde_json::Value::Array(patch))
                .map_err(|e| e.to_string())
                .and_then(|p| response.clone().with_patch(p).map_err(|e| e.to_string()))
            {
                Ok(r) => response = r,
                // Failing to pin is not a reason to deny: validation judges
                // the image either way.
                Err(e) => {
                    tracing::warn!(error = %e, "could not build the digest-pinning patch");
                }
            }
        }
    }
    Reviewed {
        review: response.into_review(),
        allowed,
        meta: Some(meta),
        decisions,
        skipped: None,
    }
}

/// `Kind` for the core group, `group/Kind` otherwise.
fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{group}/{kind}")
    }
}

/// Whether `admission.skipKinds` lists the kind, as `Kind` (any group) or
/// `group/Kind`.
fn skip_listed(skip_kinds: &[String], group: &str, kind: &str) -> bool {
    let qualified = qualified_kind(group, kind);
    skip_kinds.iter().any(|k| *k == kind || *k == qualified)
}

/// The denial for a kind whose pod spec provgate cannot locate: it names
/// the kind, the object and both ways out.
fn unreadable_kind_message(group: &str, version: &str, kind: &str, object: &str) -> String {
    let qualified = qualified_kind(group, kind);
    let api = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    clip(
        &format!(
            "provgate denied {kind} {object}: provgate does not know where kind {qualified} ({api}) keeps \
             its pod spec, so it cannot judge its images, and it fails closed. Fix: if {kind} objects run \
             no containers, add \"{qualified}\" to admission.skipKinds in the provgate configuration or \
             remove the kind from the webhook rules; if they do, ask the provgate maintainers to support it."
        ),
        MAX_LINE * 2,
    )
}

fn deny_unreadable(response: AdmissionResponse, meta: RequestMeta, msg: String) -> Reviewed {
    let mut response = response.deny(msg);
    response.result.code = 403;
    response.result.reason = "Forbidden".into();
    Reviewed {
        review: response.into_review(),
        allowed: false,
        meta: Some(meta),
        decisions: Vec::new(),
        skipped: None,
    }
}

fn object_name(req: &AdmissionRequest<DynamicObject>, object: &DynamicObject) -> String {
    if !req.name.is_empty() {
        return req.name.clone();
    }
    object
        .metadata
        .name
        .clone()
        .or_else(|| {
            object
                .metadata
                .generate_name
                .clone()
                .map(|g| format!("{g}*"))
        })
        .unwrap_or_default()
}

fn annotate(response: &mut AdmissionResponse, decisions: &[ImageDecision]) {
    let outcome = decisions
        .iter()
        .map(|d| d.outcome)
        .max()
        .unwrap_or(Outcome::Allow);
    let mut a: HashMap<String, String> = HashMap::new();
    a.insert("provgate.dev/outcome".into(), outcome.as_str().into());
    let images: Vec<String> = decisions
        .iter()
        .map(|d| match &d.digest {
            Some(dg) => format!(
                "{}={}@{dg}",
                d.context.container.as_deref().unwrap_or(""),
                d.image
            ),
            None => format!(
                "{}={}",
                d.context.container.as_deref().unwrap_or(""),
                d.image
            ),
        })
        .collect();
    a.insert("provgate.dev/images".into(), clip(&images.join(","), 4096));
    if decisions.iter().any(|d| d.degraded.is_some()) {
        a.insert("provgate.dev/degraded".into(), "true".into());
    }
    let unverified: Vec<String> = decisions
        .iter()
        .flat_map(|d| {
            let who = format!(
                "{}={}",
                d.context.container.as_deref().unwrap_or(""),
                d.image
            );
            unchecked(d)
                .into_iter()
                .map(move |u| clip(&format!("{who}: {}", u.reason()), MAX_UNVERIFIED_ENTRY))
        })
        .collect();
    if !unverified.is_empty() {
        a.insert(
            UNVERIFIED_ANNOTATION.into(),
            clip(&unverified.join("; "), MAX_ANNOTATION),
        );
    }
    response.audit_annotations.extend(a);
}

/// The audit annotation listing what could not be verified, and why:
/// `container=image: reason; …`.
pub const UNVERIFIED_ANNOTATION: &str = "provgate.dev/unverified";
/// Characters per entry of [`UNVERIFIED_ANNOTATION`].
const MAX_UNVERIFIED_ENTRY: usize = 512;
/// Characters per audit annotation value.
const MAX_ANNOTATION: usize = 4096;

/// Something provgate could not check about one image.
struct Unchecked {
    /// The contract that could not be evaluated; `None` for the image's
    /// evidence as a whole.
    contract: Option<String>,
    /// Why: the registry, deadline or verification error, or the
    /// evaluation error.
    error: String,
    /// Whether a `warn`-mode (or exempted `enforce`) contract is concerned,
    /// so that the team should see it in kubectl; `audit` only annotates.
    warn: bool,
}

impl Unchecked {
    /// `[contract] error`, or the error.
    fn reason(&self) -> String {
        match &self.contract {
            Some(c) => format!("[{c}] {}", self.error),
            None => self.error.clone(),
        }
    }
}

/// What could not be checked: the image's evidence (registry, deadline or
/// verification failure: [`ImageDecision::error`]) and each contract that
/// could not be evaluated (its `error`, also when an exemption covers it).
fn unchecked(d: &ImageDecision) -> Vec<Unchecked> {
    let mut out = Vec::new();
    if let Some(e) = &d.error {
        // No contract ran, so the outcome carries the modes: `warn` when a
        // warn-mode (or exempted enforce-mode) contract is bound, `allow`
        // when they are all audit-only.
        out.push(Unchecked {
            contract: None,
            error: e.message.clone(),
            warn: d.outcome == Outcome::Warn,
        });
    }
    for c in &d.contracts {
        if let Some(e) = &c.error {
            out.push(Unchecked {
                contract: Some(c.name.clone()),
                error: e.clone(),
                warn: c.mode.mode != crate::bind::Mode::Audit,
            });
        }
    }
    out
}

/// kubectl warnings for what could not be checked under `warn` mode,
/// naming the container, the image and the reason; none for a denied image
/// (its denial says why) or when `existing` already gives the reason (a
/// degraded-service warning, a warn-mode contract error).
fn unverified_warnings(d: &ImageDecision, existing: &[String]) -> Vec<String> {
    if d.outcome == Outcome::Deny {
        return Vec::new();
    }
    let who = d.subject_label();
    unchecked(d)
        .into_iter()
        .filter(|u| u.warn)
        .filter(|u| !existing.iter().any(|l| l.contains(&u.error)))
        .map(|u| format!("{who}: not verified: {}", u.reason()))
        .collect()
}

/// `test` + `replace` operations pinning each judged tag to its digest.
fn pin_patch(judged: &[ObjectImage], decisions: &[ImageDecision]) -> Vec<serde_json::Value> {
    let mut ops = Vec::new();
    for (img, d) in judged.iter().zip(decisions) {
        let Some(digest) = &d.digest else { continue };
        if !d.pin_digest || img.image.contains('@') {
            continue;
        }
        ops.push(serde_json::json!({"op": "test", "path": img.pointer, "value": img.image}));
        ops.push(serde_json::json!({"op": "replace", "path": img.pointer, "value": format!("{}@{digest}", img.image)}));
    }
    ops
}

#[cfg(test)]
mod tests;
