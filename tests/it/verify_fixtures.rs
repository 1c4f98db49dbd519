//! Every case of `../shared/testkit/fixtures/cases.json`: real bundles from
//! sigstore-python, sigstore-go, sigstore-rust and cosign, verified offline.
//!
//! Each case has its own test, named after its expected outcome:
//! - `verify` cases must verify with the trust material given, be admitted by
//!   the exact identity/issuer (or key) of the case, honour the case's tlog
//!   and TSA thresholds, and be refused for a different identity;
//! - `reject` cases must fail with the specific error that describes them;
//! - `parse-only` cases must parse and fail only at a Sigstore check.
//!
//! Two `verify` cases do not verify here, for reasons recorded at their
//! tests (`py-tsa-bundle`, `go-othername-san`); their tests assert the
//! current, fail-closed behaviour. [`every_case_has_a_test`] keeps this file
//! and `cases.json` in step.

use std::sync::Arc;

use provgate::digest::Digest;
use provgate::verify::{
    ArtifactInput, Authority, AuthorityKind, EvidenceFacts, KeyFailure, KeylessIdentity, Matcher,
    Signer, Statement, TimeSource, TrustStore, Verified, VerifyError, VerifyLimits,
};
use serde_json::Value;
use sigstore_verify::{CertificateError, Error as SvError, TimestampError};

use crate::common::evidence::{assert_readable, json, key_error, keyless_error, tag_schema_source};
use crate::common::read_fixture;

/// The case ids this module tests, in `cases.json` order.
const TESTED: &[&str] = &[
    "py-bundle-v3-staging",
    "py-github-whl-v02",
    "py-staging-rekor-v2",
    "py-tsa-bundle",
    "py-tsa-many-timestamps",
    "go-sigstore-js-2.0.0-provenance",
    "go-dsse",
    "go-dsse-2sigs",
    "go-othername-san",
    "go-public-key-validity",
    "go-example-provenance",
    "go-example-publish",
    "rust-cosign-v3-blob",
    "rust-conda-attestation",
    "rust-conda-attestation-rekor2",
    "rust-github-private-attestation",
    "cosign-oci-attestation",
    "cosign-2022-blob-cert-rekor-timestamps",
    "cosign-2022-blob-key-rekor-proof",
    "cosign-2022-dsse-cert",
    "cosign-2022-dsse-cert-rekor",
    "cosign-2022-dsse-key",
];

fn cases() -> Vec<Value> {
    json(&read_fixture("cases.json"))["cases"]
        .as_array()
        .unwrap()
        .clone()
}

/// One case, with its trust material and input loaded.
struct Case {
    id: String,
    expect: String,
    bundle: Vec<u8>,
    trust: Arc<TrustStore>,
    input: Input,
    identity: Option<(String, String)>,
    has_key: bool,
    tlog_threshold: u64,
    tsa_threshold: u64,
}

enum Input {
    Digest(Digest),
    Bytes(Vec<u8>),
}

impl Case {
    fn load(id: &str) -> Case {
        let all = cases();
        let c = all
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("case {id} not in cases.json"));
        let s = |k: &str| c[k].as_str().map(str::to_owned);
        let root_json = match (s("trusted_root"), s("trust_config")) {
            (Some(root), _) => String::from_utf8(read_fixture(&root)).unwrap(),
            (None, Some(tc)) => json(&read_fixture(&tc))["trustedRoot"].to_string(),
            (None, None) => panic!("case {id} names no trust material"),
        };
        let mut trust = TrustStore::builder().root_json("fixture", &root_json);
        if let Some(key) = s("key") {
            let pem = String::from_utf8(read_fixture(&key)).unwrap();
            trust = trust.key_pem("key", &pem).unwrap();
        }
        let input = s("input").unwrap();
        let input = if input.starts_with("sha256:") || input.starts_with("sha512:") {
            Input::Digest(input.parse().unwrap())
        } else {
            Input::Bytes(read_fixture(&input))
        };
        let threshold = |k: &str, default: u64| c["thresholds"][k].as_u64().unwrap_or(default);
        Case {
            id: id.to_owned(),
            expect: s("expect").unwrap(),
            bundle: read_fixture(&s("bundle").unwrap()),
            trust: Arc::new(trust.build().unwrap()),
            identity: s("identity").map(|i| (i, s("issuer").unwrap_or_default())),
            has_key: c.get("key").is_some(),
            tlog_threshold: threshold("tlog", 1),
            tsa_threshold: threshold("tsa", 0),
            input,
        }
    }

    fn verifier(&self, limits: VerifyLimits) -> provgate::verify::Verifier {
        provgate::verify::Verifier::new(Arc::clone(&self.trust), limits)
    }

    fn verify(&self) -> Result<(EvidenceFacts, Option<Statement>), VerifyError> {
        let artifact = match &self.input {
            Input::Digest(d) => ArtifactInput::Digest(d),
            Input::Bytes(b) => ArtifactInput::Bytes(b),
        };
        self.verifier(VerifyLimits::default())
            .verify_artifact(&self.bundle, artifact)
    }

    /// The authority the case describes: its exact identity and issuer, or its key.
    fn authority(&self, facts: &EvidenceFacts) -> Authority {
        let kind = if self.has_key {
            let Signer::Key { key_id, key_name } = facts.signer() else {
                panic!("{}: expected a key signer", self.id)
            };
            AuthorityKind::Key {
                key_id: key_id.clone(),
                key_name: key_name.clone(),
            }
        } else {
            let (subject, issuer) = self.identity.clone().unwrap();
            AuthorityKind::Keyless(KeylessIdentity {
                issuer: Matcher::exact("issuer", &issuer).unwrap(),
                subject: Matcher::exact("subject", &subject).unwrap(),
                claims: Default::default(),
                trusted_root: Some("fixture".into()),
            })
        };
        Authority {
            name: self.id.clone(),
            kind,
            require_tlog: self.tlog_threshold > 0,
        }
    }
}

/// Verifies a `verify` case and checks identity, thresholds and a wrong identity.
fn expect_verified(id: &str) -> (EvidenceFacts, Option<Statement>) {
    let case = Case::load(id);
    let r = case.verify();
    assert_eq!(case.expect, "verify", "{id}");
    let (facts, statement) = r.unwrap_or_else(|e| panic!("{id} does not verify: {e}"));
    case.authority(&facts)
        .admits(&facts)
        .unwrap_or_else(|e| panic!("{id}: identity not admitted: {e}"));
    if case.tlog_threshold > 0 {
        assert!(facts.tlog_verified(), "{id}: tlog threshold not met");
    }
    if case.tsa_threshold > 0 {
        assert_eq!(facts.time().source, TimeSource::Rfc3161, "{id}");
    }
    assert!(facts.time().value.is_some(), "{id}: no trusted time");
    // The same evidence for another signer is refused.
    if let Some((subject, issuer)) = &case.identity
        && !case.has_key
    {
        let wrong = Authority {
            name: "wrong".into(),
            kind: AuthorityKind::Keyless(KeylessIdentity {
                issuer: Matcher::exact("issuer", issuer).unwrap(),
                subject: Matcher::exact("subject", &format!("{subject}.evil")).unwrap(),
                claims: Default::default(),
                trusted_root: None,
            }),
            require_tlog: false,
        };
        assert!(
            wrong.admits(&facts).is_err(),
            "{id}: wrong identity admitted"
        );
    }
    // DSSE evidence about a digest is also verified the way images are: the
    // statement must name that digest.
    if let (Some(_), Input::Digest(d)) = (&statement, &case.input) {
        let v = case.verifier(VerifyLimits::default());
        let verified = v
            .verify_bundle(&case.bundle, d, tag_schema_source())
            .unwrap_or_else(|e| panic!("{id} as image evidence: {e}"));
        assert!(matches!(verified, Verified::Attestation(_)), "{id}");
        let other = Digest::sha256_of(id.as_bytes());
        let err = v
            .verify_bundle(&case.bundle, &other, tag_schema_source())
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::SubjectMismatch { .. }),
            "{id}: {err:?}"
        );
    }
    (facts, statement)
}

/// Verifies a case that must fail and returns its error.
fn expect_failure(id: &str, expect: &str) -> VerifyError {
    let case = Case::load(id);
    let r = case.verify();
    assert_eq!(case.expect, expect, "{id}");
    match r {
        Ok((facts, _)) => panic!("{id} unexpectedly verified: {facts:?}"),
        Err(e) => e,
    }
}

fn keyless_subject(facts: &EvidenceFacts) -> &str {
    match facts.signer() {
        Signer::Keyless(k) => &k.subject,
        other => panic!("expected keyless, got {other:?}"),
    }
}

#[test]
fn every_case_has_a_test() {
    let ids: Vec<String> = cases()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, TESTED, "cases.json and verify_fixtures.rs disagree");
}

// ---------------------------------------------------------------------------
// sigstore-python.

#[test]
fn py_bundle_v3_staging_verifies() {
    let (facts, statement) = expect_verified("py-bundle-v3-staging");
    assert!(statement.is_none());
    assert_eq!(facts.tlog()[0].kind, "hashedrekord/0.0.1");
    assert_eq!(facts.time().source, TimeSource::Rekor);
}

#[test]
fn py_github_whl_v02_verifies() {
    let (facts, _) = expect_verified("py-github-whl-v02");
    assert_eq!(
        facts.format(),
        "application/vnd.dev.sigstore.bundle+json;version=0.2"
    );
    let Signer::Keyless(k) = facts.signer() else {
        panic!()
    };
    assert_eq!(
        k.claims.get("sourceRepositoryURI").map(String::as_str),
        Some("https://github.com/trailofbits/rfc8785.py")
    );
}

#[test]
fn py_staging_rekor_v2_verifies_with_its_time_from_the_tsa() {
    let (facts, _) = expect_verified("py-staging-rekor-v2");
    assert_eq!(facts.tlog()[0].kind, "hashedrekord/0.0.2");
    assert!(facts.tlog()[0].integrated_time.is_none());
    assert!(facts.tlog()[0].inclusion_proof);
}

#[test]
fn py_tsa_bundle_is_rejected_because_its_timestamps_are_not_signed_by_the_trusted_tsa_leaf() {
    // Expected "verify" in cases.json (sigstore-python passes it;
    // @sigstore/verify fails it too). The two tokens were signed on
    // 2024-10-31 by a TSA certificate (serial 2E4D4F8C…, issuer encoded
    // O=local,CN=Test TSA Intermediate) embedded in the token, not by the
    // leaf that trust_config.json pins (serial 0A69F656…, valid from
    // 2024-11-07, after the tokens were issued). provgate, like sigstore-tsa
    // upstream (TOB-SIGSTORE-11), only accepts tokens signed by the trusted
    // root's own TSA leaf and never trusts embedded certificates; sigstore-
    // python accepts an embedded leaf that chains to the TSA root.
    let err = expect_failure("py-tsa-bundle", "verify");
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Timestamp(TimestampError::Invalid(m))
                if m.contains("not this authority's TSA certificate")
        ),
        "{err:?}"
    );
    assert_readable(
        &err,
        &[
            "invalid RFC 3161 timestamp",
            "not this authority's TSA certificate",
        ],
    );
}

#[test]
fn py_tsa_many_timestamps_is_rejected_for_too_many_timestamps() {
    let err = expect_failure("py-tsa-many-timestamps", "reject");
    assert!(
        matches!(
            err,
            VerifyError::TooMany {
                what: "RFC 3161 timestamps",
                count: 33,
                limit: 32
            }
        ),
        "{err:?}"
    );
    assert_readable(&err, &["RFC 3161 timestamps: 33 found", "32"]);
}

// ---------------------------------------------------------------------------
// sigstore-go.

#[test]
fn go_sigstore_js_2_0_0_provenance_verifies_with_a_sha512_subject() {
    let (facts, statement) = expect_verified("go-sigstore-js-2.0.0-provenance");
    assert_eq!(facts.tlog()[0].kind, "intoto/0.0.2");
    let st = statement.expect("DSSE statement");
    assert!(
        st.subjects()[0].digests[0]
            .to_string()
            .starts_with("sha512:")
    );
}

#[test]
fn go_dsse_verifies_with_a_three_certificate_chain_and_set_only() {
    let (facts, _) = expect_verified("go-dsse");
    assert!(facts.tlog()[0].inclusion_promise);
    assert!(!facts.tlog()[0].inclusion_proof);
    assert_eq!(keyless_subject(&facts), "brian@dehamer.com");
}

#[test]
fn go_dsse_2sigs_is_rejected_for_two_dsse_signatures() {
    let err = expect_failure("go-dsse-2sigs", "reject");
    assert!(
        matches!(&err, VerifyError::DsseSignatureCount(2)),
        "{err:?}"
    );
    assert_readable(&err, &["exactly one signature, found 2"]);
    // Under a limit of one signature it is refused before parsing.
    let case = Case::load("go-dsse-2sigs");
    let limits = VerifyLimits {
        max_signatures: 1,
        ..VerifyLimits::default()
    };
    let Input::Digest(d) = &case.input else {
        panic!()
    };
    let err = case
        .verifier(limits)
        .verify_artifact(&case.bundle, ArtifactInput::Digest(d))
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::TooMany {
                what: "DSSE signatures",
                count: 2,
                limit: 1
            }
        ),
        "{err:?}"
    );
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
fn go_public_key_validity_verifies_with_a_tsa_timestamp_and_no_tlog() {
    let (facts, _) = expect_verified("go-public-key-validity");
    assert!(!facts.tlog_verified());
    assert!(matches!(facts.signer(), Signer::Key { .. }));
    let case = Case::load("go-public-key-validity");
    let strict = Authority {
        require_tlog: true,
        ..case.authority(&facts)
    };
    let err = strict.admits(&facts).unwrap_err();
    assert_readable(&err, &["requires a verified transparency-log entry"]);
}

#[test]
fn go_example_provenance_verifies() {
    let (facts, statement) = expect_verified("go-example-provenance");
    assert!(facts.tlog()[0].inclusion_promise);
    assert_eq!(
        statement.unwrap().predicate_type(),
        "https://slsa.dev/provenance/v0.2"
    );
}

#[test]
fn go_example_publish_verifies_with_npm_managed_key() {
    let (facts, _) = expect_verified("go-example-publish");
    assert!(matches!(facts.signer(), Signer::Key { key_name, .. } if key_name == "key"));
    assert_eq!(facts.time().source, TimeSource::Rekor);
}

// ---------------------------------------------------------------------------
// sigstore-rust.

#[test]
fn rust_cosign_v3_blob_verifies_with_tsa_and_rekor() {
    let (facts, _) = expect_verified("rust-cosign-v3-blob");
    assert_eq!(facts.tlog()[0].kind, "hashedrekord/0.0.1");
}

#[test]
fn rust_conda_attestation_verifies() {
    let (facts, statement) = expect_verified("rust-conda-attestation");
    assert_eq!(facts.tlog()[0].kind, "dsse/0.0.1");
    assert!(statement.is_some());
}

#[test]
fn rust_conda_attestation_rekor2_verifies_with_tsa_time() {
    let (facts, statement) = expect_verified("rust-conda-attestation-rekor2");
    assert_eq!(facts.tlog()[0].kind, "hashedrekord/0.0.2");
    assert!(statement.is_some());
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

// ---------------------------------------------------------------------------
// cosign.

#[test]
fn cosign_oci_attestation_verifies_with_statement_v01() {
    let (facts, statement) = expect_verified("cosign-oci-attestation");
    assert_eq!(
        statement.unwrap().statement_type(),
        "https://in-toto.io/Statement/v0.1"
    );
    assert_eq!(facts.tlog()[0].kind, "dsse/0.0.1");
}

#[test]
fn cosign_2022_blob_cert_rekor_timestamps_is_rejected_as_malformed() {
    let err = expect_failure("cosign-2022-blob-cert-rekor-timestamps", "reject");
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle", "X509Certificate"]);
}

#[test]
fn cosign_2022_blob_key_rekor_proof_is_rejected_for_a_missing_inclusion_promise() {
    let err = expect_failure("cosign-2022-blob-key-rekor-proof", "reject");
    assert!(
        matches!(
            key_error(&err),
            SvError::Bundle(sigstore_verify::bundle::Error::MissingInclusionPromise(_))
        ),
        "{err:?}"
    );
    assert!(!matches!(err, VerifyError::Key(KeyFailure::NoKeys)));
    assert_readable(&err, &["must have an inclusion promise"]);
}

#[test]
fn cosign_2022_dsse_cert_is_rejected_as_malformed() {
    let err = expect_failure("cosign-2022-dsse-cert", "reject");
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle"]);
}

#[test]
fn cosign_2022_dsse_cert_rekor_is_rejected_as_malformed() {
    let err = expect_failure("cosign-2022-dsse-cert-rekor", "reject");
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle"]);
}

#[test]
fn cosign_2022_dsse_key_is_rejected_for_a_non_in_toto_payload_type() {
    let err = expect_failure("cosign-2022-dsse-key", "reject");
    assert!(
        matches!(&err, VerifyError::PayloadType(t) if t == "text/json"),
        "{err:?}"
    );
    assert_readable(&err, &["payloadType \"text/json\""]);
}
