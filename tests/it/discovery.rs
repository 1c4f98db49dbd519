//! Evidence discovery against the kit's real registry (CNCF distribution
//! 2.8, htpasswd basic auth, plain HTTP and HTTPS listeners) with evidence
//! made by the kit's real signers.
//!
//! distribution 2.8 has no referrers API, so `attach` (@sigstore/oci) writes
//! the referrers tag schema and discovery finds those bundles there
//! (`SourceKind::TagSchema`); cosign-format material is in the
//! `sha256-<hex>.sig`/`.att` tags. The native referrers API is tested
//! against a fake in `hostile.rs`.
//!
//! Every test checks what was found (count, source kind, the digest it was
//! attached to) *and* what it verifies as (predicate type, signer), with
//! the verifier used the way `Engine` uses it.

use std::sync::Arc;

use provgate::digest::Digest;
use provgate::oci::{
    ConnectFailure, CredentialKind, CredentialSet, CredentialsUsed, DiscoverOptions, Discovery,
    ErrorClass, EvidenceContent, Limits, NoObserver, Registries, RegistryErrorKind, RequestKind,
    RequestRecord,
};
use provgate::verify::{SourceKind, TrustStore, Verified, Verifier, VerifyError, VerifyLimits};

use crate::common::evidence::{
    Image, cosign_layers, gen_key, json, kit_file, kit_verifier, push_image, registry_get,
    sign_provenance, tag_schema_source,
};
use crate::common::kit::{GH_ID, GH_ISS, kit, repo_name};
use crate::common::registry::{
    CountingObserver, assert_key_signer, assert_kit_keyless, discover_pinned, docker_config_json,
    err, image_ref, index_children, kit_creds, kit_creds_for, kit_creds_with, kit_registries, ok,
    plain_options, predicate_type, registries_for, tls_options, verify_all, verify_piece,
};

const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const SPDX: &str = "https://spdx.dev/Document";

/// Writes bytes to a fresh kit file; returns the path as a string.
fn write_file(stem: &str, bytes: &[u8]) -> String {
    let p = kit_file(stem);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

/// `testkit attach REF BUNDLE [extra…]`.
fn attach(reference: &str, bundle: &[u8], extra: &[&str]) {
    let path = write_file("bundle.json", bundle);
    let mut args = vec!["attach", reference, &path];
    args.extend_from_slice(extra);
    kit().tk(&args);
}

/// A sigstore-python SPDX attestation (`testkit attest`) for `reference`.
fn attest_sbom(reference: &str) -> Vec<u8> {
    let predicate = write_file(
        "sbom.json",
        br#"{"spdxVersion":"SPDX-2.3","name":"app","packages":[]}"#,
    );
    let out = kit_file("sbom.sigstore.json");
    kit().tk(&[
        "attest",
        reference,
        "--predicate-type",
        SPDX,
        "--predicate",
        &predicate,
        "--identity",
        GH_ID,
        "--issuer",
        GH_ISS,
        "--out",
        out.to_str().unwrap(),
    ]);
    std::fs::read(&out).unwrap()
}

/// sigstore-js provenance for an arbitrary reference (any registry).
fn provenance_for(reference: &str) -> Vec<u8> {
    let out = kit_file("prov.json");
    kit().tk(&[
        "sign-provenance",
        reference,
        "--identity",
        GH_ID,
        "--issuer",
        GH_ISS,
        "--out",
        out.to_str().unwrap(),
    ]);
    std::fs::read(&out).unwrap()
}

/// A cosign `.sig` and `.att` (SLSA v1 predicate) with Rekor SETs, signed
/// with `key`; `extra` is e.g. `--tls`.
fn cosign_sign_and_attest(reference: &str, key: &str, extra: &[&str]) {
    let mut sig = vec!["cosign-sig", reference, "--key", key, "--password", "pw"];
    sig.extend_from_slice(extra);
    kit().tk(&sig);
    let predicate = write_file(
        "predicate.json",
        br#"{"buildDefinition":{"buildType":"https://example.com/build/v1"},"runDetails":{}}"#,
    );
    let mut att = vec![
        "cosign-att",
        reference,
        "--key",
        key,
        "--password",
        "pw",
        "--predicate-type",
        SLSA_V1,
        "--predicate",
        &predicate,
    ];
    att.extend_from_slice(extra);
    kit().tk(&att);
}

/// A verifier trusting the kit root and one cosign key, named `cosign`.
fn verifier_with_key(public_pem: &str) -> (Verifier, String) {
    let trust = TrustStore::builder()
        .root_json("kit", &kit().trusted_root_json())
        .key_pem("cosign", public_pem)
        .unwrap()
        .build()
        .unwrap();
    let key_id = trust.key("cosign").unwrap().key_id().to_owned();
    (
        Verifier::new(Arc::new(trust), VerifyLimits::default()),
        key_id,
    )
}

/// The bundle bytes of a discovered piece (panics for cosign layers).
fn bundle_bytes(c: &EvidenceContent) -> &[u8] {
    match c {
        EvidenceContent::Bundle(b) => b,
        other => panic!("expected a bundle, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Every signer, both listeners.

#[tokio::test]
async fn discovery_finds_and_verifies_every_kit_signer_over_plain_http_with_basic_auth() {
    let image = push_image("disc-all", &[]);
    let reference = image.reference();
    let prov = sign_provenance(&image, &[]);
    attach(&reference, &prov, &[]);
    let sbom = attest_sbom(&reference);
    attach(&reference, &sbom, &[]);
    let pair = gen_key();
    cosign_sign_and_attest(&reference, pair.key.to_str().unwrap(), &[]);

    let regs = kit_registries(Arc::new(NoObserver));
    let (found, requests) = ok(discover_pinned(&regs, &reference, &kit_creds()).await);
    assert_eq!(found.digest, image.digest);
    assert!(found.platforms.is_empty());
    assert_eq!(found.registry, kit().registry());
    assert!(
        requests
            .iter()
            .all(|r| r.url.starts_with(&kit().registry()))
    );

    // Exactly four pieces: two bundles through the tag schema, one cosign
    // signature and one cosign attestation.
    let mut kinds: Vec<SourceKind> = found.evidence.iter().map(|e| e.source.kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            SourceKind::TagSchema,
            SourceKind::TagSchema,
            SourceKind::CosignSig,
            SourceKind::CosignAtt
        ]
    );
    for e in &found.evidence {
        assert_eq!(e.subject, image.digest, "attached to the image itself");
        assert!(e.source.manifest.is_some() && e.source.layer.is_some());
    }

    let (verifier, key_id) = verifier_with_key(&pair.public_pem);
    let verified = verify_all(&verifier, &found.evidence);
    for (e, v) in found.evidence.iter().zip(&verified) {
        assert_eq!(v.facts().subject(), &image.digest);
        assert_eq!(v.facts().source().kind, e.source.kind);
        match e.source.kind {
            SourceKind::TagSchema => {
                // The bundles are the ones the signers wrote.
                let got = json(bundle_bytes(&e.content));
                let pt = predicate_type(v).expect("an attestation");
                let want = if pt == SLSA_V1 { &prov } else { &sbom };
                assert_eq!(got, json(want), "bundle {pt} differs from the signed one");
                assert_kit_keyless(v);
            }
            SourceKind::CosignSig => {
                assert!(matches!(v, Verified::Signature(_)));
                assert_eq!(predicate_type(v), None);
                assert_key_signer(v, "cosign", &key_id);
            }
            SourceKind::CosignAtt => {
                assert_eq!(predicate_type(v).as_deref(), Some(SLSA_V1));
                assert_key_signer(v, "cosign", &key_id);
            }
            other => panic!("unexpected source {other:?}"),
        }
        assert!(
            v.facts().tlog_verified(),
            "{:?} has a verified tlog entry",
            e.source.kind
        );
    }
    let mut pts: Vec<String> = verified
        .iter()
        .filter(|v| matches!(v.facts().source().kind, SourceKind::TagSchema))
        .filter_map(predicate_type)
        .collect();
    pts.sort();
    assert_eq!(pts, [SLSA_V1, SPDX]);

    // Where the cosign material was found: the manifests and layers of the
    // .sig/.att tags, as read independently with curl.
    for (suffix, kind) in [
        ("sig", SourceKind::CosignSig),
        ("att", SourceKind::CosignAtt),
    ] {
        let (manifest, layers) = cosign_layers(&image, suffix);
        let e = found
            .evidence
            .iter()
            .find(|e| e.source.kind == kind)
            .unwrap();
        assert_eq!(e.source.manifest.as_ref(), Some(&manifest));
        assert_eq!(layers.len(), 1);
        assert_eq!(e.source.layer.as_ref(), Some(&layers[0].digest));
    }
}

#[tokio::test]
async fn discovery_over_https_trusts_the_kit_ca_and_docker_config_credentials() {
    let k = kit();
    let host = k.registry_tls();
    let path = format!("{}/app", repo_name("disc-tls"));
    let digest: Digest = k
        .tk(&["push-image", "--tls", &format!("{path}:v1")])
        .parse()
        .unwrap();
    let reference = format!("{host}/{path}@{digest}");
    let prov = provenance_for(&reference);
    attach(&reference, &prov, &["--tls"]);
    let pair = gen_key();
    cosign_sign_and_attest(&reference, pair.key.to_str().unwrap(), &["--tls"]);

    // Credentials from a Docker config.json with an `auth` entry.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        docker_config_json(
            &host,
            &k.var("TESTKIT_REGISTRY_USER"),
            &k.var("TESTKIT_REGISTRY_PASS"),
        ),
    )
    .unwrap();
    let creds = CredentialSet::from_file("tls-tenant", &config).unwrap();
    assert!(creds.for_host(&host).is_some());

    let regs = registries_for(
        &host,
        tls_options(),
        Limits::default(),
        Arc::new(NoObserver),
    );
    let (found, requests) = ok(discover_pinned(&regs, &reference, &creds).await);
    assert_eq!(found.digest, digest);
    assert_eq!(found.registry, host);
    assert!(requests.iter().all(|r| r.url.starts_with(&host)));
    let mut kinds: Vec<SourceKind> = found.evidence.iter().map(|e| e.source.kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            SourceKind::TagSchema,
            SourceKind::CosignSig,
            SourceKind::CosignAtt
        ]
    );
    let (verifier, key_id) = verifier_with_key(&pair.public_pem);
    for (e, v) in found
        .evidence
        .iter()
        .zip(verify_all(&verifier, &found.evidence))
    {
        assert_eq!(e.subject, digest);
        assert_eq!(v.facts().subject(), &digest);
        match e.source.kind {
            SourceKind::TagSchema => {
                assert_eq!(predicate_type(&v).as_deref(), Some(SLSA_V1));
                assert_kit_keyless(&v);
            }
            SourceKind::CosignSig => assert_key_signer(&v, "cosign", &key_id),
            SourceKind::CosignAtt => {
                assert_eq!(predicate_type(&v).as_deref(), Some(SLSA_V1));
                assert_key_signer(&v, "cosign", &key_id);
            }
            other => panic!("unexpected source {other:?}"),
        }
    }

    // The same listener without the kit CA is an untrusted certificate: a
    // connection error, and nothing falls back to plain HTTP.
    let no_ca = registries_for(
        &host,
        provgate::oci::RegistryOptions {
            ca_pem: None,
            ..tls_options()
        },
        Limits::default(),
        Arc::new(NoObserver),
    );
    let (e, requests) = err(discover_pinned(&no_ca, &reference, &creds).await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::Connect(ConnectFailure::UnknownCa {
            ca_configured: false
        }),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(requests.iter().all(|r| r.outcome == "tls"), "{requests:?}");
}

// ---------------------------------------------------------------------------
// Access.

#[tokio::test]
async fn discovery_anonymous_on_a_basic_auth_registry_is_permanently_unauthorized() {
    let image = push_image("disc-anon", &[]);
    let regs = kit_registries(Arc::new(NoObserver));
    let anonymous = CredentialSet::anonymous();
    let (e, requests) = err(discover_pinned(&regs, &image.reference(), &anonymous).await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::Unauthorized {
            status: 401,
            credentials: CredentialsUsed::default()
        },
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_eq!(e.registry, kit().registry());
    assert!(
        e.to_string().contains(&format!(
            "access denied (401) anonymously (no credentials set applies); give provgate credentials for {0} with a credentials[] entry (name, file: a Docker config.json with an auths.\"{0}\" entry)",
            kit().registry()
        )),
        "{e}"
    );
    assert!(!requests.is_empty());
    // Every request was refused, except distribution's answer to the
    // referrers probe: it has no such route, and answers 404 before any
    // authentication (whether that answer is recorded depends on whether it
    // arrives before the 401 ends the discovery).
    assert!(
        requests.iter().all(|r| r.outcome == "401"
            || (r.kind == provgate::oci::RequestKind::Referrers && r.outcome == "404")),
        "{requests:#?}"
    );
    assert!(requests.iter().any(|r| r.outcome == "401"), "{requests:#?}");

    // Resolving a tag anonymously fails the same way.
    let tagged = image_ref(&format!("{}:v1", image.repo));
    let (e, _) = err(regs.resolve(&tagged, &anonymous).await);
    assert!(
        matches!(e.kind, RegistryErrorKind::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn discovery_tenants_credentials_do_not_leak_in_either_order() {
    let image = push_image("disc-tenants", &[]);
    let prov = sign_provenance(&image, &[]);
    attach(&image.reference(), &prov, &[]);
    let host = kit().registry();
    let right = kit_creds_for("tenant-a", &host);
    let wrong = kit_creds_with("tenant-b", &host, "not-the-password");
    let tagged = image_ref(&format!("{}:v1", image.repo));

    for order in [[&right, &wrong], [&wrong, &right]] {
        // One Registries (one transport cache) per order, shared by both tenants.
        let regs = kit_registries(Arc::new(NoObserver));
        for creds in order.iter().chain(order.iter()) {
            let discovered = discover_pinned(&regs, &image.reference(), creds).await;
            let resolved = regs.resolve(&tagged, creds).await;
            if creds.name() == "tenant-a" {
                let (d, _) = ok(discovered);
                assert_eq!(d.evidence.len(), 1, "tenant A sees its evidence");
                assert_eq!(ok(resolved).0.digest, image.digest);
            } else {
                let (e, _) = err(discovered);
                let wrong_password = RegistryErrorKind::Unauthorized {
                    status: 401,
                    credentials: CredentialsUsed {
                        set: "tenant-b".into(),
                        credential: Some(CredentialKind::Basic {
                            username: kit().var("TESTKIT_REGISTRY_USER"),
                        }),
                    },
                };
                assert_eq!(e.kind, wrong_password, "{e}");
                assert_eq!(e.class(), ErrorClass::Permanent);
                let (e, _) = err(resolved);
                assert_eq!(e.kind, wrong_password, "{e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Shapes of images and evidence.

#[tokio::test]
async fn discovery_multi_arch_index_reports_evidence_on_index_and_platform() {
    let k = kit();
    let path = format!("{}/app", repo_name("disc-multi"));
    let out = k.tk_output(&["push-image", &format!("{path}:v1"), "--index"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: Digest = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let children = index_children(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(children.len(), 2, "two platforms: {children:?}");
    let (arm_platform, arm) = children
        .iter()
        .find(|(p, _)| p.starts_with("linux/arm64"))
        .cloned()
        .expect("an arm64 platform");
    let repo = format!("{}/{path}", k.registry());
    let index_bundle = provenance_for(&format!("{repo}@{index}"));
    attach(&format!("{repo}@{index}"), &index_bundle, &[]);
    let arm_bundle = provenance_for(&format!("{repo}@{arm}"));
    attach(&format!("{repo}@{arm}"), &arm_bundle, &[]);

    let regs = kit_registries(Arc::new(NoObserver));
    let (found, _) = ok(discover_pinned(&regs, &format!("{repo}@{index}"), &kit_creds()).await);
    // The index is what is judged; its platforms are listed.
    assert_eq!(found.digest, index);
    assert_eq!(
        found.media_type.as_deref(),
        Some("application/vnd.oci.image.index.v1+json")
    );
    let platforms: Vec<(String, Digest)> = found
        .platforms
        .iter()
        .map(|p| (p.platform.clone(), p.digest.clone()))
        .collect();
    assert_eq!(platforms, children);

    assert_eq!(found.evidence.len(), 2, "{:?}", found.evidence);
    let on_index: Vec<_> = found
        .evidence
        .iter()
        .filter(|e| e.subject == index)
        .collect();
    let on_arm: Vec<_> = found.evidence.iter().filter(|e| e.subject == arm).collect();
    assert_eq!((on_index.len(), on_arm.len()), (1, 1));
    assert_eq!(
        json(bundle_bytes(&on_index[0].content)),
        json(&index_bundle)
    );
    assert_eq!(json(bundle_bytes(&on_arm[0].content)), json(&arm_bundle));
    let verifier = kit_verifier();
    for e in &found.evidence {
        assert_eq!(e.source.kind, SourceKind::TagSchema);
        let v = verify_piece(&verifier, e).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            v.facts().subject(),
            &e.subject,
            "reports what it was attached to"
        );
        assert_eq!(predicate_type(&v).as_deref(), Some(SLSA_V1));
        assert_kit_keyless(&v);
    }
    // Each is bound to what it was attached to, not to the other digest.
    let wrong = verifier.verify_bundle(
        bundle_bytes(&on_arm[0].content),
        &index,
        tag_schema_source(),
    );
    assert!(
        matches!(wrong, Err(VerifyError::SubjectMismatch { .. })),
        "{arm_platform} provenance must not verify for the index: {wrong:?}"
    );
}

#[tokio::test]
async fn discovery_of_an_image_without_evidence_is_ok_and_empty() {
    let image = push_image("disc-none", &[]);
    let regs = kit_registries(Arc::new(NoObserver));
    let (found, requests) = ok(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
    assert_eq!(found.digest, image.digest);
    assert!(found.evidence.is_empty(), "{:?}", found.evidence);
    assert!(found.platforms.is_empty());
    // It looked everywhere, found nothing, fetched no blob.
    assert!(requests.iter().all(|r| r.kind != RequestKind::Blob));
    for kind in [
        RequestKind::Manifest,
        RequestKind::Referrers,
        RequestKind::Tag,
    ] {
        assert!(
            requests.iter().any(|r| r.kind == kind),
            "no {kind:?} request"
        );
    }
}

#[tokio::test]
async fn discovery_of_evidence_for_another_digest_is_found_but_rejected_as_subject_mismatch() {
    let image = push_image("disc-other", &[]);
    let other = push_image(
        "disc-other",
        &["--layers", "1", "--size", "1024", "--seed", "other"],
    );
    assert_ne!(image.digest, other.digest);
    // Provenance for `other`, attached to `image`.
    let bundle = sign_provenance(&other, &[]);
    attach(&image.reference(), &bundle, &[]);

    let regs = kit_registries(Arc::new(NoObserver));
    let (found, _) = ok(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
    assert_eq!(
        found.evidence.len(),
        1,
        "discovery does not judge, it finds"
    );
    let e = &found.evidence[0];
    assert_eq!(e.subject, image.digest);
    assert_eq!(e.source.kind, SourceKind::TagSchema);
    match verify_piece(&kit_verifier(), e) {
        Err(VerifyError::SubjectMismatch { expected, found }) => {
            assert_eq!(expected, image.digest);
            assert!(found.contains(other.digest.hex()), "names {found}");
        }
        other => panic!("expected a subject mismatch, got {other:?}"),
    }
    // The bundle itself is sound: it verifies for the digest it names.
    let v = kit_verifier()
        .verify_bundle(&bundle, &other.digest, tag_schema_source())
        .unwrap();
    assert_kit_keyless(&v);
}

#[tokio::test]
async fn discovery_with_more_referrers_than_the_limit_is_too_many() {
    let image = push_image("disc-many", &[]);
    for _ in 0..3 {
        let b = sign_provenance(&image, &[]);
        attach(&image.reference(), &b, &[]);
    }
    let host = kit().registry();
    let limits = Limits {
        max_referrers: 2,
        ..Limits::default()
    };
    let regs = registries_for(&host, plain_options(), limits, Arc::new(NoObserver));
    let (e, requests) = err(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::TooMany {
            what: "Sigstore referrers",
            limit: 2
        },
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    // Refused from the index alone: no referrer manifest or blob was fetched.
    assert!(
        requests.iter().all(|r| r.kind != RequestKind::Blob),
        "{requests:#?}"
    );

    // At the limit, all three are found.
    let limits = Limits {
        max_referrers: 3,
        ..Limits::default()
    };
    let regs = registries_for(&host, plain_options(), limits, Arc::new(NoObserver));
    let (found, _) = ok(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
    assert_eq!(found.evidence.len(), 3);
}

// ---------------------------------------------------------------------------
// Resolution.

#[tokio::test]
async fn discovery_of_a_pinned_digest_that_does_not_exist_is_permanently_not_found() {
    let image = push_image("disc-missing", &[]);
    let missing = Digest::sha256_of(b"no such manifest");
    let reference = format!("{}@{missing}", image.repo);
    let regs = kit_registries(Arc::new(NoObserver));
    // Resolving a pinned reference asks nothing, so it cannot tell…
    let resolved = regs.resolve(&image_ref(&reference), &kit_creds()).await;
    assert!(resolved.requests.is_empty());
    assert_eq!(ok(resolved).0.digest, missing);
    // …and discovery says it does not exist.
    let (e, _) = err(discover_pinned(&regs, &reference, &kit_creds()).await);
    assert_eq!(e.kind, RegistryErrorKind::NotFound, "{e}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.context.contains(missing.hex()), "{}", e.context);
}

#[tokio::test]
async fn discovery_resolution_of_a_tag_is_one_head_and_of_a_pinned_digest_no_request() {
    let image = push_image("disc-resolve", &[]);
    let obs = CountingObserver::new();
    let regs = kit_registries(obs.clone());
    let creds = kit_creds();

    let (r, requests) = ok(regs
        .resolve(&image_ref(&format!("{}:v1", image.repo)), &creds)
        .await);
    assert_eq!(r.digest, image.digest);
    assert!(!r.pinned);
    assert_eq!(
        r.media_type.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].kind, RequestKind::Resolve);
    assert_eq!(requests[0].method, "HEAD");
    assert_eq!(requests[0].outcome, "200");
    assert_eq!(
        requests[0].url,
        format!("{}/v2/{}/manifests/v1", kit().registry(), image.path)
    );
    assert_eq!(obs.count(), 1);

    let (r, requests) = ok(regs.resolve(&image_ref(&image.reference()), &creds).await);
    assert_eq!(r.digest, image.digest);
    assert!(r.pinned);
    assert!(
        requests.is_empty(),
        "a pinned reference needs no request: {requests:#?}"
    );
    assert_eq!(obs.count(), 1, "nothing reached the observer either");

    // An unknown tag is NotFound.
    let (e, _) = err(regs
        .resolve(&image_ref(&format!("{}:nope", image.repo)), &creds)
        .await);
    assert_eq!(e.kind, RegistryErrorKind::NotFound);
    assert_eq!(e.class(), ErrorClass::Permanent);
}

// ---------------------------------------------------------------------------
// Cost.

/// The shape measured in `docs/performance.md`: an image (by tag `v1`) with
/// two Sigstore bundles attached by `attach` (SLSA provenance from
/// sigstore-js, SPDX from sigstore-python) in the referrers tag schema, and
/// no cosign tags.
fn two_bundle_image(prefix: &str) -> Image {
    let image = push_image(prefix, &[]);
    let prov = sign_provenance(&image, &[]);
    attach(&image.reference(), &prov, &[]);
    let sbom = attest_sbom(&image.reference());
    attach(&image.reference(), &sbom, &[]);
    image
}

/// What a discovery of [`two_bundle_image`] must fetch, read independently
/// with curl: the tag-schema index URL, and each referrer's (manifest URL,
/// bundle blob URL).
fn expected_fetches(image: &Image) -> (String, Vec<(String, String)>) {
    let k = kit();
    let host = k.registry();
    let index_path = format!("/v2/{}/manifests/{}", image.path, image.digest.tag_schema());
    let index = json(&registry_get(
        k,
        &index_path,
        "application/vnd.oci.image.index.v1+json",
    ));
    let mut referrers = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let digest = m["digest"].as_str().unwrap();
        let manifest_path = format!("/v2/{}/manifests/{digest}", image.path);
        let manifest = json(&registry_get(
            k,
            &manifest_path,
            "application/vnd.oci.image.manifest.v1+json",
        ));
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{manifest:#}");
        let blob = layers[0]["digest"].as_str().unwrap();
        referrers.push((
            format!("{host}{manifest_path}"),
            format!("{host}/v2/{}/blobs/{blob}", image.path),
        ));
    }
    assert_eq!(referrers.len(), 2);
    (format!("{host}{index_path}"), referrers)
}

/// Prints requests the way `--explain` lists them.
fn print_requests(title: &str, requests: &[&RequestRecord]) {
    println!("{title}:");
    for (i, r) in requests.iter().enumerate() {
        println!(
            "  {:>2} {:<9} {:<4} {} -> {} ({} bytes, {} ms)",
            i + 1,
            r.kind.as_str(),
            r.method,
            r.url,
            r.outcome,
            r.bytes,
            r.millis
        );
    }
}

/// The position of the request (kind, GET, url) with status 200 in
/// `requests`; panics when it is not there exactly once.
#[track_caller]
fn position(requests: &[&RequestRecord], kind: RequestKind, url: &str) -> usize {
    let at: Vec<usize> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == kind && r.url == url)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "{kind:?} {url} in {requests:#?}");
    let r = requests[at[0]];
    assert_eq!((r.method, r.outcome.as_str()), ("GET", "200"), "{r:?}");
    at[0]
}

/// Resolves `image:v1` and discovers it with `opts`; returns what was
/// found and every request (resolve first).
async fn resolve_and_discover(
    regs: &Registries,
    image: &Image,
    opts: DiscoverOptions,
) -> (Discovery, Vec<RequestRecord>) {
    let creds = kit_creds();
    let tagged = image_ref(&format!("{}:v1", image.repo));
    let (resolved, mut requests) = ok(regs.resolve(&tagged, &creds).await);
    let (found, more) = ok(regs
        .discover(
            &tagged,
            &resolved.digest,
            resolved.media_type.as_deref(),
            &creds,
            opts,
        )
        .await);
    requests.extend(more);
    (found, requests)
}

const NO_COSIGN: DiscoverOptions = DiscoverOptions { cosign_tags: false };

/// The request count of one cold discovery, documented in
/// `docs/performance.md` ("Registry requests per cold discovery"), and the
/// exact requests in order.
#[tokio::test]
async fn discovery_cold_with_two_bundles_costs_six_requests_without_cosign_tags_once_the_registry_is_known()
 {
    let image = two_bundle_image("disc-cost");
    let (index_url, referrers) = expected_fetches(&image);
    let host = kit().registry();
    let obs = CountingObserver::new();
    let regs = kit_registries(obs.clone());

    // Any earlier discovery on this registry (here of another image)
    // learns that it has no referrers API.
    let other = push_image("disc-cost-other", &[]);
    let (first, requests) = ok(discover_pinned(&regs, &other.reference(), &kit_creds()).await);
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.kind == RequestKind::Referrers)
            .map(|r| r.outcome.as_str())
            .collect::<Vec<_>>(),
        ["404"]
    );
    assert!(
        first.notes.contains(&format!(
            "referrers API absent on {host} (it answered 404); used the {} tag schema; remembered for 600 s",
            other.digest.tag_schema()
        )),
        "{:?}",
        first.notes
    );
    let before = obs.count();

    // The measured discovery: cold for this image, cosign tags skipped.
    let (found, requests) = resolve_and_discover(&regs, &image, NO_COSIGN).await;
    let requests: Vec<&RequestRecord> = requests.iter().collect();
    print_requests(
        &format!("cold discovery of {}:v1 (2 bundles)", image.repo),
        &requests,
    );
    assert_eq!(found.evidence.len(), 2);
    let verified = verify_all(&kit_verifier(), &found.evidence);
    let mut pts: Vec<String> = verified.iter().filter_map(predicate_type).collect();
    pts.sort();
    assert_eq!(pts, [SLSA_V1, SPDX]);

    assert_eq!(requests.len(), 6, "{requests:#?}");
    assert_eq!(obs.count() - before, 6, "the metrics observer saw the same");
    // 1. tag → digest (and media type: not an index, so the manifest is not
    //    fetched).
    let r = requests[0];
    assert_eq!(
        (r.kind, r.method, r.url.as_str(), r.outcome.as_str()),
        (
            RequestKind::Resolve,
            "HEAD",
            format!("{host}/v2/{}/manifests/v1", image.path).as_str(),
            "200"
        )
    );
    // 2. the tag-schema index, straight away (no referrers API probe).
    assert_eq!(position(&requests, RequestKind::Tag, &index_url), 1);
    // 3–6. each referrer's manifest, then its bundle (the two referrers
    //      concurrently, so their order varies).
    let rest = &requests[2..];
    for (manifest, blob) in &referrers {
        let m = position(rest, RequestKind::Manifest, manifest);
        let b = position(rest, RequestKind::Blob, blob);
        assert!(m < b, "{manifest} before {blob}: {rest:#?}");
    }
    // --explain says why there were no more.
    let tag = image.digest.tag_schema();
    assert!(
        found.notes.iter().any(|n| n.starts_with(&format!(
            "referrers API absent on {host} (remembered since "
        )) && n.ends_with(&format!(
            ", when it answered 404); used the {tag} tag schema"
        ))),
        "{:?}",
        found.notes
    );
    assert!(
        found.notes.contains(&format!(
            "cosign tags {tag}.sig and {tag}.att not looked up: no bound contract accepts legacy cosign evidence"
        )),
        "{:?}",
        found.notes
    );

    // provgate's own metrics count the same.
    let metrics = Arc::new(provgate::metrics::Metrics::new());
    let regs = kit_registries(metrics.clone());
    ok(discover_pinned(&regs, &other.reference(), &kit_creds()).await);
    let before = metrics.registry_request_count();
    resolve_and_discover(&regs, &image, NO_COSIGN).await;
    assert_eq!(metrics.registry_request_count() - before, 6);
}

/// Before and after: the same cold discovery with the referrers memo cold
/// or warm, cosign tags looked up or not (the first row is what every
/// discovery cost before the memo and the option existed).
#[tokio::test]
async fn discovery_cold_cost_by_referrers_memo_and_cosign_tags() {
    let image = two_bundle_image("disc-matrix");
    let other = push_image("disc-matrix-other", &[]);
    let with_cosign = DiscoverOptions::default();
    assert!(
        with_cosign.cosign_tags,
        "cosign tags are looked up by default"
    );
    // (memo warm, options, requests, referrers probes, tag lookups)
    let rows = [
        (false, with_cosign, 9, 1, 3),
        (false, NO_COSIGN, 7, 1, 1),
        (true, with_cosign, 8, 0, 3),
        (true, NO_COSIGN, 6, 0, 1),
    ];
    for (warm, opts, total, probes, tags) in rows {
        let regs = kit_registries(Arc::new(NoObserver));
        if warm {
            ok(discover_pinned(&regs, &other.reference(), &kit_creds()).await);
        }
        let (found, requests) = resolve_and_discover(&regs, &image, opts).await;
        let count = |kind| requests.iter().filter(|r| r.kind == kind).count();
        let row = format!("memo warm {warm}, cosign tags {}", opts.cosign_tags);
        println!("{row}: {} requests", requests.len());
        assert_eq!(found.evidence.len(), 2, "{row}");
        assert_eq!(requests.len(), total, "{row}: {requests:#?}");
        assert_eq!(count(RequestKind::Resolve), 1, "{row}");
        assert_eq!(count(RequestKind::Referrers), probes, "{row}");
        assert_eq!(count(RequestKind::Tag), tags, "{row}");
        assert_eq!(count(RequestKind::Manifest), 2, "{row}");
        assert_eq!(count(RequestKind::Blob), 2, "{row}");
        assert_eq!(count(RequestKind::Token), 0, "{row}");
    }

    // Pinned by digest, the media type is unknown: the image manifest is
    // fetched (alongside the tag-schema index) instead of the HEAD.
    let regs = kit_registries(Arc::new(NoObserver));
    ok(discover_pinned(&regs, &other.reference(), &kit_creds()).await);
    let image_ref_pinned = image_ref(&image.reference());
    let (found, requests) = ok(regs
        .discover(
            &image_ref_pinned,
            &image.digest,
            None,
            &kit_creds(),
            NO_COSIGN,
        )
        .await);
    assert_eq!(found.evidence.len(), 2);
    assert_eq!(requests.len(), 6, "{requests:#?}");
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.kind == RequestKind::Manifest)
            .count(),
        3
    );
}

#[tokio::test]
async fn discovery_remembers_a_missing_referrers_api_for_a_while_and_then_asks_again() {
    let image = push_image("disc-memo", &[]);
    let probes = |requests: &[RequestRecord]| {
        requests
            .iter()
            .filter(|r| r.kind == RequestKind::Referrers)
            .count()
    };
    let regs = kit_registries(Arc::new(NoObserver))
        .with_referrers_memo_ttl(std::time::Duration::from_millis(1500));
    let (_, requests) = ok(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
    assert_eq!(probes(&requests), 1, "the first discovery asks");
    let (found, requests) = ok(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
    assert_eq!(probes(&requests), 0, "the second remembers");
    assert!(
        found.notes.iter().any(|n| n.contains("(remembered since ")),
        "{:?}",
        found.notes
    );
    // Another credential set on the same registry shares what was learnt
    // (it is a property of the registry, not of the tenant).
    let tenant = kit_creds_for("tenant-memo", &kit().registry());
    let (_, requests) = ok(discover_pinned(&regs, &image.reference(), &tenant).await);
    assert_eq!(probes(&requests), 0);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (_, requests) = ok(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
    assert_eq!(probes(&requests), 1, "after the TTL it asks again");

    // A TTL of zero asks every time.
    let regs =
        kit_registries(Arc::new(NoObserver)).with_referrers_memo_ttl(std::time::Duration::ZERO);
    for _ in 0..2 {
        let (_, requests) = ok(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
        assert_eq!(probes(&requests), 1);
    }
}

#[tokio::test]
async fn discovery_that_fails_does_not_teach_that_the_referrers_api_is_missing() {
    // A registry *with* the API may answer 404 for a repository that does
    // not exist; only a discovery that found its digest may be believed.
    let image = push_image("disc-memo-fail", &[]);
    let regs = kit_registries(Arc::new(NoObserver));
    let missing = format!(
        "{}/{}/nothing@{}",
        kit().registry(),
        repo_name("disc-memo-none"),
        image.digest
    );
    // The referrers probe (404 here) runs beside the manifest lookup; the
    // manifest's 404 ends the discovery, whichever answered first.
    let (e, _) = err(discover_pinned(&regs, &missing, &kit_creds()).await);
    assert_eq!(e.kind, RegistryErrorKind::NotFound, "{e}");
    let (_, requests) = ok(discover_pinned(&regs, &image.reference(), &kit_creds()).await);
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.kind == RequestKind::Referrers)
            .count(),
        1,
        "still asks: {requests:#?}"
    );
}

#[tokio::test]
async fn discovery_of_an_index_asks_for_the_referrers_api_at_most_once_per_platform_and_not_when_known()
 {
    let k = kit();
    let path = format!("{}/app", repo_name("disc-index-cost"));
    let out = k.tk_output(&["push-image", &format!("{path}:v1"), "--index"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: Digest = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let reference = format!("{}/{path}@{index}", k.registry());
    let regs = kit_registries(Arc::new(NoObserver));
    let (found, requests) = ok(discover_pinned(&regs, &reference, &kit_creds()).await);
    assert_eq!(found.platforms.len(), 2);
    let probes = requests
        .iter()
        .filter(|r| r.kind == RequestKind::Referrers)
        .count();
    // The root's probe runs beside the index fetch; the platforms skip
    // theirs when its answer came first.
    assert!((1..=3).contains(&probes), "{requests:#?}");
    // Known: the index, and one tag-schema lookup per digest.
    let (found, requests) = ok(regs
        .discover(
            &image_ref(&reference),
            &index,
            None,
            &kit_creds(),
            NO_COSIGN,
        )
        .await);
    assert!(found.evidence.is_empty());
    let kinds: Vec<RequestKind> = requests.iter().map(|r| r.kind).collect();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RequestKind::Manifest)
            .count(),
        1
    );
    assert_eq!(kinds.iter().filter(|k| **k == RequestKind::Tag).count(), 3);
}

/// The median wall time of a cold discovery of [`two_bundle_image`] (tag
/// resolution + discovery, no verification), printed for
/// `docs/performance.md`; nothing is asserted about time.
#[tokio::test]
async fn discovery_cold_median_time_is_printed() {
    let image = two_bundle_image("disc-time");
    let other = push_image("disc-time-other", &[]);
    const RUNS: usize = 41;
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    // (a) What the webhook pays for a new digest now: a warm process
    //     (connections, referrers memo), no cosign tags. (b) The request
    //     pattern of before the memo and the option, in the same warm
    //     process: the referrers probe and the cosign tags every time.
    let regs = kit_registries(Arc::new(NoObserver));
    ok(discover_pinned(&regs, &other.reference(), &kit_creds()).await);
    let before =
        kit_registries(Arc::new(NoObserver)).with_referrers_memo_ttl(std::time::Duration::ZERO);
    ok(discover_pinned(&before, &other.reference(), &kit_creds()).await);
    let mut now = Vec::new();
    let mut then = Vec::new();
    // Interleaved, so that load on the machine hits both alike.
    for _ in 0..RUNS {
        let started = std::time::Instant::now();
        let (found, requests) = resolve_and_discover(&regs, &image, NO_COSIGN).await;
        now.push(started.elapsed());
        assert_eq!((found.evidence.len(), requests.len()), (2, 6));
        let started = std::time::Instant::now();
        let (found, requests) =
            resolve_and_discover(&before, &image, DiscoverOptions::default()).await;
        then.push(started.elapsed());
        assert_eq!((found.evidence.len(), requests.len()), (2, 9));
    }
    println!(
        "cold discovery median over {RUNS} runs: {:?} (6 requests: memo warm, no cosign tags); {:?} (9 requests: referrers probe and cosign tags)",
        median(now),
        median(then)
    );
}

/// A kit instance of its own, started with `--verbose` so that its registry
/// writes an access log; stopped (and removed) on drop.
struct VerboseKit {
    dir: std::path::PathBuf,
    env: serde_json::Value,
}

impl VerboseKit {
    fn start() -> Self {
        let root = crate::common::kit_root();
        let out = std::process::Command::new(root.join("up.sh"))
            .args(["--verbose", "--owner-pid", &std::process::id().to_string()])
            .output()
            .expect("run up.sh");
        assert!(
            out.status.success(),
            "up.sh --verbose: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let env = json(&std::fs::read(dir.join("env.json")).unwrap());
        VerboseKit { dir, env }
    }

    fn var(&self, k: &str) -> String {
        self.env[k].as_str().unwrap().to_owned()
    }

    fn tk(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(crate::common::kit_root().join("bin/testkit"))
            .args(args)
            .env("TESTKIT_DIR", &self.dir)
            .output()
            .expect("run testkit");
        assert!(
            out.status.success(),
            "testkit {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// provgate's requests in the access log: (method, path, status).
    fn provgate_requests(&self) -> Vec<(String, String, String)> {
        let log = std::fs::read_to_string(self.dir.join("registry/registry.log")).unwrap();
        // Apache combined format:
        // 127.0.0.1 - - [date] "GET /v2/… HTTP/1.1" 200 123 "" "provgate/0.1.0"
        log.lines()
            .filter(|l| l.ends_with(&format!("\"provgate/{}\"", env!("CARGO_PKG_VERSION"))))
            .filter_map(|l| {
                let (_, rest) = l.split_once("] \"")?;
                let (request, rest) = rest.split_once('"')?;
                let mut parts = request.split(' ');
                let (method, path) = (parts.next()?, parts.next()?);
                let status = rest.trim_start().split(' ').next()?;
                Some((method.to_owned(), path.to_owned(), status.to_owned()))
            })
            .collect()
    }
}

impl Drop for VerboseKit {
    fn drop(&mut self) {
        let _ = std::process::Command::new(crate::common::kit_root().join("down.sh"))
            .arg("--rm")
            .arg(&self.dir)
            .output();
    }
}

/// The registry's own access log lists exactly the requests provgate
/// records (what `--explain` prints and the metrics count).
#[test]
fn discovery_request_records_match_the_registry_access_log() {
    let k = VerboseKit::start();
    let host = k.var("TESTKIT_REGISTRY");
    let digest = k.tk(&["push-image", "logged/app:v1"]);
    k.tk(&["push-image", "logged/other:v1"]);
    let pinned = format!("{host}/logged/app@{digest}");
    for n in 0..2 {
        let out = k.dir.join(format!("prov{n}.json"));
        let out = out.to_str().unwrap();
        k.tk(&[
            "sign-provenance",
            &pinned,
            "--identity",
            GH_ID,
            "--issuer",
            GH_ISS,
            "--out",
            out,
        ]);
        k.tk(&["attach", &pinned, out]);
    }
    let regs = registries_for(
        &host,
        plain_options(),
        Limits::default(),
        Arc::new(NoObserver),
    );
    let creds = provgate::oci::CredentialSet::from_entries(
        "verbose-kit",
        [(
            host.clone(),
            provgate::oci::Credential::Basic {
                username: k.var("TESTKIT_REGISTRY_USER"),
                password: k.var("TESTKIT_REGISTRY_PASS"),
            },
        )],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let other = image_ref(&format!("{host}/logged/other:v1"));
    let tagged = image_ref(&format!("{host}/logged/app:v1"));
    let records = rt.block_on(async {
        // Learn that the registry has no referrers API.
        let (r, _) = ok(regs.resolve(&other, &creds).await);
        ok(regs
            .discover(&other, &r.digest, None, &creds, NO_COSIGN)
            .await);
        let (r, mut records) = ok(regs.resolve(&tagged, &creds).await);
        let (found, more) = ok(regs
            .discover(
                &tagged,
                &r.digest,
                r.media_type.as_deref(),
                &creds,
                NO_COSIGN,
            )
            .await);
        assert_eq!(found.evidence.len(), 2);
        records.extend(more);
        records
    });
    assert_eq!(records.len(), 6, "{records:#?}");

    // The log is written as responses complete; give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let logged = loop {
        let all = k.provgate_requests();
        let mine: Vec<_> = all
            .into_iter()
            .filter(|(_, p, _)| p.starts_with("/v2/logged/app/"))
            .collect();
        if mine.len() >= records.len() || std::time::Instant::now() > deadline {
            break mine;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    println!("registry access log:");
    for (m, p, s) in &logged {
        println!("  {m:<4} {p} -> {s}");
    }
    let mut from_records: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            (
                r.method.to_owned(),
                r.url.strip_prefix(&host).unwrap().to_owned(),
                r.outcome.clone(),
            )
        })
        .collect();
    // The first two are sequential; the rest concurrent, so compare those
    // as sets.
    assert_eq!(logged[..2], from_records[..2]);
    let mut logged_rest = logged[2..].to_vec();
    logged_rest.sort();
    from_records[2..].sort();
    assert_eq!(logged_rest, from_records[2..]);
    assert_eq!(logged.len(), 6);
}
