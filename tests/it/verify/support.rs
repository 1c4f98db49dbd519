//! Helpers shared by the verification modules: kit evidence and the
//! reference verifiers, the shared cosign key and layers, and the bundles
//! and JSON pointers the tampering tests start from.

use std::sync::{Arc, OnceLock};

use provgate::digest::Digest;
use provgate::verify::{
    EvidenceFacts, EvidenceSource, Signer, SourceKind, TrustStore, Verified, VerifyError,
    VerifyLimits,
};

use crate::common::evidence::{
    Image, KeyPair, cosign_layers, gen_key, kit_file, kit_verifier, must_fail, push_image, shared,
    tag_schema_source,
};
use crate::common::kit::kit;
use crate::common::read_fixture;

pub(super) const EMAIL_ID: &str = "dev@example.com";

pub(super) const GOOGLE_ISS: &str = "https://accounts.google.com";

pub(super) const TLOG0: &str = "/verificationMaterial/tlogEntries/0";

pub(super) const CERT: &str = "/verificationMaterial/certificate/rawBytes";

/// The facts of evidence that must verify against the kit root.
pub(super) fn verified_facts(bundle: &[u8], digest: &Digest) -> EvidenceFacts {
    kit_verifier()
        .verify_bundle(bundle, digest, tag_schema_source())
        .unwrap_or_else(|e| panic!("kit evidence does not verify: {e}"))
        .facts()
        .clone()
}

pub(super) fn keyless(facts: &EvidenceFacts) -> &provgate::verify::KeylessSigner {
    match facts.signer() {
        Signer::Keyless(k) => k,
        other => panic!("expected a keyless signer, got {other:?}"),
    }
}

/// Writes bytes to a kit file and returns its path as a string.
pub(super) fn write_kit_file(stem: &str, bytes: &[u8]) -> String {
    let p = kit_file(stem);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

/// Runs a reference verifier (`verify-js`/`verify-py`) and returns whether it passed.
pub(super) fn reference_verdict(
    verifier: &str,
    bundle: &[u8],
    input: &str,
    extra: &[&str],
) -> bool {
    let path = write_kit_file("ref.json", bundle);
    let root = kit().trusted_root();
    let mut args = vec![verifier, &path, input];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--trusted-root", root.to_str().unwrap()]);
    kit().tk_output(&args).status.success()
}

pub(super) fn sign_blob(signer: &str, content: &[u8]) -> (String, Vec<u8>) {
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

pub(super) fn gh_facts() -> &'static EvidenceFacts {
    static F: OnceLock<EvidenceFacts> = OnceLock::new();
    F.get_or_init(|| verified_facts(&shared().prov, &shared().image.digest))
}

/// Verifies `bundle` with the kit verifier against the shared image digest.
pub(super) fn verify_kit(bundle: &[u8]) -> Result<Verified, VerifyError> {
    kit_verifier().verify_bundle(bundle, &shared().image.digest, tag_schema_source())
}

/// Verifies a tampered kit bundle and returns the nested sigstore error.
pub(super) fn kit_rejects(bundle: &[u8]) -> (VerifyError, String) {
    let err = must_fail(verify_kit(bundle));
    let text = err.to_string();
    (err, text)
}

pub(super) fn cosign_oci() -> (Vec<u8>, Digest) {
    (
        read_fixture("cosign/oci-attestation.sigstore.json"),
        "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
            .parse()
            .unwrap(),
    )
}

pub(super) struct CosignSetup {
    pub(super) pair: KeyPair,
    /// An image with a Rekor-logged `.sig` and `.att`.
    pub(super) signed: Image,
    /// An image with a `.sig` and an `.att` made with `--no-rekor`.
    pub(super) unlogged: Image,
}

pub(super) fn cosign_setup() -> &'static CosignSetup {
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

pub(super) fn trust_with_key(pair: &KeyPair) -> TrustStore {
    TrustStore::builder()
        .root_json("kit", &kit().trusted_root_json())
        .key_pem("cosign", &pair.public_pem)
        .unwrap()
        .build()
        .unwrap()
}

pub(super) fn layer_source(kind: SourceKind, manifest: &Digest, layer: &Digest) -> EvidenceSource {
    EvidenceSource {
        kind,
        manifest: Some(manifest.clone()),
        layer: Some(layer.clone()),
    }
}

pub(super) fn verify_sig_layer(image: &Image, trust: &TrustStore) -> Verified {
    try_sig_layer(image, trust, &image.digest).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn try_sig_layer(
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
pub(super) fn clone_trust(trust: &TrustStore) -> TrustStore {
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
