//! `provgate check` tells the truth in its exit code and says what fixes an
//! error (issue 13): the built binary against the kit's registry (plain
//! HTTP, its TLS listener with and without its CA, wrong credentials, a
//! closed port) and against a real gate (wrong CA, closed port, no token,
//! bad token, DNS failure); `certs generate` never replaces a CA silently;
//! start-up logs carry no Rust debug forms.
//!
//! Registry error texts belong to `src/oci/error.rs`; these tests assert the
//! exit code, the CLI's own lines and stable parts of those texts (the
//! registry's name).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use sha2::Digest as _;

use crate::common::kit::{GH_ID, GH_ISS, kit, repo_name};
use crate::common::server::{KitImage, Server, Setup, signed_image, unsigned_image};

/// The test contract: SLSA v1 provenance from the kit's CI identity.
const CONTRACT_REGO: &str = r#"package provgate.contract

import rego.v1

has_provenance if {
	some a in input.attestations
	a.predicateType == "https://slsa.dev/provenance/v1"
}

deny contains {
	"msg": "no SLSA v1 provenance from the kit CI identity",
	"requirement": "kit-provenance",
	"fix": "attach SLSA v1 provenance signed by the kit's CI identity with testkit sign-provenance and attach",
} if {
	not has_provenance
}
"#;

const FIX: &str = "attach SLSA v1 provenance signed by the kit's CI identity with testkit sign-provenance and attach";

/// The line every image that could not be fetched gets.
const NOTHING_VERIFIED: &str = "NOTHING VERIFIED: its evidence could not be fetched (error above), so no contract judged this image";

/// What a config file points at.
struct Cfg<'a> {
    /// The registry name the images use (host:port).
    registry: &'a str,
    /// `insecure: true` for it.
    insecure: bool,
    /// Its `caFile`.
    ca_file: Option<&'a Path>,
    /// Registry password in the Docker config (the kit's when `None`).
    password: Option<&'a str>,
    /// The binding's mode.
    mode: &'a str,
}

impl Default for Cfg<'_> {
    fn default() -> Self {
        Cfg {
            registry: "",
            insecure: true,
            ca_file: None,
            password: None,
            mode: "enforce",
        }
    }
}

/// Writes a config (kit trusted root, one binding of the test contract)
/// into a fresh directory and returns its path.
fn config(cfg: Cfg<'_>) -> PathBuf {
    let k = kit();
    let dir = k.path(&repo_name("cliexit"));
    let contract = dir.join("contracts/kit-provenance");
    std::fs::create_dir_all(&contract).unwrap();
    std::fs::write(
        contract.join("contract.yaml"),
        format!(
            "name: kit-provenance\nversion: \"1\"\ndescription: test\nowner: tests\nauthorities:\n  - name: kit-ci\n    keyless:\n      issuer: {GH_ISS}\n      subject: \"{GH_ID}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(contract.join("policy.rego"), CONTRACT_REGO).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        k.var("TESTKIT_REGISTRY_USER"),
        cfg.password
            .map(str::to_owned)
            .unwrap_or_else(|| k.var("TESTKIT_REGISTRY_PASS"))
    ));
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"auths": {cfg.registry: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let mut host = format!("insecure: {}, timeout: 3s", cfg.insecure);
    if let Some(ca) = cfg.ca_file {
        host.push_str(&format!(", caFile: \"{}\"", ca.display()));
    }
    let path = dir.join("provgate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"trust:
  publicGood: false
  github: false
  roots: [{{name: kit, path: "{root}"}}]
registries:
  hosts:
    "{registry}": {{{host}}}
credentials: [{{name: kit, file: config.json}}]
contracts: {{builtin: false, dirs: [contracts]}}
bindings:
  - name: everything
    contracts: [kit-provenance]
    mode: {mode}
unmatched: deny
"#,
            root = k.trusted_root().display(),
            registry = cfg.registry,
            mode = cfg.mode,
        ),
    )
    .unwrap();
    path
}

/// Runs the binary as CI would (stdout and stderr are pipes).
fn provgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_provgate"));
    cmd.args(args)
        .env("CI", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run provgate")
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn of(o: Output) -> Run {
        Run {
            code: o.status.code().expect("exit code"),
            out: String::from_utf8(o.stdout).expect("utf-8 stdout"),
            err: String::from_utf8(o.stderr).expect("utf-8 stderr"),
        }
    }

    /// Both streams, for failure messages and checks on everything shown.
    fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.out, self.err)
    }

    /// No ANSI escape, no Rust `Some(…)`/`None` debug form anywhere.
    fn assert_clean(&self) {
        let all = self.all();
        assert!(!all.contains('\u{1b}'), "ANSI escape in a pipe: {all}");
        assert!(
            !all.contains("Some(") && !all.contains("None\"") && !all.contains(": None"),
            "Rust debug form: {all}"
        );
    }

    fn has_line(&self, line: &str) -> bool {
        self.out
            .lines()
            .chain(self.err.lines())
            .any(|l| l.trim_end() == line)
    }
}

fn check(image: &str, config: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["check", image, "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let r = Run::of(provgate(&args, &[]));
    r.assert_clean();
    r
}

/// A TCP port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One image with no evidence, shared.
fn bare() -> &'static KitImage {
    static I: OnceLock<KitImage> = OnceLock::new();
    I.get_or_init(|| unsigned_image("cliexit-bare"))
}

/// `registry/repo:v1` of `img` under another registry name.
fn via(img: &KitImage, registry: &str) -> String {
    img.via(registry)
}

#[test]
fn cli_exit_plain_http_registry_without_insecure_is_an_operational_error() {
    let k = kit();
    let cfg = config(Cfg {
        registry: &k.registry(),
        insecure: false,
        ..Default::default()
    });
    let r = check(&bare().tagged, &cfg, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.out.starts_with("DENIED  "), "{}", r.all());
    assert!(r.has_line(&format!("  {NOTHING_VERIFIED}")), "{}", r.all());
    assert!(r.has_line("  evidence   none (not fetched)"), "{}", r.all());
    let error = r
        .out
        .lines()
        .find(|l| l.starts_with("  error      "))
        .unwrap_or_else(|| panic!("no error line: {}", r.all()));
    assert!(error.contains(&k.registry()), "{error}");
    assert!(
        r.has_line("NOT CHECKED: 1 of 1 image could not be checked (denied, fail closed); exit 1"),
        "{}",
        r.all()
    );
    // The same registry with `insecure: true` is reachable: the image is
    // judged (no evidence: 3), so the 1 above was about the transport.
    let cfg = config(Cfg {
        registry: &k.registry(),
        ..Default::default()
    });
    assert_eq!(check(&bare().tagged, &cfg, &[]).code, 3);
}

#[test]
fn cli_exit_tls_registry_without_its_ca_is_an_operational_error() {
    let k = kit();
    let tls = k.registry_tls();
    let image = via(bare(), &tls);
    let cfg = config(Cfg {
        registry: &tls,
        insecure: false,
        ..Default::default()
    });
    let r = check(&image, &cfg, &["-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let v: Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["exitCode"], 1);
    let i = &v["images"][0];
    assert_eq!(i["status"], "error");
    assert_eq!(i["outcome"], "deny");
    assert_eq!(i["error"]["kind"], "operational");
    assert!(
        i["error"]["message"].as_str().unwrap().contains(&tls),
        "{i:#}"
    );
    // With its CA: reachable, judged, no evidence.
    let ca = PathBuf::from(k.var("TESTKIT_CA"));
    let cfg = config(Cfg {
        registry: &tls,
        insecure: false,
        ca_file: Some(&ca),
        ..Default::default()
    });
    let r = check(&image, &cfg, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
}

#[test]
fn cli_exit_closed_port_is_an_operational_error() {
    let registry = format!("127.0.0.1:{}", closed_port());
    let cfg = config(Cfg {
        registry: &registry,
        ..Default::default()
    });
    let r = check(&format!("{registry}/nothing/app:v1"), &cfg, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.has_line(&format!("  {NOTHING_VERIFIED}")), "{}", r.all());
    assert!(r.out.contains(&registry), "{}", r.all());
}

#[test]
fn cli_exit_wrong_registry_credentials_are_an_operational_error() {
    let k = kit();
    let cfg = config(Cfg {
        registry: &k.registry(),
        password: Some("not-the-password"),
        ..Default::default()
    });
    let r = check(&bare().tagged, &cfg, &["-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let v: Value = serde_json::from_str(&r.out).unwrap();
    let i = &v["images"][0];
    assert_eq!(i["status"], "error", "{i:#}");
    let message = i["error"]["message"].as_str().unwrap();
    assert!(message.contains(&k.registry()), "{message}");
    assert!(message.contains("401"), "{message}");
}

#[test]
fn cli_exit_contract_deny_is_2_and_each_fix_is_printed_once() {
    let k = kit();
    let cfg = config(Cfg {
        registry: &k.registry(),
        ..Default::default()
    });
    // Verified evidence from a signer the contract does not trust.
    let img = unsigned_image("cliexit-evil");
    let bundle = k.path(&format!("{}.evil.json", repo_name("b")));
    k.tk(&[
        "sign-provenance",
        &img.pinned(),
        "--identity",
        "https://github.com/evil/app/.github/workflows/build.yml@refs/heads/main",
        "--issuer",
        GH_ISS,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    k.tk(&["attach", &img.pinned(), bundle.to_str().unwrap()]);
    let r = check(&img.tagged, &cfg, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(r.out.matches(FIX).count(), 1, "{}", r.out);
    assert!(
        r.has_line(
            "    deny  no SLSA v1 provenance from the kit CI identity (requirement kit-provenance)"
        ),
        "{}",
        r.out
    );
    let ignored = r
        .out
        .lines()
        .find(|l| l.trim_start().starts_with("ignored "))
        .unwrap_or_else(|| panic!("no ignored line: {}", r.out));
    assert!(ignored.contains(": signer not trusted: "), "{ignored}");
    assert_eq!(ignored.matches("ignored").count(), 1, "{ignored}");
    assert!(r.has_line("DENIED: 1 of 1 image denied"), "{}", r.out);
    // In an audit binding the contract's deny has no admission line to
    // carry its fix: the contract line does, once.
    let audit = config(Cfg {
        registry: &k.registry(),
        mode: "audit",
        ..Default::default()
    });
    let r = check(&img.tagged, &audit, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.out.matches(FIX).count(), 1, "{}", r.out);
    assert!(r.has_line(&format!("          fix: {FIX}")), "{}", r.out);
}

#[test]
fn cli_exit_no_evidence_is_3_with_an_evidence_none_line() {
    let k = kit();
    let cfg = config(Cfg {
        registry: &k.registry(),
        ..Default::default()
    });
    let r = check(&bare().tagged, &cfg, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.has_line("  evidence   none"), "{}", r.out);
    assert!(!r.out.contains("NOTHING VERIFIED"), "{}", r.out);
    // An image that passes: 0, and nothing about verification failing.
    let good = signed_image("cliexit-good");
    let r = check(&good.tagged, &cfg, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.out.starts_with("ALLOWED  "), "{}", r.out);
    assert!(r.has_line("ALLOWED: 0 of 1 image denied"), "{}", r.out);
    assert!(!r.out.contains("NOT VERIFIED"), "{}", r.out);
}

#[test]
fn cli_exit_audit_with_an_unreachable_registry_is_1_unless_allow_unverified() {
    let registry = format!("127.0.0.1:{}", closed_port());
    let cfg = config(Cfg {
        registry: &registry,
        mode: "audit",
        ..Default::default()
    });
    let image = format!("{registry}/nothing/app:v1");
    let r = check(&image, &cfg, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.out
            .starts_with(&format!("ALLOWED, NOT VERIFIED  {image}")),
        "{}",
        r.out
    );
    assert!(r.has_line(&format!("  {NOTHING_VERIFIED}")), "{}", r.out);
    let last = "NOTHING VERIFIED: 1 of 1 image allowed only because no bound contract enforces, although it was not verified; exit 1; --allow-unverified accepts this";
    assert!(r.has_line(last), "{}", r.out);
    assert!(
        r.has_line("ALLOWED, NOT VERIFIED: 0 of 1 image denied"),
        "{}",
        r.out
    );

    let r = check(&image, &cfg, &["--allow-unverified"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.has_line(&format!("  {NOTHING_VERIFIED}")), "{}", r.out);
    assert!(
        r.has_line("NOTHING VERIFIED: 1 of 1 image allowed only because no bound contract enforces, although it was not verified; accepted because of --allow-unverified"),
        "{}",
        r.out
    );

    // JSON: the status and exit code, and the line on stderr.
    let r = check(&image, &cfg, &["-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let v: Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["allowed"], true);
    assert_eq!(v["exitCode"], 1);
    assert_eq!(v["images"][0]["status"], "unverified");
    assert!(
        r.err.contains("provgate: NOTHING VERIFIED: 1 of 1 image"),
        "{}",
        r.err
    );
    let r = check(&image, &cfg, &["-o", "json", "--allow-unverified"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v: Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["exitCode"], 0);
    assert!(
        r.err.contains("provgate: NOTHING VERIFIED: 1 of 1 image"),
        "{}",
        r.err
    );
}

#[test]
fn cli_exit_embedded_defaults_with_an_unreachable_registry_is_1() {
    // The issue's case: no configuration (audit-mode built-in contracts)
    // and a registry that cannot be reached.
    let registry = format!("127.0.0.1:{}", closed_port());
    let image = format!("{registry}/library/nginx:1.27");
    let r = Run::of(provgate(&["check", &image], &[]));
    r.assert_clean();
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!r.out.starts_with("ALLOWED  "), "{}", r.out);
    assert!(r.has_line(&format!("  {NOTHING_VERIFIED}")), "{}", r.out);
    let r = Run::of(provgate(&["check", &image, "--allow-unverified"], &[]));
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.has_line(&format!("  {NOTHING_VERIFIED}")), "{}", r.out);
}

#[test]
fn cli_exit_an_invalid_reference_is_an_operational_error() {
    let r = Run::of(provgate(&["check", "UPPER/Case:tag"], &[]));
    r.assert_clean();
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.has_line(
            "  NOTHING VERIFIED: the image reference is invalid, so no contract judged this image"
        ),
        "{}",
        r.all()
    );
}

#[test]
fn cli_exit_check_help_documents_the_exit_codes() {
    let r = Run::of(provgate(&["check", "--help"], &[]));
    assert_eq!(r.code, 0);
    for line in [
        "Exit codes:",
        "  0  allowed (possibly with warnings), with the evidence fetched and every bound",
        "  2  denied by a contract",
        "  3  denied, and no evidence verified at all",
    ] {
        assert!(r.has_line(line), "{line:?} missing: {}", r.out);
    }
    assert!(r.out.contains("--allow-unverified"), "{}", r.out);
}

// ---------------------------------------------------------------- the gate

const TOKEN: &str = "cli-exit-gate-token";

fn gate() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let sha = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
        Server::start(Setup {
            extra: format!("gate:\n  tokens: [{{name: cli, sha256: {sha}}}]\n"),
            ..Setup::default()
        })
    })
}

fn gate_ca() -> PathBuf {
    gate().dir.path().join("certs/ca.crt")
}

/// `check IMAGE --server URL ARGS…` with `GATE_TOKEN` set.
fn remote(server: &str, extra: &[&str]) -> Run {
    let image = format!("{}/none/app:v1", kit().registry());
    let mut args = vec!["check", &image, "--server", server];
    args.extend_from_slice(extra);
    let r = Run::of(provgate(&args, &[("GATE_TOKEN", TOKEN)]));
    r.assert_clean();
    r
}

fn assert_error(r: &Run, error_prefix: &str, hint: &str) {
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.out.is_empty(), "no table on an error: {}", r.all());
    assert!(
        r.err
            .lines()
            .any(|l| l.starts_with(&format!("provgate: error: {error_prefix}"))),
        "error line {error_prefix:?} missing: {}",
        r.err
    );
    assert!(
        r.has_line(&format!("provgate: hint: {hint}")),
        "hint {hint:?} missing: {}",
        r.err
    );
}

#[test]
fn cli_exit_gate_works_with_its_ca_and_token() {
    let s = gate();
    let ca = gate_ca();
    let img = signed_image("cliexit-gate");
    let r = Run::of(provgate(
        &[
            "check",
            &img.tagged,
            "--server",
            &s.base,
            "--ca",
            ca.to_str().unwrap(),
            "--token-env",
            "GATE_TOKEN",
        ],
        &[("GATE_TOKEN", TOKEN)],
    ));
    r.assert_clean();
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.out.starts_with("ALLOWED  "), "{}", r.out);
}

#[test]
fn cli_exit_gate_with_an_untrusted_certificate_says_pass_ca() {
    let s = gate();
    let r = remote(&s.base, &["--token-env", "GATE_TOKEN"]);
    assert_error(
        &r,
        &format!("cannot call the gate {}/v1/gate: ", s.base),
        "the certificate of 127.0.0.1 is not signed by a CA this machine trusts: pass the CA that issued it with --ca FILE (for `provgate serve` with a development certificate, the ca.crt it printed at start-up, certs/dev/ca.crt by default)",
    );
    assert!(r.err.contains("UnknownIssuer"), "{}", r.err);
    // Another CA given: the hint says that one does not sign it.
    let other = kit().var("TESTKIT_CA");
    let r = remote(&s.base, &["--token-env", "GATE_TOKEN", "--ca", &other]);
    assert_error(
        &r,
        "cannot call the gate ",
        "the certificate of 127.0.0.1 is not signed by the CA given with --ca (nor by a system root): pass the CA that issued it (for `provgate serve` with a development certificate, the ca.crt it printed at start-up, certs/dev/ca.crt by default)",
    );
    // (A name the certificate does not carry: unit tests in
    // src/cli/check.rs, as nothing else listens where the gate does.)
}

#[test]
fn cli_exit_gate_on_a_closed_port_says_nothing_listens() {
    let port = closed_port();
    let ca = gate_ca();
    let r = remote(
        &format!("https://127.0.0.1:{port}"),
        &["--token-env", "GATE_TOKEN", "--ca", ca.to_str().unwrap()],
    );
    assert_error(
        &r,
        &format!("cannot call the gate https://127.0.0.1:{port}/v1/gate: "),
        &format!(
            "nothing listens on 127.0.0.1:{port}: is `provgate serve` running there, and is the port in --server right (server.listen, 8443 by default)?"
        ),
    );
}

#[test]
fn cli_exit_gate_host_that_does_not_resolve_says_dns() {
    let r = remote(
        "https://provgate.invalid:8443",
        &["--token-env", "GATE_TOKEN"],
    );
    assert_error(
        &r,
        "cannot call the gate https://provgate.invalid:8443/v1/gate: ",
        "cannot resolve the host name \"provgate.invalid\" (DNS): check the --server URL",
    );
}

#[test]
fn cli_exit_gate_without_a_token_flag_says_which_flags() {
    let s = gate();
    let r = remote(&s.base, &["--ca", gate_ca().to_str().unwrap()]);
    assert_error(
        &r,
        "no token given: pass --token-env VAR or --oidc-token-env VAR",
        "the gate authenticates every call: with a static token whose SHA-256 is listed under gate.tokens of its configuration, or with a CI OIDC token from an issuer listed under gate.oidc (docs/gate-api.md)",
    );
    assert!(!r.err.contains("check the token given"), "{}", r.err);
    // A flag naming an unset variable.
    let r = remote(
        &s.base,
        &[
            "--ca",
            gate_ca().to_str().unwrap(),
            "--token-env",
            "NO_SUCH_VAR_X",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.has_line(
            "provgate: error: environment variable NO_SUCH_VAR_X (named by --token-env) is not set"
        ),
        "{}",
        r.err
    );
}

#[test]
fn cli_exit_gate_refusing_the_token_says_where_tokens_are_configured() {
    let s = gate();
    let image = format!("{}/none/app:v1", kit().registry());
    let ca = gate_ca();
    let r = Run::of(provgate(
        &[
            "check",
            &image,
            "--server",
            &s.base,
            "--ca",
            ca.to_str().unwrap(),
            "--token-env",
            "WRONG_TOKEN",
        ],
        &[("WRONG_TOKEN", "not-the-token")],
    ));
    r.assert_clean();
    assert_error(
        &r,
        &format!(
            "the gate {}/v1/gate answered 401 Unauthorized: unauthorized",
            s.base
        ),
        "the gate did not accept the token in WRONG_TOKEN: its SHA-256 (printf %s \"$WRONG_TOKEN\" | sha256sum) must be listed under gate.tokens of the gate's configuration; `provgate serve` on the embedded defaults lists none and answers 401 to every call (README, \"Run the webhook\")",
    );
    let r = Run::of(provgate(
        &[
            "check",
            &image,
            "--server",
            &s.base,
            "--ca",
            ca.to_str().unwrap(),
            "--oidc-token-env",
            "WRONG_TOKEN",
        ],
        &[("WRONG_TOKEN", "not.a.jwt")],
    ));
    assert_error(
        &r,
        "the gate ",
        "the gate did not accept the OIDC token in WRONG_TOKEN: its issuer must be listed under gate.oidc of the gate's configuration, with the token's audience among `audiences` and its claims matching `claims`; the gate's log says which check failed",
    );
}

#[test]
fn cli_exit_gate_over_plain_http_is_refused_before_sending_the_token() {
    let r = remote(
        &format!("http://127.0.0.1:{}", closed_port()),
        &["--token-env", "GATE_TOKEN"],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.err
            .contains("the gate serves HTTPS only, and the token must not travel in clear"),
        "{}",
        r.err
    );
}

#[test]
fn cli_exit_gate_answers_classify_like_local_ones() {
    // The gate's own exitCode and status agree with the CLI's.
    let s = gate();
    let ca = gate_ca();
    let r = Run::of(provgate(
        &[
            "check",
            &bare().tagged,
            "--server",
            &s.base,
            "--ca",
            ca.to_str().unwrap(),
            "--token-env",
            "GATE_TOKEN",
            "-o",
            "json",
            "-n",
            "prod",
        ],
        &[("GATE_TOKEN", TOKEN)],
    ));
    assert_eq!(r.code, 3, "{}", r.all());
    let v: Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["exitCode"], 3);
    assert_eq!(v["images"][0]["status"], "no-evidence");
}

// ------------------------------------------------------- certs and start-up

#[test]
fn cli_exit_certs_generate_refuses_to_replace_a_ca_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_s = out.to_str().unwrap();
    let args = [
        "certs",
        "generate",
        "--dns",
        "provgate.provgate.svc",
        "--out",
        out_s,
    ];
    let r = Run::of(provgate(&args, &[]));
    assert_eq!(r.code, 0, "{}", r.all());
    let ca = std::fs::read(out.join("ca.crt")).unwrap();
    let r = Run::of(provgate(&args, &[]));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.has_line(&format!(
            "provgate: error: provgate certs generate: {}/ca.crt exists; a new CA would break every webhook configuration (caBundle) and every client that trusts the old one. Pass --force to replace it, or --out DIR to write elsewhere",
            out_s
        )),
        "{}",
        r.err
    );
    assert_eq!(std::fs::read(out.join("ca.crt")).unwrap(), ca, "replaced");
    let mut forced = args.to_vec();
    forced.push("--force");
    let r = Run::of(provgate(&forced, &[]));
    assert_eq!(r.code, 0, "{}", r.all());
    assert_ne!(std::fs::read(out.join("ca.crt")).unwrap(), ca);
}

#[test]
fn cli_exit_serve_start_up_logs_are_json_without_debug_forms() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provgate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--dev-cert-dir"])
        .arg(dir.path().join("dev"))
        .env_remove("RUST_LOG")
        .env_remove("PROVGATE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start provgate serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !lines
        .iter()
        .any(|l: &String| l.contains("provgate: serving https://"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(text.contains("provgate: serving https://"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape: {text}");
    assert!(
        !text.contains("Some(") && !text.contains("None"),
        "debug form: {text}"
    );
    let json: Vec<Value> = lines
        .iter()
        .filter(|l| !l.starts_with("provgate: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let serving = json
        .iter()
        .find(|v| v["message"] == "provgate is serving")
        .unwrap_or_else(|| panic!("no serving line: {text}"));
    assert_eq!(serving["metrics"], "off", "{serving}");
    assert!(
        json.iter().any(|v| v["message"]
            .as_str()
            .is_some_and(|m| m.contains("answers 401 to every call"))),
        "no warning about the gate without tokens: {text}"
    );
}

#[test]
fn cli_exit_gate_signs_no_vsa_for_an_image_it_could_not_verify() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    use base64::Engine as _;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let sha = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    let s = Server::start_prepared(
        Setup {
            bindings: "  - name: audit\n    contracts: [needs-provenance]\n    mode: audit\n"
                .into(),
            extra: format!(
                "gate:\n  tokens: [{{name: cli, sha256: {sha}}}]\n  vsa: {{keyFile: vsa.key, verifierId: \"https://provgate.test/gate\"}}\n"
            ),
            ..Setup::default()
        },
        |dir| std::fs::write(dir.join("vsa.key"), &pem).unwrap(),
    );
    let unreachable = format!("127.0.0.1:{}/x/app:v1", closed_port());
    let good = signed_image("cliexit-vsa");
    let body = serde_json::json!({"images": [unreachable, good.tagged]});
    let v: Value = s.rt.block_on(async {
        let r = s
            .client
            .post(format!("{}/v1/gate", s.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    });
    let images = v["images"].as_array().unwrap();
    assert_eq!(images[0]["outcome"], "allow", "{v:#}");
    assert_eq!(images[0]["status"], "unverified", "{v:#}");
    assert!(
        images[0]["vsa"].is_null(),
        "a VSA for nothing verified: {v:#}"
    );
    assert_eq!(images[1]["status"], "allowed", "{v:#}");
    assert!(
        images[1]["vsa"].is_object(),
        "the control got no VSA: {v:#}"
    );
    assert_eq!(v["exitCode"], 1);
}

#[test]
fn cli_exit_gate_url_on_a_plain_http_port_says_it_is_not_tls() {
    // The kit registry's plain-HTTP listener stands in for a wrong port.
    let registry = kit().registry();
    let port = registry.rsplit_once(':').unwrap().1;
    let r = remote(
        &format!("https://{registry}"),
        &["--token-env", "GATE_TOKEN"],
    );
    assert_error(
        &r,
        &format!("cannot call the gate https://{registry}/v1/gate: "),
        &format!(
            "127.0.0.1:{port} did not answer with TLS: is it a plain-HTTP port? The gate is served by `provgate serve` on its HTTPS port (server.listen, 8443 by default)"
        ),
    );
}
