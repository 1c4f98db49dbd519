//! Keyless evidence: the certificate chain to a trusted Fulcio CA, the
//! signer identity (exact and regex subjects and issuers, always anchored),
//! Fulcio claim constraints and the trusted root an authority is pinned to.
//! Evidence is the kit's sigstore-js and sigstore-python output and the
//! sigstore-go and sigstore-rust bundles of `cases.json`.

use std::collections::BTreeMap;
use std::sync::Arc;

use provgate::verify::{
    ArtifactInput, Authority, AuthorityKind, EvidenceFacts, IdentityError, KeylessIdentity,
    Matcher, MatcherSpec, Signer, Statement, TrustStore, VerifyLimits, check_claim_name,
};
use sigstore_verify::{CertificateError, Error as SvError};

use crate::common::evidence::{
    assert_readable, edit_str, flip_b64, json, keyless_authority, keyless_error, kit_verifier,
    must_fail, mutate, push_image, shared, sign_provenance_as, tag_schema_source,
};
use crate::common::kit::{GH_ID, GH_ISS};
use crate::common::read_fixture;

use super::cases::{expect_failure, expect_verified};
use super::support::{
    CERT, EMAIL_ID, GOOGLE_ISS, gh_facts, keyless, kit_rejects, sign_blob, verified_facts,
};

fn keyless_with(subject: Matcher, issuer: Matcher) -> Authority {
    Authority {
        name: "contract".into(),
        kind: AuthorityKind::Keyless(KeylessIdentity {
            issuer,
            subject,
            claims: BTreeMap::new(),
            trusted_root: None,
        }),
        require_tlog: true,
    }
}

#[test]
fn exact_identity_and_issuer_admit_the_signer() {
    keyless_authority(GH_ID, GH_ISS)
        .admits(gh_facts())
        .expect("right identity admitted");
}

#[test]
fn wrong_subject_is_not_admitted() {
    let other = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let err = keyless_authority(other, GH_ISS)
        .admits(gh_facts())
        .unwrap_err();
    assert_readable(&err, &["subject", GH_ID, "does not match", other]);
}

#[test]
fn wrong_issuer_is_not_admitted() {
    let err = keyless_authority(GH_ID, GOOGLE_ISS)
        .admits(gh_facts())
        .unwrap_err();
    assert_readable(&err, &["issuer", GH_ISS, "does not match", GOOGLE_ISS]);
}

#[test]
fn unanchored_looking_regex_does_not_admit_a_subject_that_merely_contains_it() {
    let pattern = "https://github.com/acme/app/.*";
    let authority = keyless_with(
        Matcher::regex("subject", pattern).unwrap(),
        Matcher::exact("issuer", GH_ISS).unwrap(),
    );
    authority
        .admits(gh_facts())
        .expect("the genuine workflow matches the pattern");

    // A real certificate for an attacker-chosen subject that contains the
    // trusted prefix after its own.
    let evil = format!("https://github.com/evil/x?{GH_ID}");
    let image = push_image("evil", &[]);
    let bundle = sign_provenance_as(&image, &evil, GH_ISS, &[]);
    let facts = verified_facts(&bundle, &image.digest);
    assert_eq!(keyless(&facts).subject, evil);
    let err = authority.admits(&facts).unwrap_err();
    assert_readable(&err, &["subject", "does not match", "^(?:"]);

    // The same holds when the author wrote the anchors themselves.
    let anchored = keyless_with(
        Matcher::regex("subject", &format!("^{pattern}$")).unwrap(),
        Matcher::exact("issuer", GH_ISS).unwrap(),
    );
    assert!(anchored.admits(&facts).is_err());
    assert!(anchored.admits(gh_facts()).is_ok());
}

#[test]
fn regex_issuer_is_anchored_too() {
    let authority = keyless_with(
        Matcher::exact("subject", GH_ID).unwrap(),
        Matcher::regex("issuer", r"https://token\.actions\.githubusercontent\.com").unwrap(),
    );
    assert!(authority.admits(gh_facts()).is_ok());
    let prefix_only = keyless_with(
        Matcher::exact("subject", GH_ID).unwrap(),
        Matcher::regex("issuer", r"https://token\.actions").unwrap(),
    );
    let err = prefix_only.admits(gh_facts()).unwrap_err();
    assert_readable(&err, &["issuer", "does not match"]);
}

fn with_claim(claim: &str, matcher: Matcher) -> Authority {
    let mut claims = BTreeMap::new();
    claims.insert(claim.to_owned(), matcher);
    Authority {
        name: "claims".into(),
        kind: AuthorityKind::Keyless(KeylessIdentity {
            issuer: Matcher::exact("issuer", GH_ISS).unwrap(),
            subject: Matcher::regex("subject", "https://github.com/acme/.*").unwrap(),
            claims,
            trusted_root: None,
        }),
        require_tlog: true,
    }
}

#[test]
fn fulcio_claim_constraint_met_is_admitted() {
    with_claim(
        "sourceRepositoryURI",
        Matcher::exact("sourceRepositoryURI", "https://github.com/acme/app").unwrap(),
    )
    .admits(gh_facts())
    .expect("claim met");
    with_claim(
        "sourceRepositoryRef",
        Matcher::regex("sourceRepositoryRef", "refs/heads/(main|release/.*)").unwrap(),
    )
    .admits(gh_facts())
    .expect("claim regex met");
}

#[test]
fn fulcio_claim_constraint_not_met_is_not_admitted() {
    let err = with_claim(
        "sourceRepositoryURI",
        Matcher::exact("sourceRepositoryURI", "https://github.com/acme/other").unwrap(),
    )
    .admits(gh_facts())
    .unwrap_err();
    assert_readable(
        &err,
        &[
            "claim sourceRepositoryURI",
            "https://github.com/acme/app",
            "does not match",
            "https://github.com/acme/other",
        ],
    );
    let err = with_claim(
        "sourceRepositoryRef",
        Matcher::regex("sourceRepositoryRef", "refs/tags/v.*").unwrap(),
    )
    .admits(gh_facts())
    .unwrap_err();
    assert_readable(&err, &["claim sourceRepositoryRef", "refs/heads/main"]);
}

#[test]
fn fulcio_claim_constraint_on_a_certificate_without_the_claim_is_not_admitted() {
    // An e-mail identity's certificate carries no CI claims.
    let (_, bundle) = sign_blob("py", b"claims\n");
    let (facts, _) = kit_verifier()
        .verify_artifact(&bundle, ArtifactInput::Bytes(b"claims\n"))
        .unwrap();
    assert!(keyless(&facts).claims.is_empty());
    let mut claims = BTreeMap::new();
    claims.insert(
        "sourceRepositoryURI".to_owned(),
        Matcher::exact("sourceRepositoryURI", "https://github.com/acme/app").unwrap(),
    );
    let authority = Authority {
        name: "needs-claims".into(),
        kind: AuthorityKind::Keyless(KeylessIdentity {
            issuer: Matcher::exact("issuer", GOOGLE_ISS).unwrap(),
            subject: Matcher::exact("subject", EMAIL_ID).unwrap(),
            claims,
            trusted_root: None,
        }),
        require_tlog: true,
    };
    let err = authority.admits(&facts).unwrap_err();
    assert_readable(&err, &["no sourceRepositoryURI claim", "needs-claims"]);
}

#[test]
fn empty_or_invalid_constraints_are_refused_at_construction() {
    for err in [
        Matcher::exact("subject", "").unwrap_err(),
        Matcher::regex("subject", "").unwrap_err(),
        Matcher::regex("subject", "^$").unwrap_err(),
        Matcher::from_spec("issuer", &MatcherSpec::Exact(String::new())).unwrap_err(),
        Matcher::from_spec("issuer", &MatcherSpec::Regex { regex: "^".into() }).unwrap_err(),
    ] {
        assert!(matches!(err, IdentityError::Empty { .. }), "{err:?}");
        assert_readable(&err, &["an empty constraint is not allowed"]);
    }
    let err = Matcher::regex("subject", "(unclosed").unwrap_err();
    assert!(matches!(err, IdentityError::BadRegex { .. }), "{err:?}");
    // The regex crate's message is a multi-line caret diagram; the first
    // line names the field and the pattern as written.
    let text = err.to_string();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("subject: invalid regular expression \"(unclosed\""),
        "{text}"
    );
    assert!(text.contains("unclosed group"), "{text}");
    let err = check_claim_name("repository").unwrap_err();
    assert!(matches!(err, IdentityError::UnknownClaim(_)), "{err:?}");
    assert_readable(&err, &["unknown Fulcio claim", "sourceRepositoryURI"]);
    assert!(check_claim_name("sourceRepositoryURI").is_ok());
}

#[test]
fn go_othername_san_is_rejected_because_the_certificate_has_no_email_or_uri_san() {
    // Expected "verify" in cases.json (sigstore-go passes it; neither
    // reference verifier does). Every Sigstore check passes, but the
    // certificate's only SAN is an OtherName (1.3.6.1.4.1.57264.1.7,
    // "foo!oidc.local"), which sigstore-crypto 0.15.1 does not extract (its
    // SubjectAltName has only Email and Uri). provgate then has no signer
    // identity to match an authority against and fails closed.
    let err = expect_failure("go-othername-san", "verify");
    assert!(
        matches!(
            keyless_error(&err),
            SvError::InvalidBundle(m) if m.contains("no subject (SAN)")
        ),
        "{err:?}"
    );
    assert_readable(&err, &["certificate has no subject (SAN)"]);
}

#[test]
fn authority_pinned_to_another_trusted_root_does_not_admit() {
    let pinned = |root: &str| Authority {
        name: "pinned".into(),
        kind: AuthorityKind::Keyless(KeylessIdentity {
            issuer: Matcher::exact("issuer", GH_ISS).unwrap(),
            subject: Matcher::exact("subject", GH_ID).unwrap(),
            claims: BTreeMap::new(),
            trusted_root: Some(root.into()),
        }),
        require_tlog: true,
    };
    assert!(pinned("kit").admits(gh_facts()).is_ok());
    let err = pinned("public-good").admits(gh_facts()).unwrap_err();
    assert_readable(&err, &["trusted root \"kit\"", "requires \"public-good\""]);
}

#[test]
fn evidence_from_another_root_is_not_trusted_at_all() {
    // Only the public-good root: the kit's Fulcio CA is unknown.
    let trust = TrustStore::builder().public_good().build().unwrap();
    let v = provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default());
    let err =
        must_fail(v.verify_bundle(&shared().prov, &shared().image.digest, tag_schema_source()));
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Timestamp(_) | SvError::TransparencyLog(_) | SvError::Certificate(_)
        ),
        "{err:?}"
    );
    assert_readable(&err, &["trusted root \"public-good\""]);
}

#[test]
fn tampered_certificate_signature_fails_the_chain() {
    // The last bytes of the DER are the CA's signature over the certificate.
    let bad = mutate(&shared().prov, |v| edit_str(v, CERT, |s| flip_b64(s, -1)));
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Certificate(CertificateError::ChainInvalid(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["certificate chain is invalid"]);
}

fn keyless_subject(facts: &EvidenceFacts) -> &str {
    match facts.signer() {
        Signer::Keyless(k) => &k.subject,
        other => panic!("expected keyless, got {other:?}"),
    }
}

#[test]
fn go_dsse_verifies_with_a_three_certificate_chain_and_set_only() {
    let (facts, _) = expect_verified("go-dsse");
    assert!(facts.tlog()[0].inclusion_promise);
    assert!(!facts.tlog()[0].inclusion_proof);
    assert_eq!(keyless_subject(&facts), "brian@dehamer.com");
}

#[test]
fn rust_github_private_attestation_parses_and_fails_only_at_the_certificate_chain() {
    // parse-only: github_trusted_root.json holds GitHub's TSAs but not its
    // Fulcio CA, so the chain cannot be verified with this material.
    let err = expect_failure("rust-github-private-attestation", "parse-only");
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Certificate(CertificateError::NoValidAuthority { .. })
        ),
        "{err:?}"
    );
    assert_readable(&err, &["no trusted certificate authority is valid"]);
    // Its statement parses as well.
    let bundle = json(&read_fixture(
        "sigstore-rust/github-private-attestation.sigstore.json",
    ));
    let payload =
        crate::common::evidence::unb64(bundle["dsseEnvelope"]["payload"].as_str().unwrap());
    let st = Statement::parse(&payload, &VerifyLimits::default()).unwrap();
    assert!(
        st.binds(
            &"sha256:76f1fe8593bf227cca2c089e3c16dc95014a8d3e89c5dd220530469ca043c428"
                .parse()
                .unwrap()
        )
    );
}
