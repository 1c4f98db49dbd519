//! `provgate check IMAGE…`: the answer the cluster will give, locally or
//! from a running gate.
//!
//! Without `--server` the local engine runs with `--config` (or the
//! embedded defaults); with it, the gate does, authenticated by a static
//! token or a CI OIDC token taken from an environment variable. Both print
//! the same table, or the same JSON ([`crate::wire::GateResponse`]), and
//! exit with the code of [`EXIT_CODES`]: the CLI classifies the images
//! itself ([`ImageReport::classify`]), so the code never depends on the
//! gate's version.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, Exit, Output, print_json};
use crate::clock::SystemClock;
use crate::engine::decision::Outcome;
use crate::engine::{DecisionRequest, Engine, ImageUse};
use crate::metrics::Metrics;
use crate::policy::{RequestContext, Violation};
use crate::wire::{
    GateContext, GateRequest, GateResponse, ImageReport, ImageStatus, exit_code_with,
};

/// The exit codes of `provgate check`, for `check --help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  allowed (possibly with warnings), with the evidence fetched and every bound
     contract evaluated
  1  operational error: bad configuration or usage; a registry that is
     unreachable, refuses the credentials (401/403) or fails TLS; a gate that is
     unreachable or refuses the token; a contract that could not be evaluated.
     An image allowed only because no bound contract enforces (audit mode, as in
     the embedded defaults) although nothing was verified also exits 1, with a
     NOTHING VERIFIED line, unless --allow-unverified is given (then 0)
  2  denied by a contract
  3  denied, and no evidence verified at all
With several images the first code that applies wins, in the order 1, 2, 3, 0.";

/// Arguments of `provgate check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Images to check (`ghcr.io/acme/app:1.2`, `nginx`, `…@sha256:…`).
    #[arg(required = true)]
    images: Vec<String>,
    /// Configuration file for the local engine (default: embedded defaults).
    #[arg(long, short, conflicts_with = "server")]
    config: Option<PathBuf>,
    /// A provgate gate to ask instead of the local engine (`https://host:8443`).
    #[arg(long)]
    server: Option<String>,
    /// Environment variable holding a static gate token.
    #[arg(
        long,
        requires = "server",
        conflicts_with = "oidc_token_env",
        value_name = "VAR"
    )]
    token_env: Option<String>,
    /// Environment variable holding a CI OIDC token (GitHub, GitLab).
    #[arg(long, requires = "server", value_name = "VAR")]
    oidc_token_env: Option<String>,
    /// Extra CA certificate (PEM) to trust for `--server`.
    #[arg(long, requires = "server", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The namespace the images will run in.
    #[arg(long, short)]
    namespace: Option<String>,
    /// Workload labels, `key=value` (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Workload kind (`Deployment`, …).
    #[arg(long)]
    kind: Option<String>,
    /// Workload name.
    #[arg(long)]
    name: Option<String>,
    /// Judge only these of the contracts the bindings apply (repeatable);
    /// naming a contract that is not bound to an image in this context is
    /// an error, as it is for the gate.
    #[arg(long = "contract")]
    contracts: Vec<String>,
    /// Write each contract's real policy input (one JSON file per image,
    /// contract and platform) into DIR, to feed `provgate policy eval`
    /// (local engine only).
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    dump_input: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Also list the registry requests made (local engine).
    #[arg(long)]
    explain: bool,
    /// Exit 0 for images allowed without verification (their evidence could
    /// not be fetched or a contract not evaluated, and no bound contract
    /// enforces), instead of 1. The NOTHING VERIFIED line is printed anyway.
    #[arg(long)]
    allow_unverified: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Write the VSA of the (single) allowed image here (gate with VSA signing).
    #[arg(long, requires = "server")]
    vsa_out: Option<PathBuf>,
}

/// Runs `provgate check`.
pub fn run(args: CheckArgs) -> Result<Exit, CliError> {
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| CliError::msg(format!("--label {l:?}: expected KEY=VALUE")))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    let progress =
        !args.quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    if progress {
        err!(
            "provgate: checking {} image{}{}…",
            args.images.len(),
            if args.images.len() == 1 { "" } else { "s" },
            args.server
                .as_deref()
                .map(|s| format!(" with {s}"))
                .unwrap_or_default()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new("starting the runtime", e))?;
    let result = runtime.block_on(async {
        match &args.server {
            Some(server) => remote(&args, server, labels).await,
            None => local(&args, labels).await,
        }
    });
    if progress {
        err!("\r\x1b[2K");
    }
    let mut response = result?;
    // Classify here, whatever the gate computed: an older gate knows no
    // `status`, and `--allow-unverified` is the caller's choice.
    for i in &mut response.images {
        i.status = i.classify();
    }
    response.exit_code = exit_code_with(&response.images, args.allow_unverified);
    let style = Style {
        color: color_for(&std::io::stdout()),
        allow_unverified: args.allow_unverified,
    };
    match args.output {
        Output::Json => {
            print_json(&response)?;
            // The table says it; JSON readers get it on stderr.
            for line in unverified_lines(&response, args.allow_unverified) {
                errln!("provgate: {line}");
            }
        }
        Output::Table => out!("{}", render(&response, style)),
    }
    if let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY")
        && !path.is_empty()
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| CliError::new(format!("writing $GITHUB_STEP_SUMMARY ({path})"), e))?;
        f.write_all(markdown(&response).as_bytes())
            .map_err(|e| CliError::new("writing $GITHUB_STEP_SUMMARY", e))?;
    }
    if let Some(out) = &args.vsa_out {
        let vsas: Vec<&serde_json::Value> = response
            .images
            .iter()
            .filter(|i| i.status == ImageStatus::Allowed)
            .filter_map(|i| i.vsa.as_ref())
            .collect();
        match vsas.as_slice() {
            [one] => {
                let text = serde_json::to_string_pretty(one)
                    .map_err(|e| CliError::new("encoding the VSA", e))?;
                std::fs::write(out, text)
                    .map_err(|e| CliError::new(format!("writing {}", out.display()), e))?;
            }
            [] => errln!("provgate: no VSA in the answer (denied, or the gate signs none)"),
            _ => {
                let text = serde_json::to_string_pretty(&vsas)
                    .map_err(|e| CliError::new("encoding the VSAs", e))?;
                std::fs::write(out, text)
                    .map_err(|e| CliError::new(format!("writing {}", out.display()), e))?;
            }
        }
    }
    Ok(match response.exit_code {
        0 => Exit::Ok,
        1 => Exit::Error,
        3 => Exit::NoEvidence,
        _ => Exit::Denied,
    })
}

async fn local(
    args: &CheckArgs,
    labels: BTreeMap<String, String>,
) -> Result<GateResponse, CliError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = crate::config::load(args.config.as_deref())
        .map_err(|e| CliError::new("loading the configuration", e))?;
    for n in &args.contracts {
        if !config.contracts.contains_key(n) {
            return Err(CliError::msg(format!("unknown contract {n:?}")));
        }
    }
    let engine = Engine::new(config, Arc::new(Metrics::new()), Arc::new(SystemClock));
    let request = DecisionRequest {
        images: args.images.iter().map(|i| ImageUse::bare(i)).collect(),
        context: RequestContext {
            source: "cli".into(),
            namespace: args.namespace.clone(),
            kind: args.kind.clone(),
            name: args.name.clone(),
            container: None,
            operation: None,
            labels,
            namespace_labels: Default::default(),
            user: None,
        },
        deadline: None,
        contracts: (!args.contracts.is_empty()).then(|| args.contracts.clone()),
        capture_inputs: args.dump_input.is_some(),
    };
    if let Some((image, contract)) = engine.unbound_selection(&request).await {
        return Err(CliError::msg(format!(
            "--contract {contract}: the contract is not bound to {image} in this context (namespace {}); --contract only narrows the contracts the bindings apply",
            args.namespace.as_deref().unwrap_or("(none)")
        )));
    }
    let decisions = engine.decide(&request).await;
    if let Some(dir) = &args.dump_input {
        dump_inputs(dir, &decisions)?;
    }
    let reports = decisions
        .iter()
        .map(|d| ImageReport::from_decision(d, args.explain))
        .collect();
    Ok(GateResponse::new(reports, None))
}

/// Writes every captured policy input to `dir` as
/// `<n>-<contract>[-<os>-<arch>].json`, and says where on stderr.
fn dump_inputs(
    dir: &std::path::Path,
    decisions: &[crate::engine::decision::ImageDecision],
) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::new(format!("creating {}", dir.display()), e))?;
    for (n, d) in decisions.iter().enumerate() {
        for c in &d.contracts {
            for captured in &c.inputs {
                let mut name = format!("{}-{}", n + 1, c.name);
                if let Some(p) = &captured.platform {
                    name.push('-');
                    name.push_str(&p.replace('/', "-"));
                }
                let path = dir.join(format!("{name}.json"));
                match &captured.input {
                    Ok(input) => {
                        let text = serde_json::to_string_pretty(input)
                            .map_err(|e| CliError::new("encoding a policy input", e))?;
                        std::fs::write(&path, text + "\n")
                            .map_err(|e| CliError::new(format!("writing {}", path.display()), e))?;
                        errln!(
                            "provgate: wrote the {} input of {} to {} (provgate policy eval --contract {} --input {})",
                            c.name,
                            d.image,
                            path.display(),
                            c.name,
                            path.display()
                        );
                    }
                    Err(e) => errln!("provgate: no {} input for {}: {e}", c.name, d.image),
                }
            }
        }
        if d.contracts.is_empty() {
            errln!(
                "provgate: no policy input for {}: {}",
                d.image,
                match &d.error {
                    Some(e) => e.message.clone(),
                    None if d.unmatched => "no binding covers it".into(),
                    None => "no contract was evaluated".into(),
                }
            );
        }
    }
    Ok(())
}

/// The token for the gate, from the environment variable named by
/// `--token-env` or `--oidc-token-env`.
fn gate_token(args: &CheckArgs) -> Result<(String, &'static str, String), CliError> {
    let (var, flag) = match (&args.token_env, &args.oidc_token_env) {
        (Some(v), _) => (v, "--token-env"),
        (None, Some(v)) => (v, "--oidc-token-env"),
        (None, None) => {
            return Err(CliError::msg(
                "no token given: pass --token-env VAR or --oidc-token-env VAR",
            )
            .hint(
                "the gate authenticates every call: with a static token whose SHA-256 \
                         is listed under gate.tokens of its configuration, or with a CI OIDC \
                         token from an issuer listed under gate.oidc (docs/gate-api.md)",
            ));
        }
    };
    let token = match std::env::var(var) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        Ok(_) => {
            return Err(CliError::msg(format!(
                "environment variable {var} (named by {flag}) is empty"
            )));
        }
        Err(std::env::VarError::NotPresent) => {
            return Err(CliError::msg(format!(
                "environment variable {var} (named by {flag}) is not set"
            )));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(CliError::msg(format!(
                "environment variable {var} (named by {flag}) is not valid UTF-8"
            )));
        }
    };
    Ok((var.clone(), flag, token))
}

async fn remote(
    args: &CheckArgs,
    server: &str,
    labels: BTreeMap<String, String>,
) -> Result<GateResponse, CliError> {
    let base = url::Url::parse(server).map_err(|e| {
        CliError::new(format!("--server {server:?} is not a URL"), e)
            .hint("give the gate's base URL, e.g. --server https://provgate.example:8443")
    })?;
    if base.scheme() != "https" {
        return Err(CliError::msg(format!(
            "--server {server:?}: the gate serves HTTPS only, and the token must not travel in clear"
        ))
        .hint(format!(
            "use https://{}",
            server.split_once("://").map(|(_, r)| r).unwrap_or(server)
        )));
    }
    let (var, flag, token) = gate_token(args)?;
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("provgate/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &args.ca {
        let pem =
            std::fs::read(ca).map_err(|e| CliError::new(format!("reading {}", ca.display()), e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| CliError::new(format!("{} is not a PEM CA bundle", ca.display()), e))?;
        if certs.is_empty() {
            return Err(CliError::msg(format!(
                "--ca {}: no PEM certificate in the file",
                ca.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| CliError::new("building the HTTP client", e))?;
    let url = format!("{}/v1/gate", server.trim_end_matches('/'));
    let request = GateRequest {
        api_version: Some(crate::wire::GATE_V1.into()),
        images: args.images.clone(),
        context: GateContext {
            namespace: args.namespace.clone(),
            labels,
            kind: args.kind.clone(),
            name: args.name.clone(),
        },
        contracts: (!args.contracts.is_empty()).then(|| args.contracts.clone()),
    };
    let resp = match client
        .post(&url)
        .json(&request)
        .bearer_auth(&token)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Err(send_error(e, &url, &base, args.ca.is_some()).await),
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .bytes()
        .await
        .map_err(|e| CliError::new(format!("reading the answer of {url}"), e))?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(300)
                    .collect()
            });
        let err = CliError::msg(format!("the gate {url} answered {status}: {msg}"));
        return Err(match status.as_u16() {
            401 if flag == "--oidc-token-env" => err.hint(format!(
                "the gate did not accept the OIDC token in {var}: its issuer must be listed \
                 under gate.oidc of the gate's configuration, with the token's audience among \
                 `audiences` and its claims matching `claims`; the gate's log says which check \
                 failed"
            )),
            401 => err.hint(format!(
                "the gate did not accept the token in {var}: its SHA-256 \
                 (printf %s \"${var}\" | sha256sum) must be listed under gate.tokens of the \
                 gate's configuration; `provgate serve` on the embedded defaults lists none and \
                 answers 401 to every call (README, \"Run the webhook\")"
            )),
            403 => err.hint(
                "this caller may not choose the contracts given with --contract: the gate's \
                 gate.tokens[].contracts (or gate.oidc[].contracts) must list each of them; \
                 without --contract the gate judges the bindings",
            ),
            429 => err.hint(match retry_after {
                Some(s) => format!("the gate limits calls per caller; retry after {s} s"),
                None => "the gate limits calls per caller; retry later".to_owned(),
            }),
            404 => err.hint(format!(
                "{} does not serve the gate API (POST /v1/gate); give the base URL of a \
                 provgate server",
                server
            )),
            _ => err,
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| CliError::new(format!("unreadable answer from {url}"), e))
}

/// What a gate call that got no answer means, and what fixes it: the cause
/// is found by walking the error's source chain (rustls and I/O errors).
async fn send_error(e: reqwest::Error, url: &str, base: &url::Url, had_ca: bool) -> CliError {
    let host = base.host_str().unwrap_or("").to_owned();
    let port = base.port_or_known_default().unwrap_or(443);
    let hint = match cause(&e) {
        Cause::Tls(rustls::Error::InvalidCertificate(c)) => {
            Some(certificate_hint(c, &host, had_ca))
        }
        Cause::Tls(rustls::Error::InvalidMessage(_)) => Some(format!(
            "{host}:{port} did not answer with TLS: is it a plain-HTTP port? The gate is \
                 served by `provgate serve` on its HTTPS port (server.listen, 8443 by default)"
        )),
        Cause::Tls(other) => Some(format!(
            "the TLS handshake with {host}:{port} failed: {other}"
        )),
        Cause::Refused => Some(format!(
            "nothing listens on {host}:{port}: is `provgate serve` running there, and is the \
             port in --server right (server.listen, 8443 by default)?"
        )),
        Cause::Other if e.is_timeout() => Some(format!(
            "{host}:{port} did not answer within 60 s: check the URL, and that a firewall or \
             proxy lets the connection through"
        )),
        Cause::Other if e.is_connect() => {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Err(_) => Some(format!(
                    "cannot resolve the host name {host:?} (DNS): check the --server URL"
                )),
                Ok(_) => None,
            }
        }
        Cause::Other => None,
    };
    let err = match cause(&e) {
        // rustls's text lists the names in Rust debug form: say it plainly
        // (the hint names them).
        Cause::Tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext { .. },
        )) => CliError::msg(format!(
            "cannot call the gate {url}: its certificate is not valid for {host:?}"
        )),
        _ => CliError::new(format!("cannot call the gate {url}"), e),
    };
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// The cause of a failed request, as far as the CLI can tell a fix for it.
enum Cause<'a> {
    /// A TLS error.
    Tls(&'a rustls::Error),
    /// The connection was refused.
    Refused,
    /// Anything else.
    Other,
}

fn cause(e: &reqwest::Error) -> Cause<'_> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Cause::Tls(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Cause::Refused;
            }
            // `io::Error::source` skips the wrapped error itself (often
            // another `io::Error` around the rustls error): descend into it.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = err.source();
    }
    Cause::Other
}

fn certificate_hint(c: &rustls::CertificateError, host: &str, had_ca: bool) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer if had_ca => format!(
            "the certificate of {host} is not signed by the CA given with --ca (nor by a system \
             root): pass the CA that issued it (for `provgate serve` with a development \
             certificate, the ca.crt it printed at start-up, certs/dev/ca.crt by default)"
        ),
        C::UnknownIssuer => format!(
            "the certificate of {host} is not signed by a CA this machine trusts: pass the CA \
             that issued it with --ca FILE (for `provgate serve` with a development \
             certificate, the ca.crt it printed at start-up, certs/dev/ca.crt by default)"
        ),
        C::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
            let names: Vec<String> = presented.iter().map(|p| plain_name(p)).collect();
            format!(
                "the certificate is not issued for {host:?} but for {}: use one of these \
                 names in --server, or serve a certificate that names {host:?}",
                names.join(", ")
            )
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the certificate is not issued for {host:?}: use a host name the certificate \
             names in --server (a development certificate names localhost, 127.0.0.1, ::1 and \
             provgate.provgate.svc)"
        ),
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            format!(
                "the certificate of {host} is outside its validity period ({c}): renew it \
                 (`provgate certs generate` for development), or check this machine's clock"
            )
        }
        other => format!("the certificate of {host} was rejected: {other}"),
    }
}

/// A name as webpki presents it (`DnsName("a.example")`, `IpAddress(10.0.0.1)`),
/// without the Rust debug wrapping.
fn plain_name(presented: &str) -> String {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        })
        .unwrap_or(presented)
        .to_owned()
}

/// Whether to colour output for `stream`: a terminal, and neither
/// `NO_COLOR` nor `TERM=dumb` (anstream's rules, which also honour
/// `CLICOLOR` and `CLICOLOR_FORCE`).
pub(crate) fn color_for<S: std::io::Write + anstream::stream::RawStream>(stream: &S) -> bool {
    !matches!(
        anstream::AutoStream::choice(stream),
        anstream::ColorChoice::Never
    )
}

/// How to render the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// `--allow-unverified` was given.
    pub allow_unverified: bool,
}

impl Style {
    fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }
}

const GREEN: anstyle::Style = anstyle::AnsiColor::Green.on_default().bold();
const YELLOW: anstyle::Style = anstyle::AnsiColor::Yellow.on_default().bold();
const RED: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();

/// The header word of one image.
fn image_word(i: &ImageReport) -> (&'static str, anstyle::Style) {
    match (i.outcome, i.status) {
        (Outcome::Deny, _) => ("DENIED", RED),
        (_, ImageStatus::Unverified) => ("ALLOWED, NOT VERIFIED", YELLOW),
        (Outcome::Warn, _) => ("ALLOWED WITH WARNINGS", YELLOW),
        (Outcome::Allow, _) => ("ALLOWED", GREEN),
    }
}

/// The prominent line of an image that was not (fully) checked.
fn not_verified_line(i: &ImageReport) -> Option<String> {
    if !matches!(i.status, ImageStatus::Unverified | ImageStatus::Error) {
        return None;
    }
    if i.error.is_some() {
        let why = if i.reference.is_none() {
            "the image reference is invalid"
        } else {
            "its evidence could not be fetched (error above)"
        };
        return Some(format!(
            "NOTHING VERIFIED: {why}, so no contract judged this image"
        ));
    }
    let failed: Vec<&str> = i
        .contracts
        .iter()
        .filter(|c| c.verdict == "error")
        .map(|c| c.name.as_str())
        .collect();
    (!failed.is_empty()).then(|| {
        format!(
            "NOT FULLY VERIFIED: contract{} {} could not be evaluated (error above)",
            if failed.len() == 1 { "" } else { "s" },
            failed.join(", ")
        )
    })
}

/// The run's closing lines about images that were not (fully) checked;
/// empty when every image was.
fn unverified_lines(r: &GateResponse, allow_unverified: bool) -> Vec<String> {
    let n = r.images.len();
    let images = |k: usize| format!("{k} of {n} image{}", if n == 1 { "" } else { "s" });
    let unverified = r
        .images
        .iter()
        .filter(|i| i.status == ImageStatus::Unverified)
        .count();
    let errors = r
        .images
        .iter()
        .filter(|i| i.status == ImageStatus::Error)
        .count();
    let mut out = Vec::new();
    if errors > 0 {
        out.push(format!(
            "NOT CHECKED: {} could not be checked (denied, fail closed); exit 1",
            images(errors)
        ));
    }
    if unverified > 0 {
        let tail = if allow_unverified {
            "accepted because of --allow-unverified"
        } else {
            "exit 1; --allow-unverified accepts this"
        };
        out.push(format!(
            "NOTHING VERIFIED: {} allowed only because no bound contract enforces, \
             although {} not verified; {tail}",
            images(unverified),
            if unverified == 1 {
                "it was"
            } else {
                "they were"
            },
        ));
    }
    out
}

/// A violation for the contract lines: message and requirement, and the
/// fix only when no admission line below already carries it.
fn violation_line(i: &ImageReport, v: &Violation) -> (String, Option<String>) {
    let mut s = v.msg.clone();
    if let Some(r) = &v.requirement {
        s.push_str(&format!(" (requirement {r})"));
    }
    let fix = v.fix.as_ref().filter(|f| {
        !i.denials
            .iter()
            .chain(i.warnings.iter())
            .any(|l| l.contains(f.as_str()))
    });
    (s, fix.cloned())
}

/// The human-readable table, without colour.
pub fn table(r: &GateResponse) -> String {
    render(r, Style::default())
}

/// The human-readable table.
pub fn render(r: &GateResponse, style: Style) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for i in &r.images {
        let (word, colour) = image_word(i);
        let _ = writeln!(s, "{}  {}", style.paint(colour, word), i.image);
        if let Some(reference) = &i.reference
            && reference != &i.image
        {
            let _ = writeln!(s, "  reference  {reference}");
        }
        if let Some(d) = &i.digest {
            let _ = writeln!(s, "  digest     {d}");
        }
        for p in &i.platforms {
            let _ = writeln!(s, "  platform   {} {}", p.platform, p.digest);
        }
        if let Some(e) = &i.error {
            let _ = writeln!(s, "  error      {} ({})", e.message, e.class);
        }
        if let Some(d) = &i.degraded {
            let _ = writeln!(s, "  degraded   {d}");
        }
        if let Some(line) = not_verified_line(i) {
            let _ = writeln!(s, "  {}", style.paint(RED, &line));
        }
        if i.unmatched {
            let _ = writeln!(s, "  bindings   none cover this image");
        }
        if !i.evidence.is_empty() || !i.rejected.is_empty() {
            let _ = writeln!(
                s,
                "  evidence   {} verified, {} rejected",
                i.evidence.len(),
                i.rejected.len()
            );
        } else if i.error.is_some() {
            let _ = writeln!(s, "  evidence   none (not fetched)");
        } else if !i.unmatched {
            let _ = writeln!(s, "  evidence   none");
        }
        for e in &i.evidence {
            let what = e.predicate_type.as_deref().unwrap_or("image signature");
            let time = e
                .time
                .get("value")
                .and_then(|v| v.as_str())
                .map(|t| {
                    format!(
                        "{t} ({})",
                        e.time.get("source").and_then(|v| v.as_str()).unwrap_or("?")
                    )
                })
                .unwrap_or_else(|| "no trusted time".into());
            let _ = writeln!(s, "    {} {} {what}", style.paint(GREEN, "✓"), e.kind);
            let _ = writeln!(s, "        signer   {}", e.signer);
            let _ = writeln!(
                s,
                "        time     {time}; tlog entries {}",
                e.tlog_entries
            );
            let _ = writeln!(
                s,
                "        found    {} ({}) on {}",
                e.found_in, e.format, e.attached_to
            );
            let _ = writeln!(s, "        digest   {}", e.digest);
        }
        for e in &i.rejected {
            let _ = writeln!(
                s,
                "    {} {} on {}{}: {}",
                style.paint(RED, "✗"),
                e.found_in,
                e.attached_to,
                e.layer
                    .as_deref()
                    .map(|l| format!(" (layer {l})"))
                    .unwrap_or_default(),
                e.reason
            );
        }
        for c in &i.contracts {
            let mode = if c.mode != c.configured_mode {
                format!(
                    "{} until {}, then {}",
                    c.mode,
                    c.enforce_after.as_deref().unwrap_or("?"),
                    c.configured_mode
                )
            } else {
                c.mode.clone()
            };
            let binding = if c.binding.is_empty() {
                String::new()
            } else {
                format!("binding {}, ", c.binding)
            };
            let verdict = match c.verdict.as_str() {
                "pass" => style.paint(GREEN, "pass"),
                "deny" | "error" if c.mode == "enforce" => style.paint(RED, &c.verdict),
                "deny" | "error" | "warn" | "exempt" => style.paint(YELLOW, &c.verdict),
                other => other.to_owned(),
            };
            let _ = writeln!(
                s,
                "  contract   {} {} ({binding}{mode}): {verdict}",
                c.name, c.version
            );
            for (kind, list) in [("deny", &c.deny), ("warn", &c.warn)] {
                for v in list {
                    let (line, fix) = violation_line(i, v);
                    let _ = writeln!(s, "    {kind}  {line}");
                    if let Some(f) = fix {
                        let _ = writeln!(s, "          fix: {f}");
                    }
                }
            }
            if let Some(e) = &c.error {
                let _ = writeln!(s, "    error {e}");
            }
            if let Some(e) = &c.exemption {
                let _ = writeln!(s, "    exempt until {}: {}", e.expires, e.reason);
            }
            for g in &c.ignored {
                let reason = g.reason.strip_prefix("ignored: ").unwrap_or(&g.reason);
                let _ = writeln!(s, "    ignored {}: {reason}", g.digest);
            }
        }
        for n in &i.notes {
            let _ = writeln!(s, "  note       {n}");
        }
        if !i.requests.is_empty() {
            let _ = writeln!(s, "  registry requests ({}):", i.requests.len());
            for q in &i.requests {
                let _ = writeln!(
                    s,
                    "    {:<9} {:<4} {} -> {} ({} bytes, {} ms)",
                    q.kind, q.method, q.url, q.outcome, q.bytes, q.millis
                );
            }
        }
        if !i.denials.is_empty() {
            let _ = writeln!(s, "  admission will deny:");
            for l in &i.denials {
                let _ = writeln!(s, "    - {l}");
            }
        }
        if !i.warnings.is_empty() {
            let _ = writeln!(s, "  admission will warn:");
            for l in &i.warnings {
                let _ = writeln!(s, "    - {l}");
            }
        }
        s.push('\n');
    }
    let denied = r
        .images
        .iter()
        .filter(|i| i.outcome == Outcome::Deny)
        .count();
    let (word, colour) = match r.outcome {
        Outcome::Deny => ("DENIED", RED),
        _ if r.images.iter().any(|i| i.status == ImageStatus::Unverified) => {
            ("ALLOWED, NOT VERIFIED", YELLOW)
        }
        Outcome::Warn => ("ALLOWED WITH WARNINGS", YELLOW),
        Outcome::Allow => ("ALLOWED", GREEN),
    };
    let _ = writeln!(
        s,
        "{}: {denied} of {} image{} denied",
        style.paint(colour, word),
        r.images.len(),
        if r.images.len() == 1 { "" } else { "s" }
    );
    for line in unverified_lines(r, style.allow_unverified) {
        let _ = writeln!(s, "{}", style.paint(RED, &line));
    }
    s
}

/// The GitHub Actions job summary.
pub fn markdown(r: &GateResponse) -> String {
    use std::fmt::Write as _;
    let unverified = r
        .images
        .iter()
        .any(|i| matches!(i.status, ImageStatus::Unverified | ImageStatus::Error));
    let word = if r.outcome != Outcome::Deny && unverified {
        "allowed, not verified"
    } else {
        match r.outcome {
            Outcome::Allow => "allowed",
            Outcome::Warn => "allowed with warnings",
            Outcome::Deny => "denied",
        }
    };
    let mut s = format!("## provgate: {word}\n\n");
    s.push_str("| image | digest | outcome |\n|---|---|---|\n");
    for i in &r.images {
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} |",
            i.image,
            i.digest.as_deref().unwrap_or("-"),
            match i.status {
                ImageStatus::Unverified => "allow, **not verified**",
                ImageStatus::Error => "deny, **not checked**",
                _ => i.outcome.as_str(),
            }
        );
    }
    for i in &r.images {
        let nv = not_verified_line(i);
        if i.denials.is_empty() && i.warnings.is_empty() && nv.is_none() {
            continue;
        }
        let _ = writeln!(s, "\n### `{}`\n", i.image);
        if let Some(l) = nv {
            let _ = writeln!(s, "- :x: {l}");
        }
        // A denial line names the error already.
        if let Some(e) = &i.error
            && i.outcome != Outcome::Deny
        {
            let _ = writeln!(s, "- :x: {}", e.message);
        }
        for l in &i.denials {
            let _ = writeln!(s, "- :x: {l}");
        }
        for l in &i.warnings {
            let _ = writeln!(s, "- :warning: {l}");
        }
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ContractReport, ErrorKind, ErrorReport, EvidenceReport, IgnoredReport};

    fn image(outcome: Outcome) -> ImageReport {
        ImageReport {
            image: "reg.example/app:1".into(),
            reference: Some("reg.example/app:1".into()),
            digest: None,
            container: None,
            platforms: Vec::new(),
            outcome,
            status: ImageStatus::Allowed,
            unmatched: false,
            no_verifiable_evidence: false,
            denials: Vec::new(),
            warnings: Vec::new(),
            contracts: Vec::new(),
            evidence: Vec::new(),
            rejected: Vec::new(),
            notes: Vec::new(),
            error: None,
            degraded: None,
            requests: Vec::new(),
            vsa: None,
        }
    }

    fn contract(mode: &str, verdict: &str) -> ContractReport {
        ContractReport {
            name: "c".into(),
            version: "1".into(),
            binding: "b".into(),
            mode: mode.into(),
            configured_mode: mode.into(),
            enforce_after: None,
            verdict: verdict.into(),
            deny: Vec::new(),
            warn: Vec::new(),
            error: None,
            exemption: None,
            evidence_used: Vec::new(),
            ignored: Vec::new(),
        }
    }

    fn evidence() -> EvidenceReport {
        EvidenceReport {
            digest: format!("sha256:{}", "a".repeat(64)),
            kind: "attestation".into(),
            predicate_type: Some("https://slsa.dev/provenance/v1".into()),
            attached_to: format!("sha256:{}", "b".repeat(64)),
            found_in: "referrers".into(),
            format: "application/vnd.dev.sigstore.bundle.v0.3+json".into(),
            signer: "someone".into(),
            signer_facts: serde_json::json!({}),
            time: serde_json::json!({"source": "rfc3161", "value": "2026-01-01T00:00:00Z"}),
            tlog_entries: 1,
        }
    }

    fn error(kind: ErrorKind) -> Option<ErrorReport> {
        Some(ErrorReport {
            class: "transient".into(),
            kind,
            message: "registry reg.example: connection refused".into(),
        })
    }

    fn response(images: Vec<ImageReport>, allow_unverified: bool) -> GateResponse {
        let mut images = images;
        for i in &mut images {
            i.status = i.classify();
        }
        let mut r = GateResponse::new(images, None);
        r.exit_code = exit_code_with(&r.images, allow_unverified);
        r
    }

    #[test]
    fn every_row_of_the_exit_code_table() {
        // 0: allowed, every contract evaluated (audit denials included).
        let mut i = image(Outcome::Allow);
        i.contracts = vec![contract("enforce", "pass"), contract("audit", "deny")];
        i.evidence = vec![evidence()];
        assert_eq!(i.classify(), ImageStatus::Allowed);
        // 1: allowed, but the evidence could not be fetched.
        let mut i = image(Outcome::Allow);
        i.error = error(ErrorKind::Operational);
        assert_eq!(i.classify(), ImageStatus::Unverified);
        assert_eq!(i.classify().exit_code(false), 1);
        assert_eq!(i.classify().exit_code(true), 0);
        // 1: allowed, but an audit contract could not be evaluated.
        let mut i = image(Outcome::Warn);
        i.contracts = vec![contract("audit", "error")];
        assert_eq!(i.classify(), ImageStatus::Unverified);
        // 1: denied because of an operational error, even with the flag.
        let mut i = image(Outcome::Deny);
        i.error = error(ErrorKind::Operational);
        assert_eq!(i.classify(), ImageStatus::Error);
        assert_eq!(i.classify().exit_code(true), 1);
        // 1: denied only because an enforced contract failed to evaluate.
        let mut i = image(Outcome::Deny);
        i.contracts = vec![contract("enforce", "error")];
        i.evidence = vec![evidence()];
        assert_eq!(i.classify(), ImageStatus::Error);
        // 2: a contract denied, with evidence verified.
        let mut i = image(Outcome::Deny);
        i.contracts = vec![contract("enforce", "deny"), contract("enforce", "error")];
        i.evidence = vec![evidence()];
        assert_eq!(i.classify(), ImageStatus::Denied);
        // 2: no binding, unmatched: deny.
        let mut i = image(Outcome::Deny);
        i.unmatched = true;
        assert_eq!(i.classify(), ImageStatus::Denied);
        // 3: a contract denied and nothing verified.
        let mut i = image(Outcome::Deny);
        i.contracts = vec![contract("enforce", "deny")];
        assert_eq!(i.classify(), ImageStatus::NoEvidence);
        // 3: an evidence error.
        let mut i = image(Outcome::Deny);
        i.error = error(ErrorKind::Evidence);
        assert_eq!(i.classify(), ImageStatus::NoEvidence);
    }

    #[test]
    fn the_first_code_that_applies_wins_in_the_order_1_2_3_0() {
        let allowed = image(Outcome::Allow);
        let mut unverified = image(Outcome::Allow);
        unverified.error = error(ErrorKind::Operational);
        let mut denied = image(Outcome::Deny);
        denied.contracts = vec![contract("enforce", "deny")];
        denied.evidence = vec![evidence()];
        let mut none = image(Outcome::Deny);
        none.contracts = vec![contract("enforce", "deny")];
        let code =
            |v: Vec<&ImageReport>, flag| response(v.into_iter().cloned().collect(), flag).exit_code;
        assert_eq!(code(vec![&allowed], false), 0);
        assert_eq!(code(vec![&allowed, &none], false), 3);
        assert_eq!(code(vec![&none, &denied], false), 2);
        assert_eq!(code(vec![&denied, &unverified], false), 1);
        assert_eq!(code(vec![&denied, &unverified], true), 2);
        assert_eq!(code(vec![&allowed, &unverified], true), 0);
    }

    #[test]
    fn an_unverified_image_is_never_just_allowed() {
        let mut i = image(Outcome::Allow);
        i.error = error(ErrorKind::Operational);
        let text = render(&response(vec![i], false), Style::default());
        let first = text.lines().next().unwrap();
        assert_eq!(first, "ALLOWED, NOT VERIFIED  reg.example/app:1");
        assert!(text.contains(
            "\n  NOTHING VERIFIED: its evidence could not be fetched (error above), so no contract judged this image\n"
        ));
        assert!(
            text.contains("\n  evidence   none (not fetched)\n"),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.starts_with("ALLOWED:")), "{text}");
        let md = markdown(&response(
            vec![{
                let mut i = image(Outcome::Allow);
                i.error = error(ErrorKind::Operational);
                i
            }],
            false,
        ));
        assert!(md.starts_with("## provgate: allowed, not verified"), "{md}");
        assert!(md.contains("NOTHING VERIFIED"), "{md}");
    }

    #[test]
    fn fixes_are_printed_once_and_ignored_once() {
        let v: Violation = serde_json::from_value(serde_json::json!({
            "msg": "no provenance",
            "requirement": "prov",
            "fix": "attach provenance signed by the release workflow",
        }))
        .unwrap();
        let mut i = image(Outcome::Deny);
        let mut c = contract("enforce", "deny");
        c.deny = vec![v.clone()];
        c.ignored = vec![IgnoredReport {
            digest: format!("sha256:{}", "c".repeat(64)),
            reason: "ignored: signer not trusted: subject \"x\" does not match".into(),
        }];
        i.contracts = vec![c];
        i.evidence = vec![evidence()];
        i.denials = vec![format!(
            "reg.example/app:1: [c] no provenance (requirement prov) Fix: {}",
            v.fix.clone().unwrap()
        )];
        let text = render(&response(vec![i.clone()], false), Style::default());
        assert_eq!(
            text.matches("attach provenance signed by the release workflow")
                .count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("\n    deny  no provenance (requirement prov)\n"),
            "{text}"
        );
        assert!(
            text.contains(": signer not trusted: subject") && !text.contains("ignored: signer"),
            "{text}"
        );
        // Without an admission line (audit), the contract line carries it.
        i.denials.clear();
        i.outcome = Outcome::Allow;
        i.contracts[0].mode = "audit".into();
        i.contracts[0].configured_mode = "audit".into();
        let text = render(&response(vec![i], false), Style::default());
        assert!(
            text.contains("\n          fix: attach provenance signed by the release workflow\n"),
            "{text}"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let mut i = image(Outcome::Deny);
        i.contracts = vec![contract("enforce", "deny")];
        let r = response(vec![i], false);
        let plain = render(&r, Style::default());
        assert!(!plain.contains('\u{1b}'), "{plain}");
        let coloured = render(
            &r,
            Style {
                color: true,
                allow_unverified: false,
            },
        );
        assert!(coloured.contains("\u{1b}["), "{coloured}");
        assert!(coloured.contains("DENIED"), "{coloured}");
    }

    #[test]
    fn certificate_hints_name_the_fix_in_plain_words() {
        use rustls::CertificateError as C;
        let h = certificate_hint(&C::UnknownIssuer, "gate.example", false);
        assert!(h.contains("--ca FILE"), "{h}");
        let h = certificate_hint(&C::UnknownIssuer, "gate.example", true);
        assert!(h.contains("not signed by the CA given with --ca"), "{h}");
        let h = certificate_hint(
            &C::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("gate.example")
                    .unwrap()
                    .to_owned(),
                presented: vec![
                    "DnsName(\"localhost\")".into(),
                    "IpAddress(127.0.0.1)".into(),
                ],
            },
            "gate.example",
            false,
        );
        assert_eq!(
            h,
            "the certificate is not issued for \"gate.example\" but for localhost, 127.0.0.1: use one of these names in --server, or serve a certificate that names \"gate.example\""
        );
        assert!(!h.contains("DnsName") && !h.contains("IpAddress"));
        let h = certificate_hint(&C::Expired, "gate.example", false);
        assert!(h.contains("validity period"), "{h}");
    }
}
