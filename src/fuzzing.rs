//! The fuzz targets' bodies, as library functions.
//!
//! Each cargo-fuzz target in `fuzz/fuzz_targets/` is one call into this
//! module, and the integration test `fuzz_replay` feeds every committed
//! regression (`fuzz/regressions/<target>/`), every corpus file
//! (`fuzz/corpus/<target>/`) and a fresh set of seeds (`fuzz/seed.sh`)
//! through the same functions. So an input that once found a bug is
//! replayed by a plain `cargo test`, on the stable toolchain, without
//! libFuzzer, and the invariants a target checks cannot drift apart between
//! the fuzzer and the tests.
//!
//! The functions panic when an invariant does not hold: a panic is what
//! libFuzzer records as a crash, and what the replay test reports. They are
//! a test harness, not an API: the module is hidden from the documentation
//! and may change with the targets.
//!
//! It is always compiled (no cargo feature): a feature would have to be
//! enabled in every test invocation, and an integration test needing it
//! would be silently left out of a plain `cargo test`, which is exactly the
//! run that must replay the regressions. The cost is a little code in the
//! library that nothing else calls.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::Value;

use crate::admission::images::images_of;
use crate::digest::Digest;
use crate::image::ImageRef;
use crate::oci::manifest::{
    self, Descriptor, ImageIndex, ImageManifest, is_index, is_sigstore_bundle,
};
use crate::verify::{
    ArtifactInput, EvidenceSource, STATEMENT_V01, STATEMENT_V1, SourceKind, Statement, TrustStore,
    Verifier, VerifyLimits,
};

/// A fuzz target: its name is its directory under `fuzz/corpus/` and
/// `fuzz/regressions/`, and its binary in `fuzz/Cargo.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// [`bundle`].
    Bundle,
    /// [`cosign_attestation`].
    CosignAttestation,
    /// [`cosign_signature`].
    CosignSignature,
    /// [`statement`].
    Statement,
    /// [`manifest`].
    Manifest,
    /// [`admission`].
    Admission,
    /// [`image_ref`].
    ImageRef,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 7] = [
        Target::Bundle,
        Target::CosignAttestation,
        Target::CosignSignature,
        Target::Statement,
        Target::Manifest,
        Target::Admission,
        Target::ImageRef,
    ];

    /// The target's name (binary and directory name).
    pub fn name(self) -> &'static str {
        match self {
            Target::Bundle => "bundle",
            Target::CosignAttestation => "cosign_attestation",
            Target::CosignSignature => "cosign_signature",
            Target::Statement => "statement",
            Target::Manifest => "manifest",
            Target::Admission => "admission",
            Target::ImageRef => "image_ref",
        }
    }

    /// The target named `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs one input through the target (panics when an invariant fails).
    pub fn run(self, data: &[u8]) {
        match self {
            Target::Bundle => bundle(data),
            Target::CosignAttestation => cosign_attestation(data),
            Target::CosignSignature => cosign_signature(data),
            Target::Statement => statement(data),
            Target::Manifest => manifest(data),
            Target::Admission => admission(data),
            Target::ImageRef => image_ref(data),
        }
    }
}

// ---------------------------------------------------------------------------
// Shared helpers.

/// A verifier over the embedded Sigstore public-good root, built once.
fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let trust = match TrustStore::builder().public_good().build() {
            Ok(t) => t,
            // Embedded data, not input: a harness that cannot start must say so.
            Err(e) => panic!("the embedded public-good root does not load: {e}"),
        };
        Verifier::new(Arc::new(trust), VerifyLimits::default())
    })
}

fn source(kind: SourceKind) -> EvidenceSource {
    EvidenceSource {
        kind,
        manifest: None,
        layer: None,
    }
}

/// A digest no input names.
fn default_subject() -> Digest {
    Digest::sha256_of(b"provgate fuzz image")
}

/// The first sha256 subject of an in-toto statement, so that seeded inputs
/// get past the subject check into the signature checks.
fn statement_subject(statement: &[u8]) -> Option<Digest> {
    let v: Value = serde_json::from_slice(statement).ok()?;
    let hex = v.pointer("/subject/0/digest/sha256")?.as_str()?;
    format!("sha256:{hex}").parse().ok()
}

/// The statement subject of a DSSE envelope (JSON with a base64 `payload`).
fn envelope_subject(envelope: &Value) -> Option<Digest> {
    let payload = envelope.get("payload")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    statement_subject(&bytes)
}

/// Splits `LAYER \n--annotations--\n ANNOTATIONS-JSON`; the annotations are
/// an object of strings (anything else: none).
fn split_annotations(data: &[u8]) -> (&[u8], BTreeMap<String, String>) {
    const SEP: &[u8] = b"\n--annotations--\n";
    match data.windows(SEP.len()).position(|w| w == SEP) {
        Some(i) => {
            let annotations = serde_json::from_slice(&data[i + SEP.len()..]).unwrap_or_default();
            (&data[..i], annotations)
        }
        None => (data, BTreeMap::new()),
    }
}

// ---------------------------------------------------------------------------
// Targets.

/// Sigstore bundle parsing and verification over arbitrary bytes, against
/// the embedded public-good root: `Verifier::verify_bundle` (an image's
/// evidence) and `Verifier::verify_artifact` (the `provgate verify` and
/// conformance path, digest and bytes inputs).
///
/// Invariant: a bundle that verifies is bound to the subject asked for.
pub fn bundle(data: &[u8]) {
    let v = verifier();
    // The subject the bundle's statement names, when it has one, so that a
    // seeded bundle reaches the signature, certificate and log checks.
    let subject = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|b| b.get("dsseEnvelope").and_then(envelope_subject))
        .unwrap_or_else(default_subject);
    if let Ok(verified) = v.verify_bundle(data, &subject, source(SourceKind::TagSchema)) {
        assert_eq!(verified.facts().subject(), &subject);
    }
    let _ = v.verify_artifact(data, ArtifactInput::Digest(&subject));
    let _ = v.verify_artifact(data, ArtifactInput::Bytes(b"a.txt"));
}

/// A cosign `.att` layer: a DSSE envelope plus the layer annotations
/// (`dev.sigstore.cosign/bundle`, `…/certificate`, `…/chain`, …) that
/// `Verifier::verify_cosign_attestation` converts into a bundle and verifies
/// against the public-good root.
///
/// Input: `ENVELOPE` or `ENVELOPE\n--annotations--\n{JSON object of strings}`.
pub fn cosign_attestation(data: &[u8]) {
    let (envelope, annotations) = split_annotations(data);
    let subject = serde_json::from_slice::<Value>(envelope)
        .ok()
        .and_then(|e| envelope_subject(&e))
        .unwrap_or_else(default_subject);
    let _ = verifier().verify_cosign_attestation(
        envelope,
        &annotations,
        &subject,
        source(SourceKind::CosignAtt),
    );
}

/// A cosign `.sig` layer: a simple-signing payload plus its annotations
/// (`dev.cosignproject.cosign/signature`, `dev.sigstore.cosign/bundle`,
/// `…/certificate`), through `Verifier::verify_cosign_signature` against the
/// public-good root.
///
/// Input: `PAYLOAD` or `PAYLOAD\n--annotations--\n{JSON object of strings}`.
pub fn cosign_signature(data: &[u8]) {
    let (payload, annotations) = split_annotations(data);
    let subject = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|p| {
            p.pointer("/critical/image/docker-manifest-digest")
                .and_then(Value::as_str)
                .and_then(|d| d.parse::<Digest>().ok())
        })
        .unwrap_or_else(default_subject);
    let _ = verifier().verify_cosign_signature(
        payload,
        &annotations,
        &subject,
        source(SourceKind::CosignSig),
    );
}

/// in-toto statement parsing (`Statement::parse`) with the default limits.
///
/// Invariants: the type is v1 or v0.1; the predicate type is set; subjects
/// are non-empty and within the limits; every digest kept is canonical and
/// bound; the JSON is an object.
pub fn statement(data: &[u8]) {
    let limits = VerifyLimits::default();
    let Ok(s) = Statement::parse(data, &limits) else {
        return;
    };
    assert!(s.statement_type() == STATEMENT_V1 || s.statement_type() == STATEMENT_V01);
    assert!(!s.predicate_type().is_empty());
    assert!(!s.subjects().is_empty());
    assert!(s.subjects().len() <= limits.max_subjects);
    for subject in s.subjects() {
        assert!(subject.digests.len() <= limits.max_digests_per_subject);
        for d in &subject.digests {
            assert!(s.binds(d));
            assert_eq!(d.to_string().parse::<Digest>().as_ref(), Ok(d));
        }
    }
    assert!(serde_json::from_slice::<serde_json::Value>(s.raw()).is_ok_and(|v| v.is_object()));
}

fn check_descriptor(d: &Descriptor) {
    let _ = d.platform.as_ref().map(|p| p.to_string());
    let _ = is_sigstore_bundle(&d.media_type);
    let _ = d.artifact_type.as_deref().map(is_sigstore_bundle);
    // Digests are validated while parsing.
    assert_eq!(
        d.digest.to_string().parse::<Digest>().as_ref(),
        Ok(&d.digest)
    );
}

/// OCI manifest and index parsing (`oci::manifest::parse`) as discovery uses
/// it: image manifests (cosign tags, referrer artifacts), indexes (multi-arch
/// images, the referrers API and tag schema), descriptors.
///
/// Invariant: every digest parsed is canonical.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = manifest::parse::<ImageManifest>(data) {
        let _ = is_sigstore_bundle(m.effective_artifact_type());
        let _ = m.media_type.as_deref().map(is_index);
        check_descriptor(&m.config);
        m.layers.iter().for_each(check_descriptor);
        if let Some(s) = &m.subject {
            check_descriptor(s);
        }
    }
    if let Ok(i) = manifest::parse::<ImageIndex>(data) {
        let _ = i.media_type.as_deref().map(is_index);
        i.manifests.iter().for_each(check_descriptor);
    }
    if let Ok(d) = manifest::parse::<Descriptor>(data) {
        check_descriptor(&d);
    }
}

/// Kinds whose pod spec location `images_of` knows: never "no pod spec".
const KNOWN_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "PodTemplate",
];

/// Kinds read through a pod template if they have one.
const OTHER_KINDS: &[&str] = &["Rollout", "ConfigMap"];

fn extract(kind: &str, object: &Value) {
    match images_of(kind, object) {
        Ok(Some(images)) => {
            for i in images {
                assert_eq!(
                    object.pointer(&i.pointer).and_then(Value::as_str),
                    Some(i.image.as_str()),
                    "{kind}: image {:?} is not at {}",
                    i.image,
                    i.pointer
                );
            }
        }
        Ok(None) => assert!(
            !KNOWN_KINDS.contains(&kind),
            "{kind} is a known workload kind, yet has no pod spec"
        ),
        Err(_) => {}
    }
}

/// AdmissionReview parsing and image extraction: the review as
/// `admission::review` reads it (kube's `AdmissionReview<DynamicObject>`,
/// converted to a request), then `admission::images::images_of` over the
/// object and the old object; and `images_of` over arbitrary JSON for every
/// kind it knows and two it does not.
///
/// Invariants: every image found is at its JSON pointer (what the
/// digest-pinning patch writes to); a known workload kind never reads as
/// "no pod spec" (which admission denies unless the kind is skipped).
pub fn admission(data: &[u8]) {
    if let Ok(review) = serde_json::from_slice::<AdmissionReview<DynamicObject>>(data) {
        let req: Result<AdmissionRequest<DynamicObject>, _> = review.try_into();
        if let Ok(req) = req {
            let kind = req.kind.kind.clone();
            for obj in [&req.object, &req.old_object].into_iter().flatten() {
                if let Ok(v) = serde_json::to_value(obj) {
                    extract(&kind, &v);
                }
            }
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        // A bare object, and the object of a review-shaped document.
        for kind in KNOWN_KINDS.iter().chain(OTHER_KINDS) {
            extract(kind, &v);
            if let Some(obj) = v.pointer("/request/object") {
                extract(kind, obj);
            }
        }
    }
}

/// The registry and repository Docker's reference parser gives a name
/// (distribution/reference `splitDockerDomain`, as `ParseNormalizedNamed`
/// applies it): the first component is a host when it has a `.` or `:`, is
/// `localhost`, or has an upper-case letter; `index.docker.io` is the legacy
/// name of `docker.io`; one-component Docker Hub names get `library/`.
pub fn docker_split_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".to_owned();
    }
    if domain == "docker.io" && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    (domain, remainder)
}

/// The name part of a reference: without `@digest` and without `:tag` (a
/// `:` after the last `/`).
fn name_part(s: &str) -> &str {
    let s = s.split_once('@').map_or(s, |(n, _)| n);
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => &s[..i],
        _ => s,
    }
}

/// Image reference parsing (`ImageRef::parse`) and digest parsing.
///
/// Invariants, for every string that parses:
/// - the registry and repository are the ones Docker's parser gives
///   ([`docker_split_domain`]), so provgate judges the image the runtime
///   pulls; repositories are lower case;
/// - the printed form parses back to an equal reference with the same
///   registry, repository and request host, and prints the same again;
/// - `ImageRef::from_parts` of its parts gives it back;
/// - a digest prints as parsed.
pub fn image_ref(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = ImageRef::parse(s) {
        check_image_ref(s, &r);
    }
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string(), s);
        let _ = d.tag_schema();
    }
}

fn check_image_ref(s: &str, r: &ImageRef) {
    // Distribution's grammar: repository path components are lower case.
    assert!(
        !r.repository().bytes().any(|b| b.is_ascii_uppercase()),
        "{s:?} gives repository {:?}",
        r.repository()
    );
    let (domain, repository) = docker_split_domain(name_part(s));
    assert_eq!(
        (r.registry(), r.repository()),
        (domain.as_str(), repository.as_str()),
        "{s:?}: provgate's registry/repository differ from Docker's"
    );
    assert_eq!(r.name(), format!("{}/{}", r.registry(), r.repository()));
    let printed = r.to_string();
    let again = match ImageRef::parse(&printed) {
        Ok(again) => again,
        Err(e) => panic!("{s:?} parses, but its normal form {printed:?} does not: {e}"),
    };
    assert_eq!(&again, r, "{s:?} printed as {printed:?}");
    assert_eq!(again.registry(), r.registry(), "{s:?} → {printed:?}");
    assert_eq!(again.repository(), r.repository(), "{s:?} → {printed:?}");
    assert_eq!(
        again.registry_host(),
        r.registry_host(),
        "{s:?} → {printed:?}"
    );
    assert_eq!(again.to_string(), printed, "{s:?}: printing is not stable");
    match ImageRef::from_parts(r.registry(), r.repository(), r.tag(), r.digest().cloned()) {
        Ok(rebuilt) => assert_eq!(&rebuilt, r, "{s:?}: from_parts differs"),
        Err(e) => panic!("{s:?}: its parts do not rebuild it: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_split_domain_follows_distribution() {
        for (name, domain, repo) in [
            ("nginx", "docker.io", "library/nginx"),
            ("acme/app", "docker.io", "acme/app"),
            ("docker.io/b", "docker.io", "library/b"),
            ("index.docker.io/b", "docker.io", "library/b"),
            ("registry-1.docker.io/b", "registry-1.docker.io", "b"),
            ("localhost/x", "localhost", "x"),
            ("Library/ngin", "Library", "ngin"),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b"),
        ] {
            assert_eq!(
                docker_split_domain(name),
                (domain.to_owned(), repo.to_owned()),
                "{name}"
            );
        }
        assert_eq!(
            name_part("localhost:5000/a:1@sha256:00"),
            "localhost:5000/a"
        );
        assert_eq!(name_part("localhost:5000/a"), "localhost:5000/a");
    }

    /// The image_ref invariants over a grid of hosts, paths and suffixes
    /// (what the fuzzer explores at random, here exhaustively for the
    /// shapes that matter: Docker Hub spellings, ports, IPv6, localhost,
    /// upper case).
    #[test]
    fn image_ref_invariants_hold_over_a_grid_of_names() {
        let hex = "00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a";
        let hosts = [
            "",
            "docker.io/",
            "index.docker.io/",
            "registry-1.docker.io/",
            "registry.hub.docker.com/",
            "localhost/",
            "localhost:5000/",
            "Localhost/",
            "[::1]/",
            "[::1]:5000/",
            "127.0.0.1:5000/",
            "a.b/",
            "UPPER.io/",
            "foo/",
            "Foo/",
        ];
        let paths = [
            "b",
            "library/b",
            "a/b",
            "a/b/c",
            "a__b",
            "a-b.c",
            "A",
            "a/B",
        ];
        let digest = format!("@sha256:{hex}");
        let tagged_digest = format!(":v1{digest}");
        let suffixes = [
            "",
            ":1",
            ":latest",
            ":V1.0_x",
            digest.as_str(),
            tagged_digest.as_str(),
        ];
        let mut accepted = 0;
        for h in hosts {
            for p in paths {
                for x in suffixes {
                    let s = format!("{h}{p}{x}");
                    image_ref(s.as_bytes());
                    accepted += usize::from(ImageRef::parse(&s).is_ok());
                }
            }
        }
        assert!(accepted > 300, "only {accepted} names parsed");
    }

    #[test]
    fn every_target_has_a_unique_name() {
        for t in Target::ALL {
            assert_eq!(Target::from_name(t.name()), Some(t));
        }
        assert_eq!(Target::from_name("nope"), None);
    }
}
