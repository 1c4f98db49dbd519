//! `provgate report`: offline from kubectl-style lists, the impact preview,
//! the in-cluster inventory against a fake API, continuous mode, seed
//! scenario S4, and the scale of one discovery per digest.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::fakekube::{FakeKube, pod};
use crate::common::kit::{GH_ID, GH_ISS, kit, repo_name};
use crate::common::server::{
    KitImage, Server, Setup, TestContract, allowed, kit_docker_config, review_of, signed_image,
    temp_file, unsigned_image,
};

/// A config for the CLI: the kit's registry and root, `contracts/`, and
/// the needs-provenance contract bound to namespaces `team-*`.
fn cli_config(dir: &std::path::Path, contracts: &[TestContract]) -> std::path::PathBuf {
    let k = kit();
    let creds = kit_docker_config(dir, &[k.registry()]);
    let cdir = dir.join("contracts");
    std::fs::create_dir_all(&cdir).unwrap();
    for c in contracts {
        c.write(&cdir);
    }
    let names: Vec<&str> = contracts.iter().map(|c| c.name.as_str()).collect();
    temp_file(
        dir,
        "config.yaml",
        &format!(
            "trust: {{publicGood: false, github: false, roots: [{{name: kit, path: \"{}\"}}]}}\n\
             registries: {{hosts: {{\"{}\": {{insecure: true}}}}}}\n\
             credentials: [{{name: kit, file: \"{}\"}}]\n\
             contracts: {{builtin: false, dirs: [contracts]}}\n\
             report: {{teamLabel: team}}\n\
             bindings:\n  - name: teams\n    contracts: [{}]\n    mode: enforce\n    match: {{namespaces: [\"team-*\"]}}\n\
             unmatched: deny\n",
            k.trusted_root().display(),
            k.registry(),
            creds.display(),
            names.join(", ")
        ),
    )
}

fn deployment(ns: &str, name: &str, team: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": {"team": team}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": name, "image": image}]}}}})
}

fn provgate(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn list(items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

#[test]
fn offline_report_compliant_non_compliant_no_evidence_and_unmatched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let good = signed_image("rep-good");
    let bare = unsigned_image("rep-bare");
    let evil = unsigned_image("rep-evil");
    let k = kit();
    let b = k.path(&format!("{}.json", repo_name("e")));
    k.tk(&[
        "sign-provenance",
        &evil.pinned(),
        "--identity",
        "https://github.com/evil/x/.github/workflows/b.yml@refs/heads/main",
        "--issuer",
        GH_ISS,
        "--out",
        b.to_str().unwrap(),
    ]);
    k.tk(&["attach", &evil.pinned(), b.to_str().unwrap()]);
    // A pod owned by a ReplicaSet is represented by its Deployment.
    let owned = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-7d9-x", "namespace": "team-a",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9", "uid": "u", "controller": true}]},
        "spec": {"containers": [{"name": "api", "image": bare.tagged}]}});
    let input = list(vec![
        deployment("team-a", "api", "payments", &good.tagged),
        deployment("team-a", "worker", "payments", &bare.tagged),
        deployment("team-b", "search", "search", &evil.tagged),
        deployment("other", "tool", "ops", &good.tagged),
        owned,
    ]);
    let input = temp_file(dir.path(), "workloads.json", &input);
    let (code, out, err) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["apiVersion"], "provgate.dev/report/v1");
    let w = |name: &str| {
        r["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        r["workloads"].as_array().unwrap().len(),
        4,
        "the owned pod was counted: {out}"
    );
    assert_eq!(w("api")["compliant"], true);
    assert_eq!(w("api")["images"][0]["digest"], good.digest.as_str());
    assert_eq!(
        w("api")["images"][0]["contracts"][0]["evidenceUsed"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(w("worker")["compliant"], false);
    assert_eq!(w("worker")["images"][0]["noVerifiableEvidence"], true);
    assert!(
        w("worker")["images"][0]["denials"][0]
            .as_str()
            .unwrap()
            .contains("Fix:")
    );
    assert_eq!(w("search")["compliant"], false);
    assert_eq!(
        w("search")["images"][0]["contracts"][0]["ignored"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(w("tool")["images"][0]["unmatched"], true);
    assert_eq!(w("tool")["outcome"], "deny");
    assert_eq!(
        r["summary"]["total"],
        json!({"workloads": 4, "compliant": 1, "wouldDeny": 3})
    );
    assert_eq!(
        r["summary"]["byTeam"]["payments"],
        json!({"workloads": 2, "compliant": 1, "wouldDeny": 1})
    );
    assert_eq!(r["summary"]["byNamespace"]["team-b"]["compliant"], 0);
    // The table groups by namespace and ends with the summary.
    let (code, out, _) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("namespace team-a")
            && out.contains("Deployment/worker team=payments: NON-COMPLIANT"),
        "{out}"
    );
    assert!(out.contains("1 of 4 workloads compliant"), "{out}");
    assert!(out.contains("team payments: 1 of 2 compliant"), "{out}");
    // --fail-on-noncompliant makes it a gate.
    let (code, _, _) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "-o",
        "summary",
        "--fail-on-noncompliant",
    ]);
    assert_eq!(code, 2);
}

/// A stricter contract: provenance AND the signer's workflow ref on a tag.
fn tightened() -> TestContract {
    TestContract {
        name: "needs-provenance".into(),
        version: "2".into(),
        rego: format!(
            "{}\ndeny contains {{\"msg\": \"provenance must come from a tagged release\", \"requirement\": \"release-tag\", \"fix\": \"build releases from a v* tag\"}} if {{\n\tsome a in input.attestations\n\tnot startswith(a.signer.extensions.sourceRepositoryRef, \"refs/tags/\")\n}}\n",
            crate::common::server::NEEDS_PROVENANCE
        ),
    }
}

#[test]
fn impact_preview_lists_exactly_the_workloads_the_change_affects() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let good = signed_image("imp-good");
    let bare = unsigned_image("imp-bare");
    let input = temp_file(
        dir.path(),
        "w.json",
        &list(vec![
            deployment("team-a", "api", "payments", &good.tagged),
            deployment("team-a", "old", "payments", &bare.tagged),
        ]),
    );
    let proposed = dir.path().join("proposed");
    tightened().write(&proposed);
    let (code, out, err) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--contracts",
        proposed.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(
        code, 2,
        "a newly denied workload must fail the preview: {out}{err}"
    );
    let i: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(i["newlyDenied"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(i["newlyDenied"][0]["workload"], "team-a/Deployment/api");
    assert_eq!(i["newlyDenied"][0]["before"], "allow");
    assert!(
        i["newlyDenied"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("release-tag")
    );
    assert_eq!(i["improved"].as_array().unwrap().len(), 0);
    assert_eq!(i["newlyWarned"].as_array().unwrap().len(), 0);
    // The reverse change improves exactly one workload and denies nothing.
    let relaxed = dir.path().join("relaxed");
    TestContract {
        name: "needs-provenance".into(),
        version: "0".into(),
        rego: "package provgate.contract\n\ndeny contains \"never\" if { false }\n".into(),
    }
    .write(&relaxed);
    let (code, out, _) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--contracts",
        relaxed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("would improve (1):")
            && out.contains("team-a/Deployment/old team=payments: deny -> allow"),
        "{out}"
    );
    assert!(out.contains("0 newly denied"), "{out}");
}

#[test]
fn s4_a_running_workload_fails_a_tightened_contract_previewed_first() {
    // 1. A workload is admitted under contract v1 and runs.
    let s = Server::start(Setup {
        bindings: "  - name: teams\n    contracts: [needs-provenance]\n    mode: enforce\n    match: {namespaces: [\"team-*\"]}\n".into(),
        ..Setup::default()
    });
    let img = signed_image("s4");
    assert!(allowed(&s.review(
        "/validate",
        &review_of(&[
            "--deployment",
            "api",
            "--image",
            &img.tagged,
            "--namespace",
            "team-a"
        ])
    )));
    let running = temp_file(
        s.dir.path(),
        "running.json",
        &list(vec![deployment("team-a", "api", "payments", &img.tagged)]),
    );
    let cfg = s.dir.path().join("config.yaml");
    // 4. Before the change, the preview shows what v2 would break.
    let proposed = s.dir.path().join("proposed");
    tightened().write(&proposed);
    let (code, out, _) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        running.to_str().unwrap(),
        "--contracts",
        proposed.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        out.contains("would newly be DENIED (1):")
            && out.contains("provenance must come from a tagged release"),
        "{out}"
    );
    // 2. The contract is tightened (in place, hot-reloaded by the server).
    tightened().write(&s.dir.path().join("contracts"));
    // 3. The report shows the workload non-compliant with the new message.
    let (code, out, _) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        running.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 0);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["workloads"][0]["compliant"], false);
    assert_eq!(
        r["workloads"][0]["images"][0]["contracts"][0]["version"],
        "2"
    );
    assert_eq!(
        r["workloads"][0]["images"][0]["contracts"][0]["deny"][0]["requirement"],
        "release-tag"
    );
    // And admission now denies a new deploy of it too.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let v = s.review(
            "/validate",
            &review_of(&[
                "--deployment",
                "api2",
                "--image",
                &img.tagged,
                "--namespace",
                "team-a",
            ]),
        );
        if !allowed(&v) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the tightened contract was not hot-reloaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn inventory_keys(inv: &provgate::report::inventory::Inventory) -> Vec<String> {
    inv.snapshot().keys().cloned().collect()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn in_cluster_inventory_follows_add_modify_delete_resumes_watches_and_relists_on_410() {
    let api = FakeKube::start();
    let k = &api.kube;
    k.set_pods(vec![pod(
        "team-a",
        "a",
        &[("app", "ghcr.io/acme/a:1")],
        json!({}),
        5,
    )]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let inv = std::sync::Arc::new(provgate::report::inventory::Inventory::default());
    let _tasks = rt.block_on(async {
        let client = provgate::report::inventory::client(Some(&api.url))
            .await
            .unwrap();
        provgate::report::inventory::watch_all(client, inv.clone())
    });
    wait_until("the first list", || {
        inventory_keys(&inv) == ["team-a/Pod/a"]
    });
    wait_until("the pod watch", || k.watching());
    assert!(
        k.watches()[0].contains(&format!("resourceVersion={}", 6))
            || k.watches()[0].contains("resourceVersion="),
        "{:?}",
        k.watches()
    );
    // Add, modify, delete.
    let rv = k.next_rv();
    assert!(k.event(
        "ADDED",
        pod("team-b", "b", &[("app", "ghcr.io/acme/b:1")], json!({}), rv)
    ));
    wait_until("the added pod", || {
        inventory_keys(&inv) == ["team-a/Pod/a", "team-b/Pod/b"]
    });
    let rv = k.next_rv();
    assert!(k.event(
        "MODIFIED",
        pod("team-a", "a", &[("app", "ghcr.io/acme/a:2")], json!({}), rv)
    ));
    wait_until("the modified pod", || {
        inv.snapshot()["team-a/Pod/a"].images[0].image == "ghcr.io/acme/a:2"
    });
    let deleted_rv = k.next_rv();
    assert!(k.event(
        "DELETED",
        pod(
            "team-b",
            "b",
            &[("app", "ghcr.io/acme/b:1")],
            json!({}),
            deleted_rv
        )
    ));
    wait_until("the deleted pod", || {
        inventory_keys(&inv) == ["team-a/Pod/a"]
    });
    // The API server closes the watch: it is resumed from the last version.
    let lists_before = k.lists().len();
    assert!(k.close_watch());
    wait_until("a resumed watch", || k.watches().len() >= 2 && k.watching());
    assert!(
        k.watches()[1].contains(&format!("resourceVersion={deleted_rv}")),
        "{:?}",
        k.watches()
    );
    assert_eq!(
        k.lists().len(),
        lists_before,
        "a closed watch must not relist"
    );
    // 410 Gone: relist (what changed meanwhile comes with it).
    k.set_pods(vec![pod(
        "team-c",
        "c",
        &[("app", "ghcr.io/acme/c:1")],
        json!({}),
        50,
    )]);
    assert!(k.gone());
    wait_until("the relist after 410", || {
        inventory_keys(&inv) == ["team-c/Pod/c"]
    });
    assert_eq!(k.lists().len(), lists_before + 1);
    wait_until("a watch after the relist", || k.watching());
}

#[test]
fn continuous_mode_serves_the_report_and_gauges_and_reevaluates_on_change() {
    let api = FakeKube::start();
    let good = signed_image("cont-good");
    let bare = unsigned_image("cont-bare");
    api.kube.set_pods(vec![pod(
        "team-a",
        "web",
        &[("web", &good.tagged)],
        json!({"team": "web"}),
        3,
    )]);
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(b"report-reader"))
    };
    let s = Server::start(Setup {
        bindings: "  - name: teams\n    contracts: [needs-provenance]\n    mode: enforce\n".into(),
        extra: format!(
            "report: {{teamLabel: team, continuous: {{enabled: true, interval: 1h, concurrency: 2, apiServer: \"{}\"}}}}\ngate: {{tokens: [{{name: dash, sha256: \"{sha}\"}}]}}\n",
            api.url
        ),
        ..Setup::default()
    });
    let get = |auth: Option<&str>| -> (u16, Value) {
        s.rt.block_on(async {
            let mut r = s.client.get(format!("{}/v1/report", s.base));
            if let Some(a) = auth {
                r = r.bearer_auth(a);
            }
            let resp = r.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json().await.unwrap_or(Value::Null),
            )
        })
    };
    assert_eq!(
        get(None).0,
        401,
        "the report needs the gate's authentication"
    );
    wait_until("the first report", || get(Some("report-reader")).0 == 200);
    let (_, r) = get(Some("report-reader"));
    assert_eq!(r["summary"]["total"]["compliant"], 1, "{r}");
    assert!(
        s.metrics().contains(
            "provgate_workloads{namespace=\"team-a\",team=\"web\",status=\"compliant\"} 1"
        )
    );
    // A new non-compliant pod appears: re-evaluated without a full pass.
    let rv = api.kube.next_rv();
    wait_until("the watch", || api.kube.watching());
    assert!(api.kube.event(
        "ADDED",
        pod(
            "team-a",
            "job",
            &[("job", &bare.tagged)],
            json!({"team": "batch"}),
            rv
        )
    ));
    wait_until("the new workload in the report", || {
        get(Some("report-reader")).1["summary"]["total"]["workloads"] == 2
    });
    let (_, r) = get(Some("report-reader"));
    assert_eq!(
        r["summary"]["byTeam"]["batch"],
        json!({"workloads": 1, "compliant": 0, "wouldDeny": 1})
    );
    let m = s.metrics();
    assert!(
        m.contains(
            "provgate_workloads{namespace=\"team-a\",team=\"batch\",status=\"non-compliant\"} 1"
        ),
        "{m}"
    );
    assert!(m.contains("provgate_workloads_would_deny{namespace=\"team-a\",team=\"batch\",status=\"would-deny\"} 1"), "{m}");
    // A contract change re-evaluates everything: relaxed, all compliant.
    s.write(
        "contracts/needs-provenance/policy.rego",
        "package provgate.contract\n\ndeny contains \"never\" if { false }\n",
    );
    wait_until("re-evaluation after the reload", || {
        get(Some("report-reader")).1["summary"]["total"]["compliant"] == 2
    });
}

/// Pushes a tiny image straight to the kit registry (monolithic uploads),
/// far faster than a process per image. Returns the manifest digest.
async fn push_direct(
    client: &reqwest::Client,
    base: &str,
    auth: (&str, &str),
    repo: &str,
    tag: &str,
    seed: usize,
) -> String {
    use sha2::Digest as _;
    let blob = |bytes: Vec<u8>| {
        let d = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        (d, bytes)
    };
    let (cfg_d, cfg) = blob(
        format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{seed}}}").into_bytes(),
    );
    let (layer_d, layer) = blob(format!("layer {seed}").into_bytes());
    for (d, bytes) in [(&cfg_d, cfg.clone()), (&layer_d, layer.clone())] {
        let r = client
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .basic_auth(auth.0, Some(auth.1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "start upload");
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{base}{location}")
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let r = client
            .put(format!("{url}{sep}digest={d}"))
            .basic_auth(auth.0, Some(auth.1))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "finish upload");
    }
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": layer.len()}]}).to_string();
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(manifest.as_bytes()))
    );
    let r = client
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .basic_auth(auth.0, Some(auth.1))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "manifest {}", r.status());
    digest
}

#[test]
fn scale_5000_pods_over_200_digests_discover_each_digest_once() {
    let k = kit();
    let base = format!("http://{}", k.registry());
    let user = k.var("TESTKIT_REGISTRY_USER");
    let pass = k.var("TESTKIT_REGISTRY_PASS");
    let prefix = repo_name("scale");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let images: Vec<(String, String)> = rt.block_on(async {
        let futs = (0..200).map(|i| {
            let (client, base, user, pass) =
                (client.clone(), base.clone(), user.clone(), pass.clone());
            let repo = format!("{prefix}/svc{i}");
            async move {
                let d = push_direct(&client, &base, (&user, &pass), &repo, "v1", i).await;
                (format!("{}/{repo}", kit().registry()), d)
            }
        });
        futures_util::future::join_all(futs).await
    });
    // Ten of them carry kit-signed provenance, so verification is exercised.
    for (repo, digest) in images.iter().take(10) {
        let img = KitImage {
            repo: repo.clone(),
            tagged: format!("{repo}:v1"),
            digest: digest.clone(),
        };
        let b = k.path(&format!("{}.json", repo_name("sc")));
        k.sign_provenance(&img.pinned(), &b, &[]);
        k.tk(&["attach", &img.pinned(), b.to_str().unwrap()]);
    }
    // 5,000 pods: 25 per image, half by tag, half pinned.
    let pods: Vec<Value> = (0..5000)
        .map(|p| {
            let (repo, digest) = &images[p % 200];
            let image = if (p / 200) % 2 == 0 { format!("{repo}:v1") } else { format!("{repo}@{digest}") };
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{p}"), "namespace": format!("team-{}", p % 7),
                "labels": {"team": format!("t{}", p % 5)}}, "spec": {"containers": [{"name": "app", "image": image}]}})
        })
        .collect();
    let workloads = provgate::report::workloads_from_list(list(pods).as_bytes()).unwrap();
    assert_eq!(workloads.len(), 5000);
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let config = provgate::config::Config::load(&cfg).unwrap();
    let metrics = std::sync::Arc::new(provgate::metrics::Metrics::new());
    let engine = provgate::engine::Engine::new(
        config,
        metrics.clone(),
        std::sync::Arc::new(provgate::clock::SystemClock),
    );
    let started = Instant::now();
    let report = rt.block_on(provgate::report::evaluate(
        &engine,
        engine.runtime(),
        &workloads,
        16,
    ));
    let took = started.elapsed();
    assert_eq!(report.summary.total.workloads, 5000);
    assert_eq!(
        report.summary.total.compliant,
        10 * 25,
        "{:?}",
        report.summary.total
    );
    assert_eq!(report.summary.digests, 200);
    let text = metrics.encode();
    let count = |kind: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("provgate_registry_requests_total{")
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    };
    // One discovery per digest (an evidence-cache miss each), one
    // resolution per tag.
    let misses: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("provgate_cache_requests_total{")
                && l.contains("cache=\"evidence\"")
                && l.contains("result=\"miss\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum();
    assert_eq!(misses, 200, "{text}");
    // The kit registry's missing referrers API is asked about by the first
    // discoveries, then remembered.
    assert!((1..200).contains(&count("referrers")), "{text}");
    assert_eq!(count("resolve"), 200, "{text}");
    eprintln!(
        "scale: 5000 pods, 200 digests, {} registry requests, {:.2} s ({} workers x 16 concurrent)",
        metrics.registry_request_count(),
        took.as_secs_f64(),
        2
    );
    // The same report as PolicyReports: one per namespace, each valid.
    let started = Instant::now();
    let reports =
        provgate::report::policyreport::policy_reports(&report, jiff::Timestamp::UNIX_EPOCH);
    let yaml = provgate::report::policyreport::to_yaml(&reports).unwrap();
    let took = started.elapsed();
    assert_eq!(reports.len(), 7);
    let results: usize = reports.iter().map(|r| r.results.len()).sum();
    assert_eq!(
        results, 5000,
        "one result per pod (one image, one contract)"
    );
    let passes: usize = reports.iter().map(|r| r.summary.pass).sum();
    assert_eq!(passes, 250);
    for r in &reports {
        crate::common::fakekube::validate_policy_report(&serde_json::to_value(r).unwrap())
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
    eprintln!(
        "scale: 7 PolicyReports, 5000 results, {} bytes of YAML, built in {:.1} ms",
        yaml.len(),
        took.as_secs_f64() * 1000.0
    );
    let _ = GH_ID;
}

#[test]
fn report_cluster_lists_workloads_from_the_api() {
    let api = FakeKube::start();
    let good = signed_image("cl-good");
    api.kube.set_pods(vec![
        pod(
            "team-a",
            "web",
            &[("web", &good.tagged)],
            json!({"team": "web"}),
            3,
        ),
        pod(
            "team-a",
            "sh",
            &[("sh", &unsigned_image("cl-bare").tagged)],
            json!({}),
            4,
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let (code, out, err) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--cluster",
        "--api-server",
        &api.url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["summary"]["total"],
        json!({"workloads": 2, "compliant": 1, "wouldDeny": 1}),
        "{out}"
    );
    assert_eq!(api.kube.lists().len(), 1);
}

// ---------------------------------------------------------------------------
// PolicyReports, namespace exemptions, unreadable objects (issue 13).

/// Every YAML document of a stream.
fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn with_uid(mut v: Value, uid: &str) -> Value {
    v["metadata"]["uid"] = json!(uid);
    v
}

/// `(policy, rule, result)` of every result of a report.
fn results_of(report: &Value) -> Vec<(String, String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["policy"].as_str().unwrap().to_owned(),
                r["rule"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn t(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

#[test]
fn report_policyreport_output_validates_against_the_crd_schema() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let good = signed_image("polr-good");
    let bare = unsigned_image("polr-bare");
    let unnamespaced = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray"},
        "spec": {"containers": [{"name": "c", "image": good.tagged}]}});
    let input = temp_file(
        dir.path(),
        "w.json",
        &list(vec![
            with_uid(
                deployment("team-a", "api", "payments", &good.tagged),
                "u-api",
            ),
            with_uid(
                deployment("team-a", "worker", "payments", &bare.tagged),
                "u-worker",
            ),
            deployment("other", "tool", "ops", &good.tagged),
            deployment("kube-system", "coredns", "", &bare.tagged),
            unnamespaced,
        ]),
    );
    let (code, out, err) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "-o",
        "policyreport",
    ]);
    assert_eq!(code, 0, "{err}");
    let docs = yaml_docs(&out);
    for d in &docs {
        if let Err(e) = crate::common::fakekube::validate_policy_report(d) {
            panic!("does not validate against the CRD schema: {e:#?}\n{out}");
        }
        assert_eq!(d["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(d["metadata"]["name"], "provgate");
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "provgate"
        );
    }
    let placed: Vec<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            ("PolicyReport".to_owned(), "other".to_owned()),
            ("PolicyReport".to_owned(), "team-a".to_owned()),
            ("ClusterPolicyReport".to_owned(), String::new()),
        ],
        "one report per namespace, none for the exempt kube-system, the unreadable object cluster-wide:\n{out}"
    );
    let team_a = &docs[1];
    assert_eq!(
        results_of(team_a),
        [
            t("needs-provenance", "needs-provenance", "pass"),
            t("needs-provenance", "slsa-provenance", "fail"),
        ]
    );
    assert_eq!(
        team_a["summary"],
        json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0})
    );
    let fail = &team_a["results"][1];
    assert_eq!(fail["source"], "provgate");
    assert_eq!(fail["scored"], true);
    assert_eq!(
        fail["message"],
        "no SLSA provenance attestation from a trusted builder"
    );
    assert_eq!(
        fail["resources"],
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker", "namespace": "team-a", "uid": "u-worker"}])
    );
    let props = &fail["properties"];
    assert_eq!(props["image"], bare.tagged.as_str());
    assert_eq!(props["digest"], bare.digest.as_str());
    assert_eq!(props["container"], "worker");
    assert_eq!(props["mode"], "enforce");
    assert_eq!(props["admission"], "deny");
    assert_eq!(
        props["fix"],
        "attach SLSA provenance signed by the release workflow"
    );
    assert!(fail["timestamp"]["seconds"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        team_a["results"][0]["properties"]["digest"],
        good.digest.as_str()
    );
    // No binding covers `other`: `unmatched: deny` makes it a failure.
    assert_eq!(results_of(&docs[0]), [t("provgate", "unmatched", "fail")]);
    // The object without a namespace is an error, not a pass.
    assert_eq!(results_of(&docs[2]), [t("provgate", "unreadable", "error")]);
    assert!(
        docs[2]["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no metadata.namespace"),
        "{out}"
    );
}

#[test]
fn report_honours_the_webhooks_namespace_exemptions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let bare = unsigned_image("excl-bare");
    let items = vec![
        deployment("kube-system", "coredns", "", &bare.tagged),
        deployment("team-a", "api", "payments", &bare.tagged),
        deployment("team-b", "web", "web", &bare.tagged),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b",
            "labels": {"kubernetes.io/metadata.name": "team-b", "provgate.dev/ignore": "true"}}}),
    ];
    let input = temp_file(dir.path(), "w.json", &list(items));
    let run = |cfg: &std::path::Path| {
        let (code, out, err) = provgate(&[
            "report",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "-o",
            "json",
        ]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    // The default: kube-system is exempt, as the chart's webhooks exempt it.
    let r = run(&cfg);
    let names: Vec<&str> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["team-a", "team-b"], "{r}");
    assert_eq!(r["summary"]["excluded"], json!({"kube-system": 1}));
    assert_eq!(r["summary"]["total"]["workloads"], 2);
    // The chart's selector with the opt-out label: team-b (labelled in the
    // input's Namespace object) is exempt too, and the release namespace.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let chart_like = temp_file(
        dir.path(),
        "config-optout.yaml",
        &format!(
            "{text}report:\n  namespaceSelector:\n    matchExpressions:\n      - {{key: kubernetes.io/metadata.name, operator: NotIn, values: [provgate, kube-system]}}\n      - {{key: provgate.dev/ignore, operator: NotIn, values: [\"true\"]}}\n"
        )
        .replace("report: {teamLabel: team}\n", ""),
    );
    let r = run(&chart_like);
    assert_eq!(
        r["summary"]["excluded"],
        json!({"kube-system": 1, "team-b": 1}),
        "{r}"
    );
    assert_eq!(r["workloads"].as_array().unwrap().len(), 1);
    assert_eq!(r["workloads"][0]["namespace"], "team-a");
    // An empty selector judges everything, kube-system included.
    let all = temp_file(
        dir.path(),
        "config-all.yaml",
        &text.replace(
            "report: {teamLabel: team}",
            "report: {teamLabel: team, namespaceSelector: {}}",
        ),
    );
    let r = run(&all);
    assert_eq!(r["workloads"].as_array().unwrap().len(), 3, "{r}");
    assert!(r["summary"].get("excluded").is_none(), "{r}");
}

#[test]
fn a_workload_without_name_or_namespace_is_reported_unreadable_not_compliant() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let good = signed_image("unr-good");
    let no_name = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": "team-a"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": good.tagged}]}}}});
    let no_ns = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": good.tagged}]}});
    let malformed = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m", "namespace": "team-a"},
        "spec": {"containers": 3}});
    let input = temp_file(
        dir.path(),
        "w.json",
        &list(vec![
            deployment("team-a", "api", "payments", &good.tagged),
            no_name,
            no_ns,
            malformed,
        ]),
    );
    let (code, out, err) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["summary"]["total"],
        json!({"workloads": 4, "compliant": 1, "wouldDeny": 3, "unreadable": 3}),
        "{out}"
    );
    let unreadable: Vec<&Value> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w.get("unreadable").is_some())
        .collect();
    assert_eq!(unreadable.len(), 3);
    for w in &unreadable {
        assert_eq!(w["compliant"], false, "{w}");
        assert_eq!(w["outcome"], "deny", "{w}");
    }
    // The table says so, and a gate fails on it.
    let (code, out, _) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--fail-on-noncompliant",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Deployment/: UNREADABLE"), "{out}");
    assert!(out.contains("no metadata.name"), "{out}");
    assert!(out.contains("3 unreadable"), "{out}");
}

#[test]
fn report_summary_is_honoured_in_preview_mode_and_policyreport_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let good = signed_image("sum-good");
    let input = temp_file(
        dir.path(),
        "w.json",
        &list(vec![
            deployment("team-a", "api", "payments", &good.tagged),
            deployment("team-a", "web", "web", &good.tagged),
        ]),
    );
    let proposed = dir.path().join("proposed");
    tightened().write(&proposed);
    let args = |output: &str| {
        provgate(&[
            "report",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--contracts",
            proposed.to_str().unwrap(),
            "-o",
            output,
        ])
    };
    let (code, out, err) = args("summary");
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        out,
        "2 workloads compared: 2 newly denied, 0 newly warned, 0 improved\n\
         \x20 team payments: 1 newly denied, 0 newly warned, 0 improved\n\
         \x20 team web: 1 newly denied, 0 newly warned, 0 improved\n",
        "only the counts, no per-workload sections"
    );
    let (code, table, _) = args("table");
    assert_eq!(code, 2);
    assert!(table.contains("would newly be DENIED (2):"), "{table}");
    assert_ne!(table, out);
    let (code, out, err) = args("policyreport");
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("-o policyreport") && err.contains("--contracts"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[test]
fn fake_api_rejects_policy_reports_that_do_not_validate() {
    // The writer tests below mean something only if the fake's schema
    // check does: each of these is refused, the valid one is stored.
    let api = FakeKube::start();
    let valid = json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "provgate", "namespace": "a"},
        "summary": {"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 0},
        "results": [{"policy": "p", "rule": "r", "result": "pass", "source": "provgate", "scored": true,
            "timestamp": {"seconds": 1, "nanos": 0}, "properties": {"image": "x"},
            "resources": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "a"}]}]});
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut v = valid.clone();
        f(&mut v);
        v
    };
    let invalid = [
        (
            "result outside the enum",
            mutate(&|v| v["results"][0]["result"] = json!("deny")),
        ),
        (
            "no policy",
            mutate(&|v| {
                v["results"][0].as_object_mut().unwrap().remove("policy");
            }),
        ),
        (
            "a misspelt field",
            mutate(&|v| v["results"][0]["resource"] = json!([])),
        ),
        (
            "a non-string property",
            mutate(&|v| v["results"][0]["properties"]["n"] = json!(3)),
        ),
        (
            "timestamp without nanos",
            mutate(&|v| v["results"][0]["timestamp"] = json!({"seconds": 1})),
        ),
        (
            "a string count",
            mutate(&|v| v["summary"]["pass"] = json!("1")),
        ),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let apply = |body: &Value| -> u16 {
        rt.block_on(async {
            client
                .patch(format!(
                    "{}/apis/wgpolicyk8s.io/v1alpha2/namespaces/a/policyreports/provgate?fieldManager=t&force=true",
                    api.url
                ))
                .header("content-type", "application/apply-patch+yaml")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    for (what, body) in &invalid {
        assert!(
            crate::common::fakekube::validate_policy_report(body).is_err(),
            "{what} validates"
        );
        assert_eq!(apply(body), 422, "{what} was accepted");
    }
    assert!(api.kube.policy_reports().is_empty());
    assert_eq!(api.kube.report_rejections().len(), invalid.len());
    assert_eq!(apply(&valid), 201);
    assert_eq!(api.kube.policy_reports().len(), 1);
}

fn wait_long(what: &str, secs: u64, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn continuous_mode_keeps_policy_reports_in_the_api() {
    // `team-a-b` sorts before `team-a` as a `namespace/Kind/name` key and
    // after it by namespace: results must still land on their workloads.
    let api = FakeKube::start();
    let k = &api.kube;
    let good = signed_image("cpr-good");
    let bare = unsigned_image("cpr-bare");
    k.set_pods(vec![
        pod(
            "team-a",
            "web",
            &[("web", &good.tagged)],
            json!({"team": "web"}),
            3,
        ),
        pod("team-a-b", "job", &[("job", &bare.tagged)], json!({}), 4),
        pod("kube-system", "dns", &[("dns", &bare.tagged)], json!({}), 5),
    ]);
    // Left by an earlier pod, in a namespace with no workloads now.
    k.put_policy_report(
        "gone",
        "provgate",
        json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "provgate", "namespace": "gone", "labels": {"app.kubernetes.io/managed-by": "provgate"}},
            "results": []}),
    );
    // Another tool's report: never touched.
    k.put_policy_report(
        "team-a",
        "kyverno-cpol",
        json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "kyverno-cpol", "namespace": "team-a", "labels": {"app.kubernetes.io/managed-by": "kyverno"}},
            "results": []}),
    );
    // The API refuses at first (as without the CRD): the writer retries.
    k.fail_policy_reports(Some(404));
    let _s = Server::start(Setup {
        bindings: "  - name: teams\n    contracts: [needs-provenance]\n    mode: audit\n".into(),
        extra: format!(
            "report: {{teamLabel: team, policyReports: true, continuous: {{enabled: true, interval: 1h, concurrency: 2, apiServer: \"{}\"}}}}\n",
            api.url
        ),
        ..Setup::default()
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(k.report_writes().is_empty());
    k.fail_policy_reports(None);
    let ours = |ns: &str| k.policy_reports().get(&format!("{ns}/provgate")).cloned();
    wait_long("the reports", 20, || {
        ours("team-a").is_some() && ours("team-a-b").is_some() && ours("gone").is_none()
    });
    assert!(
        k.report_rejections().is_empty(),
        "{:?}",
        k.report_rejections()
    );
    assert!(ours("kube-system").is_none(), "kube-system is exempt");
    assert!(
        k.policy_reports().contains_key("team-a/kyverno-cpol"),
        "another tool's report was touched"
    );
    let a = ours("team-a").unwrap();
    assert_eq!(
        results_of(&a),
        [t("needs-provenance", "needs-provenance", "pass")]
    );
    let b = ours("team-a-b").unwrap();
    assert_eq!(
        results_of(&b),
        [t("needs-provenance", "slsa-provenance", "fail")]
    );
    // Audit mode: the requirement is not met (fail), admission allows.
    assert_eq!(b["results"][0]["properties"]["mode"], "audit");
    assert_eq!(b["results"][0]["properties"]["admission"], "allow");
    assert_eq!(b["results"][0]["resources"][0]["uid"], "uid-team-a-b-job");
    assert_eq!(
        b["results"][0]["properties"]["digest"],
        bare.digest.as_str()
    );
    for (name, v) in k.policy_reports() {
        if name.ends_with("/provgate") {
            crate::common::fakekube::validate_policy_report(&v)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }
    let applies_to = |ns: &str| {
        k.report_writes()
            .iter()
            .filter(|w| *w == &format!("APPLY {ns}/provgate"))
            .count()
    };
    let team_a_applies = applies_to("team-a");
    // The last workload of team-a-b goes: its report goes.
    wait_until("the pod watch", || k.watching());
    let rv = k.next_rv();
    assert!(k.event(
        "DELETED",
        pod("team-a-b", "job", &[("job", &bare.tagged)], json!({}), rv)
    ));
    wait_long("the team-a-b report deleted", 20, || {
        ours("team-a-b").is_none()
    });
    assert_eq!(
        applies_to("team-a"),
        team_a_applies,
        "an unchanged report is not written again"
    );
    // A non-compliant workload appears in team-a: its report changes.
    let rv = k.next_rv();
    assert!(k.event(
        "ADDED",
        pod("team-a", "sh", &[("sh", &bare.tagged)], json!({}), rv)
    ));
    wait_long("team-a updated", 20, || {
        ours("team-a").is_some_and(|r| r["summary"]["fail"] == 1)
    });
    let a = ours("team-a").unwrap();
    assert_eq!(a["summary"]["pass"], 1);
    assert!(
        k.report_rejections().is_empty(),
        "{:?}",
        k.report_rejections()
    );
}

#[test]
fn report_cluster_reads_namespace_labels_for_the_webhooks_opt_out_label() {
    let api = FakeKube::start();
    let bare = unsigned_image("cl-optout");
    api.kube.set_pods(vec![
        pod("team-a", "a", &[("a", &bare.tagged)], json!({}), 3),
        pod("team-b", "b", &[("b", &bare.tagged)], json!({}), 4),
        pod("kube-system", "dns", &[("dns", &bare.tagged)], json!({}), 5),
    ]);
    api.kube.set_namespace(
        "team-b",
        json!({"kubernetes.io/metadata.name": "team-b", "provgate.dev/ignore": "true"}),
    );
    api.kube
        .set_namespace("team-a", json!({"kubernetes.io/metadata.name": "team-a"}));
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &[TestContract::needs_provenance()]);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "report: {teamLabel: team}\n",
        "report:\n  teamLabel: team\n  namespaceSelector:\n    matchExpressions:\n      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [provgate, kube-system]}\n      - {key: provgate.dev/ignore, operator: NotIn, values: [\"true\"]}\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, out, err) = provgate(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--cluster",
        "--api-server",
        &api.url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["summary"]["excluded"],
        json!({"kube-system": 1, "team-b": 1}),
        "{out}"
    );
    assert_eq!(r["workloads"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(r["workloads"][0]["namespace"], "team-a");
    // kube-system is exempt by name: its labels were not needed. team-a
    // and team-b were each read once.
    assert_eq!(api.kube.namespace_gets(), 2);
}

// ---------------------------------------------------------------------------
// One inventory writer: leader election on a Lease (issue 15, item 4).

const LEASE_NS: &str = "default";
const LEASE_NAME: &str = "provgate-report";

/// An elector as `provgate serve` runs one: its client sends the identity
/// as its `User-Agent`.
fn elector(
    rt: &tokio::runtime::Runtime,
    url: &str,
    identity: &str,
    (lease, renew, retry): (u64, u64, u64),
) -> std::sync::Arc<provgate::report::leader::Leadership> {
    rt.block_on(async {
        let client = provgate::report::inventory::client_as(Some(url), Some(identity))
            .await
            .unwrap();
        provgate::report::leader::Leadership::start(
            client,
            provgate::report::leader::ElectorConfig {
                lease_name: LEASE_NAME.into(),
                namespace: LEASE_NS.into(),
                identity: identity.into(),
                lease_duration: Duration::from_secs(lease),
                renew_deadline: Duration::from_millis(renew),
                retry_period: Duration::from_millis(retry),
            },
            None,
        )
    })
}

fn election_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn lease_spec(k: &FakeKube) -> Value {
    k.lease(LEASE_NS, LEASE_NAME)
        .map(|l| l["spec"].clone())
        .unwrap_or(Value::Null)
}

/// Successful Lease writes by `identity` (its `User-Agent`).
fn lease_writes_by(k: &FakeKube, identity: &str) -> Vec<crate::common::fakekube::LeaseWrite> {
    k.lease_writes()
        .into_iter()
        .filter(|w| w.user_agent == identity && w.status < 300)
        .collect()
}

#[test]
fn leader_election_two_candidates_exactly_one_leads_and_the_other_never_writes() {
    let api = FakeKube::start();
    let k = &api.kube;
    let rt = election_runtime();
    // Started together: both find no Lease and race to create it.
    let a = elector(&rt, &api.url, "cand-a", (2, 1500, 200));
    let b = elector(&rt, &api.url, "cand-b", (2, 1500, 200));
    wait_until("a leader", || a.is_leader() || b.is_leader());
    let (leader, follower) = if a.is_leader() { (&a, &b) } else { (&b, &a) };
    // For three lease durations: always exactly one leader, the same one.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert!(leader.is_leader(), "the leader lost its lease");
        assert!(!follower.is_leader(), "two leaders at once");
        std::thread::sleep(Duration::from_millis(20));
    }
    let spec = lease_spec(k);
    assert_eq!(spec["holderIdentity"], leader.identity(), "{spec}");
    assert_eq!(spec["leaseDurationSeconds"], 2);
    assert_eq!(spec["leaseTransitions"], 0, "one holder since creation");
    assert_eq!(
        follower.state().holder.as_deref(),
        Some(leader.identity()),
        "the follower knows the leader"
    );
    assert!(
        lease_writes_by(k, follower.identity()).is_empty(),
        "a follower wrote the lease: {:?}",
        k.lease_writes()
    );
    // The leader renewed (one create, then updates), each on the version it
    // read: no write of it was refused.
    let writes = lease_writes_by(k, leader.identity());
    assert!(writes.len() >= 10, "{writes:?}");
    assert!(
        k.lease_writes()
            .iter()
            .filter(|w| w.user_agent == leader.identity())
            .all(|w| w.status < 300),
        "{:?}",
        k.lease_writes()
    );
}

#[test]
fn leader_election_takeover_after_the_leader_dies_waits_for_the_lease_to_expire() {
    let api = FakeKube::start();
    let k = &api.kube;
    let rt = election_runtime();
    let a = elector(&rt, &api.url, "cand-a", (2, 1500, 200));
    wait_until("a leads", || a.is_leader());
    let b = elector(&rt, &api.url, "cand-b", (2, 1500, 200));
    wait_until("b sees a", || b.state().holder.as_deref() == Some("cand-a"));
    let acquired = lease_spec(k)["acquireTime"].clone();
    // A dies: no release, its lease is left to expire.
    a.abandon();
    let died = Instant::now();
    wait_until("b takes over", || b.is_leader());
    let after = died.elapsed();
    // A renewed at most one retry period before dying; B may take over
    // only once the record has not changed for the whole lease (2 s).
    assert!(
        after >= Duration::from_millis(1500),
        "b took over {after:?} after a died, before a's lease expired"
    );
    let spec = lease_spec(k);
    assert_eq!(spec["holderIdentity"], "cand-b");
    assert_eq!(spec["leaseTransitions"], 1, "{spec}");
    assert_ne!(spec["acquireTime"], acquired, "a new acquisition time");
    assert!(
        lease_writes_by(k, "cand-a")
            .iter()
            .all(|w| w.holder.as_deref() == Some("cand-a")),
        "a dead leader released its lease"
    );
}

#[test]
fn leader_election_graceful_release_hands_over_at_once() {
    let api = FakeKube::start();
    let k = &api.kube;
    let rt = election_runtime();
    // A 10 s lease: a handover within seconds is the release, not expiry.
    let a = elector(&rt, &api.url, "cand-a", (10, 6000, 200));
    wait_until("a leads", || a.is_leader());
    let b = elector(&rt, &api.url, "cand-b", (10, 6000, 200));
    wait_until("b sees a", || b.state().holder.as_deref() == Some("cand-a"));
    let released = Instant::now();
    rt.block_on(a.release());
    assert!(!a.is_leader());
    let last = lease_writes_by(k, "cand-a").pop().unwrap();
    assert_eq!(last.holder, None, "the release clears the holder: {last:?}");
    wait_until("b takes over", || b.is_leader());
    assert!(
        released.elapsed() < Duration::from_secs(5),
        "handover took {:?}: the lease expired instead of being released",
        released.elapsed()
    );
    assert_eq!(lease_spec(k)["holderIdentity"], "cand-b");
    assert_eq!(lease_spec(k)["leaseTransitions"], 1);
}

#[test]
fn leader_election_steps_down_when_renewals_fail_before_the_lease_expires() {
    let api = FakeKube::start();
    let k = &api.kube;
    let rt = election_runtime();
    let a = elector(&rt, &api.url, "cand-a", (4, 2000, 200));
    wait_until("a leads", || a.is_leader());
    std::thread::sleep(Duration::from_millis(500));
    k.fail_leases(Some(500));
    let failing = Instant::now();
    wait_until("a steps down", || !a.is_leader());
    // Its last renewal was at most a retry period before the outage: it
    // must stop leading before that renewal's 4 s lease runs out, when
    // another replica may take over.
    let after = failing.elapsed();
    assert!(
        after < Duration::from_millis(3500),
        "stepped down {after:?} into the outage: after its lease expired"
    );
    assert!(
        after >= Duration::from_millis(1500),
        "stepped down {after:?} into the outage, before its renew deadline"
    );
    let err = a.state().error.unwrap_or_default();
    assert!(err.contains("stepped down"), "{err}");
    // The API comes back: the lease still names it, it takes it again
    // (conditionally on the version it reads; no new transition).
    k.fail_leases(None);
    wait_until("a leads again", || a.is_leader());
    assert_eq!(lease_spec(k)["leaseTransitions"], 0);
}

#[test]
fn leader_election_never_takes_a_renewed_lease_whatever_its_timestamps_say() {
    // Another holder keeps renewing, with renewTime far in the past (a
    // skewed clock): expiry is judged by the record changing, never by
    // comparing renewTime with the local clock.
    let api = FakeKube::start();
    let k = &api.kube;
    let held = |n: u32| {
        json!({"holderIdentity": "other", "leaseDurationSeconds": 2, "leaseTransitions": 4,
            "acquireTime": "2001-01-01T00:00:00.000000Z",
            "renewTime": format!("2001-01-01T00:00:{:02}.000000Z", n % 60)})
    };
    k.put_lease(LEASE_NS, LEASE_NAME, held(0));
    let rt = election_runtime();
    let a = elector(&rt, &api.url, "cand-a", (2, 1500, 200));
    for n in 1..=20 {
        std::thread::sleep(Duration::from_millis(200));
        k.put_lease(LEASE_NS, LEASE_NAME, held(n));
        assert!(!a.is_leader(), "took a lease that was being renewed");
    }
    assert_eq!(a.state().holder.as_deref(), Some("other"));
    assert!(
        lease_writes_by(&api.kube, "cand-a").is_empty(),
        "{:?}",
        k.lease_writes()
    );
    // The holder stops renewing: taken after the lease duration.
    let stopped = Instant::now();
    wait_until("a takes the expired lease", || a.is_leader());
    assert!(stopped.elapsed() >= Duration::from_millis(1500));
    let spec = lease_spec(k);
    assert_eq!(spec["holderIdentity"], "cand-a");
    assert_eq!(spec["leaseTransitions"], 5, "{spec}");
}

#[test]
fn continuous_mode_with_two_replicas_one_leader_watches_writes_and_answers() {
    let api = FakeKube::start();
    let k = &api.kube;
    let good = signed_image("ha-good");
    let bare = unsigned_image("ha-bare");
    k.set_pods(vec![
        pod(
            "team-a",
            "web",
            &[("web", &good.tagged)],
            json!({"team": "web"}),
            3,
        ),
        pod("team-b", "job", &[("job", &bare.tagged)], json!({}), 4),
    ]);
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(b"report-reader"))
    };
    let setup = || Setup {
        bindings: "  - name: teams\n    contracts: [needs-provenance]\n    mode: audit\n".into(),
        extra: format!(
            "report:\n  teamLabel: team\n  policyReports: true\n  continuous: {{enabled: true, interval: 1h, concurrency: 2, apiServer: \"{}\"}}\n  leaderElection: {{leaseDuration: 10s, renewDeadline: 6s, retryPeriod: 250ms}}\ngate: {{tokens: [{{name: dash, sha256: \"{sha}\"}}]}}\n",
            api.url
        ),
        ..Setup::default()
    };
    let first = Server::start(setup());
    wait_until("the first replica leads", || {
        lease_spec(k)["holderIdentity"].is_string()
    });
    let mut replicas = vec![first, Server::start(setup())];
    let get = |s: &Server| -> (u16, Option<String>, Value) {
        s.rt.block_on(async {
            let r = s
                .client
                .get(format!("{}/v1/report", s.base))
                .bearer_auth("report-reader")
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (
                r.status().as_u16(),
                retry,
                r.json().await.unwrap_or(Value::Null),
            )
        })
    };
    let leader_id = lease_spec(k)["holderIdentity"].as_str().unwrap().to_owned();
    wait_until("the leader's report", || get(&replicas[0]).0 == 200);
    wait_long("the PolicyReports", 20, || {
        k.policy_reports().contains_key("team-a/provgate")
            && k.policy_reports().contains_key("team-b/provgate")
    });
    // The follower: no report of its own, the leader named, a retry hint.
    let (code, retry, body) = get(&replicas[1]);
    assert_eq!(code, 503, "{body}");
    assert_eq!(
        body,
        json!({"error": "not the leader", "leader": leader_id}),
        "{body}"
    );
    assert_eq!(retry.as_deref(), Some("1"));
    // One set of watches and gauges: the leader's.
    assert_eq!(k.lists().len(), 1, "pods listed by more than one replica");
    let (lm, fm) = (replicas[0].metrics(), replicas[1].metrics());
    assert!(lm.contains("provgate_report_leader 1"), "{lm}");
    assert!(fm.contains("provgate_report_leader 0"), "{fm}");
    assert!(lm.contains("provgate_workloads{"), "{lm}");
    assert!(
        !fm.contains("provgate_workloads{") && !fm.contains("provgate_workloads_would_deny{"),
        "a follower exports compliance gauges: {fm}"
    );
    // Every PolicyReport write came from the leader.
    let agent = |id: &str| format!("provgate/{} ({id})", env!("CARGO_PKG_VERSION"));
    let writers = k.report_writes_by_agent();
    assert_eq!(
        writers.keys().collect::<Vec<_>>(),
        [&agent(&leader_id)],
        "{writers:?}"
    );
    // The leader shuts down gracefully: the follower takes over at once
    // (well within the 10 s lease), watches, and writes.
    let released = Instant::now();
    replicas[0].shutdown();
    let old = replicas.remove(0);
    let next = &replicas[0];
    wait_until("the follower leads", || {
        lease_spec(k)["holderIdentity"]
            .as_str()
            .is_some_and(|h| h != leader_id)
    });
    assert!(
        released.elapsed() < Duration::from_secs(6),
        "handover took {:?}",
        released.elapsed()
    );
    let next_id = lease_spec(k)["holderIdentity"].as_str().unwrap().to_owned();
    wait_long("the new leader's report", 20, || get(next).0 == 200);
    assert!(next.metrics().contains("provgate_report_leader 1"));
    assert_eq!(k.lists().len(), 2, "the new leader lists once");
    // It writes from now on: make team-b compliant-free (its pod goes).
    wait_until("the new leader's pod watch", || k.watching());
    let rv = k.next_rv();
    assert!(k.event(
        "DELETED",
        pod("team-b", "job", &[("job", &bare.tagged)], json!({}), rv)
    ));
    wait_long("team-b's report deleted by the new leader", 20, || {
        !k.policy_reports().contains_key("team-b/provgate")
    });
    let writers = k.report_writes_by_agent();
    assert_eq!(
        writers
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        [agent(&leader_id), agent(&next_id)].into(),
        "{writers:?}"
    );
    drop(old);
}
