//! Several `provgate serve` processes (the real binary) on one
//! configuration: the shape of an HA install, for the shared-tier tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::kit::kit;
use super::redis::watchdog;
use super::server::{TestContract, client_trusting, kit_docker_config};

/// One `provgate serve` process.
pub struct Replica {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replicas sharing one configuration directory.
pub struct Replicas {
    /// The replicas.
    pub list: Vec<Replica>,
    /// Config, contracts, certificates.
    pub dir: tempfile::TempDir,
    /// A runtime for the client.
    pub rt: tokio::runtime::Runtime,
    /// A client trusting the replicas' CA.
    pub client: reqwest::Client,
}

/// Writes the configuration: images under `registry` (plain HTTP, the kit's
/// credentials), the needs-provenance contract enforced everywhere, and
/// `caches` as given (YAML mapping body, indented two spaces).
pub fn write_config(dir: &Path, registry: &str, caches: &str) -> PathBuf {
    let k = kit();
    let contracts = dir.join("contracts");
    std::fs::create_dir_all(&contracts).unwrap();
    TestContract::needs_provenance().write(&contracts);
    kit_docker_config(dir, &[registry.to_owned()]);
    let certs = dir.join("certs");
    if !certs.join("tls.crt").exists() {
        provgate::server::dev_certs::generate(&["localhost".into(), "127.0.0.1".into()], &certs)
            .unwrap();
    }
    let config = format!(
        r#"server:
  listen: 127.0.0.1:0
  tls: {{certFile: certs/tls.crt, keyFile: certs/tls.key}}
trust:
  publicGood: false
  github: false
  roots: [{{name: kit, path: "{root}"}}]
registries:
  hosts:
    "{registry}": {{insecure: true, timeout: 5s}}
credentials: [{{name: kit, file: docker-config.json}}]
contracts: {{builtin: false, dirs: [contracts]}}
decisionLog: {{enabled: false}}
bindings:
  - name: prod
    contracts: [needs-provenance]
    mode: enforce
caches:
{caches}
"#,
        root = k.trusted_root().display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

impl Replicas {
    /// Starts `n` replicas on `write_config(dir, registry, caches)`.
    pub fn start(n: usize, registry: &str, caches: &str) -> Replicas {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), registry, caches);
        let list = (0..n).map(|_| spawn(&config)).collect();
        let ca = std::fs::read(dir.path().join("certs/ca.crt")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = {
            let _guard = rt.enter();
            client_trusting(&ca)
        };
        Replicas {
            list,
            dir,
            rt,
            client,
        }
    }

    /// POSTs an AdmissionReview to `/validate` of replica `i`.
    pub async fn review(&self, i: usize, body: &str) -> Value {
        self.review_within(i, body, "10s").await
    }

    /// [`Replicas::review`] with the API server's `timeout` (`10s`, `30s`).
    pub async fn review_within(&self, i: usize, body: &str, timeout: &str) -> Value {
        let url = format!("{}/validate?timeout={timeout}", self.list[i].base);
        let r = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:?}"));
        assert_eq!(r.status(), 200, "{url} answered {}", r.status());
        r.json::<Value>().await.unwrap()
    }

    /// The metrics text of replica `i`.
    pub fn metrics(&self, i: usize) -> String {
        let url = format!("{}/metrics", self.list[i].base);
        self.rt.block_on(async {
            self.client
                .get(&url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    /// The sum over replicas of a counter's samples whose line contains
    /// `filter` (e.g. `result="hit"`).
    pub fn counter(&self, name: &str, filter: &str) -> f64 {
        (0..self.list.len())
            .map(|i| counter(&self.metrics(i), name, filter))
            .sum()
    }
}

/// The sum of a counter's samples whose line contains `filter`.
pub fn counter(metrics: &str, name: &str, filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Starts `provgate serve --config CONFIG` and waits for its address.
pub fn spawn(config: &Path) -> Replica {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn,provgate=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start provgate serve");
    watchdog(child.id());
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // Keep draining after the address is known (a full pipe would
            // block the server's logging).
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = child.wait();
                panic!("provgate serve exited ({status}): {}", seen.join("\n"));
            }
            continue;
        };
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "provgate is serving"
            && let Some(addr) = v["addr"].as_str()
        {
            let port = addr.rsplit(':').next().unwrap();
            return Replica {
                child,
                base: format!("https://127.0.0.1:{port}"),
            };
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("provgate serve did not start: {}", seen.join("\n"));
}
