//! Verdict reuse (issue 12): a contract's verdict is keyed by exactly what
//! its input holds, so pods a ReplicaSet makes (new name, uid and
//! `pod-template-hash` each) share one evaluation, a contract that declares
//! a context field is evaluated again when that field differs, and a cache
//! hit decides exactly as a miss does.

use serde_json::json;

use crate::common::server::{
    Server, Setup, TestContract, allowed, message, review_of, signed_image, temp_file,
    unsigned_image,
};

/// A Pod as a ReplicaSet creates it: generated name, template hash label,
/// owner reference.
fn replicaset_pod(i: usize, namespace: &str, team: &str, image: &str) -> String {
    let hash = "7d9f8c6b5";
    let object = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("api-{hash}-{i:05}"),
            "generateName": format!("api-{hash}-"),
            "labels": {"app": "api", "team": team, "pod-template-hash": hash},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("api-{hash}"), "uid": format!("00000000-0000-0000-0000-{i:012}"),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {"containers": [{"name": "api", "image": image}]},
    });
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(dir.path(), "pod.json", &object.to_string());
    review_of(&[
        "--object",
        path.to_str().unwrap(),
        "--namespace",
        namespace,
        "--user",
        "system:serviceaccount:kube-system:replicaset-controller",
    ])
}

/// `provgate_cache_requests_total{cache="verdict",result=…}`.
fn verdict_count(s: &Server, result: &str) -> u64 {
    let want = format!("provgate_cache_requests_total{{cache=\"verdict\",result=\"{result}\"}} ");
    s.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&want).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// The rule of a contract that reads the namespace and the team label:
/// in `restricted`, only team `payments` may deploy.
const TEAM_RULE: &str = r#"package provgate.contract

deny contains {"msg": sprintf("team %s may not deploy to restricted", [object.get(input.context, ["labels", "team"], "none")]), "requirement": "team-rule"} if {
	input.context.namespace == "restricted"
	object.get(input.context, ["labels", "team"], "none") != "payments"
}
"#;

/// A server binding needs-provenance and `team-rule`, whose contract.yaml
/// has `context_line` (e.g. `context: [namespace, labels.team]`).
fn team_server(context_line: &str) -> Server {
    let setup = Setup {
        contracts: vec![TestContract::needs_provenance()],
        bindings:
            "  - name: all\n    contracts: [needs-provenance, team-rule]\n    mode: enforce\n"
                .into(),
        ..Setup::default()
    };
    let context_line = context_line.to_owned();
    Server::start_prepared(setup, move |dir| {
        let c = dir.join("contracts/team-rule");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(
            c.join("contract.yaml"),
            format!(
                "name: team-rule\nversion: \"1\"\n{context_line}\n{}",
                crate::common::server::kit_authority_yaml()
            ),
        )
        .unwrap();
        std::fs::write(c.join("policy.rego"), TEAM_RULE).unwrap();
    })
}

#[test]
fn verdicts_are_reused_across_pods_with_different_names() {
    let s = Server::start(Setup::default());
    let img = signed_image("verdict-reuse");
    for i in 0..20 {
        let v = s.review(
            "/validate",
            &replicaset_pod(i, "prod", "payments", &img.tagged),
        );
        assert!(allowed(&v), "{v}");
    }
    // One evaluation for the digest, then 19 hits: the generated names,
    // uids and template hashes are not in the contract's input.
    assert_eq!(verdict_count(&s, "miss"), 1);
    assert_eq!(verdict_count(&s, "hit"), 19);
    // Another namespace reuses it too: the contract declares no context.
    let v = s.review(
        "/validate",
        &replicaset_pod(99, "other", "web", &img.tagged),
    );
    assert!(allowed(&v), "{v}");
    assert_eq!(verdict_count(&s, "miss"), 1);
}

#[test]
fn a_declared_context_field_that_differs_is_evaluated_again() {
    let s = team_server("context: [namespace, labels.team]");
    let img = signed_image("verdict-context");
    // Same namespace and team, new pod names: reused.
    for i in 0..5 {
        let v = s.review(
            "/validate",
            &replicaset_pod(i, "restricted", "payments", &img.tagged),
        );
        assert!(allowed(&v), "{v}");
    }
    // needs-provenance: 1 miss; team-rule: 1 miss.
    assert_eq!(verdict_count(&s, "miss"), 2);
    // Another team in the restricted namespace: team-rule is evaluated
    // again (and denies), needs-provenance is not.
    let v = s.review(
        "/validate",
        &replicaset_pod(5, "restricted", "web", &img.tagged),
    );
    assert!(!allowed(&v), "{v}");
    assert!(message(&v).contains("team web may not deploy"), "{v}");
    assert_eq!(verdict_count(&s, "miss"), 3);
    // Another namespace: evaluated again, allowed.
    let v = s.review("/validate", &replicaset_pod(6, "dev", "web", &img.tagged));
    assert!(allowed(&v), "{v}");
    assert_eq!(verdict_count(&s, "miss"), 4);
}

#[test]
fn an_undeclared_context_field_is_absent_from_the_input() {
    // The same contract without the declaration: the namespace and label
    // are not in its input, so it can never deny on them (and its verdict
    // is safely shared across contexts).
    let s = team_server("context: []");
    let img = signed_image("verdict-undeclared");
    let v = s.review(
        "/validate",
        &replicaset_pod(1, "restricted", "web", &img.tagged),
    );
    assert!(allowed(&v), "{v}");
}

#[test]
fn a_cache_hit_decides_exactly_as_a_miss() {
    let s = Server::start(Setup::default());
    let good = signed_image("verdict-hit-good");
    let bare = unsigned_image("verdict-hit-bare");
    for img in [&good, &bare] {
        let review = review_of(&[
            "--deployment",
            "api",
            "--image",
            &img.tagged,
            "--namespace",
            "prod",
        ]);
        let miss = s.review("/validate", &review);
        let hit = s.review("/validate", &review);
        assert_eq!(allowed(&miss), allowed(&hit), "{miss}\n{hit}");
        assert_eq!(message(&miss), message(&hit));
        assert_eq!(
            miss["response"]["warnings"], hit["response"]["warnings"],
            "{miss}\n{hit}"
        );
    }
    // The decision log shows identical contract results for both.
    let log = s.decisions();
    let last: Vec<_> = log.iter().rev().take(4).collect();
    assert_eq!(
        last[0]["images"][0]["contracts"],
        last[1]["images"][0]["contracts"]
    );
    assert_eq!(
        last[2]["images"][0]["contracts"],
        last[3]["images"][0]["contracts"]
    );
}

/// A sample of `/metrics` by its full name and labels.
fn sample(s: &Server, series: &str) -> u64 {
    let want = format!("{series} ");
    s.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&want).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// `caches.evidenceBytes` bounds the verified-evidence cache in bytes: with
/// a budget that holds about one image's evidence, reviewing several
/// signed images keeps the cache within the budget, evicts, and an evicted
/// image is discovered and verified again, still allowed.
#[test]
fn the_evidence_byte_budget_evicts_and_evicted_images_are_fetched_again() {
    const BUDGET: u64 = 6 * 1024;
    let s = Server::start(Setup {
        extra: format!("caches: {{evidenceBytes: {BUDGET}}}\n"),
        ..Setup::default()
    });
    let images: Vec<_> = (0..4)
        .map(|i| signed_image(&format!("byte-budget-{i}")))
        .collect();
    for (i, img) in images.iter().enumerate() {
        let v = s.review(
            "/validate",
            &replicaset_pod(i, "prod", "payments", &img.tagged),
        );
        assert!(allowed(&v), "{v}");
    }
    // Every image is still judged correctly: the evicted ones are fetched
    // and verified again (evidence misses grow), never allowed unverified.
    let misses = || {
        sample(
            &s,
            "provgate_cache_requests_total{cache=\"evidence\",result=\"miss\"}",
        )
    };
    let before = misses();
    for (i, img) in images.iter().enumerate() {
        let v = s.review(
            "/validate",
            &replicaset_pod(100 + i, "prod", "payments", &img.tagged),
        );
        assert!(allowed(&v), "{v}");
    }
    assert!(misses() > before, "no evicted image was discovered again");
    let unsigned = unsigned_image("byte-budget-unsigned");
    let v = s.review(
        "/validate",
        &replicaset_pod(200, "prod", "payments", &unsigned.tagged),
    );
    assert!(!allowed(&v), "{}", message(&v));
    // The gauges are set after each discovery, so they include the last.
    let bytes = sample(&s, "provgate_cache_bytes{cache=\"evidence\"}");
    let entries = sample(&s, "provgate_cache_entries{cache=\"evidence\"}");
    assert!(
        bytes > 0 && bytes <= BUDGET,
        "evidence cache weighs {bytes} bytes, budget {BUDGET}"
    );
    assert!(
        entries < 5,
        "{entries} of 5 evidence sets still cached under a {BUDGET}-byte budget"
    );
}
