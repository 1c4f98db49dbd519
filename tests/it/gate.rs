//! The CI gate over real TLS: authentication (static tokens and CI OIDC
//! JWTs, including the classic JWT attacks), limits, contract selection,
//! parity with admission (S6), signed VSAs and `provgate check --server`.

use std::sync::OnceLock;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::common::kit::{GH_ISS, kit};
use crate::common::server::{
    KitImage, Server, Setup, allowed, message, review_of, signed_image, unsigned_image,
};

const TOKEN: &str = "release-ci-s3cret-token";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

struct Keys {
    jwt_pkcs8: Vec<u8>,
    jwks: Value,
    public_pem: String,
    vsa_pem: String,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..])}]});
        use aws_lc_rs::encoding::AsDer;
        let spki = pair.public_key().as_der().unwrap();
        let public_pem = pem("PUBLIC KEY", spki.as_ref());
        let vsa = EcdsaKeyPair::generate_pkcs8(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        Keys {
            jwt_pkcs8: pkcs8.as_ref().to_vec(),
            jwks,
            public_pem,
            vsa_pem: pem("PRIVATE KEY", vsa.as_ref()),
        }
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(repo: &str) -> Value {
    json!({"iss": ISSUER, "aud": "provgate", "sub": format!("repo:{repo}:ref:refs/heads/main"),
        "repository": repo, "iat": now(), "nbf": now() - 5, "exp": now() + 300})
}

fn es256(claims: &Value, kid: &str) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(
        &h,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&keys().jwt_pkcs8),
    )
    .unwrap()
}

fn gate_setup(rate: u32) -> Setup {
    let sha = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    Setup {
        extra: format!(
            r#"gate:
  tokens:
    - {{name: release-ci, sha256: "{sha}", contracts: [needs-provenance]}}
  oidc:
    - name: github
      issuer: {ISSUER}
      audiences: [provgate]
      jwksFile: jwks.json
      claims: {{repository: {{regex: "acme/.+"}}}}
  maxImages: 4
  rateLimitPerMinute: {rate}
  bodyTimeout: 1s
  vsa: {{keyFile: vsa.key, verifierId: "https://provgate.test/gate"}}
"#
        ),
        ..Setup::default()
    }
}

fn start_gate(rate: u32) -> Server {
    // The JWKS and VSA key must exist before the config compiles.
    Server::start_prepared(gate_setup(rate), |dir| {
        std::fs::write(dir.join("jwks.json"), keys().jwks.to_string()).unwrap();
        std::fs::write(dir.join("vsa.key"), &keys().vsa_pem).unwrap();
    })
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| start_gate(10_000))
}

fn good() -> &'static KitImage {
    static I: OnceLock<KitImage> = OnceLock::new();
    I.get_or_init(|| signed_image("gate-good"))
}

fn bad() -> &'static KitImage {
    static I: OnceLock<KitImage> = OnceLock::new();
    I.get_or_init(|| unsigned_image("gate-bad"))
}

fn call(s: &Server, auth: Option<&str>, body: &Value) -> (u16, Value) {
    call_raw(s, auth, body.to_string())
}

fn call_raw(s: &Server, auth: Option<&str>, body: String) -> (u16, Value) {
    s.rt.block_on(async {
        let mut r = s
            .client
            .post(format!("{}/v1/gate", s.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    })
}

fn images(imgs: &[&str]) -> Value {
    json!({"images": imgs, "context": {"namespace": "prod"}})
}

#[test]
fn static_tokens_valid_invalid_and_missing() {
    let s = server();
    let body = images(&[&good().tagged]);
    let (st, v) = call(s, Some(&format!("Bearer {TOKEN}")), &body);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["caller"], "token:release-ci");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(&format!("Basic {TOKEN}")[..]),
        Some("Bearer "),
    ] {
        let (st, v) = call(s, auth, &body);
        assert_eq!(st, 401, "{auth:?}: {v}");
        assert_eq!(
            v,
            json!({"error": "unauthorized"}),
            "the 401 says which part failed"
        );
    }
}

#[test]
fn oidc_tokens_only_the_valid_one_passes() {
    let s = server();
    let body = images(&[&good().tagged]);
    let valid = es256(&claims("acme/app"), "k1");
    let (st, v) = call(s, Some(&format!("Bearer {valid}")), &body);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["caller"], "oidc:github:repo:acme/app:ref:refs/heads/main");

    let mut expired = claims("acme/app");
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = claims("acme/app");
    wrong_aud["aud"] = json!("sigstore");
    let mut wrong_iss = claims("acme/app");
    wrong_iss["iss"] = json!("https://gitlab.example.com");
    let mut not_yet = claims("acme/app");
    not_yet["nbf"] = json!(now() + 3600);
    let none = format!(
        "{}.{}.",
        B64URL.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        B64URL.encode(claims("acme/app").to_string())
    );
    // Alg confusion: HS256 "signed" with the issuer's public key as secret.
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &hs,
        &claims("acme/app"),
        &jsonwebtoken::EncodingKey::from_secret(keys().public_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let cases = [
        ("expired", es256(&expired, "k1")),
        ("wrong aud", es256(&wrong_aud, "k1")),
        ("wrong iss", es256(&wrong_iss, "k1")),
        ("not yet valid", es256(&not_yet, "k1")),
        ("alg none", none),
        ("HMAC with the public key", confused),
        ("unknown kid", es256(&claims("acme/app"), "k2")),
        ("claim constraint not met", es256(&claims("evil/app"), "k1")),
        (
            "claim that merely contains the pattern",
            es256(&claims("evilacme/app"), "k1"),
        ),
        ("tampered payload", {
            let t = es256(&claims("acme/app"), "k1");
            let parts: Vec<&str> = t.split('.').collect();
            let mut c = claims("acme/app");
            c["repository"] = json!("acme/other");
            format!("{}.{}.{}", parts[0], B64URL.encode(c.to_string()), parts[2])
        }),
    ];
    for (what, token) in cases {
        let (st, v) = call(s, Some(&format!("Bearer {token}")), &body);
        assert_eq!(st, 401, "{what}: {v}");
        assert_eq!(v, json!({"error": "unauthorized"}));
    }
}

#[test]
fn limits_body_size_image_count_slow_body_and_rate() {
    let s = server();
    let auth = format!("Bearer {TOKEN}");
    let many: Vec<String> = (0..5).map(|i| format!("{}:{i}", good().repo)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (st, v) = call(s, Some(&auth), &images(&many));
    assert_eq!(st, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("gate.maxImages"),
        "{v}"
    );
    let huge = format!(
        r#"{{"images": ["{}"], "pad": "{}"}}"#,
        good().tagged,
        "x".repeat(4 * 1024 * 1024)
    );
    let (st, _) = call_raw(s, Some(&auth), huge);
    assert_eq!(st, 413);
    let (st, v) = call_raw(
        s,
        Some(&auth),
        r#"{"images": ["a"], "unknownField": 1}"#.into(),
    );
    assert_eq!(st, 400, "{v}");
    // A body that trickles in is cut off at gate.bodyTimeout (1 s).
    let started = std::time::Instant::now();
    let st = s.rt.block_on(async {
        let stream = futures_util::stream::unfold(0u32, |i| async move {
            if i > 20 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")),
                i + 1,
            ))
        });
        let r = s
            .client
            .post(format!("{}/v1/gate", s.base))
            .header("authorization", &auth)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        r.map(|r| r.status().as_u16()).unwrap_or(0)
    });
    assert_eq!(st, 408);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Per-caller rate limit.
    let limited = start_gate(3);
    let body = images(&[&good().tagged]);
    for i in 0..3 {
        assert_eq!(call(&limited, Some(&auth), &body).0, 200, "request {i}");
    }
    let (st, v) = call(&limited, Some(&auth), &body);
    assert_eq!(st, 429, "{v}");
    // Another caller has its own bucket.
    let jwt = es256(&claims("acme/app"), "k1");
    assert_eq!(call(&limited, Some(&format!("Bearer {jwt}")), &body).0, 200);
}

#[test]
fn a_contract_set_may_be_chosen_only_when_permitted() {
    let s = server();
    let body = json!({"images": [bad().tagged], "contracts": ["needs-provenance"]});
    let (st, v) = call(s, Some(&format!("Bearer {TOKEN}")), &body);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["images"][0]["contracts"][0]["name"], "needs-provenance");
    // Judged under the binding that covers the image, as admission would.
    assert_eq!(v["images"][0]["contracts"][0]["binding"], "prod");
    let jwt = es256(&claims("acme/app"), "k1");
    let (st, v) = call(s, Some(&format!("Bearer {jwt}")), &body);
    assert_eq!(st, 403, "{v}");
}

#[test]
fn s6_gate_and_admission_deny_the_same_image_with_the_same_requirement_text() {
    let s = server();
    let (st, v) = call(
        s,
        Some(&format!("Bearer {TOKEN}")),
        &images(&[&bad().tagged]),
    );
    assert_eq!(st, 200);
    assert_eq!(v["allowed"], false);
    let gate_line = v["images"][0]["denials"][0].as_str().unwrap().to_owned();
    let adm = s.review(
        "/validate",
        &review_of(&[
            "--deployment",
            "web",
            "--image",
            &bad().tagged,
            "--namespace",
            "prod",
        ]),
    );
    assert!(!allowed(&adm));
    let m = message(&adm);
    let requirement = gate_line
        .split_once(": [")
        .map(|(_, r)| format!("[{r}"))
        .unwrap();
    assert!(
        requirement.contains("(requirement slsa-provenance) Fix:"),
        "{requirement}"
    );
    assert!(
        m.contains(&requirement),
        "admission says\n{m}\ngate says\n{gate_line}"
    );
    // And both allow the compliant image.
    let (_, v) = call(
        s,
        Some(&format!("Bearer {TOKEN}")),
        &images(&[&good().tagged]),
    );
    assert_eq!(v["allowed"], true);
    assert!(allowed(&s.review(
        "/validate",
        &review_of(&[
            "--deployment",
            "web",
            "--image",
            &good().tagged,
            "--namespace",
            "prod"
        ])
    )));
}

fn vsa_verifier() -> provgate::verify::Verifier {
    let pem = vsa_public_pem();
    let trust = provgate::verify::TrustStore::builder()
        .key_pem("vsa", &pem)
        .unwrap()
        .build()
        .unwrap();
    provgate::verify::Verifier::new(std::sync::Arc::new(trust), Default::default())
}

fn vsa_public_pem() -> String {
    provgate::gate::vsa::VsaSigner::from_pem(keys().vsa_pem.as_bytes(), "x")
        .unwrap()
        .public_pem()
        .to_owned()
}

#[test]
fn vsa_round_trips_through_provgates_own_verifier() {
    let s = server();
    let (_, v) = call(
        s,
        Some(&format!("Bearer {TOKEN}")),
        &images(&[&good().tagged, &bad().tagged]),
    );
    assert!(v["images"][1]["vsa"].is_null(), "a denied image got a VSA");
    let bundle = serde_json::to_vec(&v["images"][0]["vsa"]).unwrap();
    let digest: provgate::digest::Digest = good().digest.parse().unwrap();
    let verifier = vsa_verifier();
    let src = provgate::verify::EvidenceSource {
        kind: provgate::verify::SourceKind::File,
        manifest: None,
        layer: None,
    };
    let verified = verifier
        .verify_bundle(&bundle, &digest, src.clone())
        .expect("the VSA verifies");
    let provgate::verify::Verified::Attestation(a) = verified else {
        panic!()
    };
    let st: serde_json::Value = serde_json::from_slice(a.statement().raw()).unwrap();
    assert_eq!(
        st["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
    assert_eq!(st["predicate"]["verificationResult"], "PASSED");
    assert_eq!(
        st["predicate"]["verifier"]["id"],
        "https://provgate.test/gate"
    );
    assert!(
        st["predicate"]["policy"]["uri"]
            .as_str()
            .unwrap()
            .contains("needs-provenance@1")
    );
    let used = v["images"][0]["contracts"][0]["evidenceUsed"][0]
        .as_str()
        .unwrap();
    assert_eq!(
        st["predicate"]["inputAttestations"][0]["digest"]["sha256"],
        used.trim_start_matches("sha256:")
    );
    // For another digest: rejected.
    let other: provgate::digest::Digest = bad().digest.parse().unwrap();
    let other = if other == digest {
        format!("sha256:{}", "0".repeat(64)).parse().unwrap()
    } else {
        other
    };
    assert!(matches!(
        verifier.verify_bundle(&bundle, &other, src.clone()),
        Err(provgate::verify::VerifyError::SubjectMismatch { .. })
    ));
    // With a tampered policy field: the signature fails.
    let mut b: Value = serde_json::from_slice(&bundle).unwrap();
    let mut payload: Value = serde_json::from_slice(
        &B64.decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    payload["predicate"]["policy"]["uri"] = json!("provgate:contracts?nothing@0");
    b["dsseEnvelope"]["payload"] = json!(B64.encode(payload.to_string()));
    let tampered = serde_json::to_vec(&b).unwrap();
    assert!(
        verifier.verify_bundle(&tampered, &digest, src).is_err(),
        "a tampered VSA verified"
    );
}

fn check(s: &Server, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let ca = s.dir.path().join("certs/ca.crt");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_provgate"));
    cmd.arg("check")
        .args(args)
        .args(["--server", &s.base, "--ca", ca.to_str().unwrap()]);
    cmd.env("GATE_TOKEN", TOKEN)
        .env_remove("GITHUB_STEP_SUMMARY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_against_the_gate_exit_codes_json_vsa_and_job_summary() {
    let s = server();
    let untrusted = signed_by_someone_else();
    let (code, out, err) = check(
        s,
        &[
            &good().tagged,
            "--token-env",
            "GATE_TOKEN",
            "-o",
            "json",
            "-n",
            "prod",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["apiVersion"], "provgate.dev/gate/v1");
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["images"][0]["digest"], good().digest.as_str());
    assert_eq!(v["images"][0]["evidence"][0]["foundIn"], "tag-schema");
    // Denied with verified evidence (from an untrusted signer): 2.
    let (code, out, err) = check(
        s,
        &[&untrusted.tagged, "--token-env", "GATE_TOKEN", "-n", "prod"],
        &[],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("ignored") && out.contains("signer not trusted"),
        "{out}"
    );
    assert!(
        out.contains("admission will deny:") && out.contains("Fix:"),
        "{out}"
    );
    // No verifiable evidence at all: 3.
    let (code, out, err) = check(
        s,
        &[&bad().tagged, "--token-env", "GATE_TOKEN", "-n", "prod"],
        &[],
    );
    assert_eq!(code, 3, "{out}{err}");
    // A bad token: 1, with a hint, no table.
    let (code, out, err) = check(
        s,
        &[&good().tagged, "--token-env", "NOPE_TOKEN"],
        &[("NOPE_TOKEN", "wrong")],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("401"), "{err}");
    // --vsa-out and the GitHub job summary.
    let vsa = s.dir.path().join("vsa.json");
    let summary = s.dir.path().join("summary.md");
    let (code, _, err) = check(
        s,
        &[
            &good().tagged,
            "--token-env",
            "GATE_TOKEN",
            "-n",
            "prod",
            "--vsa-out",
            vsa.to_str().unwrap(),
            "-q",
        ],
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{err}");
    let bundle = std::fs::read(&vsa).unwrap();
    let src = provgate::verify::EvidenceSource {
        kind: provgate::verify::SourceKind::File,
        manifest: None,
        layer: None,
    };
    vsa_verifier()
        .verify_bundle(&bundle, &good().digest.parse().unwrap(), src)
        .expect("--vsa-out wrote a verifiable VSA");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("## provgate: allowed"), "{md}");
    // The OIDC path of the CLI.
    let jwt = es256(&claims("acme/app"), "k1");
    let (code, _, err) = check(
        s,
        &[&good().tagged, "--oidc-token-env", "CI_JWT", "-n", "prod"],
        &[("CI_JWT", &jwt)],
    );
    assert_eq!(code, 0, "{err}");
}

/// An image whose provenance is signed by an identity no contract trusts.
fn signed_by_someone_else() -> KitImage {
    let k = kit();
    let img = unsigned_image("gate-untrusted");
    let bundle = k.path(&format!("{}.prov.json", crate::common::kit::repo_name("u")));
    k.tk(&[
        "sign-provenance",
        &img.pinned(),
        "--identity",
        "https://github.com/evil/app/.github/workflows/build.yml@refs/heads/main",
        "--issuer",
        GH_ISS,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    k.tk(&["attach", &img.pinned(), bundle.to_str().unwrap()]);
    img
}

/// A JWKS over HTTPS (its own CA), whose keys the test can rotate.
struct JwksServer {
    url: String,
    keys: std::sync::Arc<std::sync::Mutex<Value>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

fn jwks_server(dir: &std::path::Path) -> JwksServer {
    let certs = dir.join("jwks-certs");
    provgate::server::dev_certs::generate(&["127.0.0.1".into()], &certs).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let keys = std::sync::Arc::new(std::sync::Mutex::new(json!({"keys": []})));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (k, h) = (keys.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (k, h) = (k.clone(), h.clone());
            async move {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::Json(k.lock().unwrap().clone())
            }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = rt
        .block_on(axum_server::tls_rustls::RustlsConfig::from_pem_file(
            certs.join("tls.crt"),
            certs.join("tls.key"),
        ))
        .unwrap();
    let _guard = rt.enter();
    let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
    rt.spawn(async move { server.serve(app.into_make_service()).await.unwrap() });
    JwksServer {
        url: format!("https://{addr}/jwks"),
        keys,
        hits,
        _rt: rt,
    }
}

fn es256_with(pkcs8: &[u8], claims: &Value, kid: &str) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_ec_der(pkcs8)).unwrap()
}

fn jwk_of(pkcs8: &[u8], kid: &str) -> Value {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap();
    let p = pair.public_key().as_ref().to_vec();
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": B64URL.encode(&p[1..33]), "y": B64URL.encode(&p[33..])})
}

#[test]
fn a_jwks_url_is_fetched_over_https_with_its_ca_and_a_rotated_key_is_picked_up() {
    let staging = tempfile::tempdir().unwrap();
    let jwks = jwks_server(staging.path());
    let rng = SystemRandom::new();
    let k1 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap()
        .as_ref()
        .to_vec();
    let k2 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap()
        .as_ref()
        .to_vec();
    *jwks.keys.lock().unwrap() = json!({"keys": [jwk_of(&k1, "k1")]});
    let ca = staging.path().join("jwks-certs/ca.crt");
    let s = Server::start(Setup {
        extra: format!(
            "gate:\n  oidc:\n    - name: gitlab\n      issuer: {ISSUER}\n      audiences: [provgate]\n      jwksUrl: \"{}\"\n      jwksCaFile: \"{}\"\n  jwksMinRefresh: 200ms\n",
            jwks.url,
            ca.display()
        ),
        ..Setup::default()
    });
    let body = images(&[&good().tagged]);
    let hits = || jwks.hits.load(std::sync::atomic::Ordering::SeqCst);
    // Static-token-style calls never fetch; the first JWT does.
    assert_eq!(call(&s, Some("Bearer not-a-jwt"), &body).0, 401);
    assert_eq!(hits(), 0);
    let (st, v) = call(
        &s,
        Some(&format!(
            "Bearer {}",
            es256_with(&k1, &claims("acme/app"), "k1")
        )),
        &body,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(hits(), 1);
    // Cached: another call does not fetch.
    assert_eq!(
        call(
            &s,
            Some(&format!(
                "Bearer {}",
                es256_with(&k1, &claims("acme/app"), "k1")
            )),
            &body
        )
        .0,
        200
    );
    assert_eq!(hits(), 1);
    // The issuer rotates to k2: a k2 token triggers one refetch and passes.
    *jwks.keys.lock().unwrap() = json!({"keys": [jwk_of(&k2, "k2")]});
    std::thread::sleep(Duration::from_millis(250));
    let (st, v) = call(
        &s,
        Some(&format!(
            "Bearer {}",
            es256_with(&k2, &claims("acme/app"), "k2")
        )),
        &body,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(hits(), 2);
    // Bogus key ids do not hammer the issuer: at most one fetch per
    // jwksMinRefresh, whatever the number of tokens.
    for _ in 0..5 {
        assert_eq!(
            call(
                &s,
                Some(&format!(
                    "Bearer {}",
                    es256_with(&k2, &claims("acme/app"), "k9")
                )),
                &body
            )
            .0,
            401
        );
    }
    assert!(hits() <= 3, "{} fetches", hits());
}
