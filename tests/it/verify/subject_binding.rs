//! Evidence must be about what is being verified: in-toto statements are
//! parsed with limits (type, subjects, digests) before any signature check,
//! and a statement, simple-signing payload or message digest that names
//! another digest or other bytes is a mismatch. Evidence is the kit's
//! sigstore-js, sign-blob and cosign output and the sigstore-go and
//! sigstore-python bundles of `cases.json`.

use provgate::digest::Digest;
use provgate::verify::{
    ArtifactInput, STATEMENT_V1, SourceKind, Statement, StatementError, Verified, VerifyError,
    VerifyLimits,
};
use serde_json::{Value, json};
use sigstore_verify::Error as SvError;

use crate::common::evidence::{
    assert_readable, b64, edit_str, fixture_verifier, flip_b64, keyless_error, kit_verifier,
    must_fail, mutate, shared, source, statement_of, tag_schema_source,
};
use crate::common::read_fixture;

use super::cases::expect_verified;
use super::support::{cosign_setup, trust_with_key, try_sig_layer, verify_kit};

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

#[test]
fn cosign_sig_presented_for_another_image_is_a_subject_mismatch() {
    let s = cosign_setup();
    let other = Digest::sha256_of(b"another manifest");
    let err = try_sig_layer(&s.signed, &trust_with_key(&s.pair), &other).unwrap_err();
    assert!(
        matches!(&err, VerifyError::SubjectMismatch { expected, found } if expected == &other && found == &s.signed.digest.to_string()),
        "{err:?}"
    );
    assert_readable(&err, &[&other.to_string(), &s.signed.digest.to_string()]);
}

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
