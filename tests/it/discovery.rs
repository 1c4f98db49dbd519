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
    CredentialSet, ErrorClass, EvidenceContent, Limits, NoObserver, RegistryErrorKind, RequestKind,
    RequestObserver,
};
use provgate::verify::{SourceKind, TrustStore, Verified, Verifier, VerifyError, VerifyLimits};

use crate::common::evidence::{
    cosign_layers, gen_key, json, kit_file, kit_verifier, push_image, sign_provenance,
    tag_schema_source,
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
    assert!(matches!(e.kind, RegistryErrorKind::Connect(_)), "{e}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(
        requests.iter().all(|r| r.outcome == "connect"),
        "{requests:?}"
    );
}

// ---------------------------------------------------------------------------
// Access.

#[tokio::test]
async fn discovery_anonymous_on_a_basic_auth_registry_is_permanently_unauthorized() {
    let image = push_image("disc-anon", &[]);
    let regs = kit_registries(Arc::new(NoObserver));
    let anonymous = CredentialSet::anonymous();
    let (e, requests) = err(discover_pinned(&regs, &image.reference(), &anonymous).await);
    assert_eq!(e.kind, RegistryErrorKind::Unauthorized(401), "{e}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_eq!(e.registry, kit().registry());
    assert!(
        e.to_string().contains("check the registry credentials"),
        "{e}"
    );
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.outcome == "401"), "{requests:#?}");

    // Resolving a tag anonymously fails the same way.
    let tagged = image_ref(&format!("{}:v1", image.repo));
    let (e, _) = err(regs.resolve(&tagged, &anonymous).await);
    assert_eq!(e.kind, RegistryErrorKind::Unauthorized(401), "{e}");
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
                assert_eq!(e.kind, RegistryErrorKind::Unauthorized(401), "{e}");
                assert_eq!(e.class(), ErrorClass::Permanent);
                let (e, _) = err(resolved);
                assert_eq!(e.kind, RegistryErrorKind::Unauthorized(401), "{e}");
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

/// The request count of one cold discovery, documented in
/// `docs/performance.md` ("Registry requests per cold discovery").
#[tokio::test]
async fn discovery_cold_with_two_bundles_costs_a_known_number_of_requests() {
    let image = push_image("disc-cost", &[]);
    let prov = sign_provenance(&image, &[]);
    attach(&image.reference(), &prov, &[]);
    let sbom = attest_sbom(&image.reference());
    attach(&image.reference(), &sbom, &[]);

    let obs = CountingObserver::new();
    let regs = kit_registries(obs.clone());
    let creds = kit_creds();
    // A tag, as a Deployment would usually name it.
    let tagged = image_ref(&format!("{}:v1", image.repo));
    let (resolved, resolve_requests) = ok(regs.resolve(&tagged, &creds).await);
    let (found, requests) = ok(regs
        .discover(
            &tagged,
            &resolved.digest,
            resolved.media_type.as_deref(),
            &creds,
        )
        .await);
    assert_eq!(found.evidence.len(), 2);
    verify_all(&kit_verifier(), &found.evidence);

    println!("cold discovery of {} (2 bundles):", image.reference());
    for r in resolve_requests.iter().chain(&requests) {
        println!(
            "  {:<9} {:<4} {} -> {} ({} bytes)",
            r.kind.as_str(),
            r.method,
            r.url,
            r.outcome,
            r.bytes
        );
    }
    let count = |kind| requests.iter().filter(|r| r.kind == kind).count();
    // Resolution of the tag: one HEAD (Docker-Content-Digest). Basic
    // credentials are sent up front, so no 401 round trip; distribution
    // with htpasswd issues no tokens.
    assert_eq!(resolve_requests.len(), 1);
    assert_eq!(resolve_requests[0].kind, RequestKind::Resolve);
    // Discovery, given the media type from the HEAD (not an index, so the
    // manifest itself need not be fetched):
    // - 1 referrers API call: 404 (distribution 2.8 has none) → tag schema;
    assert_eq!(count(RequestKind::Referrers), 1);
    // - 3 tag lookups: the `sha256-<hex>` tag-schema index (200) and the
    //   cosign `.sig` and `.att` tags (404 each);
    assert_eq!(count(RequestKind::Tag), 3);
    // - 2 manifests: the two referrer (artifact) manifests of the index;
    assert_eq!(count(RequestKind::Manifest), 2);
    // - 2 blobs: the two bundle layers;
    assert_eq!(count(RequestKind::Blob), 2);
    // - no token requests, no resolve.
    assert_eq!(count(RequestKind::Token) + count(RequestKind::Resolve), 0);
    assert_eq!(requests.len(), 8);
    // The observer (what metrics count) saw the same requests.
    assert_eq!(obs.count(), resolve_requests.len() + requests.len());
    assert_eq!(obs.count(), 9);

    // provgate's own metrics count the same: one more cold run with
    // `Metrics` as the observer.
    let metrics = Arc::new(provgate::metrics::Metrics::new());
    let regs = kit_registries(metrics.clone());
    let (resolved, _) = ok(regs.resolve(&tagged, &creds).await);
    ok(regs
        .discover(
            &tagged,
            &resolved.digest,
            resolved.media_type.as_deref(),
            &creds,
        )
        .await);
    assert_eq!(metrics.registry_request_count(), 9);

    // Pinned by digest without a known media type, discovery also fetches
    // the image manifest (to learn whether it is an index): one more.
    let obs = CountingObserver::new();
    let regs = kit_registries(obs.clone() as Arc<dyn RequestObserver>);
    let (_, requests) = ok(discover_pinned(&regs, &image.reference(), &creds).await);
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.kind == RequestKind::Manifest)
            .count(),
        3
    );
    assert_eq!(requests.len(), 9);
    assert_eq!(obs.count(), 9);
}
