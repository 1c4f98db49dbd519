//! A fake OCI registry of many signed images, for the RSS measurement.
//!
//! Each image `i` is a small OCI image manifest in repository
//! `rss/app<i % repos>` with one referrer: an artifact manifest
//! (`artifactType` Sigstore bundle v0.3, `subject` the image) whose layer is
//! a bundle holding a DSSE envelope of an in-toto SLSA v1 provenance
//! statement shaped like `actions/attest-build-provenance`'s, padded to
//! `--statement-bytes`. The bundle's verification material is a
//! `publicKey` hint; it has no tlog entry and no timestamp. The public key
//! is written to `OUT/key.pub.pem` for provgate's `trust.keys`.
//!
//! Served: `GET /v2/`, manifests by digest (GET/HEAD), the referrers API
//! (`GET /v2/<repo>/referrers/<digest>`) and blobs. Everything is
//! generated before the listener reports ready (`OUT/addr` appears last).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::Digest as _;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// `registry` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// How many images to serve.
    #[arg(long, default_value_t = 10_000)]
    digests: usize,
    /// Over how many repositories.
    #[arg(long, default_value_t = 100)]
    repos: usize,
    /// Target size of each in-toto statement, in bytes.
    #[arg(long, default_value_t = 3584)]
    statement_bytes: usize,
    /// Directory for key.pub.pem, images.txt and (last, when ready) addr.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Default)]
struct Store {
    /// Manifests by digest: (media type, bytes).
    manifests: HashMap<String, (&'static str, Bytes)>,
    /// Blobs by digest.
    blobs: HashMap<String, Bytes>,
    /// Referrers indexes by subject digest.
    referrers: HashMap<String, Bytes>,
    requests: AtomicU64,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

/// An in-toto SLSA v1 provenance statement like
/// actions/attest-build-provenance's, padded with resolved dependencies to
/// about `target` bytes.
fn statement(name: &str, digest_hex: &str, i: usize, target: usize) -> Vec<u8> {
    let commit = hex::encode(&sha2::Sha256::digest(format!("commit {i}").as_bytes())[..20]);
    let mut deps = vec![json!({
        "uri": "git+https://github.com/acme/app@refs/heads/main",
        "digest": {"gitCommit": commit},
    })];
    let mut n = 0;
    loop {
        let s = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": digest_hex}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                    "externalParameters": {"workflow": {
                        "ref": "refs/heads/main",
                        "repository": "https://github.com/acme/app",
                        "path": ".github/workflows/build.yml",
                    }},
                    "internalParameters": {"github": {
                        "event_name": "push",
                        "repository_id": "801234567",
                        "repository_owner_id": "91234567",
                        "runner_environment": "github-hosted",
                    }},
                    "resolvedDependencies": deps,
                },
                "runDetails": {
                    "builder": {"id": "https://github.com/actions/runner/github-hosted"},
                    "metadata": {"invocationId": format!(
                        "https://github.com/acme/app/actions/runs/{}/attempts/1", 12_000_000_000u64 + i as u64)},
                },
            },
        });
        let bytes = serde_json::to_vec(&s).unwrap_or_default();
        if bytes.len() >= target || n >= 200 {
            return bytes;
        }
        deps.push(json!({
            "uri": format!("pkg:docker/acme/base-layer-{n}@sha256:{}", hex::encode(sha2::Sha256::digest(format!("{i}/{n}").as_bytes()))),
            "digest": {"sha256": hex::encode(sha2::Sha256::digest(format!("dep {i}/{n}").as_bytes()))},
            "name": format!("base-layer-{n}"),
        }));
        n += 1;
    }
}

struct Signer {
    key: EcdsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> anyhow::Result<(Self, String)> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|e| anyhow::anyhow!("key generation: {e}"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .map_err(|e| anyhow::anyhow!("key: {e}"))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|e| anyhow::anyhow!("public key: {e}"))?;
        let spki = spki.as_ref().to_vec();
        let key_id = hex::encode(sha2::Sha256::digest(&spki));
        let b64 = B64.encode(&spki);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok((Signer { key, key_id, rng }, pem))
    }

    /// A Sigstore bundle v0.3: DSSE envelope, public-key hint, no tlog.
    fn bundle(&self, statement: &[u8]) -> anyhow::Result<Vec<u8>> {
        let sig = self
            .key
            .sign(&self.rng, &provgate::gate::vsa::pae(IN_TOTO, statement))
            .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
        Ok(serde_json::to_vec(&json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "publicKey": {"hint": self.key_id},
                "tlogEntries": [],
                "timestampVerificationData": {"rfc3161Timestamps": []},
            },
            "dsseEnvelope": {
                "payload": B64.encode(statement),
                "payloadType": IN_TOTO,
                "signatures": [{"sig": B64.encode(sig.as_ref()), "keyid": ""}],
            },
        }))?)
    }
}

fn build(args: &Args, host: &str, signer: &Signer) -> anyhow::Result<(Store, Vec<String>, usize)> {
    let mut store = Store::default();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    store
        .blobs
        .insert(sha256(config), Bytes::from_static(config));
    store.blobs.insert(sha256(b"{}"), Bytes::from_static(b"{}"));
    let mut images = Vec::with_capacity(args.digests);
    let mut statement_len = 0;
    for i in 0..args.digests {
        let repo = format!("rss/app{}", i % args.repos.max(1));
        // The layer is never fetched: only its descriptor makes the
        // manifest (and so the digest) unique.
        let layer = format!("layer of image {i}");
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer.as_bytes())],
        }))?;
        let digest = sha256(&manifest);
        let hex = digest.trim_start_matches("sha256:").to_owned();
        let st = statement(&format!("{host}/{repo}"), &hex, i, args.statement_bytes);
        statement_len = st.len();
        let bundle = signer.bundle(&st)?;
        let referrer = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_V03,
            "config": descriptor(OCI_EMPTY, b"{}"),
            "layers": [descriptor(BUNDLE_V03, &bundle)],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len()},
            "annotations": {"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"},
        }))?;
        let mut rdesc = descriptor(OCI_MANIFEST, &referrer);
        rdesc["artifactType"] = json!(BUNDLE_V03);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [rdesc],
        }))?;
        store.blobs.insert(sha256(&bundle), Bytes::from(bundle));
        store
            .manifests
            .insert(sha256(&referrer), (OCI_MANIFEST, Bytes::from(referrer)));
        store.referrers.insert(digest.clone(), Bytes::from(index));
        store
            .manifests
            .insert(digest.clone(), (OCI_MANIFEST, Bytes::from(manifest)));
        images.push(format!("{host}/{repo}@{digest}"));
    }
    Ok((store, images, statement_len))
}

fn reply(status: StatusCode, content_type: &str, digest: Option<&str>, body: Bytes) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(d) = digest {
        b = b.header("Docker-Content-Digest", d);
    }
    b.body(Body::from(body)).unwrap_or_default()
}

fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        "application/json",
        None,
        Bytes::from_static(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        ),
    )
}

async fn handle(State(store): State<Arc<Store>>, method: Method, uri: Uri) -> Response {
    store.requests.fetch_add(1, Ordering::Relaxed);
    let path = uri.path();
    if path == "/v2/" || path == "/v2" {
        return reply(
            StatusCode::OK,
            "application/json",
            None,
            Bytes::from_static(b"{}"),
        );
    }
    let head = method == Method::HEAD;
    let found = if let Some((_, d)) = path.rsplit_once("/manifests/") {
        store
            .manifests
            .get(d)
            .map(|(mt, b)| (*mt, Some(d), b.clone()))
    } else if let Some((_, d)) = path.rsplit_once("/referrers/") {
        // An image without referrers gets an empty index, as the API says.
        let body = store.referrers.get(d).cloned().unwrap_or_else(|| {
            Bytes::from(format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#
            ))
        });
        Some((OCI_INDEX, None, body))
    } else if let Some((_, d)) = path.rsplit_once("/blobs/") {
        store
            .blobs
            .get(d)
            .map(|b| ("application/octet-stream", Some(d), b.clone()))
    } else {
        None
    };
    match found {
        Some((mt, digest, body)) => reply(
            StatusCode::OK,
            mt,
            digest,
            if head { Bytes::new() } else { body },
        ),
        None => not_found(),
    }
}

/// Builds the images, then serves them until killed.
pub async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let host = listener.local_addr()?.to_string();
    let (signer, pem) = Signer::new()?;
    let started = std::time::Instant::now();
    let (store, images, statement_len) = build(&args, &host, &signer)?;
    let bundle_len = store
        .blobs
        .values()
        .map(Bytes::len)
        .max()
        .unwrap_or_default();
    eprintln!(
        "bench registry: {} images signed in {:.2} s (statement {} bytes, bundle {} bytes)",
        images.len(),
        started.elapsed().as_secs_f64(),
        statement_len,
        bundle_len
    );
    std::fs::write(args.out.join("key.pub.pem"), pem)?;
    std::fs::write(args.out.join("images.txt"), images.join("\n") + "\n")?;
    std::fs::write(
        args.out.join("sizes.json"),
        serde_json::to_vec(&json!({"statement_bytes": statement_len, "bundle_bytes": bundle_len}))?,
    )?;
    let store = Arc::new(store);
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(store.clone());
    // `addr` last: its appearance means ready.
    let tmp = args.out.join("addr.tmp");
    std::fs::write(&tmp, &host)?;
    std::fs::rename(&tmp, args.out.join("addr"))?;
    let served = store.clone();
    tokio::select! {
        r = axum::serve(listener, app) => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!(
        "bench registry: served {} requests",
        served.requests.load(Ordering::Relaxed)
    );
    Ok(())
}
