//! Advisory classes (issue 11): verifier and decision bugs found in cosign,
//! sigstore-go, sigstore-js, Kyverno, Conforma and go-witness in 2025-26.
//!
//! One module per class; `docs/advisories.md` maps each class to the check
//! in `src/verify` and to these tests. Every test starts from real kit
//! material (signed by the kit's sigstore-js, its cosign-format generator,
//! or provgate's VSA signer with a kit-generated key), changes the JSON the
//! way an attacker would, and asserts the specific rejection. Each would
//! fail if the bypass came back.
//!
//! The last module pins `provgate verify`'s identity rule (issue 13 item 4).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use provgate::digest::Digest;
use provgate::gate::vsa::{PolicyEntry, VSA_PREDICATE, VsaSigner};
use provgate::verify::{
    ArtifactInput, KeyFailure, Signer, SourceKind, TimeKind, TimeSource, TrustStore, Verified,
    Verifier, VerifyError, VerifyLimits,
};
use serde_json::{Value, json};
use sigstore_verify::{Error as SvError, TransparencyLogError as TlogError};

use crate::common::evidence::{
    CosignLayer, Image, KeyPair, assert_readable, b64, cosign_layers, gen_key, json, key_authority,
    keyless_authority, kit_file, kit_trust, kit_verifier, must_fail, mutate, push_image, shared,
    sign_provenance, tag_schema_source, unb64,
};
use crate::common::kit::{GH_ID, GH_ISS, kit};

const TLOG: &str = "/verificationMaterial/tlogEntries";
const TLOG0: &str = "/verificationMaterial/tlogEntries/0";

/// Verifies `bundle` with the kit verifier against the shared image digest.
fn verify_shared(bundle: &[u8]) -> Result<Verified, VerifyError> {
    kit_verifier().verify_bundle(bundle, &shared().image.digest, tag_schema_source())
}

/// A trust store with the kit root (unless `root` is false) and `keys`.
fn trust_with(root: bool, keys: &[(&str, &str)]) -> TrustStore {
    let mut b = TrustStore::builder();
    if root {
        b = b.root_json("kit", &kit().trusted_root_json());
    }
    for (name, pem) in keys {
        b = b.key_pem(name, pem).unwrap();
    }
    b.build().unwrap()
}

fn verifier(trust: TrustStore) -> Verifier {
    Verifier::new(Arc::new(trust), VerifyLimits::default())
}

/// Writes bytes to a fresh kit file.
fn write(stem: &str, bytes: &[u8]) -> PathBuf {
    let p = kit_file(stem);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Cosign-format evidence from the kit's generator, shared by the classes.
struct Cosign {
    pair: KeyPair,
    /// A second key pair, trusted by no one.
    other: KeyPair,
    /// `.sig` and `.att` with a Rekor bundle annotation (signed with `pair`).
    logged: Image,
    /// `.sig` and `.att` made with `--no-rekor` (signed with `pair`).
    unlogged: Image,
}

fn cosign() -> &'static Cosign {
    static C: OnceLock<Cosign> = OnceLock::new();
    C.get_or_init(|| {
        let k = kit();
        let pair = gen_key();
        let other = gen_key();
        let predicate = write(
            "predicate.json",
            br#"{"buildDefinition":{"buildType":"https://example.com/build/v1"},"runDetails":{}}"#,
        );
        let predicate = predicate.to_str().unwrap();
        let sign = |image: &Image, key: &KeyPair, extra: &[&str]| {
            let key = key.key.to_str().unwrap();
            let reference = image.reference();
            let mut sig = vec!["cosign-sig", &reference, "--key", key, "--password", "pw"];
            sig.extend_from_slice(extra);
            k.tk(&sig);
            let mut att = vec![
                "cosign-att",
                &reference,
                "--key",
                key,
                "--password",
                "pw",
                "--predicate-type",
                "https://slsa.dev/provenance/v1",
                "--predicate",
                predicate,
            ];
            att.extend_from_slice(extra);
            k.tk(&att);
        };
        let logged = push_image("adv-cosign", &[]);
        sign(&logged, &pair, &[]);
        let unlogged = push_image("adv-cosign-norekor", &[]);
        sign(&unlogged, &pair, &["--no-rekor"]);
        Cosign {
            pair,
            other,
            logged,
            unlogged,
        }
    })
}

/// The single layer of a cosign tag, and the evidence source for it.
fn layer(image: &Image, suffix: &str) -> (CosignLayer, provgate::verify::EvidenceSource) {
    let (manifest, mut layers) = cosign_layers(image, suffix);
    assert_eq!(layers.len(), 1, "{suffix} of {}", image.reference());
    let l = layers.remove(0);
    let kind = if suffix == "sig" {
        SourceKind::CosignSig
    } else {
        SourceKind::CosignAtt
    };
    let src = provgate::verify::EvidenceSource {
        kind,
        manifest: Some(manifest),
        layer: Some(l.digest.clone()),
    };
    (l, src)
}

/// A verifier trusting the kit root and the cosign key `pair`.
fn cosign_verifier() -> Verifier {
    verifier(trust_with(true, &[("cosign", &cosign().pair.public_pem)]))
}

/// A genuine key-signed DSSE bundle v0.3 with public-key material and no
/// log entry: the `.att` envelope of the unlogged cosign image, as a bundle.
fn key_signed_bundle() -> Vec<u8> {
    let (l, _) = layer(&cosign().unlogged, "att");
    let envelope: Value = serde_json::from_slice(&l.bytes).unwrap();
    serde_json::to_vec(&json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "cosign"}},
        "dsseEnvelope": envelope,
    }))
    .unwrap()
}

/// Runs the built `provgate` with `args`.
fn provgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(args)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("run provgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `provgate verify` against the kit root only (no public-good root).
fn kit_verify_cli(bundle: &Path, artifact: &str, extra: &[&str]) -> Output {
    let root = format!("kit={}", kit().trusted_root().display());
    let mut args = vec![
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--no-public-good",
        "--trusted-root",
        &root,
    ];
    args.extend_from_slice(extra);
    args.push(artifact);
    provgate(&args)
}

// ===========================================================================
/// Class 1: a DSSE envelope with more than one signature. The bundle spec
/// allows exactly one; a verifier that checks "any" signature lets an
/// attacker pair a valid signature with material that vouches for another.
mod dsse_signature_count {
    use super::*;

    #[test]
    fn dsse_envelope_with_two_signatures_in_a_bundle_is_rejected() {
        let s = shared();
        // Its own signature twice, and its own next to another genuine one.
        let other_sig = json(&s.prov_again)["dsseEnvelope"]["signatures"][0].clone();
        for second in [
            json(&s.prov)["dsseEnvelope"]["signatures"][0].clone(),
            other_sig,
        ] {
            let bad = mutate(&s.prov, |v| {
                v["dsseEnvelope"]["signatures"]
                    .as_array_mut()
                    .unwrap()
                    .push(second.clone());
            });
            let err = must_fail(verify_shared(&bad));
            assert!(matches!(err, VerifyError::DsseSignatureCount(2)), "{err:?}");
            assert_readable(&err, &["exactly one signature, found 2"]);
        }
        // The genuine bundle (one signature) verifies.
        verify_shared(&s.prov).expect("genuine bundle verifies");
    }

    #[test]
    fn dsse_envelope_with_no_signature_in_a_bundle_is_rejected() {
        let bad = mutate(&shared().prov, |v| {
            v["dsseEnvelope"]["signatures"] = json!([]);
        });
        let err = must_fail(verify_shared(&bad));
        assert!(matches!(err, VerifyError::DsseSignatureCount(0)), "{err:?}");
        let bad = mutate(&shared().prov, |v| {
            v["dsseEnvelope"]
                .as_object_mut()
                .unwrap()
                .remove("signatures");
        });
        let err = must_fail(verify_shared(&bad));
        assert!(matches!(err, VerifyError::DsseSignatureCount(0)), "{err:?}");
    }

    #[test]
    fn dsse_envelope_with_two_signatures_in_a_cosign_att_layer_is_rejected() {
        let c = cosign();
        let v = cosign_verifier();
        for image in [&c.logged, &c.unlogged] {
            let (l, src) = layer(image, "att");
            // Positive control: the genuine layer verifies.
            v.verify_cosign_attestation(&l.bytes, &l.annotations, &image.digest, src.clone())
                .expect("genuine .att layer verifies");
            let mut env: Value = serde_json::from_slice(&l.bytes).unwrap();
            let sig = env["signatures"][0].clone();
            env["signatures"].as_array_mut().unwrap().push(sig);
            let err = v
                .verify_cosign_attestation(
                    &serde_json::to_vec(&env).unwrap(),
                    &l.annotations,
                    &image.digest,
                    src,
                )
                .unwrap_err();
            assert!(matches!(err, VerifyError::DsseSignatureCount(2)), "{err:?}");
            assert_readable(&err, &["exactly one signature, found 2"]);
        }
    }
}

// ===========================================================================
/// Class 2: public-key material where a certificate identity is required.
/// The hint in `verificationMaterial.publicKey` is unauthenticated; a
/// verifier that skips the identity policy for key bundles admits anyone.
mod public_key_where_identity_required {
    use super::*;

    #[test]
    fn public_key_bundle_is_not_admitted_by_a_keyless_authority() {
        let bundle = key_signed_bundle();
        let digest = &cosign().unlogged.digest;
        let facts = cosign_verifier()
            .verify_bundle(&bundle, digest, tag_schema_source())
            .expect("genuine key-signed bundle verifies with its key")
            .facts()
            .clone();
        assert!(matches!(facts.signer(), Signer::Key { .. }));
        let mut authority = keyless_authority(GH_ID, GH_ISS);
        authority.require_tlog = false;
        let refused = authority.admits(&facts).unwrap_err();
        assert_readable(&refused, &["signed by key", "is keyless"]);
    }

    #[test]
    fn public_key_bundle_never_verifies_without_a_matching_configured_key() {
        let bundle = key_signed_bundle();
        let digest = &cosign().unlogged.digest;
        // No key at all: nothing can vouch for it, whatever roots exist.
        let err = verifier(kit_trust())
            .verify_bundle(&bundle, digest, tag_schema_source())
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::Key(KeyFailure::NoKeys)),
            "{err:?}"
        );
        // Another key, even one named by the hint: the signature decides.
        let other = &cosign().other.public_pem;
        let err = verifier(trust_with(true, &[("cosign", other)]))
            .verify_bundle(&bundle, digest, tag_schema_source())
            .unwrap_err();
        match &err {
            VerifyError::Key(KeyFailure::Failed(errs)) => {
                assert_eq!(errs.len(), 1);
                assert!(matches!(errs[0].1, SvError::SignatureInvalid(_)), "{err:?}");
            }
            e => panic!("expected a key failure, got {e:?}"),
        }
    }

    #[test]
    fn certificate_bundle_relabelled_as_public_key_never_verifies() {
        // The attacker drops the certificate and claims a key instead.
        let bad = mutate(&shared().prov, |v| {
            let m = v["verificationMaterial"].as_object_mut().unwrap();
            m.remove("certificate");
            m.insert("publicKey".into(), json!({"hint": GH_ID}));
        });
        let err = must_fail(verify_shared(&bad));
        assert!(
            matches!(err, VerifyError::Key(KeyFailure::NoKeys)),
            "{err:?}"
        );
        let v = cosign_verifier();
        let err = v
            .verify_bundle(&bad, &shared().image.digest, tag_schema_source())
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::Key(KeyFailure::Failed(_))),
            "{err:?}"
        );
    }

    #[test]
    fn provgate_verify_with_an_identity_rejects_a_public_key_bundle() {
        let bundle = write("pk.json", &key_signed_bundle());
        let digest = cosign().unlogged.digest.to_string();
        let out = kit_verify_cli(
            &bundle,
            &digest,
            &[
                "--certificate-identity",
                GH_ID,
                "--certificate-oidc-issuer",
                GH_ISS,
                "--allow-no-tlog",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(!text(&out.stdout).contains("VERIFIED"));
        assert!(
            text(&out.stderr).contains("no public key is trusted"),
            "{}",
            text(&out.stderr)
        );
    }
}

// ===========================================================================
/// Class 3: an RFC 3161 timestamp but no transparency-log entry. sigstore-go,
/// -js and -python refuse keyless evidence without an entry whenever the
/// trusted root lists a log; every provgate path does too. Key-signed
/// evidence keeps its explicit opt-in (`tlog: optional`, `--allow-no-tlog`).
mod timestamp_without_tlog {
    use super::*;
    use crate::common::server::{
        Server, Setup, TestContract, allowed, message, review_of, unsigned_image,
    };

    /// Keyless provenance with a TSA timestamp and no log entry, and its image.
    fn tsa_only() -> &'static (Image, Vec<u8>) {
        static B: OnceLock<(Image, Vec<u8>)> = OnceLock::new();
        B.get_or_init(|| {
            let image = push_image("adv-tsa-only", &[]);
            let bundle = sign_provenance(&image, &["--no-tlog"]);
            (image, bundle)
        })
    }

    #[test]
    fn rfc3161_timestamp_without_tlog_entry_is_rejected_for_keyless_evidence() {
        let (image, bundle) = tsa_only();
        let j = json(bundle);
        assert!(j.pointer(TLOG0).is_none(), "the kit bundle has no entry");
        assert!(
            j.pointer("/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0")
                .is_some()
        );
        let err =
            must_fail(kit_verifier().verify_bundle(bundle, &image.digest, tag_schema_source()));
        match &err {
            VerifyError::MissingTlogEntry { roots } => assert_eq!(roots, &["kit".to_owned()]),
            e => panic!("expected MissingTlogEntry, got {e:?}"),
        }
        assert_readable(
            &err,
            &[
                "no transparency-log entry",
                "\"kit\"",
                "RFC 3161 timestamp alone",
            ],
        );
        // The same through the artifact path (`provgate verify`, conformance).
        let err = kit_verifier()
            .verify_artifact(bundle, ArtifactInput::Digest(&image.digest))
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::MissingTlogEntry { .. }),
            "{err:?}"
        );
        // sigstore-python, the reference, refuses it too.
        let path = write("tsa-only.json", bundle);
        let root = kit().trusted_root();
        let out = kit().tk_output(&[
            "verify-py",
            path.to_str().unwrap(),
            &image.digest.to_string(),
            "--identity",
            GH_ID,
            "--issuer",
            GH_ISS,
            "--trusted-root",
            root.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "sigstore-python accepted it");
    }

    #[test]
    fn rfc3161_timestamp_without_tlog_entry_is_rejected_by_provgate_verify_even_with_allow_no_tlog()
    {
        let (image, bundle) = tsa_only();
        let path = write("tsa-only.json", bundle);
        let out = kit_verify_cli(
            &path,
            &image.digest.to_string(),
            &[
                "--certificate-identity",
                GH_ID,
                "--certificate-oidc-issuer",
                GH_ISS,
                "--allow-no-tlog",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains("no transparency-log entry"),
            "{}",
            text(&out.stderr)
        );
    }

    #[test]
    fn rfc3161_timestamp_without_tlog_entry_is_rejected_by_the_conformance_entry_point() {
        let (image, bundle) = tsa_only();
        let path = write("tsa-only.json", bundle);
        let root = kit().trusted_root();
        let out = provgate(&[
            "conformance",
            "verify-bundle",
            "--bundle",
            path.to_str().unwrap(),
            "--certificate-identity",
            GH_ID,
            "--certificate-oidc-issuer",
            GH_ISS,
            "--trusted-root",
            root.to_str().unwrap(),
            &image.digest.to_string(),
        ]);
        assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("no transparency-log entry"),
            "{}",
            text(&out.stderr)
        );
        // Positive control: the same command on logged provenance passes.
        let s = shared();
        let logged = write("logged.json", &s.prov);
        let out = provgate(&[
            "conformance",
            "verify-bundle",
            "--bundle",
            logged.to_str().unwrap(),
            "--certificate-identity",
            GH_ID,
            "--certificate-oidc-issuer",
            GH_ISS,
            "--trusted-root",
            root.to_str().unwrap(),
            &s.image.digest.to_string(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }

    #[test]
    fn keyless_timestamp_only_evidence_is_denied_at_admission_even_with_tlog_optional() {
        // A contract whose authority opts out of the tlog requirement: it
        // still may not admit keyless evidence the kit root would log.
        let img = unsigned_image("adv-tsa-adm");
        let bundle = kit().path(&format!(
            "{}.tsa-only.json",
            crate::common::kit::repo_name("b")
        ));
        kit().sign_provenance(&img.pinned(), &bundle, &["--no-tlog"]);
        kit().tk(&["attach", &img.pinned(), bundle.to_str().unwrap()]);
        let s = Server::start_prepared(
            Setup {
                contracts: Vec::new(),
                bindings: "  - name: prod\n    contracts: [tlog-optional]\n    mode: enforce\n"
                    .into(),
                ..Setup::default()
            },
            |dir| {
                let c = TestContract {
                    name: "tlog-optional".into(),
                    version: "1".into(),
                    rego: crate::common::server::NEEDS_PROVENANCE.into(),
                };
                let contracts = dir.join("contracts");
                c.write(&contracts);
                let yaml = contracts.join("tlog-optional/contract.yaml");
                let mut text = std::fs::read_to_string(&yaml).unwrap();
                text.push_str("    tlog: optional\n");
                std::fs::write(&yaml, text).unwrap();
            },
        );
        let review = |image: &str| {
            review_of(&[
                "--deployment",
                "web",
                "--image",
                image,
                "--namespace",
                "prod",
            ])
        };
        let v = s.review("/validate", &review(&img.tagged));
        assert!(
            !allowed(&v),
            "TSA-only keyless provenance was admitted: {v}"
        );
        assert!(message(&v).contains("slsa-provenance"), "{}", message(&v));
        // Positive control: logged provenance passes the same contract.
        let good = crate::common::server::signed_image("adv-tsa-adm-good");
        let v = s.review("/validate", &review(&good.tagged));
        assert!(allowed(&v), "{v}");
    }

    #[test]
    fn keyless_timestamp_only_evidence_verifies_under_a_root_that_lists_no_log() {
        // GitHub's private-repository instance has no Rekor: its root lists
        // no log, and TSA-only evidence verifies, as in the Sigstore clients.
        // Authorities still require a tlog unless they opt out.
        let (image, bundle) = tsa_only();
        let mut root: Value = serde_json::from_str(&kit().trusted_root_json()).unwrap();
        root.as_object_mut().unwrap().remove("tlogs");
        let trust = TrustStore::builder()
            .root_json("no-log", &root.to_string())
            .build()
            .unwrap();
        let v = verifier(trust)
            .verify_bundle(bundle, &image.digest, tag_schema_source())
            .expect("TSA-only keyless evidence verifies under a root without logs");
        let facts = v.facts();
        assert!(!facts.tlog_verified());
        assert_eq!(facts.time().source, TimeSource::Rfc3161);
        let strict = keyless_authority(GH_ID, GH_ISS);
        assert!(strict.admits(facts).is_err());
        let mut lenient = strict;
        lenient.require_tlog = false;
        assert!(lenient.admits(facts).is_ok());
    }

    #[test]
    fn key_signed_evidence_without_tlog_keeps_its_explicit_opt_in() {
        // cosign `--tlog-upload=false` users: the authority must say so.
        let c = cosign();
        let trust = trust_with(true, &[("cosign", &c.pair.public_pem)]);
        let (l, src) = layer(&c.unlogged, "sig");
        let verified = cosign_verifier()
            .verify_cosign_signature(&l.bytes, &l.annotations, &c.unlogged.digest, src)
            .expect("unlogged key-signed signature verifies");
        let facts = verified.facts();
        assert!(!facts.tlog_verified());
        assert_eq!(facts.time().source, TimeSource::None);
        let refused = key_authority(&trust, "cosign", true)
            .admits(facts)
            .unwrap_err();
        assert_readable(&refused, &["requires a verified transparency-log entry"]);
        key_authority(&trust, "cosign", false)
            .admits(facts)
            .expect("an authority with tlog optional admits it");
        // And through `provgate verify --key --allow-no-tlog`.
        let bundle = write("pk.json", &key_signed_bundle());
        let digest = c.unlogged.digest.to_string();
        let key = write("cosign.pub", c.pair.public_pem.as_bytes());
        let key = key.to_str().unwrap();
        let out = kit_verify_cli(&bundle, &digest, &["--key", key, "--allow-no-tlog"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let out = kit_verify_cli(&bundle, &digest, &["--key", key]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("requires a verified transparency-log entry"),
            "{}",
            text(&out.stdout)
        );
    }
}

// ===========================================================================
/// Class 4: transparency-log entries that are not this signature's: the
/// same entry listed twice (counts twice toward a threshold), an entry for
/// another artifact, or for another key or certificate (CVE-2022-36056,
/// GHSA-whqx-f9j3-ch6m).
mod tlog_entry_reuse {
    use super::*;

    #[test]
    fn the_same_tlog_entry_listed_twice_in_one_bundle_is_rejected() {
        let s = shared();
        let entry = json(&s.prov).pointer(TLOG0).unwrap().clone();
        let bad = mutate(&s.prov, |v| {
            v.pointer_mut(TLOG)
                .unwrap()
                .as_array_mut()
                .unwrap()
                .push(entry.clone());
        });
        let err = must_fail(verify_shared(&bad));
        let index: u64 = entry["logIndex"].as_str().unwrap().parse().unwrap();
        match &err {
            VerifyError::DuplicateTlogEntry { log_index, log_id } => {
                assert_eq!(*log_index, index);
                assert_eq!(
                    log_id,
                    &hex::encode(unb64(entry["logId"]["keyId"].as_str().unwrap()))
                );
            }
            e => panic!("expected DuplicateTlogEntry, got {e:?}"),
        }
        assert_readable(
            &err,
            &["duplicate transparency-log entries", &index.to_string()],
        );
        // Also when only the index and log match (the rest differs).
        let bad = mutate(&s.prov, |v| {
            let mut twin = entry.clone();
            twin.as_object_mut().unwrap().remove("inclusionProof");
            v.pointer_mut(TLOG)
                .unwrap()
                .as_array_mut()
                .unwrap()
                .push(twin);
        });
        let err = must_fail(verify_shared(&bad));
        assert!(
            matches!(err, VerifyError::DuplicateTlogEntry { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_genuine_tlog_entry_for_another_artifact_is_rejected() {
        // A complete, valid entry (proof, checkpoint, SET) of another image's
        // provenance, signed right after this one (so its time lies inside
        // this certificate's validity). Only the consistency check between
        // the entry body and this bundle can catch it.
        let image = push_image("adv-artifact", &[]);
        let other_image = push_image(
            "adv-other-artifact",
            &[
                "--layers",
                "1",
                "--size",
                "1024",
                "--seed",
                "adv-other-artifact",
            ],
        );
        assert_ne!(other_image.digest, image.digest);
        let mine = sign_provenance(&image, &[]);
        let other = sign_provenance(&other_image, &[]);
        let entry = json(&other).pointer(TLOG0).unwrap().clone();
        // Instead of the genuine entry, and next to it.
        let replaced = mutate(&mine, |v| *v.pointer_mut(TLOG0).unwrap() = entry.clone());
        let added = mutate(&mine, |v| {
            v.pointer_mut(TLOG)
                .unwrap()
                .as_array_mut()
                .unwrap()
                .push(entry.clone());
        });
        kit_verifier()
            .verify_bundle(&mine, &image.digest, tag_schema_source())
            .expect("genuine bundle verifies");
        for bad in [replaced, added] {
            let err =
                must_fail(kit_verifier().verify_bundle(&bad, &image.digest, tag_schema_source()));
            assert_entry_mismatch(&err);
        }
    }

    #[test]
    fn a_genuine_tlog_entry_for_another_certificate_is_rejected() {
        // The same artifact, signed twice in a row: another key, certificate
        // and entry. Borrowing that entry must not vouch for this signature.
        let image = push_image("adv-other-cert", &[]);
        let mine = sign_provenance(&image, &[]);
        let again = sign_provenance(&image, &[]);
        let entry = json(&again).pointer(TLOG0).unwrap().clone();
        let bad = mutate(&mine, |v| *v.pointer_mut(TLOG0).unwrap() = entry);
        let err = must_fail(kit_verifier().verify_bundle(&bad, &image.digest, tag_schema_source()));
        assert_entry_mismatch(&err);
    }

    #[track_caller]
    fn assert_entry_mismatch(err: &VerifyError) {
        let VerifyError::Keyless(errs) = err else {
            panic!("expected a keyless failure, got {err:?}")
        };
        assert!(
            matches!(
                errs[0].1,
                SvError::TransparencyLog(TlogError::EntryMismatch(_))
            ),
            "{err:?}"
        );
        assert_readable(err, &["log entry does not match the bundle"]);
    }

    #[test]
    fn a_genuine_rekor_entry_for_another_key_is_rejected_in_a_cosign_layer() {
        // One image signed with two keys in turn: the same payload, each
        // signature with its own Rekor entry (the second signing replaces
        // the layer, as its blob is the same). The first key's layer
        // carrying the second key's entry must not verify.
        let c = cosign();
        let image = push_image("adv-two-keys", &[]);
        let sign_with = |key: &KeyPair| {
            kit().tk(&[
                "cosign-sig",
                &image.reference(),
                "--key",
                key.key.to_str().unwrap(),
                "--password",
                "pw",
            ]);
            let (manifest, mut layers) = cosign_layers(&image, "sig");
            assert_eq!(layers.len(), 1);
            (manifest, layers.remove(0))
        };
        let (_, theirs) = sign_with(&c.other);
        let (manifest, mine) = sign_with(&c.pair);
        let (mine, theirs) = (&mine, &theirs);
        assert_eq!(mine.bytes, theirs.bytes, "the same payload");
        assert_ne!(
            mine.annotations["dev.sigstore.cosign/bundle"],
            theirs.annotations["dev.sigstore.cosign/bundle"]
        );
        let src = provgate::verify::EvidenceSource {
            kind: SourceKind::CosignSig,
            manifest: Some(manifest),
            layer: Some(mine.digest.clone()),
        };
        let v = cosign_verifier();
        v.verify_cosign_signature(&mine.bytes, &mine.annotations, &image.digest, src.clone())
            .expect("genuine layer verifies");
        let mut ann = mine.annotations.clone();
        ann.insert(
            "dev.sigstore.cosign/bundle".into(),
            theirs.annotations["dev.sigstore.cosign/bundle"].clone(),
        );
        let err = v
            .verify_cosign_signature(&mine.bytes, &ann, &image.digest, src)
            .unwrap_err();
        let VerifyError::Key(KeyFailure::Failed(errs)) = &err else {
            panic!("expected a key failure, got {err:?}")
        };
        assert_eq!(errs.len(), 1, "{err:?}");
        assert!(
            matches!(
                errs[0].1,
                SvError::TransparencyLog(TlogError::EntryMismatch(_))
            ),
            "{err:?}"
        );
        assert_readable(&err, &["log entry does not match the bundle"]);
    }
}

// ===========================================================================
/// Class 5: a protobuf oneof set twice. ProtoJSON makes it a parse error;
/// a lenient parser picks one member, so two verifiers (or the verifier and
/// the policy) could judge different material.
mod oneof_set_twice {
    use super::*;

    /// Inserts `"key":value,` right after `"verificationMaterial":{` (or at
    /// the top level), in the bundle's own text, so the extra member comes
    /// FIRST in the JSON: the order a first-match parser would pick.
    fn insert_first(bundle: &[u8], within_material: bool, key: &str, value: &Value) -> Vec<u8> {
        let text = String::from_utf8(bundle.to_vec()).unwrap();
        let member = format!("\"{key}\":{value},");
        let out = if within_material {
            let at = text.find("\"verificationMaterial\"").unwrap();
            let brace = at + text[at..].find('{').unwrap() + 1;
            format!("{}{member}{}", &text[..brace], &text[brace..])
        } else {
            let brace = text.find('{').unwrap() + 1;
            format!("{}{member}{}", &text[..brace], &text[brace..])
        };
        serde_json::from_str::<Value>(&out).expect("still JSON");
        out.into_bytes()
    }

    #[track_caller]
    fn assert_conflict(err: &VerifyError, expected: &[&str]) {
        match err {
            VerifyError::OneofConflict { fields, .. } => {
                for f in expected {
                    assert!(fields.contains(f), "{err:?}");
                }
            }
            e => panic!("expected OneofConflict, got {e:?}"),
        }
        assert_readable(err, &["malformed bundle", "exactly one"]);
    }

    #[test]
    fn verification_material_with_public_key_and_certificate_is_a_parse_error() {
        let bad = insert_first(&shared().prov, true, "publicKey", &json!({"hint": "k"}));
        let err = must_fail(verify_shared(&bad));
        assert_conflict(&err, &["publicKey", "certificate"]);
        // With a key trusted too (the attacker's hope), still a parse error.
        let err = cosign_verifier()
            .verify_bundle(&bad, &shared().image.digest, tag_schema_source())
            .unwrap_err();
        assert_conflict(&err, &["publicKey", "certificate"]);
    }

    #[test]
    fn verification_material_with_certificate_and_certificate_chain_is_a_parse_error() {
        let s = shared();
        let cert = json(&s.prov_again)["verificationMaterial"]["certificate"].clone();
        let chain = json!({"certificates": [cert]});
        let bad = insert_first(&s.prov, true, "x509CertificateChain", &chain);
        let err = must_fail(verify_shared(&bad));
        assert_conflict(&err, &["x509CertificateChain", "certificate"]);
    }

    #[test]
    fn key_signed_bundle_with_a_certificate_added_is_a_parse_error() {
        let cert = json(&shared().prov)["verificationMaterial"]["certificate"].clone();
        let bad = insert_first(&key_signed_bundle(), true, "certificate", &cert);
        let err = cosign_verifier()
            .verify_bundle(&bad, &cosign().unlogged.digest, tag_schema_source())
            .unwrap_err();
        assert_conflict(&err, &["publicKey", "certificate"]);
    }

    #[test]
    fn bundle_with_message_signature_and_dsse_envelope_is_a_parse_error() {
        let sig = json!({
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(&[0u8; 32])},
            "signature": json(&shared().prov)["dsseEnvelope"]["signatures"][0]["sig"].clone(),
        });
        let bad = insert_first(&shared().prov, false, "messageSignature", &sig);
        let err = must_fail(verify_shared(&bad));
        assert_conflict(&err, &["messageSignature", "dsseEnvelope"]);
        // Through the artifact path as well.
        let err = kit_verifier()
            .verify_artifact(&bad, ArtifactInput::Digest(&shared().image.digest))
            .unwrap_err();
        assert_conflict(&err, &["messageSignature", "dsseEnvelope"]);
    }

    #[test]
    fn a_oneof_member_set_to_null_counts_as_unset() {
        // ProtoJSON: null is the default value, i.e. not set.
        let ok = insert_first(&shared().prov, true, "publicKey", &Value::Null);
        verify_shared(&ok).expect("a null member does not conflict");
        let ok = insert_first(&shared().prov, false, "messageSignature", &Value::Null);
        verify_shared(&ok).expect("a null member does not conflict");
    }

    #[test]
    fn the_same_member_given_twice_is_a_parse_error() {
        let cert = json(&shared().prov)["verificationMaterial"]["certificate"].clone();
        let bad = insert_first(&shared().prov, true, "certificate", &cert);
        let err = must_fail(verify_shared(&bad));
        assert!(matches!(err, VerifyError::Malformed(_)), "{err:?}");
        assert_readable(&err, &["duplicate field"]);
    }
}

// ===========================================================================
/// Class 6: `integratedTime` in the future. A future time would keep
/// evidence "fresh" indefinitely. The SET covers `integratedTime`, so the
/// tests isolate provgate's own check (`provgate::verify::times`) where
/// they can: it runs before any signature and also judges entries whose
/// time no SET covers. Unit tests of the skew are in `src/verify/times.rs`.
mod future_integrated_time {
    use super::*;

    fn tomorrow(t: &str) -> String {
        let now = jiff::Timestamp::now().as_second();
        assert!(t.parse::<i64>().unwrap() <= now, "the genuine time is past");
        (now + 86_400).to_string()
    }

    #[test]
    fn future_integrated_time_under_a_signed_entry_timestamp_is_rejected() {
        let bad = mutate(&shared().prov_no_tsa, |v| {
            crate::common::evidence::edit_str(v, &format!("{TLOG0}/integratedTime"), tomorrow);
        });
        let err = must_fail(verify_shared(&bad));
        assert!(
            matches!(
                err,
                VerifyError::FutureTime {
                    kind: TimeKind::IntegratedTime,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_readable(
            &err,
            &["integratedTime", "is in the future", "allowed skew 60 s"],
        );
    }

    #[test]
    fn future_integrated_time_in_an_entry_with_only_an_inclusion_proof_is_rejected() {
        // Without a SET, nothing authenticates integratedTime and nothing
        // else would look at it; the time then comes from the TSA.
        let s = shared();
        let proof_only = mutate(&s.prov, |v| {
            v.pointer_mut(TLOG0)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove("inclusionPromise");
        });
        let control = verify_shared(&proof_only).expect("proof-only entry verifies");
        let facts = control.facts();
        assert!(facts.tlog_verified());
        assert!(facts.tlog()[0].inclusion_proof && !facts.tlog()[0].inclusion_promise);
        assert_eq!(facts.time().source, TimeSource::Rfc3161);
        // An unauthenticated integratedTime is not reported as a fact.
        assert_eq!(facts.tlog()[0].integrated_time, None);

        let bad = mutate(&proof_only, |v| {
            crate::common::evidence::edit_str(v, &format!("{TLOG0}/integratedTime"), tomorrow);
        });
        let err = must_fail(verify_shared(&bad));
        assert!(
            matches!(
                err,
                VerifyError::FutureTime {
                    kind: TimeKind::IntegratedTime,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn authenticated_integrated_time_is_reported_as_a_fact() {
        let v = verify_shared(&shared().prov_no_tsa).unwrap();
        let t = v.facts().tlog()[0]
            .integrated_time
            .expect("SET-covered time");
        assert_eq!(v.facts().time().source, TimeSource::Rekor);
        assert_eq!(v.facts().time().value, Some(t));
    }
}

// ===========================================================================
/// Class 7: a VSA (`https://slsa.dev/verification_summary/v1`) attached as a
/// referrer (forged, expired, or issued for another digest, policy or
/// contract revision) never makes an image pass. A VSA is a statement of
/// its own predicate type; no contract takes it for provenance.
mod vsa_never_admits {
    use super::*;
    use crate::common::server::{
        KitImage, Server, Setup, allowed, message, review_of, signed_image, unsigned_image,
    };

    /// A VSA signer on a kit-generated key.
    fn vsa_signer() -> &'static (VsaSigner, KeyPair) {
        static S: OnceLock<(VsaSigner, KeyPair)> = OnceLock::new();
        S.get_or_init(|| {
            let pair = gen_key();
            let pem = std::fs::read(pair.key.with_extension("pem")).unwrap();
            let signer = VsaSigner::from_pem(&pem, "https://provgate.test/gate").unwrap();
            (signer, pair)
        })
    }

    fn policy(revision: &str) -> Vec<PolicyEntry> {
        vec![PolicyEntry {
            name: "slsa-provenance".into(),
            version: "1".into(),
            revision: Digest::sha256_of(revision.as_bytes()),
        }]
    }

    fn vsa(name: &str, digest: &Digest, revision: &str, at: jiff::Timestamp) -> Vec<u8> {
        let s = &vsa_signer().0;
        let st = s.statement(name, digest, &policy(revision), &[], at);
        serde_json::to_vec(&s.sign(&st).unwrap()).unwrap()
    }

    fn vsa_verifier() -> Verifier {
        verifier(trust_with(true, &[("vsa", vsa_signer().0.public_pem())]))
    }

    #[test]
    fn forged_vsa_signature_is_rejected() {
        let image = &shared().image;
        let genuine = vsa("app", &image.digest, "r1", jiff::Timestamp::now());
        let v = vsa_verifier()
            .verify_bundle(&genuine, &image.digest, tag_schema_source())
            .expect("genuine VSA verifies with its key");
        let Verified::Attestation(a) = &v else {
            panic!("a VSA is an attestation")
        };
        assert_eq!(a.statement().predicate_type(), VSA_PREDICATE);

        // The statement edited (another policy digest), the signature kept.
        let forged = mutate(&genuine, |b| {
            let mut st: Value =
                serde_json::from_slice(&unb64(b["dsseEnvelope"]["payload"].as_str().unwrap()))
                    .unwrap();
            st["predicate"]["policy"]["digest"]["sha256"] = "00".repeat(32).into();
            b["dsseEnvelope"]["payload"] = b64(&serde_json::to_vec(&st).unwrap()).into();
        });
        let err = vsa_verifier()
            .verify_bundle(&forged, &image.digest, tag_schema_source())
            .unwrap_err();
        let VerifyError::Key(KeyFailure::Failed(errs)) = &err else {
            panic!("expected a key failure, got {err:?}")
        };
        assert!(matches!(errs[0].1, SvError::SignatureInvalid(_)), "{err:?}");

        // A VSA signed with a key nobody trusts.
        let err = verifier(trust_with(true, &[("vsa", &cosign().other.public_pem)]))
            .verify_bundle(&genuine, &image.digest, tag_schema_source())
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::Key(KeyFailure::Failed(_))),
            "{err:?}"
        );
    }

    #[test]
    fn vsa_for_another_digest_is_a_subject_mismatch() {
        let image = &shared().image;
        let other = Digest::sha256_of(b"another image");
        let bundle = vsa("app", &other, "r1", jiff::Timestamp::now());
        let err = vsa_verifier()
            .verify_bundle(&bundle, &image.digest, tag_schema_source())
            .unwrap_err();
        match &err {
            VerifyError::SubjectMismatch { expected, found } => {
                assert_eq!(expected, &image.digest);
                assert!(found.contains(&other.to_string()), "{found}");
            }
            e => panic!("expected SubjectMismatch, got {e:?}"),
        }
    }

    /// A binding of the library's slsa-provenance contract in enforce mode,
    /// trusting the kit's CI identity and the VSA key.
    fn library_server() -> Server {
        let pem = vsa_signer().0.public_pem().replace('\n', "\\n");
        let bindings = format!(
            "  - name: prod\n    contracts: [slsa-provenance]\n    mode: enforce\n    match: {{namespaces: [prod]}}\n    authorities:\n      slsa-provenance:\n        - name: kit-ci\n          keyless:\n            issuer: {GH_ISS}\n            subject: \"{GH_ID}\"\n        - name: vsa-key\n          key: {{pem: \"{pem}\"}}\n          tlog: optional\n"
        );
        Server::start(Setup {
            contracts: Vec::new(),
            bindings,
            builtin: true,
            ..Setup::default()
        })
    }

    fn attach(img: &KitImage, bundle: &[u8]) {
        let path = write("vsa.json", bundle);
        kit().tk(&["attach", &img.pinned(), path.to_str().unwrap()]);
    }

    #[test]
    fn vsa_attached_as_the_only_referrer_never_satisfies_slsa_provenance() {
        let s = library_server();
        let img = unsigned_image("adv-vsa");
        let digest: Digest = img.digest.parse().unwrap();
        let other = signed_image("adv-vsa-other");
        let other_digest: Digest = other.digest.parse().unwrap();
        let now = jiff::Timestamp::now();
        let long_ago = jiff::Timestamp::from_second(1_577_836_800).unwrap(); // 2020-01-01

        // A genuine VSA from the trusted CI identity (keyless, logged).
        let predicate = write(
            "vsa-predicate.json",
            serde_json::to_string(&json!({
                "verifier": {"id": "https://provgate.test/gate"},
                "timeVerified": "2026-01-01T00:00:00Z",
                "resourceUri": img.pinned(),
                "policy": {"uri": "provgate:contracts?slsa-provenance@1"},
                "verificationResult": "PASSED",
                "verifiedLevels": ["SLSA_BUILD_LEVEL_3"],
            }))
            .unwrap()
            .as_bytes(),
        );
        let keyless = kit_file("vsa.sigstore.json");
        kit().tk(&[
            "attest",
            &img.pinned(),
            "--predicate-type",
            VSA_PREDICATE,
            "--predicate",
            predicate.to_str().unwrap(),
            "--identity",
            GH_ID,
            "--issuer",
            GH_ISS,
            "--out",
            keyless.to_str().unwrap(),
        ]);
        kit().tk(&["attach", &img.pinned(), keyless.to_str().unwrap()]);
        // provgate VSAs from the trusted key: current, expired (2020), for
        // another contract revision, and for another digest.
        attach(&img, &vsa(&img.repo, &digest, "r1", now));
        attach(&img, &vsa(&img.repo, &digest, "r1", long_ago));
        attach(&img, &vsa(&img.repo, &digest, "another revision", now));
        attach(&img, &vsa(&img.repo, &other_digest, "r1", now));
        // A forged one: a provenance predicate type under the VSA signature.
        let forged = mutate(&vsa(&img.repo, &digest, "r1", now), |b| {
            let mut st: Value =
                serde_json::from_slice(&unb64(b["dsseEnvelope"]["payload"].as_str().unwrap()))
                    .unwrap();
            st["predicateType"] = "https://slsa.dev/provenance/v1".into();
            b["dsseEnvelope"]["payload"] = b64(&serde_json::to_vec(&st).unwrap()).into();
        });
        attach(&img, &forged);

        let review = |image: &str| {
            review_of(&[
                "--deployment",
                "api",
                "--image",
                image,
                "--namespace",
                "prod",
            ])
        };
        let v = s.review("/validate", &review(&img.tagged));
        assert!(!allowed(&v), "an image with only VSAs was admitted: {v}");
        let m = message(&v);
        assert!(m.contains("requirement slsa-provenance-present"), "{m}");
        // Positive control: real provenance passes the same binding.
        let v = s.review("/validate", &review(&other.tagged));
        assert!(allowed(&v), "{v}");
    }
}

// ===========================================================================
/// Issue 13 item 4: `provgate verify` never trusts "any signer" by default.
/// It needs an identity and an issuer (exact or regex), or `--key`;
/// accepting anyone takes an explicit `'.*'`, as in cosign.
mod verify_cli_identity {
    use super::*;

    fn prov_file() -> &'static (PathBuf, String) {
        static F: OnceLock<(PathBuf, String)> = OnceLock::new();
        F.get_or_init(|| {
            let s = shared();
            (write("cli-prov.json", &s.prov), s.image.digest.to_string())
        })
    }

    #[test]
    fn provgate_verify_without_identity_flags_is_a_usage_error_with_an_example() {
        let (bundle, digest) = prov_file();
        let out = kit_verify_cli(bundle, digest, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        assert!(
            !text(&out.stdout).contains("VERIFIED"),
            "{}",
            text(&out.stdout)
        );
        let err = text(&out.stderr);
        for needle in [
            "no signer identity was given",
            "--certificate-identity or --certificate-identity-regexp, AND \
             --certificate-oidc-issuer or --certificate-oidc-issuer-regexp, unless --key is given",
            "--certificate-identity-regexp '.*' --certificate-oidc-issuer-regexp '.*'",
            &format!("provgate verify --bundle {}", bundle.display()),
            digest,
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn provgate_verify_with_only_half_an_identity_is_a_usage_error_naming_the_missing_half() {
        let (bundle, digest) = prov_file();
        let out = kit_verify_cli(bundle, digest, &["--certificate-identity", GH_ID]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(
                "--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is missing"
            ),
            "{}",
            text(&out.stderr)
        );
        let out = kit_verify_cli(bundle, digest, &["--certificate-oidc-issuer-regexp", ".*"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr)
                .contains("--certificate-identity or --certificate-identity-regexp is missing"),
            "{}",
            text(&out.stderr)
        );
    }

    #[test]
    fn the_accept_anyone_example_from_the_error_runs_as_printed() {
        let (bundle, digest) = prov_file();
        let err = text(&kit_verify_cli(bundle, digest, &[]).stderr);
        // The example after "To accept any signer", continuation lines joined.
        let tail = &err[err.find("To accept any signer").unwrap()..];
        let command: String = tail
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("provgate verify"))
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.trim().trim_end_matches('\\').to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(command.starts_with("provgate verify --bundle"), "{command}");
        assert!(
            command.contains("--no-public-good --trusted-root"),
            "{command}"
        );
        let script = command.replacen("provgate", env!("CARGO_BIN_EXE_provgate"), 1);
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{script}\n{}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with("VERIFIED"), "{stdout}");
        assert!(stdout.contains(GH_ID), "the signer is shown: {stdout}");
    }

    #[test]
    fn provgate_verify_with_the_right_identity_verifies_and_a_wrong_one_is_rejected() {
        let (bundle, digest) = prov_file();
        let out = kit_verify_cli(
            bundle,
            digest,
            &[
                "--certificate-identity",
                GH_ID,
                "--certificate-oidc-issuer",
                GH_ISS,
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let out = kit_verify_cli(
            bundle,
            digest,
            &[
                "--certificate-identity-regexp",
                "https://github\\.com/evil/.+",
                "--certificate-oidc-issuer",
                GH_ISS,
            ],
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stdout).starts_with("REJECTED"),
            "{}",
            text(&out.stdout)
        );
    }

    #[test]
    fn provgate_verify_with_only_a_key_trusts_that_key_and_no_certificate() {
        let (bundle, digest) = prov_file();
        let key = write("only.pub", cosign().pair.public_pem.as_bytes());
        let out = kit_verify_cli(bundle, digest, &["--key", key.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with("REJECTED"), "{stdout}");
        assert!(stdout.contains("is a key"), "{stdout}");
    }

    #[test]
    fn provgate_verify_json_output_says_verified_only_for_an_admitted_signer() {
        let (bundle, digest) = prov_file();
        let out = kit_verify_cli(
            bundle,
            digest,
            &[
                "--certificate-identity-regexp",
                ".*",
                "--certificate-oidc-issuer-regexp",
                ".*",
                "-o",
                "json",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verified"], true);
        assert_eq!(v["facts"]["signer"]["subject"], GH_ID);
    }
}
