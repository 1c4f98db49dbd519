//! cosign `.sig` (simple signing) and `.att` (DSSE) layers fetched from the
//! kit's registry: conversion from their annotations, verification with and
//! without a Rekor bundle, and refusal of changed annotations, payloads and
//! envelopes. The layers are written by the kit's cosign-format signer with
//! a generated key.

use std::sync::Arc;

use provgate::digest::Digest;
use provgate::verify::{SourceKind, TimeSource, TrustStore, Verified, VerifyError, VerifyLimits};
use sigstore_verify::Error as SvError;

use crate::common::evidence::{assert_readable, cosign_layers, gen_key, key_authority, key_error};

use super::support::{cosign_setup, layer_source, trust_with_key, verify_sig_layer};

#[test]
fn cosign_key_signed_sig_with_rekor_bundle_verifies_from_the_registry() {
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let v = verify_sig_layer(&s.signed, &trust);
    let Verified::Signature(sig) = &v else {
        panic!("expected a signature")
    };
    let payload: serde_json::Value =
        serde_json::from_slice(sig.payload().expect("simple-signing payload")).unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        s.signed.digest.to_string()
    );
    let facts = sig.facts();
    assert!(facts.tlog_verified());
    assert_eq!(facts.tlog()[0].kind, "hashedrekord/0.0.1");
    assert!(facts.tlog()[0].inclusion_promise && !facts.tlog()[0].inclusion_proof);
    assert_eq!(facts.time().source, TimeSource::Rekor);
    assert_eq!(facts.format(), "cosign-sig");
    assert_eq!(facts.source().kind, SourceKind::CosignSig);
    key_authority(&trust, "cosign", true)
        .admits(facts)
        .expect("key authority admits");
}

#[test]
fn cosign_key_signed_att_with_rekor_bundle_verifies_from_the_registry() {
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let (manifest, layers) = cosign_layers(&s.signed, "att");
    assert_eq!(layers.len(), 1);
    let l = &layers[0];
    assert_eq!(l.media_type, provgate::verify::DSSE_ENVELOPE);
    let v = provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default());
    let verified = v
        .verify_cosign_attestation(
            &l.bytes,
            &l.annotations,
            &s.signed.digest,
            layer_source(SourceKind::CosignAtt, &manifest, &l.digest),
        )
        .expect("cosign attestation verifies");
    let Verified::Attestation(att) = &verified else {
        panic!("expected an attestation")
    };
    assert_eq!(
        att.statement().predicate_type(),
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(att.facts().tlog()[0].kind, "dsse/0.0.1");
    assert!(att.facts().tlog_verified());
    assert_eq!(att.facts().format(), "cosign-att");
    assert_eq!(att.facts().evidence_digest(), &l.digest);

    // The same layer judged for another image: the statement does not name it.
    let other = Digest::sha256_of(b"other image");
    let err = v
        .verify_cosign_attestation(
            &l.bytes,
            &l.annotations,
            &other,
            layer_source(SourceKind::CosignAtt, &manifest, &l.digest),
        )
        .unwrap_err();
    assert!(
        matches!(&err, VerifyError::SubjectMismatch { expected, .. } if expected == &other),
        "{err:?}"
    );
    assert_readable(&err, &[&other.to_string(), &s.signed.digest.to_string()]);
}

#[test]
fn cosign_sig_without_rekor_still_has_its_signature_checked() {
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let v = provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default());
    let (manifest, layers) = cosign_layers(&s.unlogged, "sig");
    let l = &layers[0];
    assert!(!l.annotations.contains_key("dev.sigstore.cosign/bundle"));
    let src = || layer_source(SourceKind::CosignSig, &manifest, &l.digest);

    let mut ann = l.annotations.clone();
    let sig = ann.get_mut("dev.cosignproject.cosign/signature").unwrap();
    *sig = crate::common::evidence::flip_b64(sig, -1);
    let err = v
        .verify_cosign_signature(&l.bytes, &ann, &s.unlogged.digest, src())
        .unwrap_err();
    assert!(
        matches!(key_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
    assert_readable(&err, &["key \"cosign\"", "invalid signature"]);

    let mut payload: serde_json::Value = serde_json::from_slice(&l.bytes).unwrap();
    payload["optional"] = serde_json::json!({"injected": "yes"});
    let err = v
        .verify_cosign_signature(
            &serde_json::to_vec(&payload).unwrap(),
            &l.annotations,
            &s.unlogged.digest,
            src(),
        )
        .unwrap_err();
    assert!(
        matches!(key_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );

    // Another key does not verify it either.
    let stranger = gen_key();
    let trust = TrustStore::builder()
        .key_pem("stranger", &stranger.public_pem)
        .unwrap()
        .build()
        .unwrap();
    let err = provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default())
        .verify_cosign_signature(&l.bytes, &l.annotations, &s.unlogged.digest, src())
        .unwrap_err();
    assert!(
        matches!(key_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
}

#[test]
fn cosign_att_without_rekor_verifies_only_as_no_tlog_and_its_signature_is_checked() {
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let v =
        provgate::verify::Verifier::new(Arc::new(trust_with_key(&s.pair)), VerifyLimits::default());
    let (manifest, layers) = cosign_layers(&s.unlogged, "att");
    let l = &layers[0];
    let src = || layer_source(SourceKind::CosignAtt, &manifest, &l.digest);
    let verified = v
        .verify_cosign_attestation(&l.bytes, &l.annotations, &s.unlogged.digest, src())
        .expect("unlogged key-signed attestation verifies");
    let facts = verified.facts();
    assert!(!facts.tlog_verified());
    assert_eq!(facts.time().source, TimeSource::None);
    assert!(key_authority(&trust, "cosign", true).admits(facts).is_err());
    assert!(key_authority(&trust, "cosign", false).admits(facts).is_ok());

    // A changed statement (still naming the image) fails the signature.
    let mut env: serde_json::Value = serde_json::from_slice(&l.bytes).unwrap();
    let payload = crate::common::evidence::unb64(env["payload"].as_str().unwrap());
    let mut st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    st["predicate"] = serde_json::json!({"injected": true});
    env["payload"] = crate::common::evidence::b64(&serde_json::to_vec(&st).unwrap()).into();
    let err = v
        .verify_cosign_attestation(
            &serde_json::to_vec(&env).unwrap(),
            &l.annotations,
            &s.unlogged.digest,
            src(),
        )
        .unwrap_err();
    assert!(
        matches!(key_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );
    assert_readable(&err, &["invalid signature"]);
}

#[test]
fn cosign_sig_with_tampered_annotations_is_rejected() {
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let v = provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default());
    let (manifest, layers) = cosign_layers(&s.signed, "sig");
    let l = &layers[0];
    let src = || layer_source(SourceKind::CosignSig, &manifest, &l.digest);

    // The signature annotation, one bit flipped.
    let mut ann = l.annotations.clone();
    let sig = ann.get_mut("dev.cosignproject.cosign/signature").unwrap();
    *sig = crate::common::evidence::flip_b64(sig, -1);
    let err = v
        .verify_cosign_signature(&l.bytes, &ann, &s.signed.digest, src())
        .unwrap_err();
    assert!(
        matches!(key_error(&err), SvError::SignatureInvalid(_)),
        "{err:?}"
    );

    // The Rekor bundle annotation's integrated time shifted.
    let mut ann = l.annotations.clone();
    let rb = ann.get_mut("dev.sigstore.cosign/bundle").unwrap();
    let mut rbv: serde_json::Value = serde_json::from_str(rb).unwrap();
    let t = rbv["Payload"]["integratedTime"].as_i64().unwrap();
    rbv["Payload"]["integratedTime"] = (t - 60).into();
    *rb = rbv.to_string();
    let err = v
        .verify_cosign_signature(&l.bytes, &ann, &s.signed.digest, src())
        .unwrap_err();
    assert!(
        matches!(
            key_error(&err),
            SvError::TransparencyLog(sigstore_verify::TransparencyLogError::InclusionPromise(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise"]);

    // The payload, changed: the signature no longer covers it.
    let mut payload: serde_json::Value = serde_json::from_slice(&l.bytes).unwrap();
    payload["optional"] = serde_json::json!({"injected": "yes"});
    let payload = serde_json::to_vec(&payload).unwrap();
    let err = v
        .verify_cosign_signature(&payload, &l.annotations, &s.signed.digest, src())
        .unwrap_err();
    assert!(
        matches!(
            key_error(&err),
            SvError::SignatureInvalid(_) | SvError::TransparencyLog(_)
        ),
        "{err:?}"
    );

    // Annotations that cannot be converted.
    let mut ann = l.annotations.clone();
    ann.remove("dev.cosignproject.cosign/signature");
    let err = v
        .verify_cosign_signature(&l.bytes, &ann, &s.signed.digest, src())
        .unwrap_err();
    assert!(matches!(&err, VerifyError::Legacy(_)), "{err:?}");
    assert_readable(
        &err,
        &[
            "malformed cosign layer",
            "no dev.cosignproject.cosign/signature",
        ],
    );
    let mut ann = l.annotations.clone();
    ann.insert("dev.sigstore.cosign/bundle".into(), "{not json".into());
    let err = v
        .verify_cosign_signature(&l.bytes, &ann, &s.signed.digest, src())
        .unwrap_err();
    assert!(matches!(&err, VerifyError::Legacy(_)), "{err:?}");
    assert_readable(
        &err,
        &["malformed cosign layer", "dev.sigstore.cosign/bundle"],
    );
}

#[test]
fn cosign_att_with_non_in_toto_payload_type_or_too_many_signatures_is_rejected() {
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let v = provgate::verify::Verifier::new(Arc::new(trust), VerifyLimits::default());
    let (manifest, layers) = cosign_layers(&s.signed, "att");
    let l = &layers[0];
    let src = || layer_source(SourceKind::CosignAtt, &manifest, &l.digest);
    let mut env: serde_json::Value = serde_json::from_slice(&l.bytes).unwrap();

    let mut typed = env.clone();
    typed["payloadType"] = "application/vnd.dev.cosign.simplesigning.v1+json".into();
    let err = v
        .verify_cosign_attestation(
            &serde_json::to_vec(&typed).unwrap(),
            &l.annotations,
            &s.signed.digest,
            src(),
        )
        .unwrap_err();
    assert!(matches!(&err, VerifyError::PayloadType(_)), "{err:?}");
    assert_readable(&err, &["payloadType", "simplesigning"]);

    let sig = env["signatures"][0].clone();
    env["signatures"] = serde_json::Value::Array(vec![sig; 33]);
    let err = v
        .verify_cosign_attestation(
            &serde_json::to_vec(&env).unwrap(),
            &l.annotations,
            &s.signed.digest,
            src(),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::TooMany {
                what: "DSSE signatures",
                count: 33,
                limit: 32
            }
        ),
        "{err:?}"
    );

    let err = v
        .verify_cosign_attestation(b"not an envelope", &l.annotations, &s.signed.digest, src())
        .unwrap_err();
    assert!(matches!(&err, VerifyError::Legacy(_)), "{err:?}");
    assert_readable(&err, &["malformed cosign layer"]);

    let limits = VerifyLimits {
        max_bundle_bytes: 100,
        ..VerifyLimits::default()
    };
    let small = provgate::verify::Verifier::new(Arc::new(trust_with_key(&s.pair)), limits);
    let err = small
        .verify_cosign_attestation(&l.bytes, &l.annotations, &s.signed.digest, src())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::TooLarge {
                what: "DSSE envelope",
                limit: 100,
                ..
            }
        ),
        "{err:?}"
    );
    assert_readable(&err, &["DSSE envelope", "100"]);
}
