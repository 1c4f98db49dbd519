//! Embeds the contract library (`policies/`) into the binary, so that
//! `provgate serve` with no configuration runs the built-in contracts.
//!
//! Embedded: `policies/lib/*.rego` and, for each `policies/<name>/` with a
//! `contract.yaml`, that file, its `*.rego` files and `testdata/*.json`.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // At run time: a build script compiled in another checkout must not
    // embed that checkout's policies.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest_dir).join("policies");
    println!("cargo:rerun-if-changed=policies");
    let mut files: Vec<(String, String)> = Vec::new();
    let mut add_dir = |dir: &Path, rel: &str, exts: &[&str]| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if p.is_file() && exts.iter().any(|e| name.ends_with(e)) {
                println!("cargo:rerun-if-changed={}", p.display());
                files.push((format!("{rel}{name}"), p.display().to_string()));
            }
        }
    };
    add_dir(&root.join("lib"), "lib/", &[".rego"]);
    if let Ok(entries) = std::fs::read_dir(&root) {
        let mut dirs: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("contract.yaml").is_file())
            .collect();
        dirs.sort();
        for d in dirs {
            let name = d
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            println!("cargo:rerun-if-changed={}", d.display());
            add_dir(&d, &format!("{name}/"), &["contract.yaml", ".rego"]);
            add_dir(
                &d.join("testdata"),
                &format!("{name}/testdata/"),
                &[".json"],
            );
        }
    }
    let mut out = String::from(
        "/// The embedded contract library: (path under policies/, contents).\npub static FILES: &[(&str, &str)] = &[\n",
    );
    for (rel, abs) in &files {
        let _ = writeln!(out, "    ({rel:?}, include_str!({abs:?})),");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("builtin_policies.rs");
    std::fs::write(dest, out).expect("write builtin_policies.rs");
}
