//! The admission answer: what the API server is told (allowed or the
//! denial message, warnings, audit annotations, the digest-pinning patch),
//! and its bytes on the wire.

use std::collections::HashMap;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};

use super::images::ObjectImage;
use super::{Endpoint, Reviewed};
use crate::engine::decision::{ImageDecision, Outcome};
use crate::request::RequestMeta;

/// The review as the API server expects it on the wire, as JSON bytes.
/// kube-core serialises `response.patch` (a `Vec<u8>`) as an array of
/// numbers; Go's `[]byte` form, which the API server itself writes, is a
/// base64 string, so that is what provgate sends. Without a patch (every
/// validating answer) the review is written directly, with no
/// intermediate `serde_json::Value`.
pub fn to_wire_body(review: &AdmissionReview<DynamicObject>) -> Vec<u8> {
    use base64::Engine as _;
    let patch = review.response.as_ref().and_then(|r| r.patch.as_ref());
    let Some(patch) = patch else {
        return serde_json::to_vec(review).unwrap_or_else(|_| b"null".to_vec());
    };
    let mut v = serde_json::to_value(review).unwrap_or(serde_json::Value::Null);
    if let Some(slot) = v.pointer_mut("/response/patch") {
        *slot = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| b"null".to_vec())
}

/// Lines of `status.message` before the rest is summarised.
const MAX_MESSAGE_LINES: usize = 8;
/// Characters per message line.
pub(super) const MAX_LINE: usize = 400;
/// Warnings returned (the API server truncates long lists).
const MAX_WARNINGS: usize = 16;
/// Characters per warning (the API server truncates above 256).
const MAX_WARNING: usize = 256;

/// A refusal of an unreadable review.
pub(super) fn invalid(reason: impl ToString) -> Reviewed {
    invalid_with_uid(reason, String::new())
}

/// A refusal of an unreadable review, echoing its uid when one can be read
/// (the API server matches answers by uid).
pub(super) fn invalid_with_uid(reason: impl ToString, uid: String) -> Reviewed {
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

/// `s`, cut to `max` characters with an ellipsis.
pub(super) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// An answer that allows without judging, saying why in the
/// `provgate.dev/skipped` audit annotation.
pub(super) fn skip(
    req: &AdmissionRequest<DynamicObject>,
    meta: &RequestMeta,
    why: String,
) -> Reviewed {
    let mut response = AdmissionResponse::from(req);
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
}

/// The answer to a judged review: a denial naming every unmet requirement
/// (at most [`MAX_MESSAGE_LINES`]), kubectl warnings, audit annotations
/// and, on `/mutate` when allowed, the patch pinning tags to digests.
pub(super) fn answer(
    mut response: AdmissionResponse,
    endpoint: Endpoint,
    meta: RequestMeta,
    object_label: &str,
    judged: &[ObjectImage],
    decisions: Vec<ImageDecision>,
) -> Reviewed {
    let allowed = !decisions.iter().any(|d| d.outcome == Outcome::Deny);
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
        let patch = pin_patch(judged, &decisions);
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

/// A denial of a request that cannot be judged.
pub(super) fn deny_unreadable(
    req: &AdmissionRequest<DynamicObject>,
    meta: &RequestMeta,
    msg: String,
) -> Reviewed {
    let mut response = AdmissionResponse::from(req).deny(msg);
    response.result.code = 403;
    response.result.reason = "Forbidden".into();
    Reviewed {
        review: response.into_review(),
        allowed: false,
        meta: Some(meta.clone()),
        decisions: Vec::new(),
        skipped: None,
    }
}

pub(super) fn annotate(response: &mut AdmissionResponse, decisions: &[ImageDecision]) {
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
pub(super) fn unverified_warnings(d: &ImageDecision, existing: &[String]) -> Vec<String> {
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
