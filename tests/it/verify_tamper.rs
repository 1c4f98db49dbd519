//! Tampered and hostile evidence.
//!
//! Every tampering test starts from a genuine bundle (signed by the kit's
//! sigstore-js, or a public-good fixture), changes exactly ONE field, and
//! asserts the specific check that rejects it: the `VerifyError` variant, the
//! nested `sigstore_verify::Error` variant for Sigstore checks, and a
//! readable message. The positive control for each base bundle is a test of
//! its own, so a failure here can never be "the base bundle was broken".
//!
//! The second half covers shape and limits: media type, malformed JSON,
//! oversized input, too many tlog entries / timestamps / DSSE signatures /
//! subjects, and a DSSE payloadType that is not in-toto.

use provgate::digest::Digest;
use provgate::verify::{
    ArtifactInput, STATEMENT_V1, Signer, SourceKind, Statement, StatementError, TimeSource,
    Verified, VerifyError, VerifyLimits,
};
use serde_json::{Value, json};
use sigstore_verify::{
    CertificateError, Error as SvError, TimestampError, TransparencyLogError as TlogError,
};

use crate::common::evidence::{
    assert_readable, b64, edit_str, fixture_verifier, flip_b64, json, keyless_error, kit_verifier,
    kit_verifier_with, must_fail, mutate, shared, source, statement_of, tag_schema_source, unb64,
};
use crate::common::kit::{GH_ID, GH_ISS};
use crate::common::read_fixture;

const TLOG0: &str = "/verificationMaterial/tlogEntries/0";
const CERT: &str = "/verificationMaterial/certificate/rawBytes";
const TS0: &str =
    "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp";

/// Verifies `bundle` with the kit verifier against the shared image digest.
fn verify_kit(bundle: &[u8]) -> Result<Verified, VerifyError> {
    kit_verifier().verify_bundle(bundle, &shared().image.digest, tag_schema_source())
}

/// Verifies a tampered kit bundle and returns the nested sigstore error.
fn kit_rejects(bundle: &[u8]) -> (VerifyError, String) {
    let err = must_fail(verify_kit(bundle));
    let text = err.to_string();
    (err, text)
}

// ---------------------------------------------------------------------------
// Positive controls.

#[test]
fn genuine_kit_provenance_with_tsa_verifies_with_proof_set_and_timestamp() {
    let s = shared();
    let v = verify_kit(&s.prov).expect("genuine bundle verifies");
    let facts = v.facts();
    assert!(facts.tlog_verified());
    assert_eq!(facts.tlog().len(), 1);
    assert_eq!(facts.tlog()[0].kind, "dsse/0.0.1");
    assert!(facts.tlog()[0].inclusion_proof && facts.tlog()[0].inclusion_promise);
    assert_eq!(facts.time().source, TimeSource::Rfc3161);
    assert_eq!(facts.subject(), &s.image.digest);
    assert_eq!(facts.evidence_digest(), &Digest::sha256_of(&s.prov));
    match facts.signer() {
        Signer::Keyless(k) => {
            assert_eq!(k.subject, GH_ID);
            assert_eq!(k.issuer, GH_ISS);
            assert_eq!(k.trusted_root, "kit");
        }
        other => panic!("expected a keyless signer, got {other:?}"),
    }
}

#[test]
fn genuine_kit_provenance_without_tsa_verifies_with_rekor_time() {
    let v = verify_kit(&shared().prov_no_tsa).expect("genuine bundle verifies");
    assert_eq!(v.facts().time().source, TimeSource::Rekor);
    assert!(v.facts().tlog_verified());
}

// ---------------------------------------------------------------------------
// One field changed in a kit-signed bundle.

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
fn tampered_inclusion_proof_root_hash_no_longer_matches_the_signed_checkpoint() {
    // The proof's rootHash duplicates the checkpoint's; the bundle validation
    // that precedes any cryptography catches the difference.
    let bad = mutate(&shared().prov, |v| {
        edit_str(v, &format!("{TLOG0}/inclusionProof/rootHash"), |s| {
            flip_b64(s, 0)
        });
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Bundle(sigstore_verify::bundle::Error::CheckpointRootMismatch)
        ),
        "{err:?}"
    );
    assert_readable(
        &err,
        &["inclusion proof root hash does not match checkpoint root hash"],
    );
}

#[test]
fn tampered_inclusion_proof_hash_fails_the_inclusion_proof() {
    let bad = mutate(&shared().prov, |v| {
        edit_str(v, &format!("{TLOG0}/inclusionProof/hashes/0"), |s| {
            flip_b64(s, 5)
        });
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionProof(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion proof"]);
}

#[test]
fn tampered_signed_entry_timestamp_fails_the_inclusion_promise() {
    let bad = mutate(&shared().prov, |v| {
        edit_str(
            v,
            &format!("{TLOG0}/inclusionPromise/signedEntryTimestamp"),
            |s| flip_b64(s, -1),
        );
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionPromise(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise", "SET"]);
}

#[test]
fn tampered_checkpoint_signature_fails_the_checkpoint() {
    let bad = mutate(&shared().prov, |v| {
        edit_str(
            v,
            &format!("{TLOG0}/inclusionProof/checkpoint/envelope"),
            |note| {
                // The signature line is "— <origin> <base64(keyhint || sig)>".
                let (body, sig_line) = note.trim_end().rsplit_once('\n').unwrap();
                let (prefix, sig) = sig_line.rsplit_once(' ').unwrap();
                format!("{body}\n{prefix} {}\n", flip_b64(sig, -1))
            },
        );
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::Checkpoint(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid checkpoint", "No valid Rekor signature"]);
}

#[test]
fn checkpoint_for_another_tree_size_fails_the_checkpoint() {
    // Change the tree size line of the signed note: the signature no longer
    // covers it.
    let bad = mutate(&shared().prov, |v| {
        edit_str(
            v,
            &format!("{TLOG0}/inclusionProof/checkpoint/envelope"),
            |note| {
                let mut lines: Vec<String> = note.split('\n').map(str::to_owned).collect();
                let size: u64 = lines[1].parse().unwrap();
                lines[1] = (size + 1).to_string();
                lines.join("\n")
            },
        );
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::Checkpoint(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid checkpoint"]);
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
fn shifted_integrated_time_fails_the_inclusion_promise() {
    for shift in [-3600_i64, -1, 1] {
        let bad = mutate(&shared().prov, |v| {
            edit_str(v, &format!("{TLOG0}/integratedTime"), |t| {
                (t.parse::<i64>().unwrap() + shift).to_string()
            });
        });
        let (err, _) = kit_rejects(&bad);
        assert!(
            matches!(
                keyless_error(&err),
                SvError::TransparencyLog(TlogError::InclusionPromise(_))
            ),
            "shift {shift}: {err:?}"
        );
        assert_readable(&err, &["invalid inclusion promise"]);
    }
}

#[test]
fn canonicalized_body_of_another_entry_fails_the_inclusion_promise() {
    // The SET signs the body, so swapping the body alone breaks it first.
    let s = shared();
    let other = json(&s.prov_again)
        .pointer(&format!("{TLOG0}/canonicalizedBody"))
        .unwrap()
        .clone();
    let bad = mutate(&s.prov, |v| {
        *v.pointer_mut(&format!("{TLOG0}/canonicalizedBody"))
            .unwrap() = other;
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionPromise(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise"]);
}

// A genuine log entry of another artifact, certificate or key, and the same
// entry twice: advisory class 4 in tests/it/advisories.rs.

#[test]
fn unknown_log_id_fails_the_inclusion_promise() {
    let bad = mutate(&shared().prov, |v| {
        edit_str(v, &format!("{TLOG0}/logId/keyId"), |s| flip_b64(s, 0));
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionPromise(m)) if m.contains("No log key")
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise"]);
}

#[test]
fn statement_for_another_digest_is_a_subject_mismatch_naming_both_digests() {
    let s = shared();
    let other = Digest::sha256_of(b"another image manifest");
    let err = must_fail(kit_verifier().verify_bundle(&s.prov, &other, tag_schema_source()));
    match &err {
        VerifyError::SubjectMismatch { expected, found } => {
            assert_eq!(expected, &other);
            assert!(found.contains(&s.image.digest.to_string()), "{found}");
        }
        e => panic!("expected SubjectMismatch, got {e:?}"),
    }
    assert_readable(
        &err,
        &[
            "evidence is for another digest",
            &other.to_string(),
            &s.image.digest.to_string(),
        ],
    );
}

#[test]
fn payload_type_changed_to_json_is_rejected_as_not_in_toto() {
    let bad = mutate(&shared().prov, |v| {
        v["dsseEnvelope"]["payloadType"] = "application/json".into();
    });
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(&err, VerifyError::PayloadType(t) if t == "application/json"),
        "{err:?}"
    );
    assert_readable(
        &err,
        &[
            "payloadType",
            "application/json",
            "application/vnd.in-toto+json",
        ],
    );
}

#[test]
fn statement_type_changed_is_rejected_before_any_signature_check() {
    let bad = mutate(&shared().prov, |v| {
        let mut st = statement_of(&shared().prov);
        st["_type"] = "https://example.com/NotAStatement".into();
        v["dsseEnvelope"]["payload"] = b64(&serde_json::to_vec(&st).unwrap()).into();
    });
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(&err, VerifyError::Statement(StatementError::UnknownType(t)) if t.contains("NotAStatement")),
        "{err:?}"
    );
    assert_readable(&err, &["unsupported in-toto statement type"]);
}

#[test]
fn payload_that_is_not_json_is_a_statement_error_never_success() {
    // cosign CVE-2026-39395 class: a payload that fails to parse must fail.
    let bad = mutate(&shared().prov, |v| {
        v["dsseEnvelope"]["payload"] = b64(b"not json at all").into();
    });
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(&err, VerifyError::Statement(StatementError::Malformed(_))),
        "{err:?}"
    );
    assert_readable(&err, &["in-toto statement is not valid JSON"]);
}

// ---------------------------------------------------------------------------
// One field changed in public-good fixtures (offline, real production data).

fn cosign_oci() -> (Vec<u8>, Digest) {
    (
        read_fixture("cosign/oci-attestation.sigstore.json"),
        "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
            .parse()
            .unwrap(),
    )
}

#[test]
fn genuine_cosign_oci_attestation_fixture_verifies() {
    let (bundle, digest) = cosign_oci();
    let v = fixture_verifier("pgi", "cosign/trusted_root_pgi.json")
        .verify_bundle(&bundle, &digest, tag_schema_source())
        .expect("fixture verifies");
    assert_eq!(v.facts().time().source, TimeSource::Rekor);
    match v {
        Verified::Attestation(a) => {
            assert_eq!(
                a.statement().statement_type(),
                "https://in-toto.io/Statement/v0.1"
            );
        }
        Verified::Signature(_) => panic!("expected an attestation"),
    }
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

#[test]
fn cosign_oci_attestation_fixture_with_backdated_integrated_time_fails_the_set() {
    let (bundle, digest) = cosign_oci();
    let bad = mutate(&bundle, |v| {
        edit_str(v, &format!("{TLOG0}/integratedTime"), |t| {
            (t.parse::<i64>().unwrap() - 86_400).to_string()
        });
    });
    let err = must_fail(
        fixture_verifier("pgi", "cosign/trusted_root_pgi.json").verify_bundle(
            &bad,
            &digest,
            tag_schema_source(),
        ),
    );
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionPromise(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise"]);
}

#[test]
fn staging_blob_fixture_rejects_another_artifact_and_a_tampered_message_digest() {
    let bundle = read_fixture("sigstore-python/bundle_v3.txt.sigstore");
    let artifact = read_fixture("sigstore-python/bundle_v3.txt");
    let v = fixture_verifier("staging", "sigstore-python/trusted_root.staging.json");
    v.verify_artifact(&bundle, ArtifactInput::Bytes(&artifact))
        .expect("genuine fixture verifies");

    let mut other = artifact.clone();
    other.push(b'!');
    let err = v
        .verify_artifact(&bundle, ArtifactInput::Bytes(&other))
        .unwrap_err();
    assert!(
        matches!(keyless_error(&err), SvError::ArtifactMismatch(_)),
        "{err:?}"
    );
    assert_readable(&err, &["artifact mismatch"]);

    let bad = mutate(&bundle, |v| {
        edit_str(v, "/messageSignature/messageDigest/digest", |s| {
            flip_b64(s, 0)
        });
    });
    let err = v
        .verify_artifact(&bad, ArtifactInput::Bytes(&artifact))
        .unwrap_err();
    assert!(
        matches!(keyless_error(&err), SvError::ArtifactMismatch(_)),
        "{err:?}"
    );
    assert_readable(&err, &["artifact mismatch", "message digest"]);
}

// ---------------------------------------------------------------------------
// An expired certificate must not verify without a trusted time.

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

// ---------------------------------------------------------------------------
// Shape and limits.

#[test]
fn unknown_bundle_media_type_is_reported_as_such() {
    let bad = mutate(&shared().prov, |v| {
        v["mediaType"] = "application/vnd.dev.sigstore.bundle.v9.9+json".into();
    });
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(&err, VerifyError::UnknownMediaType(m) if m.contains("v9.9")),
        "{err:?}"
    );
    assert_readable(&err, &["unknown bundle media type", "v9.9"]);
}

#[test]
fn malformed_json_is_malformed() {
    let prov = &shared().prov;
    for bad in [
        &prov[..prov.len() / 2],
        b"".as_slice(),
        b"[]".as_slice(),
        b"{\"mediaType\": 7}".as_slice(),
        b"\xff\xfe{}".as_slice(),
    ] {
        let err = must_fail(verify_kit(bad));
        assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
        assert_readable(&err, &["malformed bundle"]);
    }
}

#[test]
fn bundle_without_media_type_is_malformed() {
    let bad = mutate(&shared().prov, |v| {
        v.as_object_mut().unwrap().remove("mediaType");
    });
    let err = must_fail(verify_kit(&bad));
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle", "no mediaType"]);
}

#[test]
fn deeply_nested_json_is_malformed_not_a_stack_overflow() {
    let mut deep =
        String::from("{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"x\":");
    deep.push_str(&"[".repeat(100_000));
    deep.push_str(&"]".repeat(100_000));
    deep.push('}');
    let err = must_fail(verify_kit(deep.as_bytes()));
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle", "recursion limit"]);
}

#[test]
fn oversized_bundle_is_too_large_and_names_the_limit() {
    let prov = &shared().prov;
    let limits = VerifyLimits {
        max_bundle_bytes: 1024,
        ..VerifyLimits::default()
    };
    let err = must_fail(kit_verifier_with(limits.clone()).verify_bundle(
        prov,
        &shared().image.digest,
        tag_schema_source(),
    ));
    assert!(
        matches!(&err, VerifyError::TooLarge { what: "bundle", size, limit: 1024 } if *size == prov.len()),
        "{err:?}"
    );
    assert_readable(&err, &["1024", "maxBundleBytes", &prov.len().to_string()]);

    // At exactly the limit the size check passes.
    let exact = VerifyLimits {
        max_bundle_bytes: prov.len(),
        ..limits
    };
    kit_verifier_with(exact)
        .verify_bundle(prov, &shared().image.digest, tag_schema_source())
        .expect("a bundle of exactly the limit verifies");
}

fn duplicate_array(bundle: &[u8], pointer: &str, n: usize) -> Vec<u8> {
    mutate(bundle, |v| {
        let arr = v.pointer_mut(pointer).unwrap().as_array_mut().unwrap();
        let first = arr[0].clone();
        arr.clear();
        arr.extend(std::iter::repeat_n(first, n));
    })
}

#[test]
fn too_many_tlog_entries_are_refused_before_parsing() {
    let bad = duplicate_array(&shared().prov, "/verificationMaterial/tlogEntries", 33);
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(
            &err,
            VerifyError::TooMany {
                what: "transparency-log entries",
                count: 33,
                limit: 32
            }
        ),
        "{err:?}"
    );
    assert_readable(&err, &["transparency-log entries", "33", "32"]);

    // A lower configured limit applies; the genuine bundle sits at it.
    let one = VerifyLimits {
        max_tlog_entries: 1,
        ..VerifyLimits::default()
    };
    let two = duplicate_array(&shared().prov, "/verificationMaterial/tlogEntries", 2);
    let err = must_fail(kit_verifier_with(one.clone()).verify_bundle(
        &two,
        &shared().image.digest,
        tag_schema_source(),
    ));
    assert!(
        matches!(
            &err,
            VerifyError::TooMany {
                count: 2,
                limit: 1,
                ..
            }
        ),
        "{err:?}"
    );
    kit_verifier_with(one)
        .verify_bundle(&shared().prov, &shared().image.digest, tag_schema_source())
        .expect("one entry with a limit of one verifies");
}

#[test]
fn too_many_rfc3161_timestamps_are_refused() {
    let bad = duplicate_array(
        &shared().prov,
        "/verificationMaterial/timestampVerificationData/rfc3161Timestamps",
        33,
    );
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(
            &err,
            VerifyError::TooMany {
                what: "RFC 3161 timestamps",
                count: 33,
                limit: 32
            }
        ),
        "{err:?}"
    );
    assert_readable(&err, &["RFC 3161 timestamps", "33", "32"]);
}

#[test]
fn too_many_dsse_signatures_are_refused_and_two_are_malformed() {
    let many = duplicate_array(&shared().prov, "/dsseEnvelope/signatures", 33);
    let err = must_fail(verify_kit(&many));
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
    assert_readable(&err, &["DSSE signatures", "33"]);

    // Within the limit, a Sigstore bundle still carries exactly one
    // (advisory class 1, see tests/it/advisories.rs).
    let two = duplicate_array(&shared().prov, "/dsseEnvelope/signatures", 2);
    let err = must_fail(verify_kit(&two));
    assert!(
        matches!(&err, VerifyError::DsseSignatureCount(2)),
        "{err:?}"
    );
    assert_readable(&err, &["exactly one signature, found 2"]);

    let zero = mutate(&shared().prov, |v| {
        v["dsseEnvelope"]["signatures"] = json!([])
    });
    let err = must_fail(verify_kit(&zero));
    assert!(
        matches!(&err, VerifyError::DsseSignatureCount(0)),
        "{err:?}"
    );
    assert_readable(&err, &["exactly one signature, found 0"]);
}

fn statement_with_subjects(n: usize, digests_each: usize) -> Value {
    let subjects: Vec<Value> = (0..n)
        .map(|i| {
            let mut d = serde_json::Map::new();
            d.insert(
                "sha256".into(),
                Digest::sha256_of(&i.to_be_bytes()).hex().into(),
            );
            for j in 1..digests_each {
                d.insert(format!("alg{j}"), "00".into());
            }
            json!({"name": format!("s{i}"), "digest": d})
        })
        .collect();
    json!({
        "_type": STATEMENT_V1,
        "subject": subjects,
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {}
    })
}

#[test]
fn statement_with_too_many_subjects_is_refused() {
    let limits = VerifyLimits::default();
    let st = serde_json::to_vec(&statement_with_subjects(1025, 1)).unwrap();
    assert!(matches!(
        Statement::parse(&st, &limits),
        Err(StatementError::TooManySubjects {
            count: 1025,
            limit: 1024
        })
    ));
    let ok = serde_json::to_vec(&statement_with_subjects(1024, 1)).unwrap();
    assert_eq!(
        Statement::parse(&ok, &limits).unwrap().subjects().len(),
        1024
    );

    // In a bundle the limit is applied before any signature is checked.
    let bad = mutate(&shared().prov, |v| {
        v["dsseEnvelope"]["payload"] = b64(&st).into();
    });
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(
            &err,
            VerifyError::Statement(StatementError::TooManySubjects {
                count: 1025,
                limit: 1024
            })
        ),
        "{err:?}"
    );
    assert_readable(&err, &["1025 subjects", "1024"]);
}

#[test]
fn statement_subject_with_too_many_digests_is_refused() {
    let st = serde_json::to_vec(&statement_with_subjects(1, 33)).unwrap();
    let err = Statement::parse(&st, &VerifyLimits::default()).unwrap_err();
    assert_eq!(
        err,
        StatementError::TooManyDigests {
            count: 33,
            limit: 32
        }
    );
    assert_readable(&err, &["33 digests", "32"]);
    let ok = serde_json::to_vec(&statement_with_subjects(1, 32)).unwrap();
    assert!(Statement::parse(&ok, &VerifyLimits::default()).is_ok());
}

#[test]
fn statement_without_subjects_or_predicate_type_is_refused() {
    let mut st = statement_with_subjects(0, 1);
    let err =
        Statement::parse(&serde_json::to_vec(&st).unwrap(), &VerifyLimits::default()).unwrap_err();
    assert_eq!(err, StatementError::NoSubjects);
    assert_readable(&err, &["no subjects"]);

    st = statement_with_subjects(1, 1);
    st["predicateType"] = "".into();
    let err =
        Statement::parse(&serde_json::to_vec(&st).unwrap(), &VerifyLimits::default()).unwrap_err();
    assert_eq!(err, StatementError::NoPredicateType);
    assert_readable(&err, &["no predicateType"]);

    st = statement_with_subjects(1, 1);
    st["subject"][0]["digest"]["sha256"] = "ABC".into();
    let err =
        Statement::parse(&serde_json::to_vec(&st).unwrap(), &VerifyLimits::default()).unwrap_err();
    assert!(matches!(err, StatementError::BadDigest(_)), "{err:?}");
    assert_readable(&err, &["subject digest is malformed"]);
}

#[test]
fn message_signature_bundle_attached_to_another_image_is_a_subject_mismatch() {
    // A sign-blob bundle (hashedrekord) whose message digest is of some
    // other bytes, presented as evidence for an image digest.
    let blob = crate::common::evidence::kit_file("blob.txt");
    std::fs::write(&blob, b"not an image manifest\n").unwrap();
    let out = crate::common::evidence::kit_file("blob.sigstore.json");
    crate::common::kit::kit().tk(&[
        "sign-blob",
        blob.to_str().unwrap(),
        "--identity",
        "dev@example.com",
        "--issuer",
        "https://accounts.google.com",
        "--out",
        out.to_str().unwrap(),
    ]);
    let bundle = std::fs::read(&out).unwrap();
    let image = shared().image.digest.clone();
    let err =
        must_fail(kit_verifier().verify_bundle(&bundle, &image, source(SourceKind::Referrers)));
    assert!(
        matches!(&err, VerifyError::SubjectMismatch { expected, .. } if expected == &image),
        "{err:?}"
    );
    assert_readable(
        &err,
        &["evidence is for another digest", &image.to_string()],
    );

    // The same bundle presented for the digest of the bytes it signed verifies.
    let own = Digest::sha256_of(b"not an image manifest\n");
    let v = kit_verifier()
        .verify_bundle(&bundle, &own, source(SourceKind::Referrers))
        .expect("message signature over its own digest verifies");
    assert!(matches!(v, Verified::Signature(_)));
}
