//! `provgate check` end to end: the built binary, a config file written
//! here (the kit's trusted root, its plain-HTTP registry with a Docker
//! config.json, one enforce binding of a tiny test contract), and images in
//! the kit registry with and without evidence.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::evidence::{Image, kit_file, push_image, sign_provenance};
use crate::common::kit::{GH_ID, GH_ISS, kit, repo_name};
use crate::common::registry::docker_config_json;

const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const SPDX: &str = "https://spdx.dev/Document";

struct Setup {
    config: PathBuf,
    /// SLSA v1 provenance attached (tag schema).
    with_provenance: Image,
    /// Nothing attached.
    bare: Image,
    /// Only a (verified) SPDX attestation.
    sbom_only: Image,
    /// Provenance for another digest attached.
    foreign: Image,
}

const CONTRACT_YAML: &str = r#"apiVersion: provgate.dev/v1
kind: Contract
name: kit-provenance
version: "1"
description: SLSA v1 provenance from the kit's CI identity.
owner: tests
authorities:
  - name: kit-ci
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subject: https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main
"#;

const POLICY_REGO: &str = r#"package provgate.contract

import rego.v1

has_provenance if {
	some a in input.attestations
	a.predicateType == "https://slsa.dev/provenance/v1"
}

deny contains {
	"msg": "no SLSA v1 provenance from the kit CI identity",
	"requirement": "kit-provenance",
	"fix": "attach provenance",
} if {
	not has_provenance
}
"#;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn attach(reference: &str, bundle: &[u8]) {
    let p = kit_file("bundle.json");
    std::fs::write(&p, bundle).unwrap();
    kit().tk(&["attach", reference, p.to_str().unwrap()]);
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let k = kit();
        let dir = k.path(&repo_name("cli"));
        let contract = dir.join("contracts/kit-provenance");
        std::fs::create_dir_all(&contract).unwrap();
        write(&contract.join("contract.yaml"), CONTRACT_YAML);
        write(&contract.join("policy.rego"), POLICY_REGO);
        let docker = dir.join("config.json");
        write(
            &docker,
            &docker_config_json(
                &k.registry(),
                &k.var("TESTKIT_REGISTRY_USER"),
                &k.var("TESTKIT_REGISTRY_PASS"),
            ),
        );
        let config = dir.join("provgate.yaml");
        write(
            &config,
            &format!(
                r#"apiVersion: provgate.dev/v1
trust:
  publicGood: false
  github: false
  roots:
    - name: kit
      path: {root}
registries:
  hosts:
    "{registry}":
      insecure: true
credentials:
  - name: kit
    file: {docker}
contracts:
  builtin: false
  dirs: [{contracts}]
bindings:
  - name: everything
    contracts: [kit-provenance]
    mode: enforce
unmatched: deny
"#,
                root = k.trusted_root().display(),
                registry = k.registry(),
                docker = docker.display(),
                contracts = dir.join("contracts").display(),
            ),
        );

        let with_provenance = push_image("cli-prov", &[]);
        attach(
            &with_provenance.reference(),
            &sign_provenance(&with_provenance, &[]),
        );
        let bare = push_image("cli-bare", &[]);
        let sbom_only = push_image("cli-sbom", &[]);
        let predicate = kit_file("sbom.json");
        std::fs::write(&predicate, br#"{"spdxVersion":"SPDX-2.3","name":"app"}"#).unwrap();
        let sbom = kit_file("sbom.sigstore.json");
        k.tk(&[
            "attest",
            &sbom_only.reference(),
            "--predicate-type",
            SPDX,
            "--predicate",
            predicate.to_str().unwrap(),
            "--identity",
            GH_ID,
            "--issuer",
            GH_ISS,
            "--out",
            sbom.to_str().unwrap(),
        ]);
        attach(&sbom_only.reference(), &std::fs::read(&sbom).unwrap());
        let foreign = push_image("cli-foreign", &[]);
        let other = push_image(
            "cli-foreign",
            &["--layers", "1", "--size", "512", "--seed", "cli"],
        );
        attach(&foreign.reference(), &sign_provenance(&other, &[]));
        Setup {
            config,
            with_provenance,
            bare,
            sbom_only,
            foreign,
        }
    })
}

/// Runs `provgate check IMAGE --config F ARGS…`.
fn check(image: &str, args: &[&str]) -> Output {
    let s = setup();
    Command::new(env!("CARGO_BIN_EXE_provgate"))
        .arg("check")
        .arg(image)
        .arg("--config")
        .arg(&s.config)
        .args(args)
        .env("CI", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("run provgate")
}

/// Runs `check … --output json`; returns (exit code, response).
fn check_json(image: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--output", "json"];
    args.extend_from_slice(extra);
    let out = check(image, &args);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), json)
}

#[test]
fn discovery_cli_check_allows_an_image_with_kit_provenance() {
    let s = setup();
    let image = s.with_provenance.reference();
    let (code, r) = check_json(&image, &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["apiVersion"], "provgate.dev/gate/v1");
    assert_eq!(r["outcome"], "allow");
    assert_eq!(r["allowed"], true);
    assert_eq!(r["exitCode"], 0);
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    let i = &images[0];
    assert_eq!(i["digest"], s.with_provenance.digest.to_string());
    assert_eq!(i["outcome"], "allow");
    let evidence = i["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 1, "{i:#}");
    let e = &evidence[0];
    assert_eq!(e["foundIn"], "tag-schema");
    assert_eq!(e["predicateType"], SLSA_V1);
    assert_eq!(e["kind"], "attestation");
    assert_eq!(e["attachedTo"], s.with_provenance.digest.to_string());
    assert_eq!(e["signerFacts"]["kind"], "keyless");
    assert_eq!(e["signerFacts"]["subject"], GH_ID);
    assert_eq!(e["signerFacts"]["issuer"], GH_ISS);
    assert_eq!(e["signerFacts"]["trustedRoot"], "kit");
    assert!(
        e["signer"].as_str().unwrap().contains(GH_ID),
        "{}",
        e["signer"]
    );
    assert!(i["rejected"].as_array().unwrap().is_empty());
    let contracts = i["contracts"].as_array().unwrap();
    assert_eq!(contracts.len(), 1);
    assert_eq!(contracts[0]["name"], "kit-provenance");
    assert_eq!(contracts[0]["verdict"], "pass");
    assert_eq!(contracts[0]["evidenceUsed"][0], e["digest"]);
}

#[test]
fn discovery_cli_check_denies_an_image_without_evidence_with_exit_3() {
    let s = setup();
    let (code, r) = check_json(&s.bare.reference(), &[]);
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(r["exitCode"], 3);
    assert_eq!(r["outcome"], "deny");
    let i = &r["images"][0];
    assert_eq!(i["digest"], s.bare.digest.to_string());
    assert_eq!(i["noVerifiableEvidence"], true);
    assert!(i["evidence"].as_array().unwrap().is_empty());
    assert_eq!(i["contracts"][0]["verdict"], "deny");
    assert_eq!(
        i["contracts"][0]["deny"][0]["requirement"],
        "kit-provenance"
    );
}

#[test]
fn discovery_cli_check_denies_verified_evidence_without_provenance_with_exit_2() {
    let s = setup();
    let (code, r) = check_json(&s.sbom_only.reference(), &[]);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["exitCode"], 2);
    assert_eq!(r["outcome"], "deny");
    let i = &r["images"][0];
    assert_eq!(i["noVerifiableEvidence"], false);
    let evidence = i["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0]["predicateType"], SPDX);
    assert_eq!(evidence[0]["foundIn"], "tag-schema");
    assert_eq!(i["contracts"][0]["verdict"], "deny");
}

#[test]
fn discovery_cli_check_rejects_provenance_for_another_digest() {
    let s = setup();
    let (code, r) = check_json(&s.foreign.reference(), &[]);
    assert_eq!(code, 3, "it does not count as evidence: {r:#}");
    let i = &r["images"][0];
    assert!(i["evidence"].as_array().unwrap().is_empty());
    let rejected = i["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{i:#}");
    assert_eq!(rejected[0]["foundIn"], "tag-schema");
    assert_eq!(rejected[0]["attachedTo"], s.foreign.digest.to_string());
    let reason = rejected[0]["reason"].as_str().unwrap();
    assert!(reason.contains("another digest"), "{reason}");
}

#[test]
fn discovery_cli_check_table_lists_evidence_and_explain_lists_requests() {
    let s = setup();
    let image = s.with_provenance.reference();
    let out = check(&image, &[]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with(&format!("ALLOWED  {image}")), "{table}");
    assert!(
        table.contains(&format!("digest     {}", s.with_provenance.digest)),
        "{table}"
    );
    assert!(
        table.contains("evidence   1 verified, 0 rejected"),
        "{table}"
    );
    assert!(
        table.contains(&format!("✓ attestation {SLSA_V1}")),
        "{table}"
    );
    assert!(
        table.contains(&format!("signer   {GH_ID} (issuer {GH_ISS}, root kit)")),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "found    tag-schema (application/vnd.dev.sigstore.bundle.v0.3+json) on {}",
            s.with_provenance.digest
        )),
        "{table}"
    );
    assert!(
        table.contains("contract   kit-provenance 1 (binding everything, enforce): pass"),
        "{table}"
    );
    assert!(
        !table.contains("registry requests"),
        "no --explain: {table}"
    );

    // --explain lists the registry requests of the (cold) discovery: the
    // same 8 as `discovery_cold_with_two_bundles…` minus one bundle's
    // manifest and blob, plus the image manifest (the CLI is pinned by
    // digest, so the media type is not known from a HEAD).
    let out = check(&image, &["--explain"]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8(out.stdout).unwrap();
    let registry = kit().registry();
    let lines: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.contains("registry requests ("))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    assert!(
        table.contains(&format!("registry requests ({}):", lines.len())),
        "{table}"
    );
    assert_eq!(lines.len(), 7, "{table}");
    for kind in ["referrers", "tag", "manifest", "blob"] {
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with(kind)),
            "no {kind} request in {table}"
        );
    }
    assert!(lines.iter().all(|l| l.contains(&registry)), "{table}");
    let (_, r) = check_json(&image, &["--explain"]);
    assert_eq!(r["images"][0]["requests"].as_array().unwrap().len(), 7);
}

// ---------------------------------------------------------------------------
// Registry errors name their cause and the setting that fixes it.

/// A config like the shared one with other `registries` and `credentials`
/// blocks (YAML at top level, empty for none).
fn config_with(registries: &str, credentials: &str) -> PathBuf {
    let k = kit();
    let s = setup();
    let dir = s.config.parent().unwrap();
    let path = k.path(&format!("{}.yaml", repo_name("cli-config")));
    write(
        &path,
        &format!(
            r#"apiVersion: provgate.dev/v1
trust:
  publicGood: false
  github: false
  roots:
    - name: kit
      path: {root}
{registries}
{credentials}
contracts:
  builtin: false
  dirs: [{contracts}]
bindings:
  - name: everything
    contracts: [kit-provenance]
    mode: enforce
unmatched: deny
"#,
            root = k.trusted_root().display(),
            contracts = dir.join("contracts").display(),
        ),
    );
    path
}

/// A `credentials` block named `name` with a Docker config for `host`.
fn credentials_block(name: &str, host: &str, password: &str) -> String {
    let k = kit();
    let docker = k.path(&format!("{}.json", repo_name("cli-docker")));
    write(
        &docker,
        &docker_config_json(host, &k.var("TESTKIT_REGISTRY_USER"), password),
    );
    format!(
        "credentials:\n  - name: {name}\n    file: {}\n",
        docker.display()
    )
}

/// Runs `check IMAGE --config CONFIG -o json --explain`; returns the
/// image's report.
fn check_image_with(config: &Path, image: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(["check", image, "--config"])
        .arg(config)
        .args(["--output", "json", "--explain"])
        .env("CI", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("run provgate");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    json["images"][0].clone()
}

/// The deciding error's message of `check`.
#[track_caller]
fn error_message(image: &Value) -> String {
    let message = image["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {image:#}"))
        .to_owned();
    for debug in [
        "Some(",
        "None",
        "Connect)",
        "InvalidContentType",
        "UnknownIssuer",
    ] {
        assert!(!message.contains(debug), "debug form {debug} in {message}");
    }
    message
}

#[test]
fn discovery_cli_check_of_a_plain_http_registry_names_the_insecure_setting() {
    let s = setup();
    let k = kit();
    let registry = k.registry();
    let image = format!("{}:v1", s.with_provenance.repo);
    let creds = credentials_block("kit", &registry, &k.var("TESTKIT_REGISTRY_PASS"));
    // No `insecure: true`: provgate speaks TLS to the plain-HTTP listener.
    let config = config_with("", &creds);
    let i = check_image_with(&config, &image);
    assert_eq!(i["outcome"], "deny", "{i:#}");
    assert_eq!(
        error_message(&i),
        format!(
            "registry {registry}: resolve {}:v1: TLS handshake failed: the answer is not TLS: the registry speaks plain HTTP; if that is intended set registries.hosts.\"{registry}\".insecure: true",
            s.with_provenance.path
        )
    );
    // The fix works.
    let fixed = config_with(
        &format!("registries:\n  hosts:\n    \"{registry}\":\n      insecure: true\n"),
        &creds,
    );
    assert_eq!(check_image_with(&fixed, &image)["outcome"], "allow");
}

#[test]
fn discovery_cli_check_of_a_tls_registry_with_an_unknown_ca_names_the_ca_file_setting() {
    let s = setup();
    let k = kit();
    // The TLS listener serves the same storage as the plain one.
    let registry = k.registry_tls();
    let image = format!("{registry}/{}:v1", s.with_provenance.path);
    let creds = credentials_block("kit-tls", &registry, &k.var("TESTKIT_REGISTRY_PASS"));
    let config = config_with("", &creds);
    let i = check_image_with(&config, &image);
    assert_eq!(i["outcome"], "deny", "{i:#}");
    assert_eq!(
        error_message(&i),
        format!(
            "registry {registry}: resolve {}:v1: TLS certificate not trusted: unknown issuer: the registry's certificate is not issued by a publicly trusted CA; if it uses a private CA set registries.hosts.\"{registry}\".caFile to that CA's PEM file",
            s.with_provenance.path
        )
    );
    // The fix works.
    let fixed = config_with(
        &format!(
            "registries:\n  hosts:\n    \"{registry}\":\n      caFile: {}\n",
            k.var("TESTKIT_CA")
        ),
        &creds,
    );
    assert_eq!(check_image_with(&fixed, &image)["outcome"], "allow");
}

#[test]
fn discovery_cli_check_of_a_closed_port_says_nothing_listens() {
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry = format!("127.0.0.1:{port}");
    let config = config_with(
        &format!("registries:\n  hosts:\n    \"{registry}\":\n      insecure: true\n"),
        "",
    );
    let i = check_image_with(&config, &format!("{registry}/closed/app:v1"));
    assert_eq!(i["outcome"], "deny", "{i:#}");
    assert_eq!(i["error"]["class"], "transient");
    assert_eq!(
        error_message(&i),
        format!(
            "registry {registry}: resolve closed/app:v1: connection refused: nothing listens on {registry}; check that the registry is running and that the image names the right host and port"
        )
    );
}

#[test]
fn discovery_cli_check_with_wrong_or_no_credentials_names_the_credentials_used() {
    let s = setup();
    let k = kit();
    let registry = k.registry();
    let image = format!("{}:v1", s.with_provenance.repo);
    let insecure = format!("registries:\n  hosts:\n    \"{registry}\":\n      insecure: true\n");
    let wrong = config_with(
        &insecure,
        &credentials_block("wrong-pass", &registry, "not-the-password"),
    );
    let i = check_image_with(&wrong, &image);
    assert_eq!(i["outcome"], "deny", "{i:#}");
    assert_eq!(
        error_message(&i),
        format!(
            "registry {registry}: resolve {}:v1: access denied (401) with basic credentials of user \"{}\" from credentials set \"wrong-pass\"; check the auths.\"{registry}\" entry in the Docker config file of credentials[] \"wrong-pass\" (its file field)",
            s.with_provenance.path,
            k.var("TESTKIT_REGISTRY_USER"),
        )
    );

    let anonymous = config_with(&insecure, "");
    let i = check_image_with(&anonymous, &image);
    assert_eq!(
        error_message(&i),
        format!(
            "registry {registry}: resolve {}:v1: access denied (401) anonymously (no credentials set applies); give provgate credentials for {registry} with a credentials[] entry (name, file: a Docker config.json with an auths.\"{registry}\" entry)",
            s.with_provenance.path
        )
    );

    // A set without an entry for this registry.
    let elsewhere = config_with(
        &insecure,
        &credentials_block("other-registry", "registry.example", "x"),
    );
    let i = check_image_with(&elsewhere, &image);
    assert_eq!(
        error_message(&i),
        format!(
            "registry {registry}: resolve {}:v1: access denied (401) anonymously (credentials set \"other-registry\" has no entry for this registry); add an auths.\"{registry}\" entry to the Docker config file of credentials[] \"other-registry\" (its file field)",
            s.with_provenance.path
        )
    );
}

#[test]
fn discovery_cli_check_of_a_name_that_does_not_resolve_says_so() {
    // `.invalid` never resolves (RFC 6761).
    let registry = "registry.provgate-test.invalid";
    let config = config_with("", "");
    let i = check_image_with(&config, &format!("{registry}/acme/app:v1"));
    assert_eq!(i["outcome"], "deny", "{i:#}");
    assert_eq!(i["error"]["class"], "transient");
    let message = error_message(&i);
    // The resolver's own words sit in between.
    assert!(
        message.starts_with(&format!(
            "registry {registry}: resolve acme/app:v1: the host name does not resolve: "
        )),
        "{message}"
    );
    assert!(
        message
            .ends_with("; check the registry name in the image reference (and this machine's DNS)"),
        "{message}"
    );
}
