//! `provgate serve`: the admission webhook and gate.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CliError, Exit};
use crate::server::{ServeOptions, run};

/// Arguments of `provgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (default: embedded defaults — listen on
    /// 0.0.0.0:8443 with a generated development certificate, trust the
    /// Sigstore public-good and GitHub roots, bind the built-in contracts in
    /// audit mode to every namespace but kube-system, allow unmatched images;
    /// no gate token, so the CI gate answers 401 until `gate.tokens` or
    /// `gate.oidc` is configured).
    #[arg(long, short, env = "PROVGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (overrides `server.listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Where a development certificate is written when none is configured.
    #[arg(long, default_value = "certs/dev")]
    dev_cert_dir: PathBuf,
    /// How often certificates, configuration and contracts are re-read, in
    /// milliseconds.
    #[arg(long, default_value_t = 2000)]
    poll_ms: u64,
    /// Serve `POST /noop/validate`, the benchmark baseline (parses the
    /// review and denies).
    #[arg(long, hide = true)]
    noop_endpoint: bool,
}

/// Runs `provgate serve`.
pub fn run_serve(args: ServeArgs) -> Result<Exit, CliError> {
    super::init_logging(true);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new("starting the runtime", e))?;
    let opts = ServeOptions {
        config: args.config,
        listen: args.listen,
        dev_cert_dir: args.dev_cert_dir,
        noop_endpoint: args.noop_endpoint,
        poll_interval: Duration::from_millis(args.poll_ms.max(100)),
    };
    runtime
        .block_on(run(opts))
        .map_err(|e| CliError::new("provgate serve", e))?;
    Ok(Exit::Ok)
}
