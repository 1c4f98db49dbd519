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
pub use response::{UNVERIFIED_ANNOTATION, to_wire_body};
use response::{clip, deny_unreadable, invalid, invalid_with_uid, skip};

use std::time::{Duration, Instant};

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::Serialize;

use crate::engine::decision::ImageDecision;
use crate::engine::{DecisionRequest, Engine};
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

/// Handles one AdmissionReview body.
pub async fn review(
    engine: &Engine,
    body: &[u8],
    endpoint: Endpoint,
    deadline: Deadline,
) -> Reviewed {
    let start = Instant::now();
    let req = match parse(body) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    let rt = engine.runtime();
    let meta = request_meta(&req);
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return skip(&req, &meta, format!("{} is not judged", meta.operation));
    }
    let Some(object) = &req.object else {
        return invalid("provgate: the request has no object");
    };
    let judged = match images_to_judge(&rt.config.spec.admission, &req, object, &meta) {
        Ok(j) => j,
        Err(answer) => return *answer,
    };
    let request = DecisionRequest {
        images: judged.iter().map(ObjectImage::to_use).collect(),
        context: request_context(&req, object, &meta),
        deadline: Some(deadline.at(start)),
        contracts: None,
        capture_inputs: false,
    };
    let decisions = engine.decide(&request).await;
    let name = request.context.name.as_deref().unwrap_or("");
    let object_label = match &meta.namespace {
        Some(ns) => format!("{} {ns}/{name}", meta.kind),
        None => format!("{} {name}", meta.kind),
    };
    response::answer(
        AdmissionResponse::from(&req),
        endpoint,
        meta,
        &object_label,
        &judged,
        decisions,
    )
}

/// The request of an `admission.k8s.io/v1` AdmissionReview, or the answer
/// refusing an unreadable one.
fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Box<Reviewed>> {
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
            return Err(Box::new(invalid_with_uid(
                format!("provgate: unreadable AdmissionReview: {e}"),
                uid,
            )));
        }
    };
    if parsed.api_version != "admission.k8s.io/v1" || parsed.kind != "AdmissionReview" {
        return Err(Box::new(invalid(format!(
            "provgate: expected an admission.k8s.io/v1 AdmissionReview, got {}/{}",
            parsed.api_version, parsed.kind
        ))));
    }
    let Some(mut req) = parsed.request else {
        return Err(Box::new(invalid(
            "provgate: the AdmissionReview has no request",
        )));
    };
    req.types = kube::core::TypeMeta {
        api_version: parsed.api_version,
        kind: parsed.kind,
    };
    Ok(req)
}

/// What the decision log records of a request.
fn request_meta(req: &AdmissionRequest<DynamicObject>) -> RequestMeta {
    RequestMeta {
        uid: req.uid.clone(),
        operation: match req.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
        .into(),
        kind: req.kind.kind.clone(),
        sub_resource: req.sub_resource.clone(),
        namespace: req.namespace.clone(),
        name: req.name.clone(),
        user: req.user_info.username.clone().unwrap_or_default(),
        dry_run: req.dry_run,
    }
}

/// The images of the object to judge: all of them, or on UPDATE only the
/// new or changed ones (unless `admission.judgeAllOnUpdate`). `Err` is the
/// answer when there is nothing to judge, or nothing that can be: a kind
/// whose pod spec provgate cannot locate (skipped if `skipKinds` lists it,
/// denied otherwise), a pod spec that does not parse, too many images.
fn images_to_judge(
    settings: &crate::config::AdmissionSpec,
    req: &AdmissionRequest<DynamicObject>,
    object: &DynamicObject,
    meta: &RequestMeta,
) -> Result<Vec<ObjectImage>, Box<Reviewed>> {
    let kind = &meta.kind;
    let object_json = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => {
            return Err(Box::new(invalid(format!(
                "provgate: unreadable object: {e}"
            ))));
        }
    };
    let new_images = match images_of(kind, &object_json) {
        Ok(Some(i)) => i,
        Ok(None) => {
            let group = req.kind.group.as_str();
            if skip_listed(&settings.skip_kinds, group, kind) {
                return Err(Box::new(skip(
                    req,
                    meta,
                    format!(
                        "kind {} is listed in admission.skipKinds; allowed without judging",
                        qualified_kind(group, kind)
                    ),
                )));
            }
            let name = object_name(req, object);
            let label = match &meta.namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name,
            };
            let msg = unreadable_kind_message(group, &req.kind.version, kind, &label);
            return Err(Box::new(deny_unreadable(req, meta, msg)));
        }
        // A pod spec that does not parse is not "no images": deny.
        Err(e) => {
            let msg = format!("provgate: {e}");
            return Err(Box::new(deny_unreadable(req, meta, msg)));
        }
    };
    let judged: Vec<ObjectImage> = match (&req.operation, &req.old_object) {
        (Operation::Update, Some(old)) if !settings.judge_all_on_update => {
            let old_json = serde_json::to_value(old).unwrap_or(serde_json::Value::Null);
            let old_images = images_of(kind, &old_json)
                .ok()
                .flatten()
                .unwrap_or_default();
            images::changed(new_images, &old_images)
        }
        _ => new_images,
    };
    if judged.is_empty() {
        return Err(Box::new(skip(req, meta, "no new or changed image".into())));
    }
    let max = settings.max_images;
    if judged.len() > max {
        let msg = format!(
            "provgate: the object has {} images, more than admission.maxImages ({max})",
            judged.len()
        );
        return Err(Box::new(deny_unreadable(req, meta, msg)));
    }
    Ok(judged)
}

/// The context contracts see: who asks for what, and the object's labels.
fn request_context(
    req: &AdmissionRequest<DynamicObject>,
    object: &DynamicObject,
    meta: &RequestMeta,
) -> RequestContext {
    let labels = object
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    RequestContext {
        source: crate::policy::Source::Admission,
        namespace: req.namespace.clone(),
        kind: Some(meta.kind.clone()),
        name: Some(object_name(req, object)),
        container: None,
        operation: Some(meta.operation.clone()),
        labels,
        namespace_labels: Default::default(),
        user: req.user_info.username.clone(),
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
        response::MAX_LINE * 2,
    )
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

#[cfg(test)]
mod tests;
