//! Helpers for the discovery tests: `Registries` pointed at the kit's
//! registry (plain HTTP or HTTPS), credential sets, a counting request
//! observer, and verification of discovered evidence the way the engine
//! does it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provgate::digest::Digest;
use provgate::image::ImageRef;
use provgate::oci::{
    Credential, CredentialSet, DiscoverOptions, Discovery, EvidenceContent, Limits, Registries,
    RegistryEntry, RegistryError, RegistryOptions, RequestKind, RequestObserver, Traced,
    UnverifiedEvidence,
};
use provgate::verify::{Signer, Verified, Verifier, VerifyError};

use super::kit::{GH_ID, GH_ISS, kit};

/// Records every request reported to it: (registry, kind, outcome).
#[derive(Default)]
pub struct CountingObserver {
    seen: Mutex<Vec<(String, RequestKind, String)>>,
}

impl CountingObserver {
    /// A new, shareable observer.
    pub fn new() -> Arc<Self> {
        Arc::new(CountingObserver::default())
    }
    /// What was observed, in order.
    pub fn seen(&self) -> Vec<(String, RequestKind, String)> {
        self.seen.lock().unwrap().clone()
    }
    /// How many requests were observed.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    /// How many requests of `kind` were observed.
    pub fn count_kind(&self, kind: RequestKind) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .count()
    }
}

impl RequestObserver for CountingObserver {
    fn observe(&self, registry: &str, kind: RequestKind, outcome: &str) {
        self.seen
            .lock()
            .unwrap()
            .push((registry.to_owned(), kind, outcome.to_owned()));
    }
}

/// Options for the kit's plain-HTTP listener.
pub fn plain_options() -> RegistryOptions {
    RegistryOptions {
        insecure: true,
        timeout: Duration::from_secs(10),
        ..RegistryOptions::default()
    }
}

/// Options for the kit's HTTPS listener: its CA, no plain HTTP.
pub fn tls_options() -> RegistryOptions {
    RegistryOptions {
        insecure: false,
        ca_pem: Some(std::fs::read(kit().var("TESTKIT_CA")).expect("read TESTKIT_CA")),
        timeout: Duration::from_secs(10),
        ..RegistryOptions::default()
    }
}

/// `Registries` with one entry, `host` → `options`.
pub fn registries_for(
    host: &str,
    options: RegistryOptions,
    limits: Limits,
    observer: Arc<dyn RequestObserver>,
) -> Registries {
    let mut entries = HashMap::new();
    entries.insert(
        host.to_owned(),
        RegistryEntry {
            options,
            mirrors: Vec::new(),
        },
    );
    Registries::new(entries, RegistryEntry::default(), limits, observer)
}

/// `Registries` for the kit's plain-HTTP listener with default limits.
pub fn kit_registries(observer: Arc<dyn RequestObserver>) -> Registries {
    registries_for(
        &kit().registry(),
        plain_options(),
        Limits::default(),
        observer,
    )
}

/// The kit user's credentials for `host`, as a set named `name`.
pub fn kit_creds_for(name: &str, host: &str) -> CredentialSet {
    kit_creds_with(name, host, &kit().var("TESTKIT_REGISTRY_PASS"))
}

/// The kit user with `password` for `host`, as a set named `name`.
pub fn kit_creds_with(name: &str, host: &str, password: &str) -> CredentialSet {
    CredentialSet::from_entries(
        name,
        [(
            host.to_owned(),
            Credential::Basic {
                username: kit().var("TESTKIT_REGISTRY_USER"),
                password: password.to_owned(),
            },
        )],
    )
}

/// The kit user's credentials for the plain-HTTP listener.
pub fn kit_creds() -> CredentialSet {
    kit_creds_for("kit", &kit().registry())
}

/// A Docker `config.json` with an `auth` entry (base64 user:password) for `host`.
pub fn docker_config_json(host: &str, user: &str, password: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({ "auths": { host: { "auth": auth } } }).to_string()
}

/// Parses a reference (test helper).
pub fn image_ref(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Discovery of a pinned reference (`registry/repo@digest`).
pub async fn discover_pinned(
    regs: &Registries,
    reference: &str,
    creds: &CredentialSet,
) -> Traced<Discovery> {
    let image = image_ref(reference);
    let digest = image.digest().expect("pinned reference").clone();
    regs.discover(&image, &digest, None, creds, DiscoverOptions::default())
        .await
}

/// Unwraps a successful traced result, printing the requests on failure.
#[track_caller]
pub fn ok<T: std::fmt::Debug>(t: Traced<T>) -> (T, Vec<provgate::oci::RequestRecord>) {
    match t.result {
        Ok(v) => (v, t.requests),
        Err(e) => panic!("registry call failed: {e}\nrequests: {:#?}", t.requests),
    }
}

/// Unwraps a failed traced result.
#[track_caller]
pub fn err<T: std::fmt::Debug>(t: Traced<T>) -> (RegistryError, Vec<provgate::oci::RequestRecord>) {
    match t.result {
        Ok(v) => panic!("registry call unexpectedly succeeded: {v:?}"),
        Err(e) => (e, t.requests),
    }
}

/// Verifies one discovered piece the way `Engine` does: by its content
/// kind, against the digest it was attached to.
pub fn verify_piece(v: &Verifier, e: &UnverifiedEvidence) -> Result<Verified, VerifyError> {
    match &e.content {
        EvidenceContent::Bundle(b) => v.verify_bundle(b, &e.subject, e.source.clone()),
        EvidenceContent::CosignSignature {
            payload,
            annotations,
        } => v.verify_cosign_signature(payload, annotations, &e.subject, e.source.clone()),
        EvidenceContent::CosignAttestation {
            envelope,
            annotations,
        } => v.verify_cosign_attestation(envelope, annotations, &e.subject, e.source.clone()),
    }
}

/// Verifies every piece and panics on the first failure.
#[track_caller]
pub fn verify_all(v: &Verifier, pieces: &[UnverifiedEvidence]) -> Vec<Verified> {
    pieces
        .iter()
        .map(|e| {
            verify_piece(v, e).unwrap_or_else(|err| {
                panic!(
                    "evidence found in {:?} on {} does not verify: {err}",
                    e.source.kind, e.subject
                )
            })
        })
        .collect()
}

/// The predicate type of an attestation, `None` for a signature.
pub fn predicate_type(v: &Verified) -> Option<String> {
    match v {
        Verified::Attestation(a) => Some(a.statement().predicate_type().to_owned()),
        Verified::Signature(_) => None,
    }
}

/// Asserts that the signer is the kit's GitHub Actions identity (keyless,
/// through the trusted root named `kit`).
#[track_caller]
pub fn assert_kit_keyless(v: &Verified) {
    match v.facts().signer() {
        Signer::Keyless(k) => {
            assert_eq!(k.issuer, GH_ISS);
            assert_eq!(k.subject, GH_ID);
            assert_eq!(k.trusted_root, "kit");
        }
        other => panic!("expected a keyless signer, got {other:?}"),
    }
}

/// Asserts that the signer is the trusted key `name` with key id `key_id`.
#[track_caller]
pub fn assert_key_signer(v: &Verified, name: &str, key_id: &str) {
    match v.facts().signer() {
        Signer::Key {
            key_id: id,
            key_name,
        } => {
            assert_eq!(key_name, name);
            assert_eq!(id, key_id);
        }
        other => panic!("expected a key signer, got {other:?}"),
    }
}

/// The digest of a platform of a `push-image --index` image, from its
/// stderr lines `testkit:   linux/amd64 sha256:…`.
pub fn index_children(stderr: &str) -> Vec<(String, Digest)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("testkit:")?.trim();
            let (platform, digest) = rest.split_once(' ')?;
            let digest = digest.trim().parse::<Digest>().ok()?;
            Some((platform.to_owned(), digest))
        })
        .collect()
}
