//! The server itself: the README's main command on embedded defaults,
//! HTTP/1.1 and h2, the plain metrics port, graceful draining, negative
//! caching of permanent errors, shell completions.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::kit::kit;
use crate::common::proxy::{Mode, Proxy};
use crate::common::server::{Server, Setup, allowed, client_trusting, review_of, signed_image};

#[test]
fn serve_on_embedded_defaults_generates_a_dev_certificate_and_serves_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It prints where it serves and the CA to trust.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep reading stderr (the JSON logs) so the server never writes into a
    // closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("provgate: serving https://") {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    let rest = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve printed its address");
    let (addr, ca) = rest.split_once(' ').unwrap();
    assert!(ca.contains("certs/dev/ca.crt"), "{rest}");
    let addr = addr.to_owned();
    let ca = std::fs::read(dir.path().join("certs/dev/ca.crt")).unwrap();
    let key_mode = std::fs::metadata(dir.path().join("certs/dev/tls.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        key_mode.permissions().mode() & 0o077,
        0,
        "the dev key is readable by others"
    );
    // The client and its runtime end before the SIGTERM, so no idle
    // connection of an unpolled client holds the drain.
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = client_trusting(&ca);
        rt.block_on(async {
            let r = client
                .get(format!("https://{addr}/readyz"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            // The built-in contracts compiled: a review is answered (audit mode
            // for every namespace but kube-system: allowed, and recorded).
            let review = review_of(&[
                "--deployment",
                "web",
                "--image",
                "registry.invalid/acme/app:1",
                "--namespace",
                "default",
            ]);
            let r = client
                .post(format!("https://{addr}/validate?timeout=3s"))
                .body(review)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            assert!(allowed(&v), "{v}");
        });
    }
    // SIGTERM: drains and exits 0, promptly.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "serve did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The decision log went to stdout as one JSON line per decision.
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let line: Value = serde_json::from_str(out.lines().next().expect("a decision line")).unwrap();
    assert_eq!(line["apiVersion"], "provgate.dev/decision-log/v1");
    // registry.invalid cannot be reached: recorded, and allowed because the
    // built-in binding only audits.
    assert!(
        line["images"][0]["error"]
            .as_str()
            .unwrap()
            .contains("registry.invalid"),
        "{line}"
    );
    assert_eq!(line["allowed"], true);
}

#[test]
fn http1_and_h2_are_both_served_and_metrics_have_a_plain_port() {
    let s = Server::start(Setup {
        metrics_listen: true,
        ..Setup::default()
    });
    let ca = std::fs::read(s.dir.path().join("certs/ca.crt")).unwrap();
    let h1 = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .http1_only()
        .build()
        .unwrap();
    s.rt.block_on(async {
        let r = s
            .client
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.version(),
            reqwest::Version::HTTP_2,
            "ALPN did not negotiate h2"
        );
        let r = h1.get(format!("{}/healthz", s.base)).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
        let addr = s.metrics_addr().expect("metricsListen");
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("# TYPE provgate_verification_duration_seconds histogram"),
            "{text}"
        );
        // Only metrics there: no webhook on plain HTTP.
        let r = reqwest::Client::new()
            .post(format!("http://{addr}/validate"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    });
}

#[test]
fn graceful_shutdown_answers_reviews_in_flight() {
    let proxy = Proxy::start(&kit().registry());
    let mut s = Server::start(Setup {
        registry: Some(proxy.host()),
        extra: "cache: {tagTtl: 1ms, evidenceTtl: 1ms}\n".into(),
        ..Setup::default()
    });
    let img = signed_image("drain");
    proxy.set(Mode::Slow);
    let body = review_of(&[
        "--deployment",
        "web",
        "--image",
        &img.via(&proxy.host()),
        "--namespace",
        "prod",
    ]);
    let url = format!("{}/validate?timeout=4s", s.base);
    let ca = std::fs::read(s.dir.path().join("certs/ca.crt")).unwrap();
    let inflight = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = client_trusting(&ca)
                .post(&url)
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    });
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    s.shutdown();
    let (status, v) = inflight.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        v["response"]["allowed"], false,
        "answered with the failure policy at the deadline: {v}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drain took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_permanent_error_is_cached_briefly_and_a_second_review_costs_no_request() {
    let s = Server::start(Setup::default());
    let missing = format!("{}/neg/app@sha256:{}", kit().registry(), "5".repeat(64));
    let body = review_of(&[
        "--deployment",
        "web",
        "--image",
        &missing,
        "--namespace",
        "prod",
    ]);
    let requests = |m: &str| -> u64 {
        m.lines()
            .filter(|l| l.starts_with("provgate_registry_requests_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    };
    assert!(!allowed(&s.review("/validate", &body)));
    let after_first = requests(&s.metrics());
    assert!(after_first > 0);
    assert!(!allowed(&s.review("/validate", &body)));
    assert_eq!(
        requests(&s.metrics()),
        after_first,
        "the not-found was fetched again"
    );
    assert!(
        s.metrics().contains(
            "provgate_cache_requests_total{cache=\"evidence\",result=\"negative-hit\"} 1"
        )
    );
}

#[test]
fn shell_completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_provgate"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("provgate") && text.contains("check") && text.contains("report"),
            "{shell}"
        );
    }
}
