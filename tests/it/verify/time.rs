//! Trusted time: RFC 3161 timestamps from a trusted TSA, Rekor integrated
//! time, which of them a verdict uses, and certificates judged expired at
//! that time rather than at "now". Evidence is the kit's sigstore-js
//! provenance, cosign layers and TSA, sigstore-python's expired staging
//! bundle and the TSA bundles of `cases.json`.

use std::sync::Arc;

use provgate::verify::{
    ArtifactInput, SourceKind, TimeSource, TrustStore, VerifyError, VerifyLimits,
};
use serde_json::{Value, json};
use sigstore_verify::{CertificateError, Error as SvError, TimestampError};

use crate::common::evidence::{
    assert_readable, b64, cosign_layers, edit_str, fixture_verifier, flip_b64, json, key_error,
    keyless_error, kit_verifier, must_fail, mutate, push_image, shared, sign_provenance,
    tag_schema_source, unb64,
};
use crate::common::kit::{GH_ID, GH_ISS, kit};
use crate::common::read_fixture;

use super::cases::{expect_failure, expect_verified};
use super::support::{
    TLOG0, cosign_setup, kit_rejects, layer_source, reference_verdict, trust_with_key,
    verified_facts, verify_kit,
};

const TS0: &str =
    "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp";

#[test]
fn genuine_kit_provenance_without_tsa_verifies_with_rekor_time() {
    let v = verify_kit(&shared().prov_no_tsa).expect("genuine bundle verifies");
    assert_eq!(v.facts().time().source, TimeSource::Rekor);
    assert!(v.facts().tlog_verified());
}

#[test]
fn sigstore_js_provenance_without_tsa_takes_its_time_from_rekor() {
    let s = shared();
    let facts = verified_facts(&s.prov_no_tsa, &s.image.digest);
    assert_eq!(facts.time().source, TimeSource::Rekor);
    assert_eq!(facts.time().value, facts.tlog()[0].integrated_time);
    let id = ["--identity", GH_ID, "--issuer", GH_ISS];
    assert!(reference_verdict(
        "verify-js",
        &s.prov_no_tsa,
        &s.image.digest.to_string(),
        &id
    ));
}

#[test]
fn tampered_dsse_signature_no_longer_matches_its_rfc3161_timestamp() {
    // With a TSA timestamp, the timestamp (which commits to the signature
    // bytes) is checked first and no longer matches.
    let bad = mutate(&shared().prov, |v| {
        edit_str(v, "/dsseEnvelope/signatures/0/sig", |s| flip_b64(s, -1));
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Timestamp(TimestampError::Invalid(m)) if m.contains("hash mismatch")
        ),
        "{err:?}"
    );
    assert_readable(&err, &["RFC 3161", "hash mismatch"]);
}

#[test]
fn tampered_rfc3161_timestamp_fails_the_timestamp() {
    // The last bytes of the token are the TSA's CMS signature.
    let bad = mutate(&shared().prov, |v| edit_str(v, TS0, |s| flip_b64(s, -1)));
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Timestamp(TimestampError::Invalid(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid RFC 3161 timestamp"]);
}

#[test]
fn rfc3161_timestamp_of_another_signature_fails_the_timestamp() {
    // A genuine token from the trusted TSA, but over another bundle's signature.
    let s = shared();
    let other = json(&s.prov_again).pointer(TS0).unwrap().clone();
    let bad = mutate(&s.prov, |v| *v.pointer_mut(TS0).unwrap() = other);
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Timestamp(TimestampError::Invalid(m)) if m.contains("hash mismatch")
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid RFC 3161 timestamp", "hash mismatch"]);
}

#[test]
fn cosign_sig_without_rekor_but_with_an_rfc3161_timestamp_takes_its_time_from_the_tsa() {
    // What `cosign sign --tlog-upload=false --timestamp-server-url …` writes:
    // the kit's TSA timestamps the layer's signature.
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let v = provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default());
    let (manifest, layers) = cosign_layers(&s.unlogged, "sig");
    let l = &layers[0];
    let src = || layer_source(SourceKind::CosignSig, &manifest, &l.digest);
    let signature =
        crate::common::evidence::unb64(&l.annotations["dev.cosignproject.cosign/signature"]);
    let token = crate::common::evidence::kit_tsa_token(&signature);
    let mut ann = l.annotations.clone();
    ann.insert(
        "dev.sigstore.cosign/rfc3161timestamp".into(),
        serde_json::json!({"SignedRFC3161Timestamp": crate::common::evidence::b64(&token)})
            .to_string(),
    );
    let verified = v
        .verify_cosign_signature(&l.bytes, &ann, &s.unlogged.digest, src())
        .expect("timestamped unlogged signature verifies");
    assert_eq!(verified.facts().time().source, TimeSource::Rfc3161);
    assert!(!verified.facts().tlog_verified());

    // A timestamp over another signature is refused, not ignored.
    let other = crate::common::evidence::kit_tsa_token(b"another signature");
    ann.insert(
        "dev.sigstore.cosign/rfc3161timestamp".into(),
        serde_json::json!({"SignedRFC3161Timestamp": crate::common::evidence::b64(&other)})
            .to_string(),
    );
    let err = v
        .verify_cosign_signature(&l.bytes, &ann, &s.unlogged.digest, src())
        .unwrap_err();
    assert!(
        matches!(
            key_error(&err),
            SvError::Timestamp(sigstore_verify::TimestampError::Invalid(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid RFC 3161 timestamp", "hash mismatch"]);
}

// TSA-only keyless provenance (no tlog entry) is refused under a root that
// lists a log: advisory class 3 in tests/it/advisories.rs.

#[test]
fn provenance_without_tlog_and_without_timestamp_has_no_trusted_time_and_is_rejected() {
    let image = push_image("notime", &[]);
    let bundle = sign_provenance(&image, &["--no-tlog", "--no-tsa"]);
    let err = must_fail(kit_verifier().verify_bundle(&bundle, &image.digest, tag_schema_source()));
    // The kit root lists a log, so the missing entry alone refuses it.
    assert!(
        matches!(&err, VerifyError::MissingTlogEntry { .. }),
        "{err:?}"
    );
    // Under a root without logs, the missing time source is what fails.
    let mut root: serde_json::Value = serde_json::from_str(&kit().trusted_root_json()).unwrap();
    root.as_object_mut().unwrap().remove("tlogs");
    let trust = TrustStore::builder()
        .root_json("no-log", &root.to_string())
        .build()
        .unwrap();
    let err =
        must_fail(
            provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default())
                .verify_bundle(&bundle, &image.digest, tag_schema_source()),
        );
    assert!(matches!(keyless_error(&err), SvError::Bundle(_)), "{err:?}");
    assert_readable(
        &err,
        &["at least one tlog entry or timestamp verification data"],
    );
}

fn staging_blob() -> (Vec<u8>, Vec<u8>) {
    (
        read_fixture("sigstore-python/bundle_v3.txt.sigstore"),
        read_fixture("sigstore-python/bundle_v3.txt"),
    )
}

#[test]
fn expired_certificate_with_tlog_stripped_and_no_timestamp_is_rejected() {
    // The staging certificate expired in April 2024 (10-minute Fulcio
    // lifetime). With its Rekor entry removed and no RFC 3161 timestamp, the
    // only time left would be "now", at which the certificate is expired: the
    // bundle must be refused, not verified against the current time.
    let (bundle, artifact) = staging_blob();
    let stripped = mutate(&bundle, |v| {
        v["verificationMaterial"]
            .as_object_mut()
            .unwrap()
            .remove("tlogEntries");
    });
    // Under the staging root, which lists logs, the missing entry alone
    // refuses it (advisory class 3).
    let err = fixture_verifier("staging", "sigstore-python/trusted_root.staging.json")
        .verify_artifact(&stripped, ArtifactInput::Bytes(&artifact))
        .unwrap_err();
    assert!(
        matches!(&err, VerifyError::MissingTlogEntry { .. }),
        "{err:?}"
    );
    // Under the same root without its logs, the missing time is what fails.
    let mut root: Value =
        serde_json::from_slice(&read_fixture("sigstore-python/trusted_root.staging.json")).unwrap();
    root.as_object_mut().unwrap().remove("tlogs");
    let err = root_verifier("staging-no-log", &root)
        .verify_artifact(&stripped, ArtifactInput::Bytes(&artifact))
        .unwrap_err();
    assert!(matches!(keyless_error(&err), SvError::Bundle(_)), "{err:?}");
    assert_readable(
        &err,
        &["at least one tlog entry or timestamp verification data"],
    );
}

/// A verifier over one trusted root given as JSON.
fn root_verifier(name: &str, root: &Value) -> provgate::verify::Verifier {
    let trust = provgate::verify::TrustStore::builder()
        .root_json(name, &root.to_string())
        .build()
        .unwrap();
    provgate::verify::Verifier::new(std::sync::Arc::new(trust), VerifyLimits::default())
}

#[test]
fn expired_certificate_whose_integrated_time_is_unauthenticated_has_no_trusted_time() {
    // Keep the log entry but drop its SET: integratedTime is then an unsigned
    // claim, the inclusion proof does not authenticate it, and there is no
    // fallback to the current time.
    let (bundle, artifact) = staging_blob();
    let no_set = mutate(&bundle, |v| {
        v.pointer_mut(TLOG0)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove("inclusionPromise");
    });
    let err = fixture_verifier("staging", "sigstore-python/trusted_root.staging.json")
        .verify_artifact(&no_set, ArtifactInput::Bytes(&artifact))
        .unwrap_err();
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Timestamp(TimestampError::NoVerifiedTimestamp(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["no verified timestamp"]);
}

#[test]
fn expired_certificate_with_a_fresh_genuine_timestamp_is_rejected_as_expired() {
    // Replace the staging bundle's Rekor entry by an RFC 3161 timestamp that
    // the kit's (trusted) TSA issues *now* over the same signature. The
    // timestamp is authentic, so the trusted time is now, when the 2024
    // certificate has long expired.
    let (bundle, artifact) = staging_blob();
    let signature = unb64(
        json(&bundle)["messageSignature"]["signature"]
            .as_str()
            .unwrap(),
    );
    let token = crate::common::evidence::kit_tsa_token(&signature);
    let restamped = mutate(&bundle, |v| {
        let vm = v["verificationMaterial"].as_object_mut().unwrap();
        vm.remove("tlogEntries");
        vm.insert(
            "timestampVerificationData".into(),
            json!({"rfc3161Timestamps": [{"signedTimestamp": b64(&token)}]}),
        );
    });
    // Trust the staging Fulcio/CT material and the kit's TSA in one root.
    let mut root: Value =
        serde_json::from_slice(&read_fixture("sigstore-python/trusted_root.staging.json")).unwrap();
    let kit_root: Value =
        serde_json::from_str(&crate::common::kit::kit().trusted_root_json()).unwrap();
    root["timestampAuthorities"] = kit_root["timestampAuthorities"].clone();
    // Keyless evidence without an entry is refused outright under a root
    // that lists logs (advisory class 3); without them, the timestamp is
    // what the certificate is judged at.
    let err = root_verifier("staging+kit-tsa", &root)
        .verify_artifact(&restamped, ArtifactInput::Bytes(&artifact))
        .unwrap_err();
    assert!(
        matches!(&err, VerifyError::MissingTlogEntry { .. }),
        "{err:?}"
    );
    root.as_object_mut().unwrap().remove("tlogs");
    let v = root_verifier("staging+kit-tsa", &root);

    // The token itself is accepted (no timestamp error): the rejection is
    // the certificate's expiry at the authenticated time.
    let err = v
        .verify_artifact(&restamped, ArtifactInput::Bytes(&artifact))
        .unwrap_err();
    let inner = keyless_error(&err);
    assert!(
        matches!(
            inner,
            SvError::Certificate(CertificateError::ChainInvalid(m)) if m.contains("Expired")
        ),
        "{err:?}"
    );
    assert_readable(&err, &["certificate chain is invalid", "CertExpired"]);
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
fn rust_cosign_v3_blob_verifies_with_tsa_and_rekor() {
    let (facts, _) = expect_verified("rust-cosign-v3-blob");
    assert_eq!(facts.tlog()[0].kind, "hashedrekord/0.0.1");
}

#[test]
fn rust_conda_attestation_rekor2_verifies_with_tsa_time() {
    let (facts, statement) = expect_verified("rust-conda-attestation-rekor2");
    assert_eq!(facts.tlog()[0].kind, "hashedrekord/0.0.2");
    assert!(statement.is_some());
}
