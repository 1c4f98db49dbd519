//! Hostile registries: a hand-written HTTP/1.1 server ([`FakeServer`])
//! that lies about sizes, streams forever, serves bytes that do not match
//! their digest, redirects elsewhere or in circles, rate-limits, fails and
//! stalls, and a fake with the native OCI 1.1 referrers API (which the kit's
//! distribution 2.8 lacks).
//!
//! Every hostile case must end quickly in a classified error: each test
//! asserts the error's kind and class and the wall time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use provgate::digest::Digest;
use provgate::oci::{
    Credential, CredentialSet, DiscoverOptions, Discovery, ErrorClass, Limits, NoObserver,
    Registries, RegistryErrorKind, RegistryOptions, RequestKind, TimeoutKind, Traced,
};
use provgate::verify::SourceKind;
use serde_json::json;

use crate::common::evidence::kit_verifier;
use crate::common::fake::{Content, FakeServer, OCI_INDEX, Reply, Req};
use crate::common::kit::{GH_ID, GH_ISS, kit};
use crate::common::registry::{
    assert_kit_keyless, err, image_ref, ok, predicate_type, registries_for, verify_piece,
};

const REPO: &str = "hostile/app";
const USER: &str = "alice";
const PASS: &str = "s3cret";

/// Small limits so that the hostile cases are cheap.
fn small_limits() -> Limits {
    Limits {
        max_manifest_bytes: 64 * 1024,
        max_blob_bytes: 64 * 1024,
        max_image_millis: 10_000,
        ..Limits::default()
    }
}

/// Plain-HTTP options with a request timeout.
fn options(timeout: Duration) -> RegistryOptions {
    RegistryOptions {
        insecure: true,
        timeout,
        ..RegistryOptions::default()
    }
}

fn regs(server: &FakeServer, limits: Limits) -> Registries {
    registries_for(
        &server.host(),
        options(Duration::from_secs(5)),
        limits,
        Arc::new(NoObserver),
    )
}

fn basic_creds(host: &str) -> CredentialSet {
    CredentialSet::from_entries(
        "tenant",
        [(
            host.to_owned(),
            Credential::Basic {
                username: USER.into(),
                password: PASS.into(),
            },
        )],
    )
}

fn basic_value() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    )
}

async fn discover(
    regs: &Registries,
    server: &FakeServer,
    digest: &Digest,
    creds: &CredentialSet,
) -> Traced<Discovery> {
    let image = image_ref(&format!("{}/{REPO}@{digest}", server.host()));
    regs.discover(&image, digest, None, creds, DiscoverOptions::default())
        .await
}

/// Asserts that `started` is less than `secs` seconds ago.
#[track_caller]
fn assert_quick(started: Instant, secs: u64) {
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(secs),
        "took {took:?}, more than {secs} s"
    );
}

fn manifest_path(reference: &str) -> String {
    format!("/v2/{REPO}/manifests/{reference}")
}

// ---------------------------------------------------------------------------
// Sizes.

#[tokio::test]
async fn hostile_manifest_with_content_length_above_the_limit_is_refused_before_reading() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("big");
    let target = manifest_path(&digest.to_string());
    let announced: u64 = 100 * 1024 * 1024;
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == target {
            Reply::Full {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), OCI_INDEX.into()),
                    ("Content-Length".into(), announced.to_string()),
                ],
                body: Vec::new(),
            }
        } else {
            content.serve(req)
        }
    })
    .await;
    let started = Instant::now();
    let (e, _) = err(discover(
        &regs(&server, small_limits()),
        &server,
        &digest,
        &CredentialSet::anonymous(),
    )
    .await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::TooLarge {
            what: "manifest",
            limit: 64 * 1024,
            size: announced
        },
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_quick(started, 3);
}

#[tokio::test]
async fn hostile_chunked_manifest_without_length_is_cut_off_at_the_limit() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("chunked");
    let target = manifest_path(&digest.to_string());
    // 32 × 8 KiB = 256 KiB, four times the limit, with no Content-Length.
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == target {
            Reply::Chunked {
                status: 200,
                headers: vec![("Content-Type".into(), OCI_INDEX.into())],
                chunk: vec![b' '; 8 * 1024],
                count: Some(32),
                delay: Duration::ZERO,
            }
        } else {
            content.serve(req)
        }
    })
    .await;
    let started = Instant::now();
    let (e, _) = err(discover(
        &regs(&server, small_limits()),
        &server,
        &digest,
        &CredentialSet::anonymous(),
    )
    .await);
    match e.kind {
        RegistryErrorKind::TooLarge { what, limit, size } => {
            assert_eq!((what, limit), ("manifest", 64 * 1024));
            assert!(size > limit && size <= limit + 64 * 1024, "observed {size}");
        }
        ref other => panic!("expected TooLarge, got {other:?} ({e})"),
    }
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_quick(started, 3);
}

#[tokio::test]
async fn hostile_endless_body_is_cut_off_at_the_limit_quickly() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("endless");
    let target = manifest_path(&digest.to_string());
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == target {
            Reply::Chunked {
                status: 200,
                headers: vec![("Content-Type".into(), OCI_INDEX.into())],
                chunk: vec![b'['; 16 * 1024],
                count: None,
                delay: Duration::ZERO,
            }
        } else {
            content.serve(req)
        }
    })
    .await;
    let started = Instant::now();
    let (e, _) = err(discover(
        &regs(&server, small_limits()),
        &server,
        &digest,
        &CredentialSet::anonymous(),
    )
    .await);
    assert!(
        matches!(e.kind, RegistryErrorKind::TooLarge { what: "manifest", limit: 65536, size } if size > 65536),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_quick(started, 3);
    // The client hung up: the server's writes fail and the stream stops,
    // after at most the limit plus what the socket buffers hold.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = server.body_bytes_sent();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.body_bytes_sent(),
        sent,
        "the server is still streaming"
    );
    assert!(sent < 16 * 1024 * 1024, "{sent} bytes went out");
}

// ---------------------------------------------------------------------------
// Content that is not what it claims.

#[tokio::test]
async fn hostile_blob_that_does_not_hash_to_its_descriptor_is_a_digest_mismatch() {
    let mut content = Content::new(REPO);
    let (digest, bytes) = content.image("mismatch");
    let bundle = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#.to_vec();
    let referrer = content.bundle_referrer((&digest, &bytes), &bundle);
    let (index, _) = content.manifest(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [referrer]}),
    );
    content.tag(&digest.tag_schema(), &index);
    let bundle_digest = Digest::sha256_of(&bundle);
    let blob_path = format!("/v2/{REPO}/blobs/{bundle_digest}");
    // Same length, one byte changed.
    let mut forged = bundle.clone();
    forged[2] ^= 0x20;
    let forged_digest = Digest::sha256_of(&forged);
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == blob_path {
            Reply::ok("application/octet-stream", forged.clone())
        } else {
            content.serve(req)
        }
    })
    .await;
    let started = Instant::now();
    let (e, _) = err(discover(
        &regs(&server, small_limits()),
        &server,
        &digest,
        &CredentialSet::anonymous(),
    )
    .await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::DigestMismatch {
            expected: bundle_digest.to_string(),
            actual: forged_digest.to_string()
        },
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_quick(started, 3);
}

// ---------------------------------------------------------------------------
// Redirects and credentials.

/// An image with one tag-schema bundle whose blob registry A redirects to
/// storage host B. Returns (content, image digest, bundle, bundle digest).
fn redirected_bundle_content() -> (Content, Digest, Vec<u8>, Digest) {
    let mut content = Content::new(REPO);
    let (digest, bytes) = content.image("redirect");
    let bundle = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","x":1}"#.to_vec();
    let referrer = content.bundle_referrer((&digest, &bytes), &bundle);
    let (index, _) = content.manifest(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [referrer]}),
    );
    content.tag(&digest.tag_schema(), &index);
    let bundle_digest = Digest::sha256_of(&bundle);
    (content, digest, bundle, bundle_digest)
}

/// Storage host B: serves `bundle` at any path, logs what it got.
async fn storage_host(bundle: Vec<u8>) -> FakeServer {
    FakeServer::start("127.0.0.2", move |_req: &Req| {
        Reply::ok("application/octet-stream", bundle.clone())
    })
    .await
}

#[tokio::test]
async fn hostile_redirect_to_another_host_never_carries_basic_credentials() {
    let (content, digest, bundle, bundle_digest) = redirected_bundle_content();
    let storage = storage_host(bundle.clone()).await;
    let blob_path = format!("/v2/{REPO}/blobs/{bundle_digest}");
    let location = format!(
        "{}/storage/{bundle_digest}?X-Amz-Signature=abc",
        storage.url()
    );
    let expected = basic_value();
    let registry = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.header("authorization") != Some(expected.as_str()) {
            return Reply::with_headers(401, &[("WWW-Authenticate", "Basic realm=\"fake\"")]);
        }
        if req.path() == blob_path {
            Reply::redirect(307, &location)
        } else {
            content.serve(req)
        }
    })
    .await;
    let started = Instant::now();
    let creds = basic_creds(&registry.host());
    let (found, requests) =
        ok(discover(&regs(&registry, small_limits()), &registry, &digest, &creds).await);
    assert_quick(started, 3);
    // The blob came from B…
    assert_eq!(found.evidence.len(), 1);
    match &found.evidence[0].content {
        provgate::oci::EvidenceContent::Bundle(b) => assert_eq!(b.as_ref(), bundle.as_slice()),
        other => panic!("{other:?}"),
    }
    assert!(
        requests.iter().any(|r| r.url.starts_with(&storage.host())),
        "{requests:#?}"
    );
    // …which never saw an Authorization header, while A always did.
    let at_b = storage.requests();
    assert_eq!(at_b.len(), 1, "{at_b:?}");
    assert!(
        at_b.iter().all(|r| r.header("authorization").is_none()),
        "{at_b:?}"
    );
    let at_a = registry.requests();
    assert!(!at_a.is_empty());
    assert!(
        at_a.iter()
            .all(|r| r.header("authorization") == Some(basic_value().as_str())),
        "{at_a:?}"
    );
}

#[tokio::test]
async fn hostile_redirect_to_another_host_never_carries_the_bearer_token() {
    let (content, digest, bundle, bundle_digest) = redirected_bundle_content();
    let storage = storage_host(bundle).await;
    let blob_path = format!("/v2/{REPO}/blobs/{bundle_digest}");
    let location = format!("{}/storage/{bundle_digest}", storage.url());
    let basic = basic_value();
    let registry = FakeServer::start("127.0.0.1", move |req: &Req| {
        let host = req.header("host").unwrap_or_default().to_owned();
        if req.path() == "/token" {
            // The token endpoint (on the registry host) takes the basic credentials.
            return if req.header("authorization") == Some(basic.as_str()) {
                Reply::ok(
                    "application/json",
                    br#"{"token":"registry-token-123","expires_in":300}"#.to_vec(),
                )
            } else {
                Reply::status(401)
            };
        }
        if req.header("authorization") != Some("Bearer registry-token-123") {
            let challenge = format!(
                "Bearer realm=\"http://{host}/token\",service=\"fake\",scope=\"repository:{REPO}:pull\""
            );
            return Reply::with_headers(401, &[("WWW-Authenticate", &challenge)]);
        }
        if req.path() == blob_path {
            Reply::redirect(302, &location)
        } else {
            content.serve(req)
        }
    })
    .await;
    let creds = basic_creds(&registry.host());
    let started = Instant::now();
    let (found, requests) =
        ok(discover(&regs(&registry, small_limits()), &registry, &digest, &creds).await);
    assert_quick(started, 3);
    assert_eq!(found.evidence.len(), 1);
    assert!(
        requests.iter().any(|r| r.kind == RequestKind::Token),
        "{requests:#?}"
    );
    println!("cold discovery against a bearer-token registry:");
    for r in &requests {
        println!(
            "  {:<9} {:<4} {} -> {}",
            r.kind.as_str(),
            r.method,
            r.url,
            r.outcome
        );
    }
    // The concurrent first requests (referrers, .sig, .att) all met the
    // challenge; they share one token fetch.
    let token_fetches = registry
        .requests()
        .iter()
        .filter(|r| r.path() == "/token")
        .count();
    assert_eq!(
        token_fetches, 1,
        "{token_fetches} token fetches for one scope"
    );
    let at_b = storage.requests();
    assert_eq!(at_b.len(), 1);
    assert!(at_b[0].header("authorization").is_none(), "{at_b:?}");
    // A got the bearer token on the registry API, and the basic
    // credentials at its own token endpoint.
    let at_a = registry.requests();
    assert!(
        at_a.iter()
            .any(|r| r.header("authorization") == Some("Bearer registry-token-123"))
    );
    let token = at_a
        .iter()
        .find(|r| r.path() == "/token")
        .expect("a token request");
    assert_eq!(token.header("authorization"), Some(basic_value().as_str()));
}

#[tokio::test]
async fn hostile_token_realm_on_another_host_gets_credentials_only_when_configured() {
    for configured in [false, true] {
        let mut content = Content::new(REPO);
        let (digest, _) = content.image("realm");
        // The token service on B issues a token to anyone.
        let auth_host = FakeServer::start("127.0.0.2", |req: &Req| {
            if req.path() == "/token" {
                Reply::ok("application/json", br#"{"access_token":"tok-b"}"#.to_vec())
            } else {
                Reply::status(404)
            }
        })
        .await;
        let realm = format!("{}/token", auth_host.url());
        let registry = FakeServer::start("127.0.0.1", move |req: &Req| {
            if req.header("authorization") != Some("Bearer tok-b") {
                let challenge = format!("Bearer realm=\"{realm}\",service=\"fake\"");
                return Reply::with_headers(401, &[("WWW-Authenticate", &challenge)]);
            }
            content.serve(req)
        })
        .await;
        let mut opts = options(Duration::from_secs(5));
        if configured {
            opts.token_hosts = vec![auth_host.host()];
        }
        let regs = registries_for(&registry.host(), opts, small_limits(), Arc::new(NoObserver));
        let creds = basic_creds(&registry.host());
        let started = Instant::now();
        let (found, _) = ok(discover(&regs, &registry, &digest, &creds).await);
        assert_quick(started, 3);
        assert!(found.evidence.is_empty());
        let token_requests = auth_host.requests();
        assert!(!token_requests.is_empty());
        for r in &token_requests {
            assert!(
                r.query()
                    .unwrap_or_default()
                    .contains("scope=repository%3Ahostile%2Fapp%3Apull"),
                "{r:?}"
            );
            if configured {
                assert_eq!(
                    r.header("authorization"),
                    Some(basic_value().as_str()),
                    "{r:?}"
                );
            } else {
                assert_eq!(r.header("authorization"), None, "{r:?}");
            }
        }
    }
}

#[tokio::test]
async fn hostile_redirect_loop_is_too_many_redirects() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("loop");
    let a = manifest_path(&digest.to_string());
    let b = format!("/v2/{REPO}/elsewhere");
    let (a2, b2) = (a.clone(), b.clone());
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == a2 {
            Reply::redirect(302, &b2)
        } else if req.path() == b2 {
            Reply::redirect(301, &a2)
        } else {
            content.serve(req)
        }
    })
    .await;
    let limits = small_limits();
    let started = Instant::now();
    let (e, _) = err(discover(
        &regs(&server, limits.clone()),
        &server,
        &digest,
        &CredentialSet::anonymous(),
    )
    .await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::TooMany {
            what: "redirects",
            limit: limits.max_redirects
        },
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_quick(started, 3);
    let hops = server
        .requests()
        .iter()
        .filter(|r| r.path() == a || r.path() == b)
        .count();
    assert_eq!(hops, limits.max_redirects + 1);
}

// ---------------------------------------------------------------------------
// Transient failures.

#[tokio::test]
async fn hostile_429_with_retry_after_is_transient_rate_limited() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("429");
    let server = FakeServer::start("127.0.0.1", |req: &Req| {
        if req.path().starts_with(&format!("/v2/{REPO}/")) {
            Reply::with_headers(429, &[("Retry-After", "7")])
        } else {
            Reply::status(404)
        }
    })
    .await;
    let regs = regs(&server, small_limits());
    let started = Instant::now();
    let want = RegistryErrorKind::RateLimited {
        retry_after: Some(Duration::from_secs(7)),
    };
    let tagged = image_ref(&format!("{}/{REPO}:v1", server.host()));
    let (e, _) = err(regs.resolve(&tagged, &CredentialSet::anonymous()).await);
    assert_eq!(e.kind, want, "{e}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(
        e.to_string()
            .contains("rate limited (429): the registry asks to retry after 7 s;"),
        "{e}"
    );
    // The registry asked for 7 s: the next request is not sent.
    let before = server.requests().len();
    let (e, requests) = err(discover(&regs, &server, &digest, &CredentialSet::anonymous()).await);
    assert_backing_off(&e, &server, "429 Too Many Requests (Retry-After: 7)");
    assert!(requests.is_empty(), "{requests:?}");
    assert_eq!(server.requests().len(), before);
    assert_quick(started, 3);
}

/// Asserts that `e` says the fake's host is backing off after `cause`.
#[track_caller]
fn assert_backing_off(e: &provgate::oci::RegistryError, server: &FakeServer, cause: &str) {
    assert!(
        matches!(&e.kind, RegistryErrorKind::BackingOff { cause: c, probing: false, .. } if c == cause),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("registry {} is backing off until ", server.host())),
        "{text}"
    );
    assert!(text.contains(&format!(" after {cause}: ")), "{text}");
}

#[tokio::test]
async fn hostile_5xx_is_transient_server_error() {
    for status in [500u16, 502, 503] {
        let mut content = Content::new(REPO);
        let (digest, _) = content.image("5xx");
        let server = FakeServer::start("127.0.0.1", move |req: &Req| {
            if req.path().starts_with(&format!("/v2/{REPO}/")) {
                Reply::status(status)
            } else {
                Reply::status(404)
            }
        })
        .await;
        let regs = regs(&server, small_limits());
        let started = Instant::now();
        let tagged = image_ref(&format!("{}/{REPO}:v1", server.host()));
        let (e, _) = err(regs.resolve(&tagged, &CredentialSet::anonymous()).await);
        assert_eq!(e.kind, RegistryErrorKind::Server(status), "{e}");
        assert_eq!(e.class(), ErrorClass::Transient);
        // Backing off now: nothing sent.
        let before = server.requests().len();
        let (e, _) = err(discover(&regs, &server, &digest, &CredentialSet::anonymous()).await);
        let reason = reqwest::StatusCode::from_u16(status)
            .unwrap()
            .canonical_reason()
            .unwrap();
        assert_backing_off(&e, &server, &format!("{status} {reason} (no Retry-After)"));
        assert_eq!(server.requests().len(), before);
        assert_quick(started, 3);
    }
}

#[tokio::test]
async fn hostile_slow_response_past_the_timeout_is_a_transient_timeout() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("slow");
    let server = FakeServer::start("127.0.0.1", |_req: &Req| {
        Reply::Stall(Duration::from_secs(30))
    })
    .await;
    let regs = registries_for(
        &server.host(),
        options(Duration::from_millis(300)),
        small_limits(),
        Arc::new(NoObserver),
    );
    let started = Instant::now();
    let tagged = image_ref(&format!("{}/{REPO}:v1", server.host()));
    let (e, requests) = err(regs.resolve(&tagged, &CredentialSet::anonymous()).await);
    let request_timeout =
        RegistryErrorKind::Timeout(TimeoutKind::Request(Duration::from_millis(300)));
    assert_eq!(e.kind, request_timeout, "{e}");
    assert!(
        e.to_string().ends_with(&format!(
            "no answer within 300 ms; if the registry is slow but up, raise registries.hosts.\"{}\".timeout",
            server.host()
        )),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(requests[0].outcome, "timeout");
    // A registry that does not answer is not asked again at once.
    let (e, requests) = err(discover(&regs, &server, &digest, &CredentialSet::anonymous()).await);
    assert_backing_off(&e, &server, "no answer within 300 ms");
    assert!(requests.is_empty());
    assert_quick(started, 3);
    drop(content);
}

#[tokio::test]
async fn hostile_503_with_a_retry_after_date_is_honoured_and_half_open_sends_exactly_one_probe() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("probe");
    content.tag("v1", &digest);
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if h.load(Ordering::SeqCst) {
            return content.serve(req);
        }
        // An HTTP date 1 to 2 s ahead (HTTP dates have whole seconds).
        let at = std::time::SystemTime::now() + Duration::from_millis(1999);
        Reply::with_headers(503, &[("Retry-After", &httpdate::fmt_http_date(at))])
    })
    .await;
    let regs = regs(&server, small_limits());
    let tagged = image_ref(&format!("{}/{REPO}:v1", server.host()));
    let anonymous = CredentialSet::anonymous();
    let started = Instant::now();
    let (e, _) = err(regs.resolve(&tagged, &anonymous).await);
    assert_eq!(e.kind, RegistryErrorKind::Server(503), "{e}");
    let remaining = regs.backoff_remaining(&server.host()).unwrap();
    assert!(
        remaining > Duration::from_millis(200) && remaining <= Duration::from_secs(2),
        "{remaining:?}"
    );
    // Backing off: ten reviews' worth of requests, none sent.
    for _ in 0..10 {
        let (e, _) = err(regs.resolve(&tagged, &anonymous).await);
        assert!(
            matches!(e.kind, RegistryErrorKind::BackingOff { probing: false, .. }),
            "{e}"
        );
    }
    assert_eq!(server.requests().len(), 1);
    // After the back-off: ten at once, exactly one probe reaches the
    // registry; the others fail at once, saying a probe is in flight
    // (every admission happens before the probe's answer can arrive).
    tokio::time::sleep(remaining + Duration::from_millis(20)).await;
    let all = futures_util::future::join_all((0..10).map(|_| regs.resolve(&tagged, &anonymous)));
    let results = all.await;
    assert_eq!(server.requests().len(), 2, "{:?}", server.requests());
    let probing = results
        .iter()
        .filter(|t| {
            matches!(
                &t.result,
                Err(e) if matches!(e.kind, RegistryErrorKind::BackingOff { probing: true, .. })
            )
        })
        .count();
    assert_eq!(probing, 9);
    // The probe failed: backing off again.
    assert!(regs.backoff_remaining(&server.host()).unwrap() > Duration::ZERO);
    // The registry recovers: the next probe after the back-off succeeds
    // and closes the circuit.
    healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(regs.backoff_remaining(&server.host()).unwrap() + Duration::from_millis(20))
        .await;
    let (resolved, _) = ok(regs.resolve(&tagged, &anonymous).await);
    assert_eq!(resolved.digest, digest);
    assert_eq!(regs.backoff_remaining(&server.host()), None);
    ok(discover(&regs, &server, &digest, &anonymous).await);
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn hostile_trickling_body_past_the_timeout_is_a_transient_timeout() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("trickle");
    let target = manifest_path(&digest.to_string());
    // Headers at once, then one byte every 50 ms, forever: each read is
    // quick, the request as a whole is not.
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == target {
            Reply::Chunked {
                status: 200,
                headers: vec![("Content-Type".into(), OCI_INDEX.into())],
                chunk: b" ".to_vec(),
                count: None,
                delay: Duration::from_millis(50),
            }
        } else {
            content.serve(req)
        }
    })
    .await;
    let regs = registries_for(
        &server.host(),
        options(Duration::from_millis(500)),
        small_limits(),
        Arc::new(NoObserver),
    );
    let started = Instant::now();
    let (e, _) = err(discover(&regs, &server, &digest, &CredentialSet::anonymous()).await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::Timeout(TimeoutKind::Request(Duration::from_millis(500))),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_quick(started, 3);
}

#[tokio::test]
async fn hostile_slow_discovery_is_cut_by_the_per_image_deadline() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("deadline");
    let target = manifest_path(&digest.to_string());
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == target {
            Reply::Stall(Duration::from_secs(30))
        } else {
            content.serve(req)
        }
    })
    .await;
    // Generous per-request timeout, short deadline for the whole image.
    let limits = Limits {
        max_image_millis: 400,
        ..small_limits()
    };
    let regs = registries_for(
        &server.host(),
        options(Duration::from_secs(20)),
        limits,
        Arc::new(NoObserver),
    );
    let started = Instant::now();
    let (e, _) = err(discover(&regs, &server, &digest, &CredentialSet::anonymous()).await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::Timeout(TimeoutKind::Deadline(Duration::from_millis(400))),
        "{e}"
    );
    assert!(
        e.to_string().ends_with(
            "discovery did not finish within 400 ms; if the registry is slow but up, raise registries.limits.maxImageMillis"
        ),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(e.context.starts_with("discover "), "{}", e.context);
    assert_quick(started, 3);
}

// ---------------------------------------------------------------------------
// The native OCI 1.1 referrers API.

/// An image with real kit provenance bundles signed for its digest, as
/// referrer descriptors (not yet served by any API).
fn referrer_content(n: usize) -> (Content, Digest, Vec<serde_json::Value>, Vec<Vec<u8>>) {
    let mut content = Content::new(REPO);
    let (digest, bytes) = content.image(&format!("referrers-{n}"));
    let mut descs = Vec::new();
    let mut bundles = Vec::new();
    for _ in 0..n {
        let out = crate::common::evidence::kit_file("prov.json");
        kit().tk(&[
            "sign-provenance",
            &format!("fake.invalid/{REPO}@{digest}"),
            "--identity",
            GH_ID,
            "--issuer",
            GH_ISS,
            "--out",
            out.to_str().unwrap(),
        ]);
        let bundle = std::fs::read(&out).unwrap();
        descs.push(content.bundle_referrer((&digest, &bytes), &bundle));
        bundles.push(bundle);
    }
    (content, digest, descs, bundles)
}

fn index_reply(manifests: &[serde_json::Value], link: Option<&str>) -> Reply {
    let body = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
    )
    .unwrap();
    let mut headers = vec![("Content-Type".to_owned(), OCI_INDEX.to_owned())];
    if let Some(l) = link {
        headers.push(("Link".into(), format!("<{l}>; rel=\"next\"")));
    }
    Reply::Full {
        status: 200,
        headers,
        body,
    }
}

fn is_tag_schema_request(r: &Req, digest: &Digest) -> bool {
    r.path() == manifest_path(&digest.tag_schema())
}

#[tokio::test]
async fn hostile_referrers_api_with_one_page_needs_no_tag_schema_lookup() {
    let (content, digest, descs, _) = referrer_content(2);
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == referrers {
            index_reply(&descs, None)
        } else {
            content.serve(req)
        }
    })
    .await;
    let (found, requests) = ok(discover(
        &regs(&server, Limits::default()),
        &server,
        &digest,
        &CredentialSet::anonymous(),
    )
    .await);
    assert_eq!(found.evidence.len(), 2);
    assert!(
        found
            .evidence
            .iter()
            .all(|e| e.source.kind == SourceKind::Referrers)
    );
    println!("cold discovery with the referrers API (2 bundles, pinned):");
    for r in &requests {
        println!(
            "  {:<9} {:<4} {} -> {}",
            r.kind.as_str(),
            r.method,
            r.url,
            r.outcome
        );
    }
    let count = |kind| requests.iter().filter(|r| r.kind == kind).count();
    // 1 referrers page, the cosign .sig and .att tags (no tag schema), the
    // image manifest and 2 referrer manifests, 2 bundle blobs.
    assert_eq!(count(RequestKind::Referrers), 1);
    assert_eq!(count(RequestKind::Tag), 2);
    assert_eq!(count(RequestKind::Manifest), 3);
    assert_eq!(count(RequestKind::Blob), 2);
    assert_eq!(requests.len(), 8);
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| is_tag_schema_request(r, &digest))
    );
}

#[tokio::test]
async fn hostile_referrers_api_pagination_reads_both_pages() {
    let (content, digest, descs, bundles) = referrer_content(2);
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    let (first, second) = (descs[0].clone(), descs[1].clone());
    let next = format!("{referrers}?n=1&last=page1");
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == referrers {
            match req.query() {
                None => index_reply(std::slice::from_ref(&first), Some(&next)),
                Some(q) if q.contains("last=page1") => {
                    index_reply(std::slice::from_ref(&second), None)
                }
                Some(_) => Reply::status(400),
            }
        } else {
            content.serve(req)
        }
    })
    .await;
    let started = Instant::now();
    let (found, requests) = ok(discover(
        &regs(&server, Limits::default()),
        &server,
        &digest,
        &CredentialSet::anonymous(),
    )
    .await);
    assert_quick(started, 3);
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.kind == RequestKind::Referrers)
            .count(),
        2,
        "{requests:#?}"
    );
    assert_eq!(found.evidence.len(), 2);
    let verifier = kit_verifier();
    let mut got = Vec::new();
    for e in &found.evidence {
        assert_eq!(e.source.kind, SourceKind::Referrers);
        assert_eq!(e.subject, digest);
        let v = verify_piece(&verifier, e).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            predicate_type(&v).as_deref(),
            Some("https://slsa.dev/provenance/v1")
        );
        assert_kit_keyless(&v);
        got.push(v.facts().evidence_digest().clone());
    }
    got.sort();
    let mut want: Vec<Digest> = bundles.iter().map(|b| Digest::sha256_of(b)).collect();
    want.sort();
    assert_eq!(got, want, "one bundle from each page");
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| is_tag_schema_request(r, &digest))
    );
}

#[tokio::test]
async fn hostile_referrers_api_link_to_another_host_is_not_followed() {
    let (content, digest, descs, _) = referrer_content(1);
    let elsewhere = FakeServer::start("127.0.0.2", |_req: &Req| index_reply(&[], None)).await;
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    let next = format!("{}{referrers}?last=page1", elsewhere.url());
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == referrers {
            index_reply(&descs, Some(&next))
        } else {
            content.serve(req)
        }
    })
    .await;
    let started = Instant::now();
    let creds = basic_creds(&server.host());
    let (found, requests) =
        ok(discover(&regs(&server, Limits::default()), &server, &digest, &creds).await);
    assert_quick(started, 3);
    assert_eq!(found.evidence.len(), 1, "page 1 only");
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.kind == RequestKind::Referrers)
            .count(),
        1
    );
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    assert!(requests.iter().all(|r| r.url.starts_with(&server.host())));
}

#[tokio::test]
async fn hostile_referrers_api_endless_pagination_hits_the_page_limit() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("pages");
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    let r2 = referrers.clone();
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == r2 {
            let n: u64 = req
                .query()
                .and_then(|q| q.strip_prefix("page="))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            index_reply(&[], Some(&format!("{r2}?page={}", n + 1)))
        } else {
            content.serve(req)
        }
    })
    .await;
    let limits = Limits {
        max_pages: 3,
        ..Limits::default()
    };
    let started = Instant::now();
    let (e, _) = err(discover(
        &regs(&server, limits),
        &server,
        &digest,
        &CredentialSet::anonymous(),
    )
    .await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::TooMany {
            what: "referrers pages",
            limit: 3
        },
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_quick(started, 3);
    let pages = server
        .requests()
        .iter()
        .filter(|r| r.path() == referrers)
        .count();
    assert_eq!(pages, 3);
}

#[test]
fn hostile_endless_paging_denies_for_seconds_not_the_negative_ttl() {
    use crate::common::server::{Server, Setup, allowed, message, review_of};
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (content, digest, descs, _) = referrer_content(1);
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    let endless = Arc::new(AtomicBool::new(true));
    let e2 = endless.clone();
    let server = rt.block_on(FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() != referrers {
            return content.serve(req);
        }
        if e2.load(Ordering::SeqCst) {
            let n: u64 = req
                .query()
                .and_then(|q| q.strip_prefix("page="))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            index_reply(&[], Some(&format!("{referrers}?page={}", n + 1)))
        } else {
            index_reply(&descs, None)
        }
    }));
    // A long negative TTL, to tell it from the short one; the `warn`
    // failure policy, which an answer over a limit must not reach (whoever
    // can push referrers must not buy a degraded allow with them).
    let s = Server::start(Setup {
        registry: Some(server.host()),
        failure: "warn",
        extra: "cache: {negativeTtl: 10m, transientNegativeTtl: 1s}\n".into(),
        ..Setup::default()
    });
    let body = review_of(&[
        "--deployment",
        "web",
        "--image",
        &format!("{}/{REPO}@{digest}", server.host()),
        "--namespace",
        "prod",
    ]);
    let v = s.review("/validate", &body);
    assert!(!allowed(&v), "degraded to an allow: {v}");
    assert!(
        message(&v).contains("more referrers pages than the limit of 8"),
        "{v}"
    );
    // The registry is fixed. For a second the answer is remembered (no
    // request); then the signed digest is admitted, not ten minutes later.
    endless.store(false, Ordering::SeqCst);
    let asked = server.requests().len();
    let v = s.review("/validate", &body);
    assert!(!allowed(&v), "{v}");
    assert_eq!(server.requests().len(), asked, "not remembered at all");
    std::thread::sleep(Duration::from_millis(1100));
    let v = s.review("/validate", &body);
    assert!(
        allowed(&v),
        "still denied after the registry recovered: {v}"
    );
    assert!(
        crate::common::server::warnings(&v).is_empty(),
        "admitted on evidence, not degraded: {v}"
    );
    drop(s);
    drop(server);
}

// ---------------------------------------------------------------------------
// What discovery remembers and skips, seen from the registry's side.

/// How many requests the server got for `path`.
fn served(server: &FakeServer, pred: impl Fn(&Req) -> bool) -> usize {
    server.requests().iter().filter(|r| pred(r)).count()
}

#[tokio::test]
async fn hostile_referrers_memo_is_per_registry_and_never_skips_a_registry_that_has_the_api() {
    // Registry A has no referrers API (404, like distribution 2.8).
    let mut plain = Content::new(REPO);
    let (plain_digest, _) = plain.image("memo-a");
    let without = FakeServer::start("127.0.0.1", move |req: &Req| plain.serve(req)).await;
    // Registry B has it.
    let (content, digest, descs, _) = referrer_content(1);
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    let with_api = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == referrers {
            index_reply(&descs, None)
        } else {
            content.serve(req)
        }
    })
    .await;
    let mut entries = std::collections::HashMap::new();
    for s in [&without, &with_api] {
        entries.insert(
            s.host(),
            provgate::oci::RegistryEntry {
                options: options(Duration::from_secs(5)),
                mirrors: Vec::new(),
            },
        );
    }
    let regs = Registries::new(
        entries,
        provgate::oci::RegistryEntry::default(),
        Limits::default(),
        Arc::new(NoObserver),
    );
    let anonymous = CredentialSet::anonymous();
    let is_referrers = |r: &Req| r.path().starts_with(&format!("/v2/{REPO}/referrers/"));

    for _ in 0..3 {
        ok(discover(&regs, &without, &plain_digest, &anonymous).await);
    }
    assert_eq!(
        served(&without, is_referrers),
        1,
        "A is asked once, then remembered"
    );
    assert_eq!(
        served(&without, |r| is_tag_schema_request(r, &plain_digest)),
        3
    );

    for _ in 0..3 {
        let (found, _) = ok(discover(&regs, &with_api, &digest, &anonymous).await);
        assert_eq!(found.evidence.len(), 1);
        assert_eq!(found.evidence[0].source.kind, SourceKind::Referrers);
        assert!(
            !found
                .notes
                .iter()
                .any(|n| n.contains("referrers API absent")),
            "{:?}",
            found.notes
        );
    }
    assert_eq!(
        served(&with_api, is_referrers),
        3,
        "B is asked every time: A's answer is not B's"
    );
    assert_eq!(served(&with_api, |r| is_tag_schema_request(r, &digest)), 0);
}

#[tokio::test]
async fn hostile_cosign_tags_are_not_requested_when_the_caller_skips_them() {
    let (content, digest, descs, _) = referrer_content(1);
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    let server = FakeServer::start("127.0.0.1", move |req: &Req| {
        if req.path() == referrers {
            index_reply(&descs, None)
        } else {
            content.serve(req)
        }
    })
    .await;
    let regs = regs(&server, Limits::default());
    let image = image_ref(&format!("{}/{REPO}@{digest}", server.host()));
    let is_cosign = |r: &Req| r.path().ends_with(".sig") || r.path().ends_with(".att");

    let (found, requests) = ok(regs
        .discover(
            &image,
            &digest,
            None,
            &CredentialSet::anonymous(),
            DiscoverOptions { cosign_tags: false },
        )
        .await);
    assert_eq!(found.evidence.len(), 1);
    assert_eq!(served(&server, is_cosign), 0, "{:?}", server.requests());
    assert!(requests.iter().all(|r| r.kind != RequestKind::Tag));
    let tag = digest.tag_schema();
    assert!(
        found.notes.contains(&format!(
            "cosign tags {tag}.sig and {tag}.att not looked up: no bound contract accepts legacy cosign evidence"
        )),
        "{:?}",
        found.notes
    );

    // By default they are.
    ok(regs
        .discover(
            &image,
            &digest,
            None,
            &CredentialSet::anonymous(),
            DiscoverOptions::default(),
        )
        .await);
    assert_eq!(served(&server, is_cosign), 2);
}

#[tokio::test]
async fn hostile_403_names_the_credentials_that_were_refused() {
    let mut content = Content::new(REPO);
    let (digest, _) = content.image("403");
    let server = FakeServer::start("127.0.0.1", |req: &Req| {
        if req.path().starts_with(&format!("/v2/{REPO}/")) {
            Reply::status(403)
        } else {
            Reply::status(404)
        }
    })
    .await;
    let regs = regs(&server, small_limits());
    let creds = basic_creds(&server.host());
    let tagged = image_ref(&format!("{}/{REPO}:v1", server.host()));
    let (e, _) = err(regs.resolve(&tagged, &creds).await);
    assert_eq!(
        e.kind,
        RegistryErrorKind::Unauthorized {
            status: 403,
            credentials: provgate::oci::CredentialsUsed {
                set: "tenant".into(),
                credential: Some(provgate::oci::CredentialKind::Basic {
                    username: USER.into()
                }),
            },
        },
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "registry {0}: resolve {REPO}:v1: forbidden (403) with basic credentials of user \"{USER}\" from credentials set \"tenant\"; grant these credentials pull access, or change the auths.\"{0}\" entry in the Docker config file of credentials[] \"tenant\" (its file field)",
            server.host()
        )
    );
    assert!(!e.to_string().contains(PASS), "never the password");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.is_operational());
    let (e, _) = err(discover(&regs, &server, &digest, &creds).await);
    assert!(
        matches!(e.kind, RegistryErrorKind::Unauthorized { status: 403, .. }),
        "{e}"
    );
}
