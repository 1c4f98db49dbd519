//! A real provgate server over TLS, started in-process on a free port with
//! a configuration pointing at the kit's registry and trusted root.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use provgate::clock::{Clock, FixedClock, SystemClock};
use provgate::server::{Running, ServeOptions};
use serde_json::Value;

use super::kit::{GH_ID, GH_ISS, kit, repo_name};

/// The kit identity as an authority block for contract.yaml.
pub fn kit_authority_yaml() -> String {
    format!(
        "authorities:\n  - name: kit-ci\n    keyless:\n      issuer: {GH_ISS}\n      subject: \"{GH_ID}\"\n"
    )
}

/// A test contract denying images without SLSA provenance v1.
pub const NEEDS_PROVENANCE: &str = r#"package provgate.contract

deny contains {"msg": "no SLSA provenance attestation from a trusted builder", "requirement": "slsa-provenance", "fix": "attach SLSA provenance signed by the release workflow"} if {
	not has_provenance
}

has_provenance if {
	some a in input.attestations
	a.predicateType == "https://slsa.dev/provenance/v1"
}
"#;

/// One contract to write: name, extra contract.yaml lines, Rego.
pub struct TestContract {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Rego text.
    pub rego: String,
}

impl TestContract {
    /// The needs-provenance contract.
    pub fn needs_provenance() -> Self {
        TestContract {
            name: "needs-provenance".into(),
            version: "1".into(),
            rego: NEEDS_PROVENANCE.into(),
        }
    }

    /// Writes it under `dir/<name>/`.
    pub fn write(&self, dir: &Path) {
        let d = dir.join(&self.name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("contract.yaml"),
            format!(
                "name: {}\nversion: \"{}\"\ndescription: test\nowner: tests\n{}",
                self.name,
                self.version,
                kit_authority_yaml()
            ),
        )
        .unwrap();
        std::fs::write(d.join("policy.rego"), &self.rego).unwrap();
    }
}

/// What to put in a server's configuration.
pub struct Setup {
    /// Contracts to write.
    pub contracts: Vec<TestContract>,
    /// The `bindings:` list (YAML, indented as a top-level key's value).
    pub bindings: String,
    /// More top-level YAML.
    pub extra: String,
    /// The registry name images use (default: the kit's plain-HTTP listener).
    pub registry: Option<String>,
    /// The registry's failure policy.
    pub failure: &'static str,
    /// A fixed clock.
    pub clock: Option<Arc<FixedClock>>,
    /// Load the built-in contract library too.
    pub builtin: bool,
    /// Serve metrics on a plain-HTTP port too.
    pub metrics_listen: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            contracts: vec![TestContract::needs_provenance()],
            bindings: "  - name: prod\n    contracts: [needs-provenance]\n    mode: enforce\n"
                .into(),
            extra: String::new(),
            registry: None,
            failure: "fail-closed",
            clock: None,
            builtin: false,
            metrics_listen: false,
        }
    }
}

/// A running server and a client that trusts it.
pub struct Server {
    /// The runtime driving the server.
    pub rt: tokio::runtime::Runtime,
    running: Option<Running>,
    /// A client trusting the server's CA.
    pub client: reqwest::Client,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// The working directory (config, contracts, certs, decision log).
    pub dir: tempfile::TempDir,
    /// The clock, when fixed.
    pub clock: Option<Arc<FixedClock>>,
}

/// A docker config.json for the kit registry's basic auth.
pub fn kit_docker_config(dir: &Path, hosts: &[String]) -> PathBuf {
    use base64::Engine as _;
    let k = kit();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        k.var("TESTKIT_REGISTRY_USER"),
        k.var("TESTKIT_REGISTRY_PASS")
    ));
    let mut auths = serde_json::Map::new();
    for h in hosts {
        auths.insert(h.clone(), serde_json::json!({"auth": auth}));
    }
    let path = dir.join("docker-config.json");
    std::fs::write(&path, serde_json::json!({"auths": auths}).to_string()).unwrap();
    path
}

impl Server {
    /// Starts a server for `setup`.
    pub fn start(setup: Setup) -> Server {
        Self::start_prepared(setup, |_| {})
    }

    /// Starts a server for `setup` after `prepare` wrote files into its
    /// directory.
    pub fn start_prepared(setup: Setup, prepare: impl FnOnce(&Path)) -> Server {
        let k = kit();
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let contracts = dir.path().join("contracts");
        std::fs::create_dir_all(&contracts).unwrap();
        for c in &setup.contracts {
            c.write(&contracts);
        }
        let registry = setup.registry.clone().unwrap_or_else(|| k.registry());
        let creds = kit_docker_config(dir.path(), &[registry.clone(), k.registry()]);
        let certs = dir.path().join("certs");
        provgate::server::dev_certs::generate(&["localhost".into(), "127.0.0.1".into()], &certs)
            .unwrap();
        let config = format!(
            r#"server:
  listen: 127.0.0.1:0
  tls: {{certFile: certs/tls.crt, keyFile: certs/tls.key}}{metrics}
trust:
  publicGood: false
  github: false
  roots: [{{name: kit, path: "{root}"}}]
registries:
  defaults: {{timeout: 2s}}
  hosts:
    "{registry}": {{insecure: true, timeout: 2s, failure: {failure}, lastKnownGoodWindow: 10m}}
credentials: [{{name: kit, file: docker-config.json}}]
contracts: {{builtin: {builtin}, dirs: [contracts]}}
decisionLog: {{path: decisions.jsonl}}
bindings:
{bindings}
{extra}
"#,
            root = k.trusted_root().display(),
            failure = setup.failure,
            builtin = setup.builtin,
            metrics = if setup.metrics_listen {
                "\n  metricsListen: 127.0.0.1:0"
            } else {
                ""
            },
            bindings = setup.bindings,
            extra = setup.extra,
        );
        let _ = creds;
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        Self::start_file(path, dir, setup.clock)
    }

    /// Starts a server on an existing config file inside `dir`.
    pub fn start_file(
        path: PathBuf,
        dir: tempfile::TempDir,
        clock: Option<Arc<FixedClock>>,
    ) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let opts = ServeOptions {
            config: Some(path),
            listen: None,
            dev_cert_dir: dir.path().join("dev-certs"),
            noop_endpoint: true,
            poll_interval: Duration::from_millis(200),
        };
        let c: Arc<dyn Clock> = match &clock {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        };
        let running = rt
            .block_on(provgate::server::start_with_clock(opts, c))
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        let ca = std::fs::read(dir.path().join("certs/ca.crt")).unwrap();
        let client = client_trusting(&ca);
        let base = format!("https://127.0.0.1:{}", running.addr.port());
        Server {
            rt,
            running: Some(running),
            client,
            base,
            dir,
            clock,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<provgate::engine::Engine> {
        &self.running.as_ref().unwrap().engine
    }

    /// The plain-HTTP metrics address, when configured.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().unwrap().metrics_addr
    }

    /// Starts a graceful shutdown and waits for the drain.
    pub fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }

    /// POSTs an AdmissionReview with the API server's `?timeout=`; returns
    /// the answer and how long it took.
    pub fn review_with(&self, path: &str, body: &str, timeout: &str) -> (Value, Duration) {
        let url = format!("{}{path}?timeout={timeout}", self.base);
        let started = std::time::Instant::now();
        let v = self.post_json(&url, body);
        (v, started.elapsed())
    }

    fn post_json(&self, url: &str, body: &str) -> Value {
        self.rt.block_on(async {
            let r = self
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{url} answered {}", r.status());
            r.json::<Value>().await.unwrap()
        })
    }

    /// POSTs an AdmissionReview to `path` (`/validate` or `/mutate`).
    pub fn review(&self, path: &str, body: &str) -> Value {
        let url = format!("{}{path}?timeout=10s", self.base);
        self.rt.block_on(async {
            let r = self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} answered {}", r.status());
            r.json::<Value>().await.unwrap()
        })
    }

    /// GETs a path, returning status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let r = self.client.get(&url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    /// The metrics text.
    pub fn metrics(&self) -> String {
        self.get("/metrics").1
    }

    /// The decision log lines.
    pub fn decisions(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("decisions.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Rewrites a file in the working directory atomically.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        let tmp = p.with_extension("tmp-write");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

/// A reqwest client trusting `ca_pem` only.
pub fn client_trusting(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An image in the kit registry: `registry/repo:v1` and its digest.
pub struct KitImage {
    /// `registry/repo`.
    pub repo: String,
    /// `registry/repo:v1`.
    pub tagged: String,
    /// The digest.
    pub digest: String,
}

impl KitImage {
    /// `registry/repo@digest`.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repo, self.digest)
    }
    /// The same repository under another registry name (a proxy).
    pub fn via(&self, registry: &str) -> String {
        let k = kit();
        self.tagged.replacen(&k.registry(), registry, 1)
    }
}

/// Pushes an image with no evidence.
pub fn unsigned_image(prefix: &str) -> KitImage {
    let k = kit();
    let repo_path = repo_name(prefix);
    let digest = k.push_image(&format!("{repo_path}/app:v1"), &[]);
    let repo = format!("{}/{repo_path}/app", k.registry());
    KitImage {
        tagged: format!("{repo}:v1"),
        repo,
        digest,
    }
}

/// Pushes an image and attaches keyless SLSA provenance from the kit identity.
pub fn signed_image(prefix: &str) -> KitImage {
    let k = kit();
    let img = unsigned_image(prefix);
    let bundle = k.path(&format!("{}.prov.json", repo_name("b")));
    k.sign_provenance(&img.pinned(), &bundle, &[]);
    k.tk(&["attach", &img.pinned(), bundle.to_str().unwrap()]);
    img
}

/// Builds an AdmissionReview with `testkit admission-review ARGS`.
pub fn review_of(args: &[&str]) -> String {
    kit().tk(&["admission-review"]
        .iter()
        .chain(args)
        .copied()
        .collect::<Vec<_>>())
}

/// The `response` object of a review answer.
pub fn response(v: &Value) -> &Value {
    &v["response"]
}

/// Whether the answer allowed.
pub fn allowed(v: &Value) -> bool {
    v["response"]["allowed"].as_bool().unwrap()
}

/// The denial message.
pub fn message(v: &Value) -> String {
    v["response"]["status"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The warnings.
pub fn warnings(v: &Value) -> Vec<String> {
    v["response"]["warnings"]
        .as_array()
        .map(|a| a.iter().map(|w| w.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Writes a YAML/JSON file in a fresh temp file and returns its path.
pub fn temp_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
