//! Micro-benchmarks of the pipeline's CPU stages, each beside a baseline in
//! the same run so the report is a ratio:
//!
//! - AdmissionReview parse + image extraction of a 3-container Deployment,
//!   against parsing the same bytes into a `serde_json::Value`;
//! - verification of a bundle signed by the test kit's sigstore-js
//!   (keyless, Rekor v1 entry, RFC 3161 timestamp), against parsing it;
//! - one evaluation of the built-in `slsa-provenance` contract over the
//!   documented example input (`docs/examples/policy-input.json`), against a
//!   one-rule contract, and against the previous implementation: the
//!   contract text before it imported the library's rules by path
//!   (`benches/baseline/`), and the interpreter instead of the RVM;
//! - converting that input to a `regorus::Value`, from a `serde_json::Value`
//!   and from the JSON text.
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
use provgate::policy::rego::EvalMode;
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
    policy_benches(c);
    let _ = Command::new(kit_root().join("down.sh")).arg(&kit).output();
}

/// The `slsa-provenance` contract, with its policy module replaced by `text`
/// when given.
fn slsa_program(policy_text: Option<&str>) -> RegoProgram {
    let contract = provgate::policy::contract::builtin_contracts()
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "slsa-provenance")
        .unwrap();
    let mut modules = contract.modules.clone();
    if let Some(text) = policy_text {
        let m = modules
            .iter_mut()
            .find(|m| m.path.ends_with("/policy.rego"))
            .unwrap();
        m.text = text.to_owned();
    }
    RegoProgram::compile(modules, None, Duration::from_secs(2)).unwrap()
}

fn policy_benches(c: &mut Criterion) {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/examples/policy-input.json"),
    )
    .unwrap();
    let input: serde_json::Value = serde_json::from_str(&text).unwrap();
    let value = regorus::Value::from(input.clone());
    // Benchmarks evaluate testdata, which is not verified evidence: they go
    // through the named testing door, as `provgate policy eval` does.
    let policy_input = provgate::policy::testing::unverified_input(&input).unwrap();

    // The same contract as it was before the library's rules were imported
    // by path, and as it is.
    let old = slsa_program(Some(include_str!("baseline/slsa-provenance-policy.rego")));
    let new = slsa_program(None);
    new.rvm_check().expect("the RVM runs slsa-provenance");
    let expected = old
        .evaluate_with(&policy_input, EvalMode::Interpreter)
        .unwrap();
    for (p, mode) in [
        (&old, EvalMode::Rvm),
        (&new, EvalMode::Interpreter),
        (&new, EvalMode::Rvm),
    ] {
        assert_eq!(p.evaluate_with(&policy_input, mode).unwrap(), expected);
    }
    let trivial = RegoProgram::compile(
        vec![provgate::policy::RegoModule {
            path: "trivial.rego".into(),
            text: "package provgate.contract\n\ndeny contains \"x\" if { count(input.attestations) == 0 }\n".into(),
        }],
        None,
        Duration::from_secs(2),
    )
    .unwrap();

    let mut g = c.benchmark_group("policy");
    g.bench_function(
        BenchmarkId::new("eval", "one-rule contract, RVM (baseline)"),
        |b| b.iter(|| trivial.evaluate_with(&policy_input, EvalMode::Rvm).unwrap()),
    );
    for (name, program, mode) in [
        (
            "slsa-provenance, previous text, interpreter (baseline)",
            &old,
            EvalMode::Interpreter,
        ),
        ("slsa-provenance, previous text, RVM", &old, EvalMode::Rvm),
        ("slsa-provenance, interpreter", &new, EvalMode::Interpreter),
        ("slsa-provenance, RVM", &new, EvalMode::Rvm),
    ] {
        g.bench_function(BenchmarkId::new("eval", name), |b| {
            b.iter(|| program.evaluate_with(&policy_input, mode).unwrap())
        });
    }
    g.bench_function(
        BenchmarkId::new(
            "eval",
            "slsa-provenance, interpreter, incl. input conversion",
        ),
        |b| {
            b.iter(|| {
                let fresh = provgate::policy::testing::unverified_input(&input).unwrap();
                new.evaluate_with(&fresh, EvalMode::Interpreter).unwrap()
            })
        },
    );
    g.finish();

    let mut g = c.benchmark_group("policy-input");
    g.bench_function(
        BenchmarkId::new("convert", "serde_json::Value clone (baseline)"),
        |b| b.iter(|| input.clone()),
    );
    g.bench_function(
        BenchmarkId::new("convert", "Value::from(serde_json::Value)"),
        |b| b.iter(|| regorus::Value::from(input.clone())),
    );
    g.bench_function(BenchmarkId::new("convert", "serde_json::from_str"), |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(&text).unwrap())
    });
    g.bench_function(BenchmarkId::new("convert", "Value::from_json_str"), |b| {
        b.iter(|| regorus::Value::from_json_str(&text).unwrap())
    });
    g.bench_function(BenchmarkId::new("convert", "regorus::Value clone"), |b| {
        b.iter(|| value.clone())
    });
    g.finish();
}

criterion_group! {
    name = pipeline;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(pipeline);
