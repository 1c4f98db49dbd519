//! The lines a team reads: what each mode says, and what it leaves out.

use super::*;
use crate::bind::EffectiveMode;
use crate::engine::decision::{ContractResult, ErrorClass, ErrorInfo, ErrorKind, ExemptionInfo};
use crate::policy::RequestContext;

fn decision(outcome: Outcome, container: Option<&str>) -> ImageDecision {
    let mut d = ImageDecision::new(
        "reg.example/acme/app:1",
        RequestContext {
            container: container.map(str::to_owned),
            ..Default::default()
        },
    );
    d.outcome = outcome;
    d
}

fn violation() -> Violation {
    Violation {
        msg: "no SLSA provenance".into(),
        requirement: Some("slsa-provenance".into()),
        fix: Some("attach provenance from the release workflow".into()),
    }
}

fn contract(mode: Mode, verdict: Verdict) -> ContractResult {
    ContractResult {
        name: "supply-chain".into(),
        version: "1".into(),
        revision: crate::digest::Digest::sha256_of(b"c"),
        binding: "prod".into(),
        mode: EffectiveMode {
            mode,
            configured: mode,
            enforce_after: None,
        },
        verdict,
        deny: if verdict == Verdict::Deny {
            vec![violation()]
        } else {
            Vec::new()
        },
        warn: Vec::new(),
        error: (verdict == Verdict::Error).then(|| "evaluation timed out".to_owned()),
        exemption: None,
        evidence_used: Vec::new(),
        ignored: Vec::new(),
        platforms: Vec::new(),
        inputs: Vec::new(),
    }
}

#[test]
fn an_enforced_denial_names_the_container_the_contract_the_requirement_and_the_fix() {
    let mut d = decision(Outcome::Deny, Some("api"));
    d.contracts.push(contract(Mode::Enforce, Verdict::Deny));
    assert_eq!(
        d.denial_lines(),
        vec![
            "container \"api\" (reg.example/acme/app:1): [supply-chain] no SLSA provenance \
             (requirement slsa-provenance) Fix: attach provenance from the release workflow"
        ]
    );
    assert!(d.warning_lines().is_empty());
}

#[test]
fn a_warn_mode_denial_is_a_warning_that_leads_with_its_enforcement_date() {
    let mut d = decision(Outcome::Warn, Some("api"));
    let mut c = contract(Mode::Warn, Verdict::Deny);
    c.mode.configured = Mode::Enforce;
    c.mode.enforce_after = Some("2027-01-15T00:00:00Z".parse().unwrap());
    d.contracts.push(c);
    assert!(d.denial_lines().is_empty());
    assert_eq!(
        d.warning_lines(),
        vec![
            "container \"api\": [supply-chain, will be enforced from 2027-01-15 00:00 UTC] \
             slsa-provenance: no SLSA provenance Fix: attach provenance from the release workflow"
        ]
    );
}

#[test]
fn audit_mode_says_nothing_to_the_team() {
    let mut d = decision(Outcome::Allow, Some("api"));
    d.contracts.push(contract(Mode::Audit, Verdict::Deny));
    d.contracts.push(contract(Mode::Audit, Verdict::Error));
    assert!(d.denial_lines().is_empty());
    assert!(d.warning_lines().is_empty());
}

#[test]
fn an_exemption_in_use_is_a_warning_with_its_expiry_and_reason() {
    let mut d = decision(Outcome::Warn, None);
    let mut c = contract(Mode::Enforce, Verdict::Deny);
    c.exemption = Some(ExemptionInfo {
        reason: "vendor image, ticket SEC-42".into(),
        expires: "2027-02-01".into(),
    });
    d.contracts.push(c);
    assert_eq!(
        d.warning_lines(),
        vec![
            "reg.example/acme/app:1: [supply-chain] exempted until 2027-02-01: vendor image, ticket SEC-42"
        ]
    );
}

#[test]
fn an_error_and_an_unmatched_image_are_denials_of_their_own() {
    let mut d = decision(Outcome::Deny, Some("api"));
    d.error = Some(ErrorInfo {
        class: ErrorClass::Transient,
        kind: ErrorKind::Operational,
        message: "registry reg.example: server error 503".into(),
    });
    d.contracts.push(contract(Mode::Enforce, Verdict::Error));
    let lines = d.denial_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with(": registry reg.example: server error 503"));
    assert!(lines[1].ends_with(": [supply-chain] evaluation timed out"));

    let mut u = decision(Outcome::Deny, None);
    u.unmatched = true;
    assert_eq!(
        u.denial_lines(),
        vec![
            "reg.example/acme/app:1: no contract binding covers this image, and unmatched images \
             are denied; ask the platform team to bind contracts to it"
        ]
    );
}

#[test]
fn a_degraded_decision_warns_with_its_reason() {
    let mut d = decision(Outcome::Warn, Some("api"));
    d.degraded = Some("allowed without verification (failure policy warn)".into());
    assert_eq!(
        d.warning_lines(),
        vec!["container \"api\": allowed without verification (failure policy warn)"]
    );
}
