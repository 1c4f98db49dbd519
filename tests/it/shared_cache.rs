//! The shared evidence tier (`caches.shared`) against a real
//! `redis-server` and real `provgate serve` processes on one kit registry.
//!
//! Registry traffic is counted by a request-logging proxy in front of the
//! kit registry ([`RequestLog`]): the replicas know the registry by the
//! proxy's address, so every request they make is in its log.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use provgate::engine::decision::{ImageDecision, Outcome};
use provgate::engine::{DecisionRequest, ImageUse};
use provgate::policy::RequestContext;

use crate::common::kit::{kit, repo_name};
use crate::common::redis::{RedisServer, RequestLog, raw_command};
use crate::common::replicas::{Replicas, counter};
use crate::common::server::{KitImage, Server, Setup, allowed};

/// `caches:` with the shared tier on `url`. The timeouts are generous:
/// this machine is shared, and the tests assert behaviour, not speed
/// (the outage test kills Redis: refused connections fail at once).
fn caches(url: &str) -> String {
    format!(
        "  shared: {{url: \"{url}\", timeout: 1s, lockWait: 8s, lockTtl: 10s, circuitOpen: 2s}}"
    )
}

fn deployment(image: &str) -> String {
    crate::common::server::review_of(&[
        "--deployment",
        "web",
        "--image",
        image,
        "--namespace",
        "prod",
    ])
}

/// Registry requests that belong to a discovery (not the tag's HEAD, not
/// the token endpoint).
fn discovery_requests(lines: &[String], repo: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains(&format!("/v2/{repo}/")))
        .filter(|l| !(l.starts_with("HEAD ") && l.ends_with("/manifests/v1")))
        .cloned()
        .collect()
}

/// An image with a digest of its own (the kit's default image is the same
/// in every repository), signed or not.
fn fresh_image(prefix: &str, signed: bool) -> KitImage {
    let k = kit();
    let repo_path = repo_name(prefix);
    let digest = k.push_image(
        &format!("{repo_path}/app:v1"),
        &["--layers", "1", "--size", "512", "--seed", &repo_path],
    );
    let repo = format!("{}/{repo_path}/app", k.registry());
    let img = KitImage {
        tagged: format!("{repo}:v1"),
        repo,
        digest,
    };
    if signed {
        let bundle = k.path(&format!("{}.prov.json", repo_name("shared-b")));
        k.sign_provenance(&img.pinned(), &bundle, &[]);
        k.tk(&["attach", &img.pinned(), bundle.to_str().unwrap()]);
    }
    img
}

fn fresh_image_signed(prefix: &str) -> KitImage {
    fresh_image(prefix, true)
}

fn fresh_image_unsigned(prefix: &str) -> KitImage {
    fresh_image(prefix, false)
}

/// `repo` of `registry/repo:v1`.
fn repo_of(img: &KitImage) -> String {
    let k = kit();
    img.repo
        .strip_prefix(&format!("{}/", k.registry()))
        .unwrap()
        .to_owned()
}

#[test]
fn shared_cache_burst_of_300_reviews_over_three_replicas_makes_one_discovery() {
    let redis = RedisServer::start(&[]);
    let log = RequestLog::start(&kit().registry());
    let reps = Replicas::start(3, &log.host(), &caches(&redis.url()));
    let img = fresh_image_signed("shared-burst");
    let image = img.via(&log.host());
    let body = deployment(&image);
    log.clear();
    let reps = Arc::new(reps);
    let results: Vec<bool> = reps.rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..300 {
            let reps = reps.clone();
            let body = body.clone();
            // The API server's longest timeout: a waiting replica waits at
            // most half the time left, and on a loaded machine a 10 s
            // deadline let waiters give up on the lock and fetch.
            tasks.push(tokio::spawn(async move {
                allowed(&reps.review_within(i % 3, &body, "30s").await)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(results.iter().all(|a| *a), "a signed image was denied");
    let lines = log.lines();
    let repo = repo_of(&img);
    let discovery = discovery_requests(&lines, &repo);
    let referrers = discovery
        .iter()
        .filter(|l| l.contains("/referrers/"))
        .count();
    assert_eq!(
        referrers, 1,
        "one discovery makes one referrers request: {lines:#?}"
    );
    let mut seen = std::collections::HashSet::new();
    for l in &discovery {
        assert!(
            seen.insert(l),
            "{l} was asked twice: more than one discovery: {lines:#?}"
        );
    }
    assert_eq!(
        reps.counter("provgate_shared_cache_requests_total", "result=\"miss\""),
        1.0,
        "exactly one replica discovered"
    );
    // `hit` and `hit-after-wait`.
    let hits = reps.counter("provgate_shared_cache_requests_total", "result=\"hit");
    assert_eq!(hits, 2.0, "the two other replicas read its entry");
    assert_eq!(
        redis.keys("provgate:ev1:*").len(),
        1,
        "one entry for the digest"
    );
    assert!(
        redis.keys("provgate:lock1:*").is_empty(),
        "the lock is released"
    );
}

#[test]
fn shared_cache_second_replica_cold_review_makes_only_the_tag_head() {
    let redis = RedisServer::start(&[]);
    let log = RequestLog::start(&kit().registry());
    let reps = Replicas::start(2, &log.host(), &caches(&redis.url()));
    let img = fresh_image_signed("shared-second");
    let body = deployment(&img.via(&log.host()));
    log.clear();
    let first = reps.rt.block_on(reps.review(0, &body));
    assert!(allowed(&first), "{first}");
    let repo = repo_of(&img);
    assert!(
        !discovery_requests(&log.lines(), &repo).is_empty(),
        "the first replica discovered"
    );
    log.clear();
    let second = reps.rt.block_on(reps.review(1, &body));
    assert!(allowed(&second), "{second}");
    let lines = log.lines();
    assert!(
        discovery_requests(&lines, &repo).is_empty(),
        "the second replica asked the registry more than the tag: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("HEAD /v2/{repo}/manifests/v1")),
        "the tag is still resolved by each replica: {lines:#?}"
    );
}

#[test]
fn shared_cache_killing_redis_mid_burst_loses_no_decision_and_never_allows_unsigned() {
    let mut redis = RedisServer::start(&[]);
    let log = RequestLog::start(&kit().registry());
    let reps = Arc::new(Replicas::start(3, &log.host(), &caches(&redis.url())));
    // Fresh digests keep arriving through the burst (a new one every 25
    // reviews, signed and unsigned in turn), so replicas still go to Redis
    // for cold digests when it dies.
    const IMAGES: usize = 12;
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..IMAGES)
            .map(|j| {
                let img = fresh_image(&format!("shared-outage-{j}-"), j % 2 == 0);
                deployment(&img.via(&log.host()))
            })
            .collect(),
    );
    let answered = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let outcomes: Vec<(usize, bool)> = {
        let answered = answered.clone();
        let reps2 = reps.clone();
        let rt = reps.rt.handle().clone();
        let handle = std::thread::spawn(move || {
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for i in 0..300usize {
                    let reps = reps2.clone();
                    let bodies = bodies.clone();
                    let answered = answered.clone();
                    let tx = tx.clone();
                    tasks.push(tokio::spawn(async move {
                        // A steady stream rather than one wave, so Redis
                        // dies while reviews are in flight.
                        tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                        let j = (i / 25) % IMAGES;
                        let v = reps.review(i % 3, &bodies[j]).await;
                        if answered.fetch_add(1, Ordering::SeqCst) == 60 {
                            let _ = tx.send(());
                        }
                        (j % 2, allowed(&v))
                    }));
                }
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.unwrap());
                }
                out
            })
        });
        rx.recv_timeout(Duration::from_secs(120))
            .expect("60 answers before the outage");
        redis.kill();
        handle.join().unwrap()
    };
    assert_eq!(outcomes.len(), 300, "every review was answered");
    for (which, allowed) in &outcomes {
        match which {
            0 => assert!(allowed, "the signed image was denied during the outage"),
            _ => assert!(!allowed, "the unsigned image was allowed"),
        }
    }
    assert!(
        reps.counter("provgate_shared_cache_requests_total", "result=\"error\"") >= 1.0,
        "the outage was seen"
    );
    // After the outage, fresh digests are still judged (from the registry).
    let seen_ok = reps.counter("provgate_shared_cache_requests_total", "result=\"hit")
        + reps.counter("provgate_shared_cache_requests_total", "result=\"miss\"");
    assert!(seen_ok >= 1.0, "the tier served before the outage");
    let fresh = fresh_image_signed("shared-outage-after");
    let v = reps
        .rt
        .block_on(reps.review(2, &deployment(&fresh.via(&log.host()))));
    assert!(allowed(&v), "{v}");
    let fresh_bad = fresh_image_unsigned("shared-outage-after-bad");
    let v = reps
        .rt
        .block_on(reps.review(1, &deployment(&fresh_bad.via(&log.host()))));
    assert!(!allowed(&v), "{v}");
}

/// An in-process server (its own engine and caches) on the shared tier.
fn engine_on(redis: &RedisServer) -> Server {
    Server::start(Setup {
        extra: format!("caches:\n{}\n", caches(&redis.url())),
        ..Setup::default()
    })
}

fn decide(s: &Server, image: &str) -> ImageDecision {
    let mut d = s.rt.block_on(s.engine().decide(&DecisionRequest {
        images: vec![ImageUse::bare(image)],
        context: RequestContext {
            source: provgate::policy::Source::Cli,
            namespace: Some("prod".into()),
            ..Default::default()
        },
        deadline: Some(Instant::now() + Duration::from_secs(20)),
        contracts: None,
        capture_inputs: false,
    }));
    d.remove(0)
}

/// The single evidence entry of `img` (written by a replica's discovery).
fn entry_key(redis: &RedisServer, img: &KitImage) -> String {
    let keys = redis.keys(&format!("provgate:ev1:*{}", img.digest));
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

fn refused_note(d: &ImageDecision) -> String {
    d.notes
        .iter()
        .find(|n| n.contains("shared cache (Redis) entry refused"))
        .cloned()
        .unwrap_or_else(|| panic!("no refusal note: {:?}", d.notes))
}

/// Rewrites the entry's metadata with `edit` (keeping the blobs).
fn edit_meta(value: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let len = u32::from_be_bytes([value[5], value[6], value[7], value[8]]) as usize;
    let mut meta: serde_json::Value = serde_json::from_slice(&value[9..9 + len]).unwrap();
    edit(&mut meta);
    let meta = serde_json::to_vec(&meta).unwrap();
    let mut out = value[..5].to_vec();
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&value[9 + len..]);
    out
}

#[test]
fn shared_cache_tampered_entries_are_refused_and_never_allow_an_unsigned_image() {
    let redis = RedisServer::start(&[]);
    let writer = engine_on(&redis);
    let signed = fresh_image_signed("shared-tamper-signed");
    let d = decide(&writer, &signed.pinned());
    assert_eq!(d.outcome, Outcome::Allow, "{d:?}");
    let key = entry_key(&redis, &signed);
    let value = redis.get(&key).unwrap();
    // For the sizing arithmetic in docs/operating.md.
    println!(
        "shared entry of a digest with one provenance bundle: {} bytes (key {} bytes)",
        value.len(),
        key.len()
    );

    // 1. Swapped: the signed image's entry under an unsigned digest's key.
    let unsigned = fresh_image_unsigned("shared-tamper-unsigned");
    let victim_key = key.replace(
        &format!(
            "{}@{}",
            signed.repo.split_once('/').unwrap().1,
            signed.digest
        ),
        &format!(
            "{}@{}",
            unsigned.repo.split_once('/').unwrap().1,
            unsigned.digest
        ),
    );
    assert_ne!(victim_key, key);
    assert_ne!(unsigned.digest, signed.digest);
    redis.set(&victim_key, &value);
    let reader = engine_on(&redis);
    let d = decide(&reader, &unsigned.pinned());
    assert_eq!(d.outcome, Outcome::Deny, "a swapped entry allowed: {d:?}");
    let note = refused_note(&d);
    assert!(note.contains("an entry moved between keys"), "{note}");
    assert!(
        !d.requests.is_empty(),
        "the replica asked the registry after refusing the entry"
    );

    // 2. Forged to pass every cheap check (key fields and subjects rewritten
    //    to the unsigned digest, blobs untouched): verification binds the
    //    bundle to the digest it signed, so the unsigned image is denied.
    let forged = edit_meta(&value, |m| {
        m["repository"] = unsigned.repo.split_once('/').unwrap().1.into();
        m["digest"] = unsigned.digest.clone().into();
        m["manifestLen"] = serde_json::Value::Null;
        for p in m["pieces"].as_array_mut().unwrap() {
            p["subject"] = unsigned.digest.clone().into();
        }
    });
    // The signed image's manifest, when stored, precedes the blobs.
    let forged = strip_manifest(&value, forged);
    redis.set(&victim_key, &forged);
    let reader = engine_on(&redis);
    let d = decide(&reader, &unsigned.pinned());
    assert_eq!(d.outcome, Outcome::Deny, "a forged entry allowed: {d:?}");
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("read from the shared cache")),
        "{:?}",
        d.notes
    );
    assert!(
        !d.rejected.is_empty() && d.evidence.is_empty(),
        "the forged bundle must be rejected by verification: {d:?}"
    );

    // 3. Altered bytes, 4. truncated, 5. oversized, 6. unknown version: each
    //    refused with its reason; the signed image is then judged on the
    //    registry's evidence (and the entry rewritten).
    let mut altered = value.clone();
    let n = altered.len();
    altered[n - 10] ^= 0x20;
    let mut version = value.clone();
    version[4] = 9;
    let oversized = {
        let mut v = value.clone();
        v.resize(5 << 20, b' ');
        v
    };
    for (bad, reason) in [
        (altered, "recorded layer digest"),
        (value[..value.len() - 7].to_vec(), "truncated"),
        (oversized, "over the limit"),
        (version, "format version 9"),
    ] {
        redis.set(&key, &bad);
        let reader = engine_on(&redis);
        let d = decide(&reader, &signed.pinned());
        let note = refused_note(&d);
        assert!(note.contains(reason), "{reason}: {note}");
        assert_eq!(
            d.outcome,
            Outcome::Allow,
            "{reason}: the registry's evidence decides: {d:?}"
        );
        assert_eq!(
            redis.get(&key).as_deref(),
            Some(&value[..]),
            "{reason}: the refused entry is replaced by the registry's"
        );
        assert_eq!(
            counter(
                &reader.metrics(),
                "provgate_shared_cache_requests_total",
                "result=\"refused\""
            ),
            1.0,
            "{reason}"
        );
    }
}

/// Drops the stored manifest bytes from a re-framed entry whose metadata
/// no longer announces them.
fn strip_manifest(original: &[u8], forged: Vec<u8>) -> Vec<u8> {
    let len = u32::from_be_bytes([original[5], original[6], original[7], original[8]]) as usize;
    let meta: serde_json::Value = serde_json::from_slice(&original[9..9 + len]).unwrap();
    let manifest = meta["manifestLen"].as_u64().unwrap_or(0) as usize;
    if manifest == 0 {
        return forged;
    }
    let flen = u32::from_be_bytes([forged[5], forged[6], forged[7], forged[8]]) as usize;
    let mut out = forged[..9 + flen].to_vec();
    out.extend_from_slice(&forged[9 + flen + manifest..]);
    out
}

#[test]
fn shared_cache_with_a_password_from_a_file() {
    let redis = RedisServer::start(&["--requirepass", "s3cret-pass"]);
    assert!(
        raw_command(redis.addr, "PING").contains("NOAUTH"),
        "the server requires the password"
    );
    let s = Server::start_prepared(
        Setup {
            extra: format!(
                "caches:\n  shared: {{url: \"{}\", timeout: 1s, auth: {{passwordFile: redis-password}}}}\n",
                redis.url()
            ),
            ..Setup::default()
        },
        |dir| std::fs::write(dir.join("redis-password"), "s3cret-pass\n").unwrap(),
    );
    let img = fresh_image_signed("shared-auth");
    let d = decide(&s, &img.pinned());
    assert_eq!(d.outcome, Outcome::Allow, "{d:?}");
    assert_eq!(
        raw_command(redis.addr, "AUTH s3cret-pass"),
        "+OK",
        "the password works"
    );
    let mut c = redis::Client::open(format!("redis://:s3cret-pass@{}", redis.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("provgate:ev1:*")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys.len(), 1, "the authenticated replica wrote its entry");
}

/// The lock key of `img`'s discovery by `s` (the kit credentials, cosign
/// tags searched: the test contract accepts them).
fn lock_key(s: &Server, img: &KitImage) -> String {
    let rt = s.engine().runtime();
    let image = provgate::image::ImageRef::parse(&img.pinned()).unwrap();
    let digest: provgate::digest::Digest = img.digest.parse().unwrap();
    provgate::shared::SharedKey::new(
        &image,
        &digest,
        &rt.config.registry_fingerprint,
        "kit",
        true,
    )
    .lock("provgate:")
}

#[test]
fn shared_cache_a_dead_lock_holder_is_replaced_when_its_lock_expires() {
    let redis = RedisServer::start(&[]);
    let s = engine_on(&redis);
    let img = fresh_image_signed("shared-deadlock");
    // A replica took the lock and died: its lock lives 1.5 s more.
    let lock = lock_key(&s, &img);
    redis::cmd("SET")
        .arg(&lock)
        .arg("dead-replica")
        .arg("PX")
        .arg(1500)
        .query::<()>(&mut redis.conn())
        .unwrap();
    let d = decide(&s, &img.pinned());
    assert_eq!(d.outcome, Outcome::Allow, "{d:?}");
    assert!(!d.requests.is_empty(), "this replica fetched: {d:?}");
    let m = s.metrics();
    assert_eq!(
        counter(
            &m,
            "provgate_shared_cache_requests_total",
            "result=\"miss\""
        ),
        1.0,
        "it took the expired lock: {m}"
    );
    assert_eq!(
        counter(
            &m,
            "provgate_shared_cache_requests_total",
            "result=\"wait-expired\""
        ),
        0.0,
        "within lockWait: {m}"
    );
    assert!(!entry_key(&redis, &img).is_empty(), "the entry is written");
    assert!(redis.get(&lock).is_none(), "its own lock is released");
}

#[test]
fn shared_cache_never_waits_for_a_lock_past_the_admission_deadline() {
    let redis = RedisServer::start(&[]);
    let s = engine_on(&redis);
    let img = fresh_image_signed("shared-stuck");
    // A lock that never expires (lockWait is 8 s in these tests): the
    // replica waits at most half the time left, then fetches by itself.
    redis.set(&lock_key(&s, &img), b"stuck");
    let (v, _took) = s.review_with("/validate", &deployment(&img.pinned()), "3s");
    assert!(
        allowed(&v),
        "the wait ran into the deadline instead of fetching: {v}"
    );
    assert_eq!(
        counter(
            &s.metrics(),
            "provgate_shared_cache_requests_total",
            "result=\"wait-expired\""
        ),
        1.0
    );
}

#[test]
fn shared_cache_over_tls_with_its_own_ca() {
    let ca_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_tls(&ca_dir.path().join("redis-ca.crt"));
    let url = format!("rediss://{}", redis.addr);
    let start = |ca: &'static str| {
        let ca_src = ca_dir.path().join("redis-ca.crt");
        Server::start_prepared(
            Setup {
                extra: format!(
                    "caches:\n  shared: {{url: \"{url}\", timeout: 1s, tls: {{caFile: {ca}}}}}\n"
                ),
                ..Setup::default()
            },
            move |dir| {
                std::fs::copy(&ca_src, dir.join("redis-ca.crt")).unwrap();
                // Another CA: the server's own (written by the helper).
                provgate::server::dev_certs::generate(&["other.test".into()], &dir.join("other"))
                    .unwrap();
            },
        )
    };
    let s = start("redis-ca.crt");
    let img = fresh_image_signed("shared-tls");
    let d = decide(&s, &img.pinned());
    assert_eq!(d.outcome, Outcome::Allow, "{d:?}");
    let m = s.metrics();
    let result = |r: &str| {
        counter(
            &m,
            "provgate_shared_cache_requests_total",
            &format!("result=\"{r}\""),
        )
    };
    assert_eq!(result("miss"), 1.0, "{m}");
    assert_eq!(result("error"), 0.0, "{m}");
    // A second replica reads it over TLS.
    let s2 = start("redis-ca.crt");
    let d = decide(&s2, &img.pinned());
    assert_eq!(d.outcome, Outcome::Allow, "{d:?}");
    assert!(d.requests.is_empty(), "{d:?}");
    // A replica that trusts another CA refuses the connection, and judges
    // from the registry as without the tier.
    let s3 = start("other/ca.crt");
    let d = decide(&s3, &img.pinned());
    assert_eq!(d.outcome, Outcome::Allow, "{d:?}");
    assert!(!d.requests.is_empty(), "{d:?}");
    let m = s3.metrics();
    assert!(
        counter(
            &m,
            "provgate_shared_cache_requests_total",
            "result=\"error\""
        ) >= 1.0,
        "{m}"
    );
}

/// Cold rollouts for the benchmark table: each `pods` concurrent reviews
/// of a fresh signed digest spread over the replicas; the first is a
/// warm-up (connections, tokens, what the replicas learn about the
/// registry) and is not counted.
struct Rollouts {
    /// Registry requests per rollout (the median).
    requests: usize,
    /// Discoveries per rollout: each fetches the digest's `sha256-<hex>`
    /// tag-schema index once (the kit registry has no referrers API).
    discoveries: usize,
    /// Median over rollouts of the median review latency.
    p50_ms: u128,
    /// The slowest review of all rollouts.
    max_ms: u128,
}

fn rollouts(replicas: usize, shared: bool, pods: usize, measured: usize) -> Rollouts {
    let redis = shared.then(|| RedisServer::start(&[]));
    let log = RequestLog::start(&kit().registry());
    let caches = match &redis {
        Some(r) => caches(&r.url()),
        None => "  tagTtl: 30s".to_owned(),
    };
    let reps = Arc::new(Replicas::start(replicas, &log.host(), &caches));
    let mut requests = Vec::new();
    let mut discoveries = Vec::new();
    let mut p50s = Vec::new();
    let mut max_ms = 0;
    for round in 0..=measured {
        let img = fresh_image_signed(&format!("shared-bench-{replicas}-{shared}-{round}-"));
        let body = Arc::new(deployment(&img.via(&log.host())));
        log.clear();
        let mut latencies: Vec<u128> = reps.rt.block_on(async {
            let tasks: Vec<_> = (0..pods)
                .map(|i| {
                    let reps = reps.clone();
                    let body = body.clone();
                    tokio::spawn(async move {
                        let started = Instant::now();
                        let v = reps.review(i % replicas, &body).await;
                        assert!(allowed(&v), "{v}");
                        started.elapsed().as_millis()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        if round == 0 {
            continue;
        }
        latencies.sort_unstable();
        let lines = log.lines();
        requests.push(lines.len());
        discoveries.push(
            lines
                .iter()
                .filter(|l| {
                    l.contains("/manifests/sha256-") && !l.ends_with(".sig") && !l.ends_with(".att")
                })
                .count(),
        );
        p50s.push(latencies[latencies.len() / 2]);
        max_ms = max_ms.max(latencies[latencies.len() - 1]);
    }
    requests.sort_unstable();
    p50s.sort_unstable();
    assert!(
        discoveries.windows(2).all(|w| w[0] == w[1]),
        "{discoveries:?}"
    );
    Rollouts {
        requests: requests[requests.len() / 2],
        discoveries: discoveries[0],
        p50_ms: p50s[p50s.len() / 2],
        max_ms,
    }
}

/// The table in docs/benchmarks.md ("Shared cache (Redis)"): registry
/// requests and cold latency of a rollout at 1 and 3 replicas, with and
/// without the shared tier, measured in one run. Only the discovery
/// counts, which the design fixes, are asserted; latencies are printed.
#[test]
fn shared_cache_rollout_requests_and_cold_latency_at_1_and_3_replicas() {
    const PODS: usize = 30;
    const ROLLOUTS: usize = 3;
    let mut rows = Vec::new();
    for (replicas, shared) in [(1, false), (1, true), (3, false), (3, true)] {
        rows.push((replicas, shared, rollouts(replicas, shared, PODS, ROLLOUTS)));
    }
    println!(
        "\n{ROLLOUTS} cold rollouts of {PODS} pods (concurrent reviews of a fresh signed digest) per row"
    );
    println!(
        "| replicas | shared tier | discoveries | registry requests | cold review p50 | slowest review |"
    );
    println!("|---|---|---|---|---|---|");
    for (n, shared, r) in &rows {
        println!(
            "| {n} | {} | {} | {} | {} ms | {} ms |",
            if *shared { "on" } else { "off" },
            r.discoveries,
            r.requests,
            r.p50_ms,
            r.max_ms
        );
    }
    let discoveries = |n: usize, s: bool| {
        rows.iter()
            .find(|(rn, rs, _)| *rn == n && *rs == s)
            .unwrap()
            .2
            .discoveries
    };
    assert_eq!(discoveries(1, false), 1);
    assert_eq!(discoveries(1, true), 1);
    assert_eq!(
        discoveries(3, false),
        3,
        "without the tier each replica discovers"
    );
    assert_eq!(
        discoveries(3, true),
        1,
        "with it, one discovery for the three"
    );
}
