//! The Rust half of `benches/load.sh`: a bench-only tool, never shipped.
//!
//! - `registry`: an in-process OCI registry serving N images, each with one
//!   SLSA provenance attestation signed here with an ECDSA P-256 key (a
//!   Sigstore bundle v0.3 with `publicKey` material and no tlog, as
//!   provgate's key authorities with `tlog: optional` accept), found
//!   through the OCI 1.1 referrers API. Signing 10,000 images with the kit
//!   (~0.3 s each) is too slow; here it takes about a second.
//! - `post`: sends AdmissionReviews (one JSON document per line of a file)
//!   to `provgate serve`, over a fixed number of keep-alive connections (or
//!   as one burst of concurrent requests on connections opened beforehand),
//!   and reports latency percentiles, answers, the change in provgate's
//!   `/metrics` (discoveries, verifications, evaluations, cache results,
//!   registry requests by kind) and, given a pid, its VmRSS and CPU time.
//!
//! Output is one JSON object on stdout; benches/report.py turns it into
//! the tables of docs/benchmarks.md.

mod metrics;
mod post;
mod registry;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "load-test harness for provgate (benches/load.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a fake registry of signed images until killed.
    Registry(registry::Args),
    /// Send reviews to provgate and report.
    Post(post::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Registry(a) => rt.block_on(registry::run(a)),
        Cmd::Post(a) => rt.block_on(post::run(a)),
    }
}
