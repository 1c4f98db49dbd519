//! Decision integrity (issue 11): multi-platform images judged per
//! platform, gate ⊆ admission, no world-trusting authority under enforce,
//! and cache hits that decide exactly as misses do. Each test would fail if
//! the hole it names came back.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::kit::{GH_ID, GH_ISS, kit, repo_name};
use crate::common::registry::index_children;
use crate::common::server::{
    Server, Setup, TestContract, allowed, message, review_of, signed_image, temp_file,
    unsigned_image,
};

/// A pushed multi-platform image: the index and its platforms.
struct IndexImage {
    repo: String,
    tagged: String,
    index: String,
    platforms: BTreeMap<String, String>,
}

fn push_index(prefix: &str) -> IndexImage {
    let k = kit();
    let path = format!("{}/app", repo_name(prefix));
    let out = k.tk_output(&[
        "push-image",
        &format!("{path}:v1"),
        "--index",
        "--platforms",
        "linux/amd64,linux/arm64",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let platforms = index_children(&String::from_utf8_lossy(&out.stderr))
        .into_iter()
        .map(|(p, d)| (p, d.to_string()))
        .collect::<BTreeMap<_, _>>();
    assert_eq!(platforms.len(), 2, "{platforms:?}");
    let repo = format!("{}/{path}", k.registry());
    IndexImage {
        tagged: format!("{repo}:v1"),
        repo,
        index,
        platforms,
    }
}

/// Signs keyless SLSA provenance for `repo@digest` as `identity` and
/// attaches it.
fn attest(repo: &str, digest: &str, identity: &str) {
    let k = kit();
    let pinned = format!("{repo}@{digest}");
    let bundle = k.path(&format!("{}.prov.json", repo_name("integrity")));
    k.sign_provenance(&pinned, &bundle, &["--identity", identity]);
    k.tk(&["attach", &pinned, bundle.to_str().unwrap()]);
}

fn platform<'a>(img: &'a IndexImage, prefix: &str) -> &'a str {
    img.platforms
        .iter()
        .find(|(p, _)| p.starts_with(prefix))
        .map(|(_, d)| d.as_str())
        .expect("platform")
}

fn deploy(image: &str, namespace: &str) -> String {
    review_of(&[
        "--deployment",
        "api",
        "--image",
        image,
        "--namespace",
        namespace,
    ])
}

/// A review of a Deployment (with object labels) or a CronJob running
/// `image` in `namespace`.
fn workload_review(namespace: &str, kind: &str, labels: &[(&str, &str)], image: &str) -> String {
    if kind == "CronJob" {
        return review_of(&[
            "--workload",
            "cronjob/api",
            "--image",
            image,
            "--namespace",
            namespace,
        ]);
    }
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let object = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": image}]},
            },
        },
    });
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(dir.path(), "deployment.json", &object.to_string());
    review_of(&["--object", path.to_str().unwrap(), "--namespace", namespace])
}

fn server_with(extra: &str) -> Server {
    Server::start(Setup {
        extra: extra.into(),
        ..Setup::default()
    })
}

// ---------------------------------------------------------------------------
// Multi-platform images.

#[test]
fn one_attested_platform_does_not_pass_the_index() {
    let img = push_index("mp-one");
    attest(&img.repo, platform(&img, "linux/arm64"), GH_ID);
    let s = server_with("");
    let v = s.review("/validate", &deploy(&img.tagged, "prod"));
    assert!(
        !allowed(&v),
        "an index with one attested platform was admitted: {v}"
    );
    let m = message(&v);
    assert!(m.contains("platform linux/amd64"), "{m}");
    assert!(!m.contains("platform linux/arm64"), "{m}");
    // The decision log carries each platform's verdict.
    let log = s.decisions();
    let contract = &log.last().unwrap()["images"][0]["contracts"][0];
    let verdicts: BTreeMap<String, String> = contract["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_owned(),
                p["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        verdicts.get("linux/amd64").map(String::as_str),
        Some("deny")
    );
    assert_eq!(
        verdicts.get("linux/arm64").map(String::as_str),
        Some("pass")
    );
}

#[test]
fn buildkit_shape_with_every_platform_attested_is_admitted() {
    let img = push_index("mp-buildkit");
    for digest in img.platforms.values() {
        attest(&img.repo, digest, GH_ID);
    }
    let s = server_with("");
    let v = s.review("/validate", &deploy(&img.tagged, "prod"));
    assert!(allowed(&v), "{v}");
}

#[test]
fn provenance_on_the_index_covers_every_platform() {
    let img = push_index("mp-index");
    attest(&img.repo, &img.index, GH_ID);
    let s = server_with("");
    let v = s.review("/validate", &deploy(&img.tagged, "prod"));
    assert!(allowed(&v), "{v}");
    // …but not when the index's provenance comes from an untrusted signer.
    let img = push_index("mp-index-evil");
    attest(
        &img.repo,
        &img.index,
        "https://github.com/evil/app/.github/workflows/build.yml@refs/heads/main",
    );
    let v = s.review("/validate", &deploy(&img.tagged, "prod"));
    assert!(!allowed(&v), "{v}");
}

#[test]
fn platforms_setting_ignores_platforms_the_cluster_never_runs() {
    let img = push_index("mp-filter");
    attest(&img.repo, platform(&img, "linux/arm64"), GH_ID);
    let arm_only = server_with("platforms: [linux/arm64]\n");
    let v = arm_only.review("/validate", &deploy(&img.tagged, "prod"));
    assert!(allowed(&v), "{v}");
    let amd_only = server_with("platforms: [linux/amd64]\n");
    let v = amd_only.review("/validate", &deploy(&img.tagged, "prod"));
    assert!(!allowed(&v), "{v}");
    assert!(message(&v).contains("platform linux/amd64"), "{v}");
    // An index with no platform the cluster runs is denied, not skipped.
    let none = server_with("platforms: [windows/amd64]\n");
    let v = none.review("/validate", &deploy(&img.tagged, "prod"));
    assert!(!allowed(&v), "{v}");
    assert!(message(&v).contains("no platform this cluster runs"), "{v}");
}

// ---------------------------------------------------------------------------
// Gate ⊆ admission.

const TOKEN: &str = "integrity-gate-token";

const ORG_SCOPED: &str = "https://github\\\\.com/acme/.+/\\\\.github/workflows/.+";

/// Binding shapes: by namespace with an org-scoped authority override, by
/// object label, by kind, by image glob, a warn-mode binding, and an
/// exemption. Every one binds the test contract `needs-provenance`, and
/// some bind `other` too.
fn shapes_setup() -> Setup {
    use sha2::Digest as _;
    let sha = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    let mut other = TestContract::needs_provenance();
    other.name = "other".into();
    Setup {
        contracts: vec![TestContract::needs_provenance(), other],
        bindings: [
            format!(
                "  - name: payments\n    contracts: [needs-provenance, other]\n    mode: enforce\n    match: {{namespaces: [payments]}}\n    authorities:\n      needs-provenance:\n        - name: acme\n          keyless: {{issuer: {GH_ISS}, subject: {{regex: \"{ORG_SCOPED}\"}}}}\n"
            ),
            "  - name: labelled\n    contracts: [needs-provenance]\n    mode: enforce\n    match: {namespaces: [labelled], labels: {tier: prod}}\n".to_owned(),
            "  - name: jobs\n    contracts: [other]\n    mode: enforce\n    match: {namespaces: [jobs], kinds: [CronJob]}\n".to_owned(),
            "  - name: soft\n    contracts: [needs-provenance]\n    mode: warn\n    match: {namespaces: [soft]}\n".to_owned(),
        ]
        .concat(),
        extra: format!(
            "unmatched: allow\ngate:\n  tokens:\n    - {{name: ci, sha256: \"{sha}\", contracts: [needs-provenance, other]}}\n"
        ),
        ..Setup::default()
    }
}

fn gate(s: &Server, body: &Value) -> (u16, Value) {
    s.rt.block_on(async {
        let r = s
            .client
            .post(format!("{}/v1/gate", s.base))
            .header("authorization", format!("Bearer {TOKEN}"))
            .json(body)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json::<Value>().await.unwrap_or(Value::Null))
    })
}

/// (namespace, kind, object labels).
type Ctx<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[test]
fn gate_never_allows_what_admission_denies_for_the_same_image_and_context() {
    let s = Server::start(shapes_setup());
    let good = signed_image("gate-sub-good");
    let unsigned = unsigned_image("gate-sub-unsigned");
    let evil = unsigned_image("gate-sub-evil");
    attest(
        &evil.repo,
        &evil.digest,
        "https://github.com/evil/app/.github/workflows/build.yml@refs/heads/main",
    );
    // (namespace, kind, labels) contexts that reach each binding shape, and
    // one no binding covers.
    let contexts: &[Ctx] = &[
        ("payments", "Deployment", &[]),
        ("labelled", "Deployment", &[("tier", "prod")]),
        ("labelled", "Deployment", &[("tier", "dev")]),
        ("jobs", "CronJob", &[]),
        ("soft", "Deployment", &[]),
        ("elsewhere", "Deployment", &[]),
    ];
    let mut compared = 0;
    for image in [&good, &unsigned, &evil] {
        for (ns, kind, labels) in contexts {
            let workload = workload_review(ns, kind, labels, &image.tagged);
            let admitted = allowed(&s.review("/validate", &workload));
            let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
            let context = json!({"namespace": ns, "kind": kind, "name": "api", "labels": labels});
            for selection in [
                None,
                Some(vec!["needs-provenance"]),
                Some(vec!["other"]),
                Some(vec!["needs-provenance", "other"]),
            ] {
                let mut body = json!({"images": [image.tagged], "context": context});
                if let Some(sel) = &selection {
                    body["contracts"] = json!(sel);
                }
                let (st, v) = gate(&s, &body);
                if st == 400 {
                    // A selection naming an unbound contract is refused,
                    // which is never an allow.
                    assert!(selection.is_some(), "{v}");
                    assert!(v["error"].as_str().unwrap().contains("not bound"), "{v}");
                    continue;
                }
                assert_eq!(st, 200, "{v}");
                let gate_allowed = v["allowed"].as_bool().unwrap();
                assert!(
                    admitted || !gate_allowed,
                    "gate allowed what admission denies: image {}, context {context}, selection {selection:?}: {v}",
                    image.tagged
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 20, "{compared}");
}

#[test]
fn gate_contract_selection_keeps_the_bindings_signers() {
    use sha2::Digest as _;
    // The contract's own default trusts two organisations; the binding
    // that covers `payments` trusts only acme. A selection used to judge
    // the contract with its default, so evil's provenance passed the gate
    // while admission denied it.
    let sha = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    let setup = Setup {
        contracts: Vec::new(),
        bindings: format!(
            "  - name: payments\n    contracts: [broad]\n    mode: enforce\n    match: {{namespaces: [payments]}}\n    authorities:\n      broad:\n        - name: acme\n          keyless: {{issuer: {GH_ISS}, subject: {{regex: \"{ORG_SCOPED}\"}}}}\n"
        ),
        extra: format!(
            "gate:\n  tokens:\n    - {{name: ci, sha256: \"{sha}\", contracts: [broad]}}\n"
        ),
        ..Setup::default()
    };
    let s = Server::start_prepared(setup, |dir| {
        let c = dir.join("contracts/broad");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(
            c.join("contract.yaml"),
            format!(
                "name: broad\nversion: \"1\"\nauthorities:\n  - name: acme-or-evil\n    keyless:\n      issuer: {GH_ISS}\n      subject: {{regex: \"https://github\\\\.com/(acme|evil)/.+\"}}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            c.join("policy.rego"),
            crate::common::server::NEEDS_PROVENANCE,
        )
        .unwrap();
    });
    let evil = unsigned_image("gate-sel-evil");
    attest(
        &evil.repo,
        &evil.digest,
        "https://github.com/evil/app/.github/workflows/build.yml@refs/heads/main",
    );
    let context = json!({"namespace": "payments", "kind": "Deployment", "name": "api"});
    // Admission denies it…
    let v = s.review("/validate", &deploy(&evil.tagged, "payments"));
    assert!(!allowed(&v), "{v}");
    // …and so does the gate, with or without a selection.
    for body in [
        json!({"images": [evil.tagged], "context": context, "contracts": ["broad"]}),
        json!({"images": [evil.tagged], "context": context}),
    ] {
        let (st, v) = gate(&s, &body);
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v["allowed"], false,
            "the gate allowed evil's provenance: {v}"
        );
        assert_eq!(v["images"][0]["contracts"][0]["binding"], "payments", "{v}");
    }
    // Provenance from acme passes both.
    let good = unsigned_image("gate-sel-good");
    attest(&good.repo, &good.digest, GH_ID);
    let v = s.review("/validate", &deploy(&good.tagged, "payments"));
    assert!(allowed(&v), "{v}");
    let (st, v) = gate(
        &s,
        &json!({"images": [good.tagged], "context": context, "contracts": ["broad"]}),
    );
    assert_eq!((st, v["allowed"].as_bool()), (200, Some(true)), "{v}");
    // An image no binding covers in this context: naming a contract is a
    // 400 that names it, never a fallback to the contract's defaults.
    let body = json!({
        "images": [evil.tagged],
        "context": {"namespace": "elsewhere"},
        "contracts": ["broad"],
    });
    let (st, v) = gate(&s, &body);
    assert_eq!(st, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("broad") && e.contains("not bound"), "{e}");
}

// ---------------------------------------------------------------------------
// No built-in authority trusts the world under enforce.

#[test]
fn enforcing_the_library_default_authority_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = temp_file(
        dir.path(),
        "config.yaml",
        "bindings:\n  - name: prod\n    contracts: [slsa-provenance]\n    mode: enforce\n",
    );
    let err = provgate::config::Config::load(&cfg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("slsa-provenance")
            && err.contains("trusts every GitHub Actions identity")
            && err.contains("sourceRepositoryOwnerURI"),
        "{err}"
    );
    // With enforce_after too (it enforces from that date).
    let cfg = temp_file(
        dir.path(),
        "later.yaml",
        "bindings:\n  - name: prod\n    contracts: [slsa-provenance]\n    mode: enforce\n    enforce_after: \"2030-01-01T00:00:00Z\"\n",
    );
    assert!(provgate::config::Config::load(&cfg).is_err());
    // An organisation-scoped override is accepted…
    let cfg = temp_file(
        dir.path(),
        "scoped.yaml",
        &format!(
            "bindings:\n  - name: prod\n    contracts: [slsa-provenance]\n    mode: enforce\n    authorities:\n      slsa-provenance:\n        - name: acme\n          keyless:\n            issuer: {GH_ISS}\n            subject: {{regex: \"https://github\\\\.com/.+\"}}\n            claims: {{sourceRepositoryOwnerURI: \"https://github.com/acme\"}}\n"
        ),
    );
    provgate::config::Config::load(&cfg).unwrap();
    // …and audit mode keeps the demonstration default, saying so.
    let cfg = temp_file(
        dir.path(),
        "audit.yaml",
        "bindings:\n  - name: demo\n    contracts: [slsa-provenance]\n    mode: audit\n",
    );
    let c = provgate::config::Config::load(&cfg).unwrap();
    assert!(
        c.world_trusting()
            .iter()
            .any(|w| w.contract == "slsa-provenance" && w.issuer == "GitHub Actions")
    );
    // The embedded defaults (audit) still compile.
    provgate::config::Config::embedded_defaults().unwrap();
}

// ---------------------------------------------------------------------------
// Caches and "nothing verified".

#[test]
fn a_verdict_cache_hit_never_skips_an_authority_check_a_miss_would_run() {
    let s = Server::start(Setup::default());
    let img = signed_image("integrity-hit");
    let review = deploy(&img.tagged, "prod");
    assert!(allowed(&s.review("/validate", &review)));
    assert!(allowed(&s.review("/validate", &review)), "a hit");
    // The same contract, now trusting another identity through a binding
    // override: the cached verdict (and evidence) must not answer for it.
    let config = std::fs::read_to_string(s.dir.path().join("config.yaml")).unwrap();
    let stricter = config.replace(
        "  - name: prod\n    contracts: [needs-provenance]\n    mode: enforce\n",
        "  - name: prod\n    contracts: [needs-provenance]\n    mode: enforce\n    authorities:\n      needs-provenance:\n        - name: someone-else\n          keyless: {issuer: https://token.actions.githubusercontent.com, subject: \"https://github.com/acme/other/.github/workflows/build.yml@refs/heads/main\"}\n",
    );
    assert_ne!(config, stricter);
    let path = s.dir.path().join("stricter.yaml");
    std::fs::write(&path, stricter).unwrap();
    s.engine()
        .reload(provgate::config::Config::load(&path).unwrap());
    let v = s.review("/validate", &review);
    assert!(
        !allowed(&v),
        "a cached verdict answered for a contract whose authorities changed: {v}"
    );
}

#[test]
fn nothing_verified_under_an_enforce_binding_is_never_allowed() {
    // The registry is a closed port: nothing can be fetched, let alone
    // verified.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry = format!("127.0.0.1:{port}");
    let s = Server::start(Setup {
        registry: Some(registry.clone()),
        ..Setup::default()
    });
    let image = format!("{registry}/integrity/app:v1");
    let v = s.review("/validate", &deploy(&image, "prod"));
    assert!(!allowed(&v), "allowed with nothing verified: {v}");
    // And `check` does not exit 0 either.
    let dir = tempfile::tempdir().unwrap();
    let cfg = temp_file(
        dir.path(),
        "config.yaml",
        &format!(
            "trust: {{publicGood: false, github: false, roots: [{{name: kit, path: \"{}\"}}]}}\nregistries: {{hosts: {{\"{registry}\": {{insecure: true, timeout: 1s}}}}}}\nbindings:\n  - name: all\n    contracts: [slsa-provenance]\n    mode: enforce\n    authorities:\n      slsa-provenance:\n        - name: kit-ci\n          keyless: {{issuer: {GH_ISS}, subject: \"{GH_ID}\"}}\n",
            kit().trusted_root().display()
        ),
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(["check", &image, "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
