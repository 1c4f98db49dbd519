//! The signature must cover the evidence: a changed DSSE payload or
//! signature, or a genuine certificate from another signing, fails the
//! signature check, in provgate and in @sigstore/verify. Bundles are the
//! kit's sigstore-js provenance and cosign's public-good OCI attestation
//! fixture, each with one field changed.

use serde_json::json;
use sigstore_verify::Error as SvError;

use crate::common::evidence::{
    assert_readable, b64, edit_str, fixture_verifier, flip_b64, json, keyless_error, kit_verifier,
    must_fail, mutate, shared, statement_of, tag_schema_source,
};
use crate::common::kit::{GH_ID, GH_ISS};

use super::support::{CERT, cosign_oci, kit_rejects, reference_verdict};

#[test]
fn tampered_payload_fails_the_dsse_signature() {
    let bad = mutate(&shared().prov, |v| {
        let mut st = statement_of(&shared().prov);
        st["predicate"]["buildDefinition"]["externalParameters"]["workflow"]["ref"] =
            "refs/heads/evil".into();
        v["dsseEnvelope"]["payload"] = b64(&serde_json::to_vec(&st).unwrap()).into();
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(keyless_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
    assert_readable(&err, &["invalid signature", "DSSE", "trusted root \"kit\""]);
}

#[test]
fn tampered_dsse_signature_fails_the_signature_check() {
    // Without a TSA timestamp the signature check itself is what fails.
    let bad = mutate(&shared().prov_no_tsa, |v| {
        edit_str(v, "/dsseEnvelope/signatures/0/sig", |s| flip_b64(s, -1));
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(keyless_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
    assert_readable(&err, &["invalid signature"]);
}

#[test]
fn certificate_swapped_for_another_genuine_certificate_fails_the_signature() {
    // prov was signed first, so its certificate is valid at every time of
    // prov_again; only the key differs.
    let s = shared();
    let other_cert = json(&s.prov).pointer(CERT).unwrap().clone();
    let bad = mutate(&s.prov_again, |v| {
        *v.pointer_mut(CERT).unwrap() = other_cert
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(keyless_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
    assert_readable(&err, &["invalid signature"]);
}

#[test]
fn tampered_bundle_is_rejected_by_provgate_and_by_the_reference_verifier() {
    let s = shared();
    let bad = mutate(&s.prov_no_tsa, |v| {
        crate::common::evidence::edit_str(v, "/dsseEnvelope/signatures/0/sig", |x| {
            crate::common::evidence::flip_b64(x, -1)
        });
    });
    let err = must_fail(kit_verifier().verify_bundle(&bad, &s.image.digest, tag_schema_source()));
    assert!(
        matches!(keyless_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
    let id = ["--identity", GH_ID, "--issuer", GH_ISS];
    assert!(!reference_verdict(
        "verify-js",
        &bad,
        &s.image.digest.to_string(),
        &id
    ));
}

#[test]
fn cosign_oci_attestation_fixture_with_tampered_payload_fails_the_signature() {
    let (bundle, digest) = cosign_oci();
    let bad = mutate(&bundle, |v| {
        let mut st = statement_of(&bundle);
        st["predicate"] = json!({"injected": true});
        v["dsseEnvelope"]["payload"] = b64(&serde_json::to_vec(&st).unwrap()).into();
    });
    let err = must_fail(
        fixture_verifier("pgi", "cosign/trusted_root_pgi.json").verify_bundle(
            &bad,
            &digest,
            tag_schema_source(),
        ),
    );
    assert!(
        matches!(keyless_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
    assert_readable(&err, &["invalid signature", "trusted root \"pgi\""]);
}
