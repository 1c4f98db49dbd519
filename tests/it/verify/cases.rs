//! The harness for `../shared/testkit/fixtures/cases.json`: real bundles of
//! sigstore-python, sigstore-go, sigstore-rust and cosign, verified offline
//! with the trust material each case names ([`expect_verified`] also checks
//! the case's identity, thresholds and a wrong identity). Each case has a
//! test named after its id and expected outcome (`verify`, `reject` or
//! `parse-only`) in the module of the capability it exercises, and
//! [`every_case_has_a_test`] keeps [`TESTED`] and `cases.json` in step. Two
//! `verify` cases do not verify here, for reasons recorded at their tests
//! (`time::py_tsa_bundle_…` and `keyless::go_othername_san_…`), which assert
//! the current, fail-closed behaviour.

use std::sync::Arc;

use provgate::digest::Digest;
use provgate::verify::{
    ArtifactInput, Authority, AuthorityKind, EvidenceFacts, KeylessIdentity, Matcher, Signer,
    Statement, TimeSource, TrustStore, Verified, VerifyError, VerifyLimits,
};
use serde_json::Value;

use crate::common::evidence::{json, tag_schema_source};
use crate::common::read_fixture;

/// The case ids that have a test, in `cases.json` order.
pub(super) const TESTED: &[&str] = &[
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

pub(super) fn cases() -> Vec<Value> {
    json(&read_fixture("cases.json"))["cases"]
        .as_array()
        .unwrap()
        .clone()
}

/// One case, with its trust material and input loaded.
pub(super) struct Case {
    pub(super) id: String,
    pub(super) expect: String,
    pub(super) bundle: Vec<u8>,
    pub(super) trust: Arc<TrustStore>,
    pub(super) input: Input,
    pub(super) identity: Option<(String, String)>,
    pub(super) has_key: bool,
    pub(super) tlog_threshold: u64,
    pub(super) tsa_threshold: u64,
}

pub(super) enum Input {
    Digest(Digest),
    Bytes(Vec<u8>),
}

impl Case {
    pub(super) fn load(id: &str) -> Case {
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

    pub(super) fn verifier(&self, limits: VerifyLimits) -> provgate::verify::Verifier {
        provgate::verify::Verifier::new(Arc::clone(&self.trust), limits)
    }

    pub(super) fn verify(&self) -> Result<(EvidenceFacts, Option<Statement>), VerifyError> {
        let artifact = match &self.input {
            Input::Digest(d) => ArtifactInput::Digest(d),
            Input::Bytes(b) => ArtifactInput::Bytes(b),
        };
        self.verifier(VerifyLimits::default())
            .verify_artifact(&self.bundle, artifact)
    }

    /// The authority the case describes: its exact identity and issuer, or its key.
    pub(super) fn authority(&self, facts: &EvidenceFacts) -> Authority {
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
pub(super) fn expect_verified(id: &str) -> (EvidenceFacts, Option<Statement>) {
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
pub(super) fn expect_failure(id: &str, expect: &str) -> VerifyError {
    let case = Case::load(id);
    let r = case.verify();
    assert_eq!(case.expect, expect, "{id}");
    match r {
        Ok((facts, _)) => panic!("{id} unexpectedly verified: {facts:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_case_has_a_test() {
    let ids: Vec<String> = cases()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids, TESTED,
        "cases.json and the tests under tests/it/verify/ disagree"
    );
}
