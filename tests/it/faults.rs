//! Fault tests: the registry down, failing or slow under each failure
//! policy; a certificate rotated and a broken contract pushed while the
//! server runs; a burst of reviews of a new digest. No wrong allow, no
//! crash, one discovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::kit::kit;
use crate::common::proxy::{Mode, Proxy};
use crate::common::server::{
    Server, Setup, allowed, client_trusting, message, review_of, signed_image, unsigned_image,
    warnings,
};

/// Short caches, so that every review after the first goes back to the
/// registry (and meets the fault, or the registry's back-off).
const SHORT_CACHES: &str = "cache: {tagTtl: 1ms, evidenceTtl: 1ms, negativeTtl: 1ms, transientNegativeTtl: 1ms, verdictTtl: 1ms}\n";

/// How long a registry is left alone after its first failure without
/// `Retry-After` (`registries.limits.backoffMillis`, 1 s by default; the
/// jittered back-off is at most that).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

fn faulty(failure: &'static str, proxy: &Proxy) -> Server {
    Server::start(Setup {
        registry: Some(proxy.host()),
        failure,
        extra: SHORT_CACHES.into(),
        ..Setup::default()
    })
}

fn deploy(image: &str, ns: &str) -> String {
    review_of(&["--deployment", "web", "--image", image, "--namespace", ns])
}

fn settle() {
    // Let the 1 ms cache entries expire.
    std::thread::sleep(Duration::from_millis(20));
}

/// Reviews `body` until it is allowed; how long that took. Panics after
/// `limit`.
fn admitted_within(s: &Server, body: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let v = s.review("/validate", body);
        if allowed(&v) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still denied {:?} after recovery: {v}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn registry_down_under_fail_closed_denies_and_recovers_within_one_back_off() {
    let proxy = Proxy::start(&kit().registry());
    let s = faulty("fail-closed", &proxy);
    let img = signed_image("fault-fc");
    let body = deploy(&img.via(&proxy.host()), "prod");
    assert!(allowed(&s.review("/validate", &body)));
    for mode in [Mode::Down, Mode::Error503] {
        proxy.set(mode);
        settle();
        let v = s.review("/validate", &body);
        assert!(
            !allowed(&v),
            "{mode:?}: allowed while the registry fails: {v}"
        );
        let m = message(&v);
        assert!(m.contains(&proxy.host()), "{mode:?}: {m}");
        // While it backs off, the registry is not asked: still denied,
        // saying so. (After the 1 ms negative entry of the first failure
        // has expired: on a quiet machine the next review can come sooner,
        // and would be answered from that entry, with the first message.)
        settle();
        let v = s.review("/validate", &body);
        assert!(!allowed(&v), "{mode:?}: {v}");
        assert!(
            message(&v).contains(&format!("registry {} is backing off", proxy.host())),
            "{mode:?}: {}",
            message(&v)
        );
        // Back up: admitted once the back-off is over, not a negative TTL
        // later.
        proxy.set(Mode::Pass);
        let took = admitted_within(&s, &body, FIRST_BACKOFF + Duration::from_secs(2));
        eprintln!("{mode:?}: admitted {took:?} after recovery");
    }
}

#[test]
fn registry_down_under_warn_allows_with_a_warning_and_a_metric() {
    let proxy = Proxy::start(&kit().registry());
    let s = faulty("warn", &proxy);
    let img = unsigned_image("fault-warn");
    let via = img.via(&proxy.host());
    // Up: an unsigned image is denied; the policy never degrades a verdict.
    assert!(!allowed(&s.review("/validate", &deploy(&via, "prod"))));
    proxy.set(Mode::Error503);
    settle();
    let v = s.review("/validate", &deploy(&via, "prod"));
    assert!(allowed(&v), "{v}");
    let w = warnings(&v).join("\n");
    assert!(
        w.contains("allowed without verification (failure policy warn)"),
        "{w}"
    );
    assert!(
        s.metrics().contains(
            "provgate_degraded_decisions_total{registry=\""
                .to_owned()
                .as_str()
        )
    );
    assert!(s.metrics().contains("policy=\"warn\""));
}

#[test]
fn registry_down_under_last_known_good_serves_verified_evidence_with_a_warning() {
    let proxy = Proxy::start(&kit().registry());
    let s = faulty("last-known-good", &proxy);
    let good = signed_image("fault-lkg");
    let bad = unsigned_image("fault-lkg-bad");
    let (good_via, bad_via) = (good.via(&proxy.host()), bad.via(&proxy.host()));
    assert!(allowed(&s.review("/validate", &deploy(&good_via, "prod"))));
    assert!(!allowed(&s.review("/validate", &deploy(&bad_via, "prod"))));
    proxy.set(Mode::Down);
    settle();
    let v = s.review("/validate", &deploy(&good_via, "prod"));
    assert!(allowed(&v), "last-known-good evidence not used: {v}");
    let w = warnings(&v).join("\n");
    assert!(w.contains("last-known-good"), "{w}");
    // Last-known-good evidence of a non-compliant image still denies.
    let v = s.review("/validate", &deploy(&bad_via, "prod"));
    assert!(
        !allowed(&v),
        "an image without evidence was allowed on last-known-good: {v}"
    );
    // An image never verified has no last-known-good: fail closed.
    let fresh = signed_image("fault-lkg-new");
    let v = s.review("/validate", &deploy(&fresh.via(&proxy.host()), "prod"));
    assert!(!allowed(&v), "{v}");
    assert!(s.metrics().contains("policy=\"last-known-good\""));
}

#[test]
fn a_slow_registry_is_answered_at_the_deadline_with_the_failure_policy() {
    let proxy = Proxy::start(&kit().registry());
    let s = faulty("fail-closed", &proxy);
    let img = signed_image("fault-slow");
    proxy.set(Mode::Slow);
    let (v, took) = s.review_with("/validate", &deploy(&img.via(&proxy.host()), "prod"), "3s");
    assert!(!allowed(&v), "{v}");
    // 3 s timeout − 1 s margin: answered in about 2 s, never a hang.
    assert!(
        took < Duration::from_millis(2900),
        "answered after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "answered before the deadline: {took:?}"
    );
    let m = message(&v);
    assert!(
        m.contains("deadline") || m.contains("timed out") || m.contains("timeout"),
        "{m}"
    );
}

#[test]
fn flapping_registry_never_causes_a_wrong_allow() {
    let proxy = Proxy::start(&kit().registry());
    let s = faulty("fail-closed", &proxy);
    let good = signed_image("fault-flap");
    let bad = unsigned_image("fault-flap-bad");
    let modes = [
        Mode::Pass,
        Mode::Error503,
        Mode::Pass,
        Mode::Down,
        Mode::Pass,
        Mode::Error503,
    ];
    let mut allowed_good = 0;
    let bad_body = deploy(&bad.via(&proxy.host()), "prod");
    let good_body = deploy(&good.via(&proxy.host()), "prod");
    for (i, m) in modes.iter().cycle().take(18).enumerate() {
        proxy.set(*m);
        settle();
        let v = s.review("/validate", &bad_body);
        assert!(
            !allowed(&v),
            "round {i} ({m:?}): unsigned image allowed: {v}"
        );
        if *m == Mode::Pass {
            // Admitted once the back-off of the last failure is over.
            admitted_within(&s, &good_body, FIRST_BACKOFF + Duration::from_secs(2));
            let v = s.review("/validate", &bad_body);
            assert!(
                !allowed(&v),
                "round {i} ({m:?}): unsigned image allowed: {v}"
            );
            allowed_good += 1;
        } else {
            let v = s.review("/validate", &good_body);
            assert!(
                !allowed(&v),
                "round {i} ({m:?}): allowed without verification under fail-closed"
            );
        }
    }
    assert_eq!(allowed_good, 9);
    assert_eq!(s.get("/healthz").0, 200);
}

fn registry_requests(metrics: &str) -> (u64, u64) {
    let mut total = 0;
    let mut referrers = 0;
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("provgate_registry_requests_total{"))
    {
        let n: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        total += n as u64;
        if l.contains("kind=\"referrers\"") {
            referrers += n as u64;
        }
    }
    (total, referrers)
}

#[test]
fn a_burst_of_reviews_of_a_new_digest_causes_one_discovery() {
    let s = Server::start(Setup::default());
    let burst = signed_image("burst");
    let n = 100;
    let bodies: Vec<String> = (0..n).map(|_| deploy(&burst.tagged, "burst")).collect();
    let url = format!("{}/validate?timeout=10s", s.base);
    let results: Vec<Value> = s.rt.block_on(async {
        let futs = bodies.iter().map(|b| {
            let c = s.client.clone();
            let url = url.clone();
            let b = b.clone();
            tokio::spawn(async move {
                c.post(&url)
                    .body(b)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            })
        });
        futures_util::future::join_all(futs)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect()
    });
    assert!(
        results.iter().all(allowed),
        "a review of the burst was denied"
    );
    let (after_burst, referrers) = registry_requests(&s.metrics());
    // The same image shape, cold, reviewed once: the cost of one discovery.
    let single = signed_image("burst-single");
    assert!(allowed(
        &s.review("/validate", &deploy(&single.tagged, "burst"))
    ));
    let (after_single, referrers2) = registry_requests(&s.metrics());
    assert_eq!(
        referrers, 1,
        "the burst made {referrers} referrers requests"
    );
    // The registry's missing referrers API was remembered by the burst's
    // discovery: the single review does not ask again, one request fewer.
    assert_eq!(referrers2, 1);
    assert_eq!(
        after_burst,
        after_single - after_burst + 1,
        "{n} concurrent reviews made {after_burst} registry requests; one cold review makes {}",
        after_single - after_burst
    );
}

#[test]
fn a_certificate_rotated_while_requests_flow_is_served_without_errors() {
    let s = Server::start(Setup::default());
    let img = signed_image("rotate");
    let ca_a = std::fs::read(s.dir.path().join("certs/ca.crt")).unwrap();
    let body = deploy(&img.tagged, "rotate");
    // Rotate to a certificate from another CA while reviews flow.
    let staging = s.dir.path().join("certs-b");
    provgate::server::dev_certs::generate(&["localhost".into(), "127.0.0.1".into()], &staging)
        .unwrap();
    let ca_b = std::fs::read(staging.join("ca.crt")).unwrap();
    let mut both = ca_a.clone();
    both.extend_from_slice(&ca_b);
    let client = client_trusting(&both);
    let url = format!("{}/validate?timeout=10s", s.base);
    let (ok, failed) = s.rt.block_on(async {
        let stop = Instant::now() + Duration::from_secs(3);
        let flow = {
            let client = client.clone();
            let url = url.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                while Instant::now() < stop {
                    match client.post(&url).body(body.clone()).send().await {
                        Ok(r) if r.status() == 200 => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        };
        tokio::time::sleep(Duration::from_millis(800)).await;
        // cert-manager style: key and certificate replaced by rename.
        for f in ["tls.key", "tls.crt"] {
            std::fs::copy(staging.join(f), s.dir.path().join(format!("certs/{f}.new"))).unwrap();
        }
        for f in ["tls.key", "tls.crt"] {
            std::fs::rename(
                s.dir.path().join(format!("certs/{f}.new")),
                s.dir.path().join(format!("certs/{f}")),
            )
            .unwrap();
        }
        flow.await.unwrap()
    });
    assert!(ok > 10, "only {ok} requests succeeded");
    assert_eq!(failed, 0, "{failed} requests failed during the rotation");
    // New connections get the new certificate: a client trusting only CA B
    // connects, one trusting only CA A does not.
    let only_b = client_trusting(&ca_b);
    let only_a = client_trusting(&ca_a);
    let metrics = s.rt.block_on(async {
        assert_eq!(
            only_b
                .get(format!("{}/healthz", s.base))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert!(
            only_a
                .get(format!("{}/healthz", s.base))
                .send()
                .await
                .is_err()
        );
        only_b
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(metrics.contains("result=\"tls-success\""), "{metrics}");
}

#[test]
fn a_broken_contract_pushed_by_hot_reload_is_rejected_and_the_old_one_keeps_serving() {
    let s = Server::start(Setup::default());
    let good = signed_image("reload-good");
    let bad = unsigned_image("reload-bad");
    assert!(allowed(
        &s.review("/validate", &deploy(&good.tagged, "prod"))
    ));
    assert!(!allowed(
        &s.review("/validate", &deploy(&bad.tagged, "prod"))
    ));
    s.write(
        "contracts/needs-provenance/policy.rego",
        "package provgate.contract\ndeny contains x if {\n",
    );
    wait_for(&s, "provgate_config_reloads_total{result=\"failure\"} 1");
    assert!(
        allowed(&s.review("/validate", &deploy(&good.tagged, "prod"))),
        "the old contract stopped serving"
    );
    assert!(
        !allowed(&s.review("/validate", &deploy(&bad.tagged, "prod"))),
        "a broken contract allowed"
    );
    // A good change is picked up without a restart.
    let relaxed = crate::common::server::NEEDS_PROVENANCE.replace("not has_provenance", "false");
    s.write("contracts/needs-provenance/policy.rego", &relaxed);
    wait_for(&s, "provgate_config_reloads_total{result=\"success\"} 1");
    assert!(
        allowed(&s.review("/validate", &deploy(&bad.tagged, "prod"))),
        "the new contract was not loaded"
    );
}

fn wait_for(s: &Server, needle: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if s.metrics().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{needle} not in metrics:\n{}", s.metrics());
}

#[test]
fn s5_decision_log_and_metrics_show_allowed_and_denied_per_namespace() {
    let s = Server::start(Setup::default());
    let good = signed_image("s5-good");
    let bad = unsigned_image("s5-bad");
    for (img, ns) in [
        (&good, "payments"),
        (&bad, "payments"),
        (&good, "search"),
        (&good, "search"),
    ] {
        let _ = s.review("/validate", &deploy(&img.tagged, ns));
    }
    let log = s.decisions();
    let per_ns = |ns: &str, allowed: bool| {
        log.iter()
            .filter(|d| d["namespace"] == ns && d["allowed"] == allowed)
            .count()
    };
    assert_eq!(per_ns("payments", true), 1);
    assert_eq!(per_ns("payments", false), 1);
    assert_eq!(per_ns("search", true), 2);
    let denied = log
        .iter()
        .find(|d| d["namespace"] == "payments" && d["allowed"] == false)
        .unwrap();
    let image = &denied["images"][0];
    assert_eq!(image["digest"], bad.digest.as_str());
    assert_eq!(image["contracts"][0]["name"], "needs-provenance");
    assert_eq!(image["contracts"][0]["version"], "1");
    assert_eq!(image["contracts"][0]["mode"], "enforce");
    assert_eq!(image["contracts"][0]["verdict"], "deny");
    assert!(
        image["contracts"][0]["messages"][0]
            .as_str()
            .unwrap()
            .contains("Fix:")
    );
    let allowed_line = log.iter().find(|d| d["namespace"] == "search").unwrap();
    assert_eq!(
        allowed_line["images"][0]["contracts"][0]["evidence"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for key in ["uid", "operation", "kind", "name", "user", "time"] {
        assert!(allowed_line.get(key).is_some(), "decision log has no {key}");
    }
    let m = s.metrics();
    assert!(m.contains("provgate_decisions_total{source=\"admission\",namespace=\"payments\",outcome=\"deny\"} 1"), "{m}");
    assert!(m.contains(
        "provgate_decisions_total{source=\"admission\",namespace=\"payments\",outcome=\"allow\"} 1"
    ));
    assert!(m.contains(
        "provgate_decisions_total{source=\"admission\",namespace=\"search\",outcome=\"allow\"} 2"
    ));
}

/// One review of a steady load.
#[derive(Debug, Clone)]
struct Reviewed {
    /// Which image (index into the load's bodies).
    image: usize,
    started: Instant,
    finished: Instant,
    allowed: bool,
    message: String,
}

/// Reviews `bodies` from `workers` concurrent clients, each pausing
/// `pace` between its reviews, until `stop` is set. Worker `i` reviews
/// image `i % bodies.len()`.
fn steady_load(
    s: &Server,
    bodies: &[String],
    workers: usize,
    pace: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Reviewed>> {
    let url = format!("{}/validate?timeout=10s", s.base);
    let bodies: Vec<String> = bodies.to_vec();
    let client = s.client.clone();
    s.rt.spawn(async move {
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                let image = w % bodies.len();
                let body = bodies[image].clone();
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let v: Value = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        out.push(Reviewed {
                            image,
                            started,
                            finished: Instant::now(),
                            allowed: allowed(&v),
                            message: message(&v),
                        });
                        tokio::time::sleep(pace).await;
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    })
}

/// The value of the circuit-state gauge of `host` (0 closed, 1 half-open,
/// 2 open), if exported.
fn circuit_state(metrics: &str, host: &str) -> Option<u64> {
    let prefix = format!("provgate_registry_circuit_state{{registry=\"{host}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

#[test]
fn a_rate_limited_registry_is_asked_once_per_retry_after_and_recovers_within_one_interval() {
    const IMAGES: usize = 4;
    const INTERVAL: Duration = Duration::from_secs(2);
    const OUTAGE: Duration = Duration::from_secs(10);
    let proxy = Proxy::start(&kit().registry());
    let s = Server::start(Setup {
        registry: Some(proxy.host()),
        ..Setup::default()
    });
    let images: Vec<_> = (0..IMAGES)
        .map(|i| signed_image(&format!("outage-{i}")))
        .collect();
    let repos: Vec<String> = images
        .iter()
        .map(|img| img.repo.split_once('/').map(|(_, r)| r.to_owned()).unwrap())
        .collect();
    let bodies: Vec<String> = images
        .iter()
        .map(|img| deploy(&img.via(&proxy.host()), "prod"))
        .collect();

    proxy.set_retry_after(Some("2"));
    proxy.set(Mode::Error429);
    let outage_start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(&s, &bodies, 8, Duration::from_millis(10), stop.clone());
    std::thread::sleep(OUTAGE / 2);
    let mid = s.metrics();
    std::thread::sleep(OUTAGE / 2);
    proxy.set(Mode::Pass);
    let recovered_at = Instant::now();
    std::thread::sleep(INTERVAL + Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let reviews = s.rt.block_on(load).unwrap();
    let after = s.metrics();

    // What reached the registry during the outage, per image.
    let answered = proxy.answered();
    let outage_secs = recovered_at.duration_since(outage_start).as_secs_f64();
    let during: Vec<_> = reviews
        .iter()
        .filter(|r| r.finished < recovered_at)
        .collect();
    eprintln!(
        "429 outage of {outage_secs:.1} s (Retry-After: 2): {} registry requests ({:.1}/s) for {} reviews ({:.0}/s) of {IMAGES} fresh digests",
        answered.len(),
        answered.len() as f64 / outage_secs,
        during.len(),
        during.len() as f64 / outage_secs,
    );
    let latencies: Vec<Duration> = during
        .iter()
        .map(|r| r.finished.duration_since(r.started))
        .collect();
    eprintln!(
        "  review latency during the outage: mean {:?}, max {:?}",
        latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32,
        latencies.iter().max().copied().unwrap_or_default()
    );
    for (i, repo) in repos.iter().enumerate() {
        let at: Vec<Instant> = answered
            .iter()
            .filter(|a| a.target.starts_with(&format!("/v2/{repo}/")))
            .map(|a| a.at)
            .collect();
        eprintln!("  image {i}: {} requests", at.len());
        for w in at.windows(2) {
            let gap = w[1].duration_since(w[0]);
            assert!(
                gap >= INTERVAL - Duration::from_millis(100),
                "image {i}: two registry requests {gap:?} apart during the outage (Retry-After: 2)"
            );
        }
    }
    let intervals = (OUTAGE.as_secs() / INTERVAL.as_secs()) as usize + 1;
    assert!(
        answered.len() <= IMAGES * intervals,
        "{} registry requests during the outage: more than one per digest per interval",
        answered.len()
    );
    assert!(!answered.is_empty(), "the outage was never seen");

    // Every review during the outage is denied (fail-closed), before its
    // deadline (10 s - 1 s margin), saying why.
    assert!(during.len() > 100, "only {} reviews", during.len());
    for r in &during {
        assert!(!r.allowed, "allowed during the outage: {r:?}");
        let took = r.finished.duration_since(r.started);
        assert!(took < Duration::from_secs(9), "a review took {took:?}");
        assert!(r.message.contains(&proxy.host()), "{}", r.message);
    }
    let backing_off = format!("registry {} is backing off until ", proxy.host());
    let explained = during
        .iter()
        .find(|r| r.message.contains(&backing_off))
        .unwrap_or_else(|| panic!("no denial says the registry is backing off: {during:?}"));
    assert!(
        explained
            .message
            .contains("after 429 Too Many Requests (Retry-After: 2)"),
        "{}",
        explained.message
    );

    // Fresh signed digests are admitted within one interval of recovery
    // (plus the time of one cold discovery), and stay admitted.
    for i in 0..IMAGES {
        let mut mine: Vec<_> = reviews
            .iter()
            .filter(|r| r.image == i && r.started >= recovered_at)
            .collect();
        mine.sort_by_key(|r| r.finished);
        let first = mine
            .iter()
            .position(|r| r.allowed)
            .unwrap_or_else(|| panic!("image {i} was never admitted after recovery"));
        let after_recovery = mine[first].finished.duration_since(recovered_at);
        eprintln!("  image {i}: admitted {after_recovery:?} after recovery");
        assert!(
            after_recovery <= INTERVAL + Duration::from_millis(1500),
            "image {i} admitted only {after_recovery:?} after recovery"
        );
        let again: Vec<_> = mine[first..].iter().filter(|r| !r.allowed).collect();
        assert!(
            again.is_empty(),
            "image {i} denied again after being admitted: {again:#?}"
        );
    }

    // The circuit was open (or probing) mid-outage and is closed again.
    let host = proxy.host();
    assert!(
        matches!(circuit_state(&mid, &host), Some(1 | 2)),
        "circuit state mid-outage: {:?}",
        circuit_state(&mid, &host)
    );
    assert_eq!(circuit_state(&after, &host), Some(0), "{after}");
    assert!(
        after.contains(&format!(
            "provgate_registry_backoffs_total{{registry=\"{host}\",cause=\"429\"}}"
        )),
        "{after}"
    );
}

#[test]
fn a_backing_off_registry_is_a_transient_failure_for_last_known_good() {
    let proxy = Proxy::start(&kit().registry());
    let s = Server::start(Setup {
        registry: Some(proxy.host()),
        failure: "last-known-good",
        extra: "cache: {tagTtl: 1ms, evidenceTtl: 1ms}\n".into(),
        ..Setup::default()
    });
    let good = signed_image("backoff-lkg");
    let fresh = signed_image("backoff-lkg-new");
    let (good_via, fresh_via) = (good.via(&proxy.host()), fresh.via(&proxy.host()));
    assert!(allowed(&s.review("/validate", &deploy(&good_via, "prod"))));
    proxy.set_retry_after(Some("30"));
    proxy.set(Mode::Error429);
    settle();
    // The first review meets the 429 and opens the circuit; the next ones
    // are not sent at all, and still degrade to last-known-good.
    for round in 0..3 {
        let v = s.review("/validate", &deploy(&good_via, "prod"));
        assert!(allowed(&v), "round {round}: {v}");
        let w = warnings(&v).join("\n");
        assert!(w.contains("last-known-good"), "round {round}: {w}");
        if round > 0 {
            assert!(w.contains("is backing off until"), "round {round}: {w}");
        }
    }
    assert_eq!(proxy.answered().len(), 1, "{:?}", proxy.answered());
    // Never verified: no last-known-good, denied.
    let v = s.review("/validate", &deploy(&fresh_via, "prod"));
    assert!(!allowed(&v), "{v}");
    assert!(message(&v).contains("is backing off until"), "{v}");
    assert_eq!(proxy.answered().len(), 1);
}
