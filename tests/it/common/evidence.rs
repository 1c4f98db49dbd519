//! Helpers for the verification tests: trust stores, verifiers, kit-signed
//! evidence, JSON surgery on bundles and assertions on `VerifyError`s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use provgate::digest::Digest;
use provgate::verify::{
    Authority, AuthorityKind, EvidenceSource, KeylessIdentity, Matcher, SourceKind, TrustStore,
    Verified, Verifier, VerifyError, VerifyLimits,
};
use serde_json::Value;

use super::kit::{GH_ID, GH_ISS, Kit, kit, repo_name};

/// The digest `push-image` always produces for the default image.
pub const IMAGE_DIGEST: &str =
    "sha256:00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a";

/// The default image digest, parsed.
pub fn image_digest() -> Digest {
    IMAGE_DIGEST.parse().unwrap()
}

/// A trust store holding only the kit's trusted root, named `kit`.
pub fn kit_trust() -> TrustStore {
    TrustStore::builder()
        .root_json("kit", &kit().trusted_root_json())
        .build()
        .expect("kit trusted root loads")
}

/// A verifier over the kit's trusted root with default limits.
pub fn kit_verifier() -> Verifier {
    Verifier::new(Arc::new(kit_trust()), VerifyLimits::default())
}

/// A verifier over the kit's trusted root with `limits`.
pub fn kit_verifier_with(limits: VerifyLimits) -> Verifier {
    Verifier::new(Arc::new(kit_trust()), limits)
}

/// A verifier over one fixture trusted root (path under `fixtures/`), named `name`.
pub fn fixture_verifier(name: &str, root: &str) -> Verifier {
    let json = String::from_utf8(super::read_fixture(root)).unwrap();
    let trust = TrustStore::builder()
        .root_json(name, &json)
        .build()
        .unwrap();
    Verifier::new(Arc::new(trust), VerifyLimits::default())
}

/// An evidence source for a bundle found through the referrers tag schema.
pub fn tag_schema_source() -> EvidenceSource {
    EvidenceSource {
        kind: SourceKind::TagSchema,
        manifest: None,
        layer: None,
    }
}

/// An evidence source of the given kind.
pub fn source(kind: SourceKind) -> EvidenceSource {
    EvidenceSource {
        kind,
        manifest: None,
        layer: None,
    }
}

/// An image pushed to the kit, with its reference and digest.
pub struct Image {
    /// `registry/repo`.
    pub repo: String,
    /// The repository path without the registry.
    pub path: String,
    /// Its digest.
    pub digest: Digest,
}

impl Image {
    /// `registry/repo@digest`.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.repo, self.digest)
    }
}

/// Pushes an image to a fresh repository (`prefix…/app`); `extra` goes to
/// `push-image` (e.g. `--layers 1 --size 1024 --seed s` for a different
/// digest: `--seed` alone does not change the default image).
pub fn push_image(prefix: &str, extra: &[&str]) -> Image {
    let k = kit();
    let path = format!("{}/app", repo_name(prefix));
    let digest = k.push_image(&format!("{path}:v1"), extra);
    Image {
        repo: format!("{}/{}", k.registry(), path),
        path,
        digest: digest.parse().unwrap(),
    }
}

/// A file in the kit directory with a unique name.
pub fn kit_file(stem: &str) -> PathBuf {
    kit().path(&format!("{}.{stem}", repo_name("f")))
}

/// Signs SLSA provenance for `image` with sigstore-js and returns the bundle
/// bytes; `extra` goes to `sign-provenance`.
pub fn sign_provenance_as(image: &Image, identity: &str, issuer: &str, extra: &[&str]) -> Vec<u8> {
    let out = kit_file("prov.json");
    let out_s = out.to_str().unwrap();
    let mut args = vec![
        "sign-provenance",
        &image.reference(),
        "--identity",
        identity,
        "--issuer",
        issuer,
        "--out",
        out_s,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kit().tk(&args);
    std::fs::read(&out).unwrap()
}

/// Signs SLSA provenance with the GitHub Actions identity.
pub fn sign_provenance(image: &Image, extra: &[&str]) -> Vec<u8> {
    sign_provenance_as(image, GH_ID, GH_ISS, extra)
}

/// Kit bundles shared by many tests: signed once per run.
pub struct Shared {
    /// The image they are about.
    pub image: Image,
    /// sigstore-js provenance: dsse 0.0.1 entry with proof, SET, checkpoint, plus a TSA timestamp.
    pub prov: Vec<u8>,
    /// The same, signed a second time (another key, certificate, entry and timestamp).
    pub prov_again: Vec<u8>,
    /// sigstore-js provenance without a TSA timestamp (`--no-tsa`).
    pub prov_no_tsa: Vec<u8>,
}

/// The shared kit bundles.
pub fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let image = push_image("shared", &[]);
        let prov = sign_provenance(&image, &[]);
        let prov_again = sign_provenance(&image, &[]);
        let prov_no_tsa = sign_provenance(&image, &["--no-tsa"]);
        Shared {
            image,
            prov,
            prov_again,
            prov_no_tsa,
        }
    })
}

/// Parses bundle bytes as JSON.
pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Applies `f` to a copy of the bundle JSON and re-serialises it.
pub fn mutate(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = json(bytes);
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Decodes standard base64.
pub fn unb64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

/// Encodes standard base64.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Flips the low bit of byte `index` (negative: from the end) of a base64 value.
pub fn flip_b64(s: &str, index: isize) -> String {
    let mut bytes = unb64(s);
    let i = if index < 0 {
        bytes.len() - index.unsigned_abs()
    } else {
        index as usize
    };
    bytes[i] ^= 0x01;
    b64(&bytes)
}

/// Replaces the string at a JSON pointer with `f(old)`.
pub fn edit_str(v: &mut Value, pointer: &str, f: impl FnOnce(&str) -> String) {
    let slot = v
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in bundle"));
    let old = slot
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is not a string"))
        .to_owned();
    *slot = Value::String(f(&old));
}

/// The DSSE statement of a bundle, decoded.
pub fn statement_of(bundle: &[u8]) -> Value {
    let v = json(bundle);
    let payload = v["dsseEnvelope"]["payload"].as_str().unwrap();
    serde_json::from_slice(&unb64(payload)).unwrap()
}

/// Asserts that an error's Display text is one readable line that contains
/// every needle, and returns it.
#[track_caller]
pub fn assert_readable(err: &dyn std::fmt::Display, needles: &[&str]) -> String {
    let text = err.to_string();
    assert!(!text.trim().is_empty(), "empty error message");
    assert!(
        !text.contains('\n'),
        "error message is not one line: {text:?}"
    );
    assert!(
        text.len() < 1500,
        "error message is {} bytes: {text}",
        text.len()
    );
    for n in needles {
        assert!(
            text.contains(n),
            "error message {text:?} does not mention {n:?}"
        );
    }
    text
}

/// The single `sigstore_verify::Error` of a keyless failure against one root.
#[track_caller]
pub fn keyless_error(err: &VerifyError) -> &sigstore_verify::Error {
    match err {
        VerifyError::Keyless(errs) => {
            assert_eq!(errs.len(), 1, "expected one trusted root tried: {err}");
            &errs[0].1
        }
        other => panic!("expected VerifyError::Keyless, got {other:?}"),
    }
}

/// The single `sigstore_verify::Error` of a key failure against one key.
#[track_caller]
pub fn key_error(err: &VerifyError) -> &sigstore_verify::Error {
    match err {
        VerifyError::Key(provgate::verify::KeyFailure::Failed(errs)) => {
            assert_eq!(errs.len(), 1, "expected one trusted key tried: {err}");
            &errs[0].1
        }
        other => panic!("expected VerifyError::Key(Failed), got {other:?}"),
    }
}

/// Unwraps the error of a verification that must fail.
#[track_caller]
pub fn must_fail(r: Result<Verified, VerifyError>) -> VerifyError {
    match r {
        Ok(v) => panic!("verification unexpectedly succeeded: {:?}", v.facts()),
        Err(e) => e,
    }
}

/// A keyless authority with exact subject and issuer.
pub fn keyless_authority(subject: &str, issuer: &str) -> Authority {
    Authority {
        name: "test".into(),
        kind: AuthorityKind::Keyless(KeylessIdentity {
            issuer: Matcher::exact("issuer", issuer).unwrap(),
            subject: Matcher::exact("subject", subject).unwrap(),
            claims: BTreeMap::new(),
            trusted_root: None,
        }),
        require_tlog: true,
    }
}

/// A key authority for a trusted key of `trust`.
pub fn key_authority(trust: &TrustStore, name: &str, require_tlog: bool) -> Authority {
    let key = trust.key(name).expect("key in trust store");
    Authority {
        name: format!("key {name}"),
        kind: AuthorityKind::Key {
            key_id: key.key_id().to_owned(),
            key_name: key.name().to_owned(),
        },
        require_tlog,
    }
}

/// A layer of a cosign `.sig`/`.att` manifest, fetched from the kit registry.
pub struct CosignLayer {
    /// The blob bytes.
    pub bytes: Vec<u8>,
    /// The layer annotations.
    pub annotations: BTreeMap<String, String>,
    /// The layer digest.
    pub digest: Digest,
    /// The media type.
    pub media_type: String,
}

/// GETs a registry path (`/v2/…`) with basic auth through curl.
pub fn registry_get(k: &Kit, path: &str, accept: &str) -> Vec<u8> {
    let url = format!("{}{path}", k.var("TESTKIT_REGISTRY_URL"));
    let user = format!(
        "{}:{}",
        k.var("TESTKIT_REGISTRY_USER"),
        k.var("TESTKIT_REGISTRY_PASS")
    );
    let out = Command::new("curl")
        .args([
            "-sSf",
            "-u",
            &user,
            "-H",
            &format!("Accept: {accept}"),
            &url,
        ])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Fetches the cosign tag `sha256-<hex>.<suffix>` of `image` and its layers,
/// checking each blob against its digest. Returns the manifest digest too.
pub fn cosign_layers(image: &Image, suffix: &str) -> (Digest, Vec<CosignLayer>) {
    let k = kit();
    let tag = format!("{}.{suffix}", image.digest.tag_schema());
    let manifest_bytes = registry_get(
        k,
        &format!("/v2/{}/manifests/{tag}", image.path),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let manifest_digest = Digest::sha256_of(&manifest_bytes);
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let digest: Digest = l["digest"].as_str().unwrap().parse().unwrap();
            let bytes = registry_get(
                k,
                &format!("/v2/{}/blobs/{digest}", image.path),
                "application/octet-stream",
            );
            assert!(digest.matches(&bytes), "blob {digest} does not match");
            let annotations = l["annotations"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            CosignLayer {
                bytes,
                annotations,
                digest,
                media_type: l["mediaType"].as_str().unwrap().to_owned(),
            }
        })
        .collect();
    (manifest_digest, layers)
}

/// A cosign key pair generated by the kit (`gen-key`), password `pw`.
pub struct KeyPair {
    /// The encrypted private key.
    pub key: PathBuf,
    /// The PEM public key.
    pub public_pem: String,
}

/// Generates a cosign key pair in a fresh directory.
pub fn gen_key() -> KeyPair {
    let dir = kit_file("keys");
    let dir_s = dir.to_str().unwrap();
    kit().tk(&["gen-key", dir_s, "--password", "pw"]);
    KeyPair {
        key: dir.join("cosign.key"),
        public_pem: std::fs::read_to_string(dir.join("cosign.pub")).unwrap(),
    }
}

/// Asks the kit's TSA for an RFC 3161 token over `signature` (sha256
/// imprint), via `openssl ts -query` and curl; returns the bare token.
pub fn kit_tsa_token(signature: &[u8]) -> Vec<u8> {
    let k = kit();
    let sig = kit_file("sig.bin");
    let req = kit_file("tsq");
    let resp = kit_file("tsr");
    let token = kit_file("tst");
    std::fs::write(&sig, signature).unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(Command::new("openssl").args([
        "ts",
        "-query",
        "-data",
        sig.to_str().unwrap(),
        "-sha256",
        "-cert",
        "-out",
        req.to_str().unwrap(),
    ]));
    run(Command::new("curl").args([
        "-sSf",
        "-H",
        "Content-Type: application/timestamp-query",
        "--data-binary",
        &format!("@{}", req.display()),
        "-o",
        resp.to_str().unwrap(),
        &format!("{}/api/v1/timestamp", k.var("TESTKIT_SIGSTORE_URL")),
    ]));
    run(Command::new("openssl").args([
        "ts",
        "-reply",
        "-in",
        resp.to_str().unwrap(),
        "-token_out",
        "-out",
        token.to_str().unwrap(),
    ]));
    std::fs::read(&token).unwrap()
}
