//! Real signers against the kit's trusted root, and who may sign.
//!
//! Evidence comes from the kit's real clients: sigstore-js provenance (dsse
//! and intoto entries, with and without TSA or tlog), sigstore-python
//! attestations and blobs, and cosign-format `.sig`/`.att` layers fetched
//! from the kit's registry. A few verdicts are cross-checked with the kit's
//! reference verifiers (@sigstore/verify and sigstore-python).
//!
//! The identity tests apply [`Authority::admits`] to the facts of verified
//! evidence: exact and regex identities, issuers, Fulcio claims, trusted
//! roots, key vs keyless, and the tlog requirement.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use provgate::digest::Digest;
use provgate::verify::{
    ArtifactInput, Authority, AuthorityKind, EvidenceFacts, EvidenceSource, IdentityError,
    KeyFailure, KeylessIdentity, Matcher, MatcherSpec, Signer, SourceKind, TimeSource, TrustStore,
    Verified, VerifyError, VerifyLimits, check_claim_name,
};
use sigstore_verify::Error as SvError;

use crate::common::evidence::{
    Image, KeyPair, assert_readable, cosign_layers, gen_key, key_authority, key_error,
    keyless_authority, keyless_error, kit_file, kit_verifier, must_fail, mutate, push_image,
    shared, sign_provenance, sign_provenance_as, source, tag_schema_source,
};
use crate::common::kit::{GH_ID, GH_ISS, kit};

const EMAIL_ID: &str = "dev@example.com";
const GOOGLE_ISS: &str = "https://accounts.google.com";

/// The facts of evidence that must verify against the kit root.
fn verified_facts(bundle: &[u8], digest: &Digest) -> EvidenceFacts {
    kit_verifier()
        .verify_bundle(bundle, digest, tag_schema_source())
        .unwrap_or_else(|e| panic!("kit evidence does not verify: {e}"))
        .facts()
        .clone()
}

fn keyless(facts: &EvidenceFacts) -> &provgate::verify::KeylessSigner {
    match facts.signer() {
        Signer::Keyless(k) => k,
        other => panic!("expected a keyless signer, got {other:?}"),
    }
}

/// Writes bytes to a kit file and returns its path as a string.
fn write_kit_file(stem: &str, bytes: &[u8]) -> String {
    let p = kit_file(stem);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

/// Runs a reference verifier (`verify-js`/`verify-py`) and returns whether it passed.
fn reference_verdict(verifier: &str, bundle: &[u8], input: &str, extra: &[&str]) -> bool {
    let path = write_kit_file("ref.json", bundle);
    let root = kit().trusted_root();
    let mut args = vec![verifier, &path, input];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--trusted-root", root.to_str().unwrap()]);
    kit().tk_output(&args).status.success()
}

// ---------------------------------------------------------------------------
// Real signers.

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
fn sigstore_js_provenance_with_intoto_entry_verifies() {
    let image = push_image("intoto", &[]);
    let bundle = sign_provenance(&image, &["--entry-type", "intoto"]);
    let facts = verified_facts(&bundle, &image.digest);
    assert_eq!(facts.tlog()[0].kind, "intoto/0.0.2");
    assert!(facts.tlog_verified());
    assert!(keyless_authority(GH_ID, GH_ISS).admits(&facts).is_ok());
    let id = ["--identity", GH_ID, "--issuer", GH_ISS];
    assert!(reference_verdict(
        "verify-js",
        &bundle,
        &image.digest.to_string(),
        &id
    ));
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

fn sign_blob(signer: &str, content: &[u8]) -> (String, Vec<u8>) {
    let blob = write_kit_file("blob.txt", content);
    let out = kit_file("blob.sigstore.json");
    kit().tk(&[
        "sign-blob",
        &blob,
        "--identity",
        EMAIL_ID,
        "--issuer",
        GOOGLE_ISS,
        "--signer",
        signer,
        "--out",
        out.to_str().unwrap(),
    ]);
    (blob, std::fs::read(&out).unwrap())
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

// ---------------------------------------------------------------------------
// Keyless evidence without a transparency log.

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

// ---------------------------------------------------------------------------
// Identity: who may sign.

fn gh_facts() -> &'static EvidenceFacts {
    static F: OnceLock<EvidenceFacts> = OnceLock::new();
    F.get_or_init(|| verified_facts(&shared().prov, &shared().image.digest))
}

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

// ---------------------------------------------------------------------------
// cosign `.sig` / `.att` from the registry.

struct CosignSetup {
    pair: KeyPair,
    /// An image with a Rekor-logged `.sig` and `.att`.
    signed: Image,
    /// An image with a `.sig` and an `.att` made with `--no-rekor`.
    unlogged: Image,
}

fn cosign_setup() -> &'static CosignSetup {
    static S: OnceLock<CosignSetup> = OnceLock::new();
    S.get_or_init(|| {
        let pair = gen_key();
        let key = pair.key.to_str().unwrap().to_owned();
        let signed = push_image("cosign", &[]);
        kit().tk(&[
            "cosign-sig",
            &signed.reference(),
            "--key",
            &key,
            "--password",
            "pw",
        ]);
        let predicate = write_kit_file(
            "predicate.json",
            br#"{"buildDefinition":{"buildType":"https://example.com/build/v1"},"runDetails":{}}"#,
        );
        kit().tk(&[
            "cosign-att",
            &signed.reference(),
            "--key",
            &key,
            "--password",
            "pw",
            "--predicate-type",
            "https://slsa.dev/provenance/v1",
            "--predicate",
            &predicate,
        ]);
        let unlogged = push_image("cosign-norekor", &[]);
        kit().tk(&[
            "cosign-sig",
            &unlogged.reference(),
            "--key",
            &key,
            "--password",
            "pw",
            "--no-rekor",
        ]);
        kit().tk(&[
            "cosign-att",
            &unlogged.reference(),
            "--key",
            &key,
            "--password",
            "pw",
            "--predicate-type",
            "https://slsa.dev/provenance/v1",
            "--predicate",
            &predicate,
            "--no-rekor",
        ]);
        CosignSetup {
            pair,
            signed,
            unlogged,
        }
    })
}

fn trust_with_key(pair: &KeyPair) -> TrustStore {
    TrustStore::builder()
        .root_json("kit", &kit().trusted_root_json())
        .key_pem("cosign", &pair.public_pem)
        .unwrap()
        .build()
        .unwrap()
}

fn layer_source(kind: SourceKind, manifest: &Digest, layer: &Digest) -> EvidenceSource {
    EvidenceSource {
        kind,
        manifest: Some(manifest.clone()),
        layer: Some(layer.clone()),
    }
}

fn verify_sig_layer(image: &Image, trust: &TrustStore) -> Verified {
    try_sig_layer(image, trust, &image.digest).unwrap_or_else(|e| panic!("{e}"))
}

fn try_sig_layer(
    image: &Image,
    trust: &TrustStore,
    subject: &Digest,
) -> Result<Verified, VerifyError> {
    let (manifest, layers) = cosign_layers(image, "sig");
    assert_eq!(layers.len(), 1);
    let l = &layers[0];
    assert_eq!(l.media_type, provgate::verify::SIMPLE_SIGNING);
    let v = provgate::verify::Verifier::new(Arc::new(clone_trust(trust)), VerifyLimits::default());
    v.verify_cosign_signature(
        &l.bytes,
        &l.annotations,
        subject,
        layer_source(SourceKind::CosignSig, &manifest, &l.digest),
    )
}

/// TrustStore is not Clone; rebuild an equivalent one from the same inputs.
fn clone_trust(trust: &TrustStore) -> TrustStore {
    let mut b = TrustStore::builder();
    if trust.has_root("kit") {
        b = b.root_json("kit", &kit().trusted_root_json());
    }
    if trust.key("cosign").is_some() {
        b = b
            .key_pem("cosign", &cosign_setup().pair.public_pem)
            .unwrap();
    }
    b.build().unwrap()
}

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
fn cosign_sig_without_rekor_verifies_only_as_no_tlog_and_is_refused_when_tlog_is_required() {
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let v = verify_sig_layer(&s.unlogged, &trust);
    let facts = v.facts();
    assert!(!facts.tlog_verified());
    assert!(facts.tlog().is_empty());
    assert_eq!(facts.time().source, TimeSource::None);
    let err = key_authority(&trust, "cosign", true)
        .admits(facts)
        .unwrap_err();
    assert_readable(&err, &["requires a verified transparency-log entry"]);
    key_authority(&trust, "cosign", false)
        .admits(facts)
        .expect("admitted when the authority does not require a tlog");
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

#[test]
fn cosign_sig_with_rekor_bundle_and_a_key_only_trust_store_fails_the_tlog_check() {
    // Without a trusted root there is no Rekor key: the SET cannot be checked.
    let s = cosign_setup();
    let trust = TrustStore::builder()
        .key_pem("cosign", &s.pair.public_pem)
        .unwrap()
        .build()
        .unwrap();
    let err = try_sig_layer(&s.signed, &trust, &s.signed.digest).unwrap_err();
    assert!(
        matches!(key_error(&err), SvError::TransparencyLog(_)),
        "{err:?}"
    );
    assert_readable(&err, &["key \"cosign\""]);
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

#[test]
fn evidence_source_is_recorded_as_given() {
    let s = shared();
    let src = source(SourceKind::Referrers);
    let v = kit_verifier()
        .verify_bundle(&s.prov, &s.image.digest, src.clone())
        .unwrap();
    assert_eq!(v.facts().source(), &src);
}
