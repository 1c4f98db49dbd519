use std::collections::HashMap;

use super::response::{annotate, unverified_warnings};
use super::*;
use crate::engine::decision::Outcome;

#[test]
fn pin_patch_is_a_valid_json_patch() {
    let ops = vec![
        serde_json::json!({"op": "test", "path": "/spec/containers/0/image", "value": "a:1"}),
        serde_json::json!({"op": "replace", "path": "/spec/containers/0/image", "value": "a:1@sha256:00"}),
    ];
    let p: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops)).unwrap();
    let mut doc = serde_json::json!({"spec": {"containers": [{"image": "a:1"}]}});
    json_patch::patch(&mut doc, &p).unwrap();
    assert_eq!(doc["spec"]["containers"][0]["image"], "a:1@sha256:00");
}

use crate::bind::{EffectiveMode, Mode};
use crate::engine::decision::{ContractResult, ErrorClass, ErrorInfo, Verdict};

fn decision(outcome: Outcome) -> ImageDecision {
    let mut d = ImageDecision::new(
        "reg.example/acme/app:1",
        crate::policy::RequestContext {
            container: Some("api".into()),
            ..Default::default()
        },
    );
    d.outcome = outcome;
    d
}

fn contract(mode: Mode, verdict: Verdict, error: Option<&str>) -> ContractResult {
    ContractResult {
        name: "slsa".into(),
        version: "1".into(),
        revision: crate::digest::Digest::sha256_of(b"c"),
        binding: "b".into(),
        mode: EffectiveMode {
            mode,
            configured: mode,
            enforce_after: None,
        },
        verdict,
        deny: Vec::new(),
        warn: Vec::new(),
        error: error.map(str::to_owned),
        exemption: None,
        evidence_used: Vec::new(),
        ignored: Vec::new(),
        platforms: Vec::new(),
        inputs: Vec::new(),
    }
}

fn annotations(decisions: &[ImageDecision]) -> HashMap<String, String> {
    let mut r = AdmissionResponse::invalid("x");
    r.audit_annotations.clear();
    annotate(&mut r, decisions);
    r.audit_annotations.into_iter().collect()
}

#[test]
fn an_evidence_failure_under_audit_is_annotated_not_warned() {
    let mut d = decision(Outcome::Allow);
    d.error = Some(ErrorInfo {
        class: ErrorClass::Transient,
        kind: crate::engine::decision::ErrorKind::Operational,
        message: "registry reg.example: connection refused".into(),
    });
    assert!(unverified_warnings(&d, &d.warning_lines()).is_empty());
    let a = annotations(&[d]);
    assert_eq!(
        a[UNVERIFIED_ANNOTATION],
        "api=reg.example/acme/app:1: registry reg.example: connection refused"
    );
}

#[test]
fn an_evidence_failure_under_warn_is_a_warning_naming_container_image_and_reason() {
    let mut d = decision(Outcome::Warn);
    d.error = Some(ErrorInfo {
        class: ErrorClass::Transient,
        kind: crate::engine::decision::ErrorKind::Operational,
        message: "registry reg.example: connection refused".into(),
    });
    let w = unverified_warnings(&d, &d.warning_lines());
    assert_eq!(
        w,
        vec![
            "container \"api\" (reg.example/acme/app:1): not verified: registry reg.example: connection refused"
        ]
    );
    // Already said by a degraded-service warning: not repeated.
    d.degraded = Some(
        "allowed without verification (failure policy warn): registry reg.example: connection refused".into(),
    );
    assert!(unverified_warnings(&d, &d.warning_lines()).is_empty());
    assert!(annotations(&[d]).contains_key(UNVERIFIED_ANNOTATION));
}

#[test]
fn contract_evaluation_errors_follow_the_contract_mode() {
    let mut d = decision(Outcome::Allow);
    d.contracts.push(contract(
        Mode::Audit,
        Verdict::Error,
        Some("rego: undefined; denied (fail closed)"),
    ));
    assert!(unverified_warnings(&d, &d.warning_lines()).is_empty());
    assert!(
        annotations(std::slice::from_ref(&d))[UNVERIFIED_ANNOTATION]
            .contains("[slsa] rego: undefined")
    );
    // An exempted enforce-mode contract whose evaluation failed: the
    // exemption warning does not give the reason, so this does.
    let mut d = decision(Outcome::Warn);
    let mut c = contract(Mode::Enforce, Verdict::Exempt, Some("rego: boom"));
    c.exemption = Some(crate::engine::decision::ExemptionInfo {
        reason: "ticket 1".into(),
        expires: "2030-01-01".into(),
    });
    d.contracts.push(c);
    let w = unverified_warnings(&d, &d.warning_lines());
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("[slsa] rego: boom") && w[0].contains("reg.example/acme/app:1"));
    // Nothing failed: nothing to say.
    let ok = decision(Outcome::Allow);
    assert!(!annotations(&[ok]).contains_key(UNVERIFIED_ANNOTATION));
}

#[test]
fn skip_kinds_match_by_kind_or_group_and_kind() {
    let skip = vec!["ConfigMap".to_owned(), "example.com/Widget".to_owned()];
    assert!(skip_listed(&skip, "", "ConfigMap"));
    assert!(skip_listed(&skip, "example.com", "Widget"));
    assert!(!skip_listed(&skip, "other.io", "Widget"));
    assert!(!skip_listed(&skip, "", "Secret"));
    assert!(!skip_listed(&[], "", "ConfigMap"));
    let m = unreadable_kind_message("example.com", "v1", "Widget", "prod/w");
    assert!(
        m.contains("Widget prod/w") && m.contains("admission.skipKinds"),
        "{m}"
    );
}

#[test]
fn timeouts_come_from_the_query() {
    assert_eq!(
        parse_timeout(Some("timeout=10s")),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_timeout(Some("a=b&timeout=30s")),
        Some(Duration::from_secs(30))
    );
    assert_eq!(parse_timeout(Some("timeout=0s")), None);
    assert_eq!(parse_timeout(None), None);
    let d = Deadline {
        timeout: Duration::from_secs(10),
        margin: Duration::from_secs(1),
    };
    let now = Instant::now();
    assert_eq!(d.at(now), now + Duration::from_secs(9));
}
