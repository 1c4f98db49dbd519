//! Key-signed evidence: verification with a configured public key (with or
//! without a Sigstore root), untrusted or missing keys, and key vs keyless
//! authorities. Evidence is the kit's cosign `.sig` layers signed with a
//! generated key and the sigstore-go key-signed bundles of `cases.json`.

use std::sync::Arc;

use provgate::verify::{
    Authority, KeyFailure, Signer, SourceKind, TimeSource, TrustStore, VerifyError, VerifyLimits,
};
use sigstore_verify::Error as SvError;

use crate::common::evidence::{
    assert_readable, cosign_layers, gen_key, key_authority, key_error, keyless_authority,
    kit_verifier,
};
use crate::common::kit::{GH_ID, GH_ISS, kit};

use super::cases::{Case, expect_verified};
use super::support::{
    cosign_setup, gh_facts, layer_source, trust_with_key, try_sig_layer, verify_sig_layer,
};

#[test]
fn key_authority_does_not_admit_keyless_evidence() {
    let keys = cosign_setup();
    let trust = trust_with_key(&keys.pair);
    let err = key_authority(&trust, "cosign", true)
        .admits(gh_facts())
        .unwrap_err();
    assert_readable(&err, &["signed keyless", GH_ID, "is a key"]);
}

#[test]
fn keyless_authority_does_not_admit_key_signed_evidence() {
    let keys = cosign_setup();
    let facts = verify_sig_layer(&keys.signed, &trust_with_key(&keys.pair))
        .facts()
        .clone();
    let err = keyless_authority(GH_ID, GH_ISS).admits(&facts).unwrap_err();
    assert_readable(&err, &["signed by key", "is keyless"]);
}

#[test]
fn cosign_sig_without_rekor_verifies_with_a_key_only_trust_store() {
    // A deployment that trusts only a public key (no Sigstore root at all)
    // must still verify key-signed evidence that has no tlog entry.
    let s = cosign_setup();
    let trust = TrustStore::builder()
        .key_pem("cosign", &s.pair.public_pem)
        .unwrap()
        .build()
        .unwrap();
    let v = try_sig_layer(&s.unlogged, &trust, &s.unlogged.digest)
        .expect("key-only trust verifies an unlogged key signature");
    assert!(!v.facts().tlog_verified());
}

#[test]
fn cosign_sig_with_an_untrusted_key_fails_the_signature() {
    let s = cosign_setup();
    let stranger = gen_key();
    let trust = TrustStore::builder()
        .root_json("kit", &kit().trusted_root_json())
        .key_pem("stranger", &stranger.public_pem)
        .unwrap()
        .build()
        .unwrap();
    let (manifest, layers) = cosign_layers(&s.signed, "sig");
    let l = &layers[0];
    let v = provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default());
    let err = v
        .verify_cosign_signature(
            &l.bytes,
            &l.annotations,
            &s.signed.digest,
            layer_source(SourceKind::CosignSig, &manifest, &l.digest),
        )
        .unwrap_err();
    assert!(
        matches!(key_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
    assert_readable(&err, &["key \"stranger\"", "invalid signature"]);

    // With no key configured at all, the failure says so.
    let v = kit_verifier();
    let err = v
        .verify_cosign_signature(
            &l.bytes,
            &l.annotations,
            &s.signed.digest,
            layer_source(SourceKind::CosignSig, &manifest, &l.digest),
        )
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Key(KeyFailure::NoKeys)),
        "{err:?}"
    );
    assert!(!err.is_tampering());
    assert_readable(&err, &["no public key is trusted"]);
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
fn go_example_publish_verifies_with_npm_managed_key() {
    let (facts, _) = expect_verified("go-example-publish");
    assert!(matches!(facts.signer(), Signer::Key { key_name, .. } if key_name == "key"));
    assert_eq!(facts.time().source, TimeSource::Rekor);
}
