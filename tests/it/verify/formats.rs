//! Genuine evidence verifies in every format provgate reads: bundle v0.1 to
//! v0.3, DSSE and message signatures, in-toto Statement v0.1 and v1, with
//! the facts (entry kind, time source, signer, source) it should report.
//! Evidence comes from the kit's sigstore-js and sigstore-python, with
//! verdicts cross-checked by @sigstore/verify and sigstore-python, and from
//! the `cases.json` bundles of sigstore-python, sigstore-go, sigstore-rust
//! and cosign; the genuine bundles here are the positive controls of the
//! tampering tests in the other modules.

use provgate::digest::Digest;
use provgate::verify::{ArtifactInput, Signer, SourceKind, TimeSource, Verified};
use sigstore_verify::Error as SvError;

use crate::common::evidence::{
    assert_readable, fixture_verifier, keyless_authority, keyless_error, kit_file, kit_verifier,
    push_image, shared, source, tag_schema_source,
};
use crate::common::kit::{GH_ID, GH_ISS, kit};

use super::cases::expect_verified;
use super::support::{
    EMAIL_ID, GOOGLE_ISS, cosign_oci, keyless, reference_verdict, sign_blob, verify_kit,
    write_kit_file,
};

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
fn sigstore_js_provenance_with_dsse_entry_verifies_like_the_reference_verifiers() {
    let s = shared();
    let v = kit_verifier()
        .verify_bundle(&s.prov, &s.image.digest, tag_schema_source())
        .expect("sigstore-js provenance verifies");
    let Verified::Attestation(att) = &v else {
        panic!("expected an attestation")
    };
    assert_eq!(
        att.statement().predicate_type(),
        "https://slsa.dev/provenance/v1"
    );
    assert!(att.statement().binds(&s.image.digest));
    let facts = att.facts();
    assert_eq!(facts.tlog()[0].kind, "dsse/0.0.1");
    assert_eq!(facts.time().source, TimeSource::Rfc3161);
    assert_eq!(
        facts.format(),
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let k = keyless(facts);
    assert_eq!(
        k.claims.get("sourceRepositoryURI").map(String::as_str),
        Some("https://github.com/acme/app")
    );
    let digest = s.image.digest.to_string();
    let id = ["--identity", GH_ID, "--issuer", GH_ISS];
    assert!(reference_verdict("verify-js", &s.prov, &digest, &id));
    assert!(reference_verdict("verify-py", &s.prov, &digest, &id));
}

#[test]
fn sigstore_python_attestation_verifies_like_the_reference_verifier() {
    let image = push_image("pyattest", &[]);
    let predicate = write_kit_file(
        "sbom.json",
        br#"{"spdxVersion":"SPDX-2.3","name":"app","packages":[]}"#,
    );
    let out = kit_file("sbom.sigstore.json");
    kit().tk(&[
        "attest",
        &image.reference(),
        "--predicate-type",
        "https://spdx.dev/Document",
        "--predicate",
        &predicate,
        "--identity",
        GH_ID,
        "--issuer",
        GH_ISS,
        "--out",
        out.to_str().unwrap(),
    ]);
    let bundle = std::fs::read(&out).unwrap();
    let v = kit_verifier()
        .verify_bundle(&bundle, &image.digest, tag_schema_source())
        .expect("sigstore-python attestation verifies");
    let Verified::Attestation(att) = &v else {
        panic!("expected an attestation")
    };
    assert_eq!(
        att.statement().predicate_type(),
        "https://spdx.dev/Document"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(att.statement().raw()).unwrap()["predicate"]["spdxVersion"],
        "SPDX-2.3"
    );
    assert!(att.facts().tlog_verified());
    assert!(keyless_authority(GH_ID, GH_ISS).admits(att.facts()).is_ok());
    let id = ["--identity", GH_ID, "--issuer", GH_ISS];
    assert!(reference_verdict(
        "verify-py",
        &bundle,
        &image.digest.to_string(),
        &id
    ));
}

#[test]
fn sign_blob_from_python_and_js_verifies_as_bytes_and_as_digest() {
    let content = b"release notes for v1.2.3\n";
    for (signer, reference, media) in [
        (
            "py",
            "verify-py",
            "application/vnd.dev.sigstore.bundle.v0.3+json",
        ),
        (
            "js",
            "verify-js",
            "application/vnd.dev.sigstore.bundle+json;version=0.2",
        ),
    ] {
        let (blob, bundle) = sign_blob(signer, content);
        let v = kit_verifier();
        let (facts, statement) = v
            .verify_artifact(&bundle, ArtifactInput::Bytes(content))
            .unwrap_or_else(|e| panic!("{signer} blob: {e}"));
        assert!(statement.is_none());
        assert_eq!(facts.format(), media);
        assert_eq!(facts.tlog()[0].kind, "hashedrekord/0.0.1");
        assert_eq!(keyless(&facts).subject, EMAIL_ID);
        assert!(
            keyless_authority(EMAIL_ID, GOOGLE_ISS)
                .admits(&facts)
                .is_ok()
        );
        let digest = Digest::sha256_of(content);
        v.verify_artifact(&bundle, ArtifactInput::Digest(&digest))
            .unwrap_or_else(|e| panic!("{signer} blob by digest: {e}"));
        let id = ["--identity", EMAIL_ID, "--issuer", GOOGLE_ISS];
        assert!(
            reference_verdict(reference, &bundle, &blob, &id),
            "{signer}"
        );

        // Other bytes: the message digest no longer matches.
        let err = v
            .verify_artifact(&bundle, ArtifactInput::Bytes(b"release notes for v6.6.6\n"))
            .unwrap_err();
        assert!(
            matches!(keyless_error(&err), SvError::ArtifactMismatch(_)),
            "{signer}: {err:?}"
        );
        assert_readable(&err, &["artifact mismatch"]);
        let other = write_kit_file("other.txt", b"release notes for v6.6.6\n");
        assert!(
            !reference_verdict(reference, &bundle, &other, &id),
            "{reference} accepted another artifact"
        );
    }
}

#[test]
fn evidence_source_is_recorded_as_given() {
    let s = shared();
    let src = source(SourceKind::Referrers);
    let v = kit_verifier()
        .verify_bundle(&s.prov, &s.image.digest, src.clone())
        .unwrap();
    assert_eq!(v.facts().source(), &src);
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
fn go_example_provenance_verifies() {
    let (facts, statement) = expect_verified("go-example-provenance");
    assert!(facts.tlog()[0].inclusion_promise);
    assert_eq!(
        statement.unwrap().predicate_type(),
        "https://slsa.dev/provenance/v0.2"
    );
}

#[test]
fn rust_conda_attestation_verifies() {
    let (facts, statement) = expect_verified("rust-conda-attestation");
    assert_eq!(facts.tlog()[0].kind, "dsse/0.0.1");
    assert!(statement.is_some());
}

#[test]
fn cosign_oci_attestation_verifies_with_statement_v01() {
    let (facts, statement) = expect_verified("cosign-oci-attestation");
    assert_eq!(
        statement.unwrap().statement_type(),
        "https://in-toto.io/Statement/v0.1"
    );
    assert_eq!(facts.tlog()[0].kind, "dsse/0.0.1");
}
