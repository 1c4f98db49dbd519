//! Micro-benchmarks of the pipeline's CPU stages, each beside a baseline in
//! the same run so the report is a ratio:
//!
//! - AdmissionReview parse + image extraction of a 3-container Deployment,
//!   against parsing the same bytes into a `serde_json::Value`;
//! - verification of a bundle signed by the test kit's sigstore-js
//!   (keyless, Rekor v1 entry, RFC 3161 timestamp), against parsing it;
//! - one evaluation of the built-in `slsa-provenance` contract over its
//!   GitHub Actions example input, against a one-rule contract.
//!
//! The kit is started for the run (`../shared/testkit/up.sh`); results go
//! to `docs/benchmarks.md`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use provgate::digest::Digest;
use provgate::policy::RegoProgram;
use provgate::verify::{EvidenceSource, SourceKind, TrustStore, Verifier, VerifyLimits};

fn kit_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testkit")
}

/// Starts the kit; returns its directory.
fn kit_up() -> PathBuf {
    let out = Command::new(kit_root().join("up.sh"))
        .args(["--owner-pid", &std::process::id().to_string()])
        .output()
        .expect("run ../shared/testkit/install.sh first");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn tk(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(kit_root().join("bin/testkit"))
        .args(args)
        .env("TESTKIT_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn kit_var(dir: &std::path::Path, k: &str) -> String {
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("env.json")).unwrap()).unwrap();
    env[k].as_str().unwrap().to_owned()
}

fn benches(c: &mut Criterion) {
    let kit = kit_up();
    let registry = kit_var(&kit, "TESTKIT_REGISTRY");
    let digest = tk(&kit, &["push-image", "bench/app:v1"]);
    let image = format!("{registry}/bench/app@{digest}");

    // 1. AdmissionReview parse + extraction.
    let review = tk(
        &kit,
        &[
            "admission-review",
            "--deployment",
            "web",
            "--image",
            &format!("{registry}/bench/app:v1"),
            "--image",
            "ghcr.io/acme/sidecar:2.1",
            "--image",
            "docker.io/library/nginx:1.27",
            "--namespace",
            "prod",
        ],
    );
    let mut g = c.benchmark_group("admission");
    g.bench_function(
        BenchmarkId::new("parse", "serde_json::Value (baseline)"),
        |b| b.iter(|| serde_json::from_slice::<serde_json::Value>(review.as_bytes()).unwrap()),
    );
    g.bench_function(BenchmarkId::new("parse", "AdmissionReview + images"), |b| {
        b.iter(|| {
            let r: kube::core::admission::AdmissionReview<kube::core::DynamicObject> =
                serde_json::from_slice(review.as_bytes()).unwrap();
            let req = r.request.unwrap();
            let obj = serde_json::to_value(req.object.unwrap()).unwrap();
            let imgs = provgate::admission::images::images_of(&req.kind.kind, &obj)
                .unwrap()
                .unwrap();
            assert_eq!(imgs.len(), 3);
            imgs
        })
    });
    g.finish();

    // 2. Verification of a kit bundle.
    let bundle_path = kit.join("bench.prov.json");
    tk(
        &kit,
        &[
            "sign-provenance",
            &image,
            "--identity",
            "https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main",
            "--issuer",
            "https://token.actions.githubusercontent.com",
            "--out",
            bundle_path.to_str().unwrap(),
        ],
    );
    let bundle = std::fs::read(&bundle_path).unwrap();
    let root = std::fs::read_to_string(kit_var(&kit, "TESTKIT_TRUSTED_ROOT")).unwrap();
    let trust = TrustStore::builder()
        .root_json("kit", &root)
        .build()
        .unwrap();
    let verifier = Verifier::new(Arc::new(trust), VerifyLimits::default());
    let subject: Digest = digest.parse().unwrap();
    let src = EvidenceSource {
        kind: SourceKind::TagSchema,
        manifest: None,
        layer: None,
    };
    verifier
        .verify_bundle(&bundle, &subject, src.clone())
        .expect("the kit bundle verifies");
    let mut g = c.benchmark_group("verify");
    g.bench_function(BenchmarkId::new("bundle", "parse JSON (baseline)"), |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(&bundle).unwrap())
    });
    g.bench_function(
        BenchmarkId::new("bundle", "keyless provenance, Rekor + TSA"),
        |b| {
            b.iter(|| {
                verifier
                    .verify_bundle(&bundle, &subject, src.clone())
                    .unwrap()
            })
        },
    );
    g.finish();

    // 3. One contract evaluation.
    let contract = provgate::policy::contract::builtin_contracts()
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "slsa-provenance")
        .unwrap();
    let input = contract
        .testdata
        .get("github_actions")
        .cloned()
        .expect("slsa-provenance testdata github-actions.json");
    let program =
        RegoProgram::compile(contract.modules.clone(), None, Duration::from_secs(2)).unwrap();
    let trivial = RegoProgram::compile(
        vec![provgate::policy::RegoModule {
            path: "trivial.rego".into(),
            text: "package provgate.contract\n\ndeny contains \"x\" if { count(input.attestations) == 0 }\n".into(),
        }],
        None,
        Duration::from_secs(2),
    )
    .unwrap();
    // Benchmarks evaluate testdata, which is not verified evidence: they
    // go through the named testing door, as `provgate policy eval` does.
    let value = provgate::policy::testing::unverified_input(&input).unwrap();
    let mut g = c.benchmark_group("policy");
    g.bench_function(
        BenchmarkId::new("eval", "one-rule contract (baseline)"),
        |b| b.iter(|| trivial.evaluate(&value).unwrap()),
    );
    g.bench_function(BenchmarkId::new("eval", "slsa-provenance"), |b| {
        b.iter(|| program.evaluate(&value).unwrap())
    });
    g.bench_function(
        BenchmarkId::new("eval", "slsa-provenance incl. input conversion"),
        |b| b.iter(|| provgate::policy::testing::evaluate_unverified(&program, &input).unwrap()),
    );
    g.finish();
    let _ = Command::new(kit_root().join("down.sh")).arg(&kit).output();
}

criterion_group! {
    name = pipeline;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(pipeline);
