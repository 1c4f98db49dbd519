use super::*;
use crate::report::{Counts, Summary};
use crate::respond::json::{ErrorReport, ExemptionReport};

fn contract(name: &str, verdict: &str) -> ContractReport {
    ContractReport {
        name: name.into(),
        version: "1".into(),
        binding: "teams".into(),
        mode: "enforce".into(),
        configured_mode: "enforce".into(),
        enforce_after: None,
        verdict: verdict.into(),
        deny: Vec::new(),
        warn: Vec::new(),
        error: None,
        exemption: None,
        evidence_used: Vec::new(),
        ignored: Vec::new(),
    }
}

fn violation(msg: &str, requirement: Option<&str>) -> crate::policy::Violation {
    serde_json::from_value(
        serde_json::json!({"msg": msg, "requirement": requirement, "fix": "do it"}),
    )
    .unwrap()
}

fn image(outcome: Outcome, contracts: Vec<ContractReport>) -> ImageReport {
    serde_json::from_value(serde_json::json!({
        "image": "ghcr.io/acme/app:1", "digest": format!("sha256:{}", "a".repeat(64)),
        "container": "app", "outcome": outcome, "unmatched": false, "noVerifiableEvidence": false,
        "denials": [], "warnings": [], "contracts": contracts, "evidence": [], "rejected": []
    }))
    .unwrap()
}

fn workload(ns: &str, name: &str, images: Vec<ImageReport>) -> WorkloadReport {
    WorkloadReport {
        namespace: ns.into(),
        kind: "Deployment".into(),
        name: name.into(),
        api_version: "apps/v1".into(),
        uid: Some(format!("uid-{name}")),
        team: None,
        outcome: Outcome::Allow,
        compliant: true,
        unreadable: None,
        excluded: false,
        images,
    }
}

fn report(workloads: Vec<WorkloadReport>) -> Report {
    Report {
        api_version: crate::report::REPORT_V1.into(),
        generated_at: "2026-12-01T00:00:00Z".into(),
        team_label: "team".into(),
        summary: Summary {
            total: Counts::default(),
            ..Default::default()
        },
        workloads,
    }
}

#[test]
fn verdicts_map_to_results_with_rules_from_requirements() {
    let mut deny = contract("slsa", "deny");
    deny.deny = vec![
        violation("no provenance", Some("provenance")),
        violation("no sbom", None),
    ];
    deny.warn = vec![violation("old builder", Some("builder-age"))];
    deny.mode = "audit".into();
    let mut err = contract("sbom", "error");
    err.error = Some("rego failed".into());
    let mut exempt = contract("sig", "exempt");
    exempt.deny = vec![violation("unsigned", Some("signature"))];
    exempt.exemption = Some(ExemptionReport {
        reason: "INC-1".into(),
        expires: "2027-01-01T00:00:00Z".into(),
    });
    let r = report(vec![workload(
        "team-a",
        "api",
        vec![image(
            Outcome::Allow,
            vec![contract("base", "pass"), deny, err, exempt],
        )],
    )]);
    let reports = policy_reports(&r, jiff::Timestamp::from_second(1_700_000_000).unwrap());
    assert_eq!(reports.len(), 1);
    let p = &reports[0];
    assert_eq!(p.kind, "PolicyReport");
    assert_eq!(p.metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(p.metadata.name.as_deref(), Some("provgate"));
    let got: Vec<(&str, &str, ResultKind, bool)> = p
        .results
        .iter()
        .map(|r| (r.policy.as_str(), r.rule.as_str(), r.result, r.scored))
        .collect();
    assert_eq!(
        got,
        vec![
            ("base", "base", ResultKind::Pass, true),
            ("slsa", "provenance", ResultKind::Fail, true),
            ("slsa", "slsa", ResultKind::Fail, true),
            ("slsa", "builder-age", ResultKind::Warn, false),
            ("sbom", "sbom", ResultKind::Error, true),
            ("sig", "signature", ResultKind::Skip, true),
        ]
    );
    assert_eq!(
        p.summary,
        ResultSummary {
            pass: 1,
            fail: 2,
            warn: 1,
            error: 1,
            skip: 1
        }
    );
    let fail = &p.results[1];
    assert_eq!(fail.properties["mode"], "audit", "mode is a property");
    assert_eq!(fail.properties["fix"], "do it");
    assert_eq!(fail.properties["container"], "app");
    assert_eq!(
        fail.properties["digest"],
        format!("sha256:{}", "a".repeat(64))
    );
    assert_eq!(fail.resources[0].uid.as_deref(), Some("uid-api"));
    assert_eq!(fail.timestamp.seconds, 1_700_000_000);
    assert!(p.results[5].message.contains("exempt until 2027-01-01"));
}

#[test]
fn image_errors_unmatched_and_unreadable_objects_have_results() {
    let mut broken = image(Outcome::Deny, Vec::new());
    broken.error = Some(ErrorReport {
        class: "transient".into(),
        kind: crate::respond::json::ErrorKind::Operational,
        message: "registry unreachable".into(),
    });
    let mut unmatched = image(Outcome::Warn, Vec::new());
    unmatched.unmatched = true;
    let mut unreadable = workload("", "", Vec::new());
    unreadable.unreadable = Some("unreadable Deployment: it has no metadata.namespace".into());
    let r = report(vec![
        unreadable,
        workload("b", "x", vec![broken, unmatched]),
    ]);
    let reports = policy_reports(&r, jiff::Timestamp::UNIX_EPOCH);
    let kinds: Vec<&str> = reports.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["PolicyReport", "ClusterPolicyReport"]);
    let got: Vec<(&str, ResultKind)> = reports[0]
        .results
        .iter()
        .map(|r| (r.rule.as_str(), r.result))
        .collect();
    assert_eq!(
        got,
        [
            ("image", ResultKind::Error),
            ("unmatched", ResultKind::Warn)
        ]
    );
    assert_eq!(reports[1].metadata.namespace, None);
    assert_eq!(reports[1].results[0].rule, "unreadable");
    assert_eq!(reports[1].results[0].result, ResultKind::Error);
}

#[test]
fn oversized_reports_keep_failures_and_say_what_was_left_out() {
    let mut imgs = Vec::new();
    for n in 0..3000 {
        let mut c = contract("slsa", if n % 100 == 0 { "deny" } else { "pass" });
        if n % 100 == 0 {
            c.deny = vec![violation("no provenance", Some("provenance"))];
        }
        let mut i = image(Outcome::Allow, vec![c]);
        i.image = format!("ghcr.io/acme/app-with-a-long-name-{n}:{}", "x".repeat(200));
        imgs.push(i);
    }
    let r = report(vec![workload("big", "many", imgs)]);
    let reports = policy_reports(&r, jiff::Timestamp::UNIX_EPOCH);
    let p = &reports[0];
    let bytes = serde_json::to_vec(&p.results).unwrap().len();
    assert!(bytes <= MAX_RESULTS_BYTES, "{bytes}");
    assert_eq!(p.summary.fail, 30);
    assert_eq!(p.summary.pass, 2970, "the summary counts everything");
    let fails = p
        .results
        .iter()
        .filter(|r| r.result == ResultKind::Fail)
        .count();
    assert_eq!(fails, 30, "failures are kept first");
    let last = p.results.last().unwrap();
    assert_eq!(last.rule, "report-size");
    let kept = p.results.len() - 1;
    assert!(
        last.message
            .starts_with(&format!("{} results", 3000 - kept))
    );
}
