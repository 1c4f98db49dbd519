//! `provgate check IMAGE…`: the answer the cluster will give, locally or
//! from a running gate.
//!
//! Without `--server` the local engine runs with `--config` (or the
//! embedded defaults); with it, the gate does, authenticated by a static
//! token or a CI OIDC token taken from an environment variable. Both print
//! the same table, or the same JSON ([`crate::wire::GateResponse`]), and
//! exit 0 allowed, 2 denied, 3 no verifiable evidence, 1 error.

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
use crate::policy::RequestContext;
use crate::wire::{GateContext, GateRequest, GateResponse, ImageReport};

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
    #[arg(long, requires = "server", conflicts_with = "oidc_token_env")]
    token_env: Option<String>,
    /// Environment variable holding a CI OIDC token (GitHub, GitLab).
    #[arg(long, requires = "server")]
    oidc_token_env: Option<String>,
    /// Extra CA certificate (PEM) to trust for `--server`.
    #[arg(long, requires = "server")]
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
    /// Judge these contracts instead of the bindings (repeatable).
    #[arg(long = "contract")]
    contracts: Vec<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Also list the registry requests made (local engine).
    #[arg(long)]
    explain: bool,
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
    let response = result?;
    match args.output {
        Output::Json => print_json(&response)?,
        Output::Table => out!("{}", table(&response)),
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
        3 => Exit::NoEvidence,
        _ => Exit::Denied,
    })
}

async fn local(
    args: &CheckArgs,
    labels: BTreeMap<String, String>,
) -> Result<GateResponse, CliError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = crate::server::load_config(args.config.as_deref())
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
    };
    let decisions = engine.decide(&request).await;
    let reports = decisions
        .iter()
        .map(|d| ImageReport::from_decision(d, args.explain))
        .collect();
    Ok(GateResponse::new(reports, None))
}

async fn remote(
    args: &CheckArgs,
    server: &str,
    labels: BTreeMap<String, String>,
) -> Result<GateResponse, CliError> {
    let var = args.token_env.as_ref().or(args.oidc_token_env.as_ref());
    let token = match var {
        Some(v) => Some(std::env::var(v).map_err(|_| {
            CliError::msg(format!(
                "environment variable {v} is not set (--token-env/--oidc-token-env)"
            ))
        })?),
        None => None,
    };
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("provgate/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &args.ca {
        let pem =
            std::fs::read(ca).map_err(|e| CliError::new(format!("reading {}", ca.display()), e))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| CliError::new(format!("{} is not a PEM CA bundle", ca.display()), e))?
        {
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
    let mut req = client.post(&url).json(&request);
    if let Some(t) = token {
        req = req.bearer_auth(t.trim());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| CliError::new(format!("calling {url}"), e))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| CliError::new(format!("reading the answer of {url}"), e))?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        let hint = match status.as_u16() {
            401 => " (check the token given with --token-env / --oidc-token-env)",
            _ => "",
        };
        return Err(CliError::msg(format!(
            "the gate answered {status}: {msg}{hint}"
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| CliError::new(format!("unreadable answer from {url}"), e))
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Allow => "ALLOWED",
        Outcome::Warn => "ALLOWED WITH WARNINGS",
        Outcome::Deny => "DENIED",
    }
}

/// The human-readable table.
pub fn table(r: &GateResponse) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for i in &r.images {
        let _ = writeln!(s, "{}  {}", outcome_word(i.outcome), i.image);
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
            let _ = writeln!(s, "    ✓ {} {what}", e.kind);
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
                "    ✗ {} on {}{}: {}",
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
            let _ = writeln!(
                s,
                "  contract   {} {} ({binding}{mode}): {}",
                c.name, c.version, c.verdict
            );
            for v in c.deny.iter() {
                let _ = writeln!(
                    s,
                    "    deny  {}",
                    crate::engine::decision::violation_text(v)
                );
            }
            for v in c.warn.iter() {
                let _ = writeln!(
                    s,
                    "    warn  {}",
                    crate::engine::decision::violation_text(v)
                );
            }
            if let Some(e) = &c.error {
                let _ = writeln!(s, "    error {e}");
            }
            if let Some(e) = &c.exemption {
                let _ = writeln!(s, "    exempt until {}: {}", e.expires, e.reason);
            }
            for g in &c.ignored {
                let _ = writeln!(s, "    ignored {}: {}", g.digest, g.reason);
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
    let _ = writeln!(
        s,
        "{}: {denied} of {} image{} denied",
        outcome_word(r.outcome),
        r.images.len(),
        if r.images.len() == 1 { "" } else { "s" }
    );
    s
}

/// The GitHub Actions job summary.
pub fn markdown(r: &GateResponse) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "## provgate: {}\n\n",
        outcome_word(r.outcome).to_lowercase()
    );
    s.push_str("| image | digest | outcome |\n|---|---|---|\n");
    for i in &r.images {
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} |",
            i.image,
            i.digest.as_deref().unwrap_or("-"),
            i.outcome.as_str()
        );
    }
    for i in &r.images {
        if i.denials.is_empty() && i.warnings.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n### `{}`\n", i.image);
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
