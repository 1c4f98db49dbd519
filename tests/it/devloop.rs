//! The contract author's dev loop (issue 13 item 6) and what `--explain`
//! says about discovery (issue 12): the real input of an image for
//! `policy eval`, input validation that names the field, the library's
//! tests under `policy test policies/`, and the notes on skipped cosign
//! tags and the remembered referrers API.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::kit::{GH_ID, GH_ISS, kit};
use crate::common::server::{kit_docker_config, signed_image, temp_file};

fn provgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A config binding the library's slsa-provenance (bundles only) to the
/// kit identity, in enforce mode.
fn library_config(dir: &Path) -> std::path::PathBuf {
    let k = kit();
    let creds = kit_docker_config(dir, &[k.registry()]);
    temp_file(
        dir,
        "config.yaml",
        &format!(
            "trust: {{publicGood: false, github: false, roots: [{{name: kit, path: \"{}\"}}]}}\nregistries: {{hosts: {{\"{}\": {{insecure: true}}}}}}\ncredentials: [{{name: kit, file: \"{}\"}}]\nbindings:\n  - name: all\n    contracts: [slsa-provenance]\n    mode: enforce\n    authorities:\n      slsa-provenance:\n        - name: kit-ci\n          keyless: {{issuer: {GH_ISS}, subject: \"{GH_ID}\"}}\n",
            k.trusted_root().display(),
            k.registry(),
            creds.display(),
        ),
    )
}

#[test]
fn check_dump_input_writes_the_real_input_and_policy_eval_reaches_the_same_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = library_config(dir.path());
    let img = signed_image("devloop-dump");
    let out_dir = dir.path().join("inputs");
    let o = provgate(&[
        "check",
        &img.tagged,
        "--config",
        cfg.to_str().unwrap(),
        "--dump-input",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let file = out_dir.join("1-slsa-provenance.json");
    let input: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), text(&o))),
    )
    .unwrap();
    assert_eq!(input["apiVersion"], "provgate.dev/policy-input/v1");
    assert_eq!(input["image"]["digest"], img.digest.as_str());
    assert_eq!(input["attestations"][0]["authority"], "kit-ci");
    // The library contract declares no context: the input carries none.
    assert_eq!(input["context"], serde_json::json!({}));
    assert!(text(&o).contains("provgate policy eval --contract slsa-provenance"));
    // The dumped input is valid and evaluates to the same verdict.
    let o = provgate(&[
        "policy",
        "eval",
        "--contract",
        "slsa-provenance",
        "--input",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("slsa-provenance 1: pass"), "{}", text(&o));
}

#[test]
fn policy_eval_names_the_malformed_field_instead_of_blaming_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/policy-input.json"),
        )
        .unwrap(),
    )
    .unwrap();
    doc["attestations"] = "none".into();
    let bad = temp_file(dir.path(), "bad.json", &doc.to_string());
    let o = provgate(&[
        "policy",
        "eval",
        "--contract",
        "slsa-provenance",
        "--input",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("not a provgate.dev/policy-input/v1 document") && t.contains("/attestations"),
        "{t}"
    );
    assert!(!t.contains("parameter"), "blamed the parameters: {t}");
    // --skip-validation evaluates it anyway (the library denies).
    let o = provgate(&[
        "policy",
        "eval",
        "--contract",
        "slsa-provenance",
        "--input",
        bad.to_str().unwrap(),
        "--skip-validation",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn policy_test_of_the_policies_tree_runs_the_library_tests_too() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let embedded = provgate(&["policy", "test", "-o", "json"]);
    let tree = provgate(&[
        "policy",
        "test",
        root.join("policies").to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(tree.status.code(), Some(0), "{}", text(&tree));
    let count = |o: &Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let lib = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"].as_str().unwrap().starts_with("lib:"))
            .count();
        (v["passed"].as_u64().unwrap(), lib)
    };
    let (all_embedded, lib_embedded) = count(&embedded);
    let (all_tree, lib_tree) = count(&tree);
    assert!(lib_tree > 0, "no library test ran");
    assert_eq!((all_tree, lib_tree), (all_embedded, lib_embedded));
}

#[test]
fn explain_says_cosign_tags_were_skipped_and_the_referrers_api_is_remembered() {
    use crate::common::server::{Server, Setup};
    let s = Server::start(Setup {
        contracts: Vec::new(),
        builtin: true,
        bindings: format!(
            "  - name: all\n    contracts: [slsa-provenance]\n    mode: enforce\n    authorities:\n      slsa-provenance:\n        - name: kit-ci\n          keyless: {{issuer: {GH_ISS}, subject: \"{GH_ID}\"}}\n"
        ),
        ..Setup::default()
    });
    let decide = |image: &str| {
        let req = provgate::engine::DecisionRequest {
            images: vec![provgate::engine::ImageUse::bare(image)],
            context: provgate::policy::RequestContext {
                source: provgate::policy::Source::Cli,
                namespace: Some("prod".into()),
                ..Default::default()
            },
            deadline: None,
            contracts: None,
            capture_inputs: false,
        };
        s.rt.block_on(s.engine().decide(&req)).remove(0)
    };
    let first = decide(&signed_image("devloop-explain-a").tagged);
    let second = decide(&signed_image("devloop-explain-b").tagged);
    assert_eq!(
        first.outcome,
        provgate::engine::decision::Outcome::Allow,
        "{first:?}"
    );
    assert_eq!(
        second.outcome,
        provgate::engine::decision::Outcome::Allow,
        "{second:?}"
    );
    // slsa-provenance does not accept legacy cosign evidence: the tags are
    // not even looked up, and the notes (what --explain prints) say so.
    for d in [&first, &second] {
        assert!(
            d.notes
                .iter()
                .any(|n| n
                    .contains("not looked up: no bound contract accepts legacy cosign evidence")),
            "{:?}",
            d.notes
        );
        assert!(
            !d.requests
                .iter()
                .any(|r| r.url.ends_with(".sig") || r.url.ends_with(".att")),
            "{:?}",
            d.requests
        );
    }
    // The registry has no referrers API (distribution 2.8): learnt on the
    // first image, remembered for the second, which does not ask again.
    assert!(
        second
            .notes
            .iter()
            .any(|n| n.contains("referrers API absent on")),
        "{:?}",
        second.notes
    );
    assert!(
        !second
            .requests
            .iter()
            .any(|r| r.url.contains("/referrers/")),
        "{:?}",
        second.requests
    );
    // `check --explain` prints the same notes.
    let dir = tempfile::tempdir().unwrap();
    let cfg = library_config(dir.path());
    let o = provgate(&[
        "check",
        &signed_image("devloop-explain-c").tagged,
        "--config",
        cfg.to_str().unwrap(),
        "--explain",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("not looked up: no bound contract accepts legacy cosign evidence"),
        "{}",
        text(&o)
    );
}

#[test]
fn policy_test_fails_a_contract_that_reads_an_undeclared_context_field() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("ns-rule");
    std::fs::create_dir_all(&c).unwrap();
    let rego = "package provgate.contract\n\ndeny contains \"not in prod\" if {\n\tctx := input.context\n\tctx.namespace != \"prod\"\n}\n";
    std::fs::write(c.join("policy.rego"), rego).unwrap();
    let yaml = |context: &str| {
        format!(
            "name: ns-rule\nversion: \"1\"\n{context}authorities:\n  - name: k\n    keyless: {{issuer: {GH_ISS}, subject: \"{GH_ID}\"}}\n"
        )
    };
    std::fs::write(c.join("contract.yaml"), yaml("")).unwrap();
    let o = provgate(&["policy", "test", c.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("ns-rule: context declaration") && t.contains("namespace"),
        "{t}"
    );
    // Declared: the check passes.
    std::fs::write(c.join("contract.yaml"), yaml("context: [namespace]\n")).unwrap();
    let o = provgate(&["policy", "test", c.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
