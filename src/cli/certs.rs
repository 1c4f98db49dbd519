//! `provgate certs generate`: a development CA and serving certificate.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, Exit};

/// `provgate certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write ca.crt, tls.crt and tls.key for the given names (never
    /// replacing existing files without --force).
    Generate(GenerateArgs),
}

/// Arguments of `provgate certs generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// DNS names or IP addresses of the certificate, e.g.
    /// `provgate.provgate.svc` (repeatable).
    #[arg(long = "dns", required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Output directory.
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// Replace existing files. A new CA breaks every webhook configuration
    /// (`caBundle`) and client that trusted the old one.
    #[arg(long)]
    force: bool,
}

/// Runs `provgate certs …`.
pub fn run(cmd: CertsCommand) -> Result<Exit, CliError> {
    match cmd {
        CertsCommand::Generate(a) => {
            let files = crate::server::dev_certs::generate_new(&a.names, &a.out, a.force)
                .map_err(|e| CliError::new("provgate certs generate", e))?;
            outln!("CA certificate (caBundle): {}", files.ca.display());
            outln!("serving certificate:       {}", files.cert.display());
            outln!("serving key:               {}", files.key.display());
            Ok(Exit::Ok)
        }
    }
}
