//! `provgate check IMAGE…`: the answer the cluster will give, locally or
//! from a running gate.
//!
//! Without `--server` the local engine runs with `--config` (or the
//! embedded defaults); with it, the gate does, authenticated by a static
//! token or a CI OIDC token taken from an environment variable. Both print
//! the same table, or the same JSON ([`crate::respond::json::GateResponse`]), and
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
use crate::engine::{DecisionRequest, Engine, ImageUse};
use crate::metrics::Metrics;
use crate::policy::RequestContext;
mod remote;
mod render;

use remote::remote;
pub(crate) use render::color_for;
use render::unverified_lines;
pub use render::{Style, markdown, render, table};

use crate::respond::json::{GateResponse, ImageReport, ImageStatus, exit_code_with};

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
            source: crate::policy::Source::Cli,
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

#[cfg(test)]
mod tests;
