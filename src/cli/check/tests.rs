use super::remote::certificate_hint;
use super::*;
use crate::engine::decision::Outcome;
use crate::policy::Violation;
use crate::respond::json::{ContractReport, ErrorKind, ErrorReport, EvidenceReport, IgnoredReport};

fn image(outcome: Outcome) -> ImageReport {
    ImageReport {
        image: "reg.example/app:1".into(),
        reference: Some("reg.example/app:1".into()),
        digest: None,
        container: None,
        platforms: Vec::new(),
        outcome,
        status: ImageStatus::Allowed,
        unmatched: false,
        no_verifiable_evidence: false,
        denials: Vec::new(),
        warnings: Vec::new(),
        contracts: Vec::new(),
        evidence: Vec::new(),
        rejected: Vec::new(),
        notes: Vec::new(),
        error: None,
        degraded: None,
        requests: Vec::new(),
        vsa: None,
    }
}

fn contract(mode: &str, verdict: &str) -> ContractReport {
    ContractReport {
        name: "c".into(),
        version: "1".into(),
        binding: "b".into(),
        mode: mode.into(),
        configured_mode: mode.into(),
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

fn evidence() -> EvidenceReport {
    EvidenceReport {
        digest: format!("sha256:{}", "a".repeat(64)),
        kind: "attestation".into(),
        predicate_type: Some("https://slsa.dev/provenance/v1".into()),
        attached_to: format!("sha256:{}", "b".repeat(64)),
        found_in: "referrers".into(),
        format: "application/vnd.dev.sigstore.bundle.v0.3+json".into(),
        signer: "someone".into(),
        signer_facts: serde_json::json!({}),
        time: serde_json::json!({"source": "rfc3161", "value": "2026-01-01T00:00:00Z"}),
        tlog_entries: 1,
    }
}

fn error(kind: ErrorKind) -> Option<ErrorReport> {
    Some(ErrorReport {
        class: "transient".into(),
        kind,
        message: "registry reg.example: connection refused".into(),
    })
}

fn response(images: Vec<ImageReport>, allow_unverified: bool) -> GateResponse {
    let mut images = images;
    for i in &mut images {
        i.status = i.classify();
    }
    let mut r = GateResponse::new(images, None);
    r.exit_code = exit_code_with(&r.images, allow_unverified);
    r
}

#[test]
fn every_row_of_the_exit_code_table() {
    // 0: allowed, every contract evaluated (audit denials included).
    let mut i = image(Outcome::Allow);
    i.contracts = vec![contract("enforce", "pass"), contract("audit", "deny")];
    i.evidence = vec![evidence()];
    assert_eq!(i.classify(), ImageStatus::Allowed);
    // 1: allowed, but the evidence could not be fetched.
    let mut i = image(Outcome::Allow);
    i.error = error(ErrorKind::Operational);
    assert_eq!(i.classify(), ImageStatus::Unverified);
    assert_eq!(i.classify().exit_code(false), 1);
    assert_eq!(i.classify().exit_code(true), 0);
    // 1: allowed, but an audit contract could not be evaluated.
    let mut i = image(Outcome::Warn);
    i.contracts = vec![contract("audit", "error")];
    assert_eq!(i.classify(), ImageStatus::Unverified);
    // 1: denied because of an operational error, even with the flag.
    let mut i = image(Outcome::Deny);
    i.error = error(ErrorKind::Operational);
    assert_eq!(i.classify(), ImageStatus::Error);
    assert_eq!(i.classify().exit_code(true), 1);
    // 1: denied only because an enforced contract failed to evaluate.
    let mut i = image(Outcome::Deny);
    i.contracts = vec![contract("enforce", "error")];
    i.evidence = vec![evidence()];
    assert_eq!(i.classify(), ImageStatus::Error);
    // 2: a contract denied, with evidence verified.
    let mut i = image(Outcome::Deny);
    i.contracts = vec![contract("enforce", "deny"), contract("enforce", "error")];
    i.evidence = vec![evidence()];
    assert_eq!(i.classify(), ImageStatus::Denied);
    // 2: no binding, unmatched: deny.
    let mut i = image(Outcome::Deny);
    i.unmatched = true;
    assert_eq!(i.classify(), ImageStatus::Denied);
    // 3: a contract denied and nothing verified.
    let mut i = image(Outcome::Deny);
    i.contracts = vec![contract("enforce", "deny")];
    assert_eq!(i.classify(), ImageStatus::NoEvidence);
    // 3: an evidence error.
    let mut i = image(Outcome::Deny);
    i.error = error(ErrorKind::Evidence);
    assert_eq!(i.classify(), ImageStatus::NoEvidence);
}

#[test]
fn the_first_code_that_applies_wins_in_the_order_1_2_3_0() {
    let allowed = image(Outcome::Allow);
    let mut unverified = image(Outcome::Allow);
    unverified.error = error(ErrorKind::Operational);
    let mut denied = image(Outcome::Deny);
    denied.contracts = vec![contract("enforce", "deny")];
    denied.evidence = vec![evidence()];
    let mut none = image(Outcome::Deny);
    none.contracts = vec![contract("enforce", "deny")];
    let code =
        |v: Vec<&ImageReport>, flag| response(v.into_iter().cloned().collect(), flag).exit_code;
    assert_eq!(code(vec![&allowed], false), 0);
    assert_eq!(code(vec![&allowed, &none], false), 3);
    assert_eq!(code(vec![&none, &denied], false), 2);
    assert_eq!(code(vec![&denied, &unverified], false), 1);
    assert_eq!(code(vec![&denied, &unverified], true), 2);
    assert_eq!(code(vec![&allowed, &unverified], true), 0);
}

#[test]
fn an_unverified_image_is_never_just_allowed() {
    let mut i = image(Outcome::Allow);
    i.error = error(ErrorKind::Operational);
    let text = render(&response(vec![i], false), Style::default());
    let first = text.lines().next().unwrap();
    assert_eq!(first, "ALLOWED, NOT VERIFIED  reg.example/app:1");
    assert!(text.contains(
        "\n  NOTHING VERIFIED: its evidence could not be fetched (error above), so no contract judged this image\n"
    ));
    assert!(
        text.contains("\n  evidence   none (not fetched)\n"),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("ALLOWED:")), "{text}");
    let md = markdown(&response(
        vec![{
            let mut i = image(Outcome::Allow);
            i.error = error(ErrorKind::Operational);
            i
        }],
        false,
    ));
    assert!(md.starts_with("## provgate: allowed, not verified"), "{md}");
    assert!(md.contains("NOTHING VERIFIED"), "{md}");
}

#[test]
fn fixes_are_printed_once_and_ignored_once() {
    let v: Violation = serde_json::from_value(serde_json::json!({
        "msg": "no provenance",
        "requirement": "prov",
        "fix": "attach provenance signed by the release workflow",
    }))
    .unwrap();
    let mut i = image(Outcome::Deny);
    let mut c = contract("enforce", "deny");
    c.deny = vec![v.clone()];
    c.ignored = vec![IgnoredReport {
        digest: format!("sha256:{}", "c".repeat(64)),
        reason: "ignored: signer not trusted: subject \"x\" does not match".into(),
    }];
    i.contracts = vec![c];
    i.evidence = vec![evidence()];
    i.denials = vec![format!(
        "reg.example/app:1: [c] no provenance (requirement prov) Fix: {}",
        v.fix.clone().unwrap()
    )];
    let text = render(&response(vec![i.clone()], false), Style::default());
    assert_eq!(
        text.matches("attach provenance signed by the release workflow")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("\n    deny  no provenance (requirement prov)\n"),
        "{text}"
    );
    assert!(
        text.contains(": signer not trusted: subject") && !text.contains("ignored: signer"),
        "{text}"
    );
    // Without an admission line (audit), the contract line carries it.
    i.denials.clear();
    i.outcome = Outcome::Allow;
    i.contracts[0].mode = "audit".into();
    i.contracts[0].configured_mode = "audit".into();
    let text = render(&response(vec![i], false), Style::default());
    assert!(
        text.contains("\n          fix: attach provenance signed by the release workflow\n"),
        "{text}"
    );
}

#[test]
fn colour_only_when_asked() {
    let mut i = image(Outcome::Deny);
    i.contracts = vec![contract("enforce", "deny")];
    let r = response(vec![i], false);
    let plain = render(&r, Style::default());
    assert!(!plain.contains('\u{1b}'), "{plain}");
    let coloured = render(
        &r,
        Style {
            color: true,
            allow_unverified: false,
        },
    );
    assert!(coloured.contains("\u{1b}["), "{coloured}");
    assert!(coloured.contains("DENIED"), "{coloured}");
}

#[test]
fn certificate_hints_name_the_fix_in_plain_words() {
    use rustls::CertificateError as C;
    let h = certificate_hint(&C::UnknownIssuer, "gate.example", false);
    assert!(h.contains("--ca FILE"), "{h}");
    let h = certificate_hint(&C::UnknownIssuer, "gate.example", true);
    assert!(h.contains("not signed by the CA given with --ca"), "{h}");
    let h = certificate_hint(
        &C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("gate.example")
                .unwrap()
                .to_owned(),
            presented: vec![
                "DnsName(\"localhost\")".into(),
                "IpAddress(127.0.0.1)".into(),
            ],
        },
        "gate.example",
        false,
    );
    assert_eq!(
        h,
        "the certificate is not issued for \"gate.example\" but for localhost, 127.0.0.1: use one of these names in --server, or serve a certificate that names \"gate.example\""
    );
    assert!(!h.contains("DnsName") && !h.contains("IpAddress"));
    let h = certificate_hint(&C::Expired, "gate.example", false);
    assert!(h.contains("validity period"), "{h}");
}
