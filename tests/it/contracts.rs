//! The contract library end to end: images pushed and signed by the kit's
//! real signers, discovered in the real registry, verified, and judged by
//! the built-in contracts at admission (seed scenarios S1–S3), plus the
//! adversarial cases of the contract model.

use std::sync::Arc;

use serde_json::json;

use crate::common::kit::{GH_ID, GH_ISS, kit, repo_name};
use crate::common::server::{
    KitImage, Server, Setup, allowed, message, review_of, signed_image, temp_file, unsigned_image,
    warnings,
};

/// Authorities override: trust the kit's CI identity only.
fn kit_authority(contract: &str) -> String {
    format!(
        "    authorities:\n      {contract}:\n        - name: kit-ci\n          keyless:\n            issuer: {GH_ISS}\n            subject: \"{GH_ID}\"\n"
    )
}

fn library(bindings: &str, clock: Option<Arc<provgate::clock::FixedClock>>) -> Server {
    Server::start(Setup {
        contracts: Vec::new(),
        bindings: bindings.into(),
        builtin: true,
        clock,
        ..Setup::default()
    })
}

fn deploy(image: &str) -> String {
    review_of(&[
        "--deployment",
        "api",
        "--image",
        image,
        "--namespace",
        "payments",
    ])
}

/// Pushes a distinct image (its own digest) with no evidence.
fn distinct_image(prefix: &str, seed: &str) -> KitImage {
    let k = kit();
    let path = repo_name(prefix);
    let digest = k.push_image(
        &format!("{path}/app:v1"),
        &["--layers", "1", "--size", "2048", "--seed", seed],
    );
    let repo = format!("{}/{path}/app", k.registry());
    KitImage {
        tagged: format!("{repo}:v1"),
        repo,
        digest,
    }
}

fn attach(img: &KitImage, bundle: &std::path::Path) {
    kit().tk(&["attach", &img.pinned(), bundle.to_str().unwrap()]);
}

fn provenance_by(
    img: &KitImage,
    identity: &str,
    predicate: Option<&std::path::Path>,
) -> std::path::PathBuf {
    let k = kit();
    let out = k.path(&format!("{}.prov.json", repo_name("p")));
    let pinned = img.pinned();
    let mut args = vec![
        "sign-provenance",
        &pinned,
        "--identity",
        identity,
        "--issuer",
        GH_ISS,
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(p) = predicate {
        args.extend(["--predicate", p.to_str().unwrap()]);
    }
    k.tk(&args);
    out
}

#[test]
fn s1_no_provenance_is_denied_and_provenance_from_an_untrusted_builder_is_denied() {
    let bindings = format!(
        "  - name: payments\n    contracts: [slsa-provenance]\n    mode: enforce\n    match: {{namespaces: [payments]}}\n{}",
        kit_authority("slsa-provenance")
    );
    let s = library(&bindings, None);
    // No provenance at all.
    let bare = unsigned_image("s1-bare");
    let v = s.review("/validate", &deploy(&bare.tagged));
    assert!(!allowed(&v), "{v}");
    let m = message(&v);
    assert!(
        m.contains("[slsa-provenance]")
            && m.contains("requirement slsa-provenance-present")
            && m.contains("Fix:"),
        "{m}"
    );
    // Genuine provenance, signed by a builder the binding does not trust.
    let evil = unsigned_image("s1-evil");
    let b = provenance_by(
        &evil,
        "https://github.com/evil/app/.github/workflows/build.yml@refs/heads/main",
        None,
    );
    attach(&evil, &b);
    let v = s.review("/validate", &deploy(&evil.tagged));
    assert!(
        !allowed(&v),
        "provenance from an untrusted builder satisfied the contract: {v}"
    );
    // The same provenance shape from the trusted builder is allowed.
    let good = signed_image("s1-good");
    let v = s.review("/validate", &deploy(&good.tagged));
    assert!(allowed(&v), "{v}");
    // The decision log says which evidence was used and which ignored.
    let log = s.decisions();
    let line = log
        .iter()
        .find(|d| d["images"][0]["image"] == good.tagged.as_str())
        .unwrap();
    assert_eq!(
        line["images"][0]["contracts"][0]["evidence"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn s1_untrusted_signer_evidence_is_listed_as_ignored_by_check_explain() {
    let evil = unsigned_image("s1-explain");
    let b = provenance_by(
        &evil,
        "https://github.com/evil/app/.github/workflows/build.yml@refs/heads/main",
        None,
    );
    attach(&evil, &b);
    let dir = tempfile::tempdir().unwrap();
    let creds = crate::common::server::kit_docker_config(dir.path(), &[kit().registry()]);
    let cfg = format!(
        "trust: {{publicGood: false, github: false, roots: [{{name: kit, path: \"{}\"}}]}}\nregistries: {{hosts: {{\"{}\": {{insecure: true}}}}}}\ncredentials: [{{name: kit, file: \"{}\"}}]\nbindings:\n  - name: all\n    contracts: [slsa-provenance]\n    mode: enforce\n{}",
        kit().trusted_root().display(),
        kit().registry(),
        creds.display(),
        kit_authority("slsa-provenance")
    );
    let cfg = temp_file(dir.path(), "config.yaml", &cfg);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args([
            "check",
            &evil.tagged,
            "--config",
            cfg.to_str().unwrap(),
            "--explain",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ignored sha256:") && text.contains("signer not trusted"),
        "{text}"
    );
    assert!(text.contains("https://github.com/evil/app"), "{text}");
    assert!(text.contains("registry requests ("), "{text}");
    assert!(
        text.contains("resolve   HEAD"),
        "the tag resolution is not listed: {text}"
    );
    // A failed lookup lists the requests that failed.
    let missing = format!("{}:no-such-tag", evil.repo);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args([
            "check",
            &missing,
            "--config",
            cfg.to_str().unwrap(),
            "--explain",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let req = &v["images"][0]["requests"][0];
    assert_eq!(req["kind"], "resolve", "{v}");
    assert_eq!(req["outcome"], "404", "{v}");
}

fn dockerfile_predicate(base_digest: &str) -> serde_json::Value {
    json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app", "path": ".github/workflows/build.yml"}},
            "resolvedDependencies": [
                {"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}},
                {"uri": "git+https://github.com/acme/app@refs/heads/main#Dockerfile", "name": "Dockerfile", "digest": {"sha256": "a".repeat(64)}},
                {"uri": "pkg:docker/library/alpine@3.20", "digest": {"sha256": base_digest}}
            ]
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}, "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1"}}
    })
}

#[test]
fn s2_dockerfile_and_base_image_warns_before_its_date_and_denies_after_it() {
    let clock = Arc::new(provgate::clock::FixedClock::new(
        "2026-12-01T00:00:00Z".parse().unwrap(),
    ));
    let bindings = format!(
        "  - name: dockerfile-rollout\n    contracts: [dockerfile-and-base-image]\n    mode: enforce\n    enforce_after: \"2027-01-15T00:00:00Z\"\n{}",
        kit_authority("dockerfile-and-base-image")
    );
    let s = library(&bindings, Some(clock.clone()));
    // Provenance without the Dockerfile and base image (the kit's default).
    let old_style = signed_image("s2-old");
    let v = s.review("/validate", &deploy(&old_style.tagged));
    assert!(allowed(&v), "denied before enforce_after: {v}");
    let w = warnings(&v).join("\n");
    assert!(
        w.contains("[dockerfile-and-base-image, will be enforced from 2027-01-15"),
        "{w}"
    );
    assert!(w.contains("dockerfile-recorded"), "{w}");
    // Provenance that records both passes, before and after.
    let new_style = unsigned_image("s2-new");
    let pred = temp_file(
        s.dir.path(),
        "pred.json",
        &dockerfile_predicate(&"b".repeat(64)).to_string(),
    );
    let b = provenance_by(&new_style, GH_ID, Some(&pred));
    attach(&new_style, &b);
    let v = s.review("/validate", &deploy(&new_style.tagged));
    assert!(allowed(&v) && warnings(&v).is_empty(), "{v}");
    // After the date: the old style is denied, the new style allowed.
    clock.set("2027-01-16T00:00:00Z".parse().unwrap());
    let v = s.review("/validate", &deploy(&old_style.tagged));
    assert!(!allowed(&v), "allowed after enforce_after: {v}");
    assert!(
        message(&v).contains("dockerfile-recorded"),
        "{}",
        message(&v)
    );
    assert!(allowed(&s.review("/validate", &deploy(&new_style.tagged))));
}

fn sbom_predicate() -> serde_json::Value {
    json!({"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "app",
        "documentNamespace": "https://acme.example/spdx/app-1", "creationInfo": {"created": "2026-12-01T00:00:00Z", "creators": ["Tool: syft-1.18.0"]},
        "packages": [{"name": "openssl", "SPDXID": "SPDXRef-openssl", "versionInfo": "3.3.2", "downloadLocation": "NOASSERTION"}]})
}

fn sbom_for(target: &KitImage, dir: &std::path::Path) -> std::path::PathBuf {
    let k = kit();
    let pred = temp_file(
        dir,
        &format!("sbom-{}.json", repo_name("s")),
        &sbom_predicate().to_string(),
    );
    let out = k.path(&format!("{}.sbom.json", repo_name("s")));
    k.tk(&[
        "attest",
        &target.pinned(),
        "--predicate-type",
        "https://spdx.dev/Document",
        "--predicate",
        pred.to_str().unwrap(),
        "--identity",
        GH_ID,
        "--issuer",
        GH_ISS,
        "--out",
        out.to_str().unwrap(),
    ]);
    out
}

#[test]
fn s3_a_statement_whose_subject_is_another_digest_is_denied() {
    let bindings = format!(
        "  - name: sbom\n    contracts: [sbom-required]\n    mode: enforce\n{}",
        kit_authority("sbom-required")
    );
    let s = library(&bindings, None);
    let other = distinct_image("s3-other", "s3-a");
    let victim = distinct_image("s3-victim", "s3-b");
    assert_ne!(other.digest, victim.digest);
    // A genuine SBOM attestation for `other`, attached to `victim`.
    let foreign = sbom_for(&other, s.dir.path());
    attach(&victim, &foreign);
    let v = s.review("/validate", &deploy(&victim.tagged));
    assert!(
        !allowed(&v),
        "a statement for another digest satisfied sbom-required: {v}"
    );
    assert!(message(&v).contains("sbom-present"), "{}", message(&v));
    // provgate check shows why: the bundle was rejected for the subject.
    let eng = s.engine();
    let d =
        s.rt.block_on(eng.decide(&provgate::engine::DecisionRequest {
            images: vec![provgate::engine::ImageUse::bare(&victim.tagged)],
            context: provgate::policy::RequestContext {
                source: provgate::policy::Source::Cli,
                ..Default::default()
            },
            deadline: None,
            contracts: None,
            capture_inputs: false,
        }));
    assert!(d[0].evidence.is_empty());
    assert!(
        d[0].rejected
            .iter()
            .any(|r| r.reason.contains("evidence is for another digest")),
        "{:?}",
        d[0].rejected
    );
    // The SBOM attached to its own image satisfies the contract.
    let own = sbom_for(&victim, s.dir.path());
    attach(&victim, &own);
    let fresh_digest_view = Server::start(Setup {
        contracts: Vec::new(),
        bindings: format!(
            "  - name: sbom\n    contracts: [sbom-required]\n    mode: enforce\n{}",
            kit_authority("sbom-required")
        ),
        builtin: true,
        ..Setup::default()
    });
    let v = fresh_digest_view.review("/validate", &deploy(&victim.tagged));
    assert!(allowed(&v), "{v}");
}

#[test]
fn a_rego_runtime_error_denies_and_says_so() {
    let s = Server::start(Setup {
        contracts: vec![crate::common::server::TestContract {
            name: "broken-at-runtime".into(),
            version: "1".into(),
            rego: "package provgate.contract\n\ndeny contains msg if {\n\tn := count(input.attestations)\n\tmsg := sprintf(\"%d\", [10 / (n - n)])\n}\n".into(),
        }],
        bindings: "  - name: all\n    contracts: [broken-at-runtime]\n    mode: enforce\n".into(),
        ..Setup::default()
    });
    let img = signed_image("rego-error");
    let v = s.review("/validate", &deploy(&img.tagged));
    assert!(!allowed(&v), "a Rego runtime error allowed: {v}");
    assert!(message(&v).contains("fail closed"), "{}", message(&v));
}

#[test]
fn a_contract_with_an_empty_authority_list_is_a_configuration_error_not_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("contracts/anyone");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(
        c.join("contract.yaml"),
        "name: anyone\nversion: \"1\"\nauthorities: []\n",
    )
    .unwrap();
    std::fs::write(
        c.join("policy.rego"),
        crate::common::server::NEEDS_PROVENANCE,
    )
    .unwrap();
    let cfg = temp_file(
        dir.path(),
        "config.yaml",
        "trust: {publicGood: true, github: false}\ncontracts: {builtin: false, dirs: [contracts]}\nbindings:\n  - name: b\n    contracts: [anyone]\n    mode: enforce\n",
    );
    let err = provgate::config::Config::load(&cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no authorities"), "{err}");
    // An authority with an empty identity is refused too.
    std::fs::write(c.join("contract.yaml"), "name: anyone\nversion: \"1\"\nauthorities:\n  - name: x\n    keyless: {issuer: \"\", subject: {regex: \".*\"}}\n").unwrap();
    let err = provgate::config::Config::load(&cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty constraint"), "{err}");
}

#[test]
fn every_builtin_contract_compiles_and_passes_its_own_tests() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(["policy", "test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for c in [
        "slsa-provenance",
        "sbom-required",
        "dockerfile-and-base-image",
        "vuln-threshold",
        "signed-by",
        "max-age",
    ] {
        assert!(
            text.contains("PASS:") && !text.contains(&format!("FAIL {c}")),
            "{text}"
        );
    }
    let n: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("PASS: "))
        .and_then(|l| l.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 100, "only {n} tests ran");
}
