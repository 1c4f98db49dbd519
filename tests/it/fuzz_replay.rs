//! Every fuzz input we keep, replayed by a plain `cargo test`.
//!
//! The fuzz targets (`fuzz/fuzz_targets/*.rs`) are one call each into
//! `provgate::fuzzing`; these tests feed the same functions every committed
//! regression (`fuzz/regressions/<target>/`), every local corpus file
//! (`fuzz/corpus/<target>/`, gitignored, present after `fuzz/seed.sh` or a
//! fuzzing run) and a fresh set of seeds that `fuzz/seed.sh` writes from the
//! kit's fixtures and a running kit. A bug a fuzzer once found therefore
//! stays found in CI, on the stable toolchain, without libFuzzer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use provgate::fuzzing::Target;

use crate::common::{kit::kit, kit_root, repo};

/// The files of `dir/<target>/`, by target; a directory named after no
/// target is an error (a target was renamed or removed without its inputs).
fn inputs(dir: &Path) -> BTreeMap<Target, Vec<PathBuf>> {
    let mut out: BTreeMap<Target, Vec<PathBuf>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let e = e.unwrap();
        if !e.file_type().unwrap().is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let target = Target::from_name(&name)
            .unwrap_or_else(|| panic!("{}: no fuzz target is named {name:?}", dir.display()));
        let mut files: Vec<PathBuf> = std::fs::read_dir(e.path())
            .unwrap()
            .map(|f| f.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.entry(target).or_default().extend(files);
    }
    out
}

/// Runs each input through its target; returns the failures (target, file,
/// panic message).
fn replay(inputs: &BTreeMap<Target, Vec<PathBuf>>) -> Vec<String> {
    let mut failures = Vec::new();
    for (target, files) in inputs {
        for f in files {
            let data = std::fs::read(f).unwrap();
            let result = std::panic::catch_unwind(|| target.run(&data));
            if let Err(panic) = result {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{} {}: {msg}", target.name(), f.display()));
            }
        }
    }
    failures
}

#[test]
fn every_fuzz_regression_still_passes_its_target() {
    let regressions = inputs(&repo().join("fuzz/regressions"));
    let image_ref = regressions
        .get(&Target::ImageRef)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // The two image_ref findings: an upper-case first component, and
    // registry-1.docker.io/b (issue 11).
    for name in [
        "uppercase-first-component",
        "registry-1-docker-io-short-name",
    ] {
        assert!(
            image_ref.iter().any(|p| p.ends_with(name)),
            "regression {name} is missing: {image_ref:?}"
        );
    }
    let failures = replay(&regressions);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_local_fuzz_corpus_passes_its_targets() {
    // Gitignored: whatever a developer's seeding and fuzzing left there.
    let corpus = inputs(&repo().join("fuzz/corpus"));
    let failures = replay(&corpus);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn fresh_seeds_pass_every_target() {
    let k = kit();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("fuzz/seed.sh"))
        .env("FUZZ_CORPUS", dir.path())
        .env("TESTKIT_KIT", kit_root())
        .env("TESTKIT_DIR", &k.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fuzz/seed.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seeds = inputs(dir.path());
    for t in Target::ALL {
        let n = seeds.get(&t).map_or(0, Vec::len);
        assert!(n > 0, "fuzz/seed.sh wrote no seed for {}", t.name());
    }
    // The live kit material is there too (real cosign layers, reviews).
    for (t, name) in [
        (Target::CosignSignature, "kit-sig"),
        (Target::CosignAttestation, "kit-att"),
        (Target::Admission, "kit-deployment.json"),
        (Target::Manifest, "kit-tag-schema.json"),
    ] {
        assert!(
            seeds[&t].iter().any(|p| p.ends_with(name)),
            "{} seed {name} is missing",
            t.name()
        );
    }
    let failures = replay(&seeds);
    assert!(failures.is_empty(), "{failures:#?}");
}
