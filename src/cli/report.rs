//! `provgate report`: which running workloads fail the contracts today, per
//! team — and, with `--contracts DIR` or `--proposed-config F`, what a
//! contract change would break before it is rolled out.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, Exit, print_json};
use crate::clock::SystemClock;
use crate::engine::{Engine, Runtime};
use crate::metrics::Metrics;
use crate::report::{self, Workload};

/// Output formats of `provgate report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportOutput {
    /// Workloads grouped by namespace, then the summary.
    Table,
    /// The `provgate.dev/report/v1` (or `report-impact/v1`) JSON.
    Json,
    /// Only "X of Y workloads compliant", overall and per team (with a
    /// preview: only the counts of changes, overall and per team).
    Summary,
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport YAML, one per namespace (the
    /// format policy-reporter reads); not with a preview.
    #[value(name = "policyreport")]
    PolicyReport,
}

/// Arguments of `provgate report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The current configuration (default: embedded defaults).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Objects from `kubectl get namespaces,pods,deployments,statefulsets,daemonsets,jobs,cronjobs -A -o json` (`-` for stdin).
    ///
    /// Namespaces the webhooks exempt (`report.namespaceSelector`; by
    /// default kube-system) are counted, not judged. Include `namespaces`
    /// when that selector, or a binding, uses namespace labels.
    #[arg(long, conflicts_with = "cluster")]
    input: Option<PathBuf>,
    /// Read the workloads from the Kubernetes API (in-cluster
    /// configuration, or `--api-server`).
    #[arg(long)]
    cluster: bool,
    /// The API server for `--cluster` (plain HTTP only for local tests).
    #[arg(long, requires = "cluster")]
    api_server: Option<String>,
    /// Preview: contracts that replace (or add to) the current ones.
    #[arg(long, conflicts_with = "proposed_config")]
    contracts: Option<PathBuf>,
    /// Preview: a whole proposed configuration (bindings, modes, contracts).
    #[arg(long)]
    proposed_config: Option<PathBuf>,
    /// Workloads judged at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Exit 2 when a workload is not compliant (without a preview).
    #[arg(long)]
    fail_on_noncompliant: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = ReportOutput::Table)]
    output: ReportOutput,
}

/// Runs `provgate report`.
pub fn run(args: ReportArgs) -> Result<Exit, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new("starting the runtime", e))?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ReportArgs) -> Result<Exit, CliError> {
    let preview = args.contracts.is_some() || args.proposed_config.is_some();
    if preview && args.output == ReportOutput::PolicyReport {
        return Err(CliError::msg(
            "-o policyreport reports the workloads as they are judged now;              it cannot be combined with --contracts or --proposed-config              (use -o json or -o summary for a preview)",
        ));
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = crate::config::load(args.config.as_deref())
        .map_err(|e| CliError::new("loading the configuration", e))?;
    let proposal = match (&args.contracts, &args.proposed_config) {
        (Some(dir), None) => Some(
            crate::config::Config::load_proposal(args.config.as_deref(), dir).map_err(|e| {
                CliError::new(
                    format!("loading the proposed contracts in {}", dir.display()),
                    e,
                )
            })?,
        ),
        (None, Some(p)) => Some(crate::config::Config::load(p).map_err(|e| {
            CliError::new(
                format!("loading the proposed configuration {}", p.display()),
                e,
            )
        })?),
        _ => None,
    };
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::new(config, metrics.clone(), Arc::new(SystemClock));
    let workloads: Vec<Workload> = if args.cluster {
        let client = report::inventory::client(args.api_server.as_deref())
            .await
            .map_err(|e| CliError::new("connecting to the Kubernetes API", e))?;
        let mut workloads: Vec<Workload> = report::inventory::list_all(&client)
            .await
            .map_err(|e| CliError::new("listing workloads", e))?
            .into_values()
            .collect();
        let needed = report::scope::labels_needed(&engine.runtime())
            || proposal.as_ref().is_some_and(|p| {
                p.spec.report.scope().needs_labels() || p.spec.admission.trust_namespace_labels
            });
        if needed {
            let source = crate::engine::namespaces::NamespaceLabels::new(
                client,
                std::time::Duration::from_secs(60),
            );
            // A namespace the configuration exempts by name needs no lookup;
            // with a preview, both configurations' namespaces are read.
            let scope = match &proposal {
                None => engine.runtime().config.spec.report.scope().clone(),
                Some(_) => crate::config::scope::NamespaceScope::new(&Default::default())
                    .map_err(|e| CliError::new("the preview's namespace scope", e))?,
            };
            report::scope::fill_namespace_labels(&mut workloads, &source, &scope).await;
        }
        workloads
    } else {
        let bytes = match args.input.as_deref() {
            None => {
                return Err(CliError::msg(
                    "give --input FILE (or - for stdin), or --cluster",
                ));
            }
            Some(p) if p.as_os_str() == "-" => {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .map_err(|e| CliError::new("reading stdin", e))?;
                b
            }
            Some(p) => super::read_file(p)?,
        };
        report::workloads_from_list(&bytes).map_err(|e| CliError::new("reading --input", e))?
    };
    let current = report::evaluate(&engine, engine.runtime(), &workloads, args.concurrency).await;
    match proposal {
        None => {
            match args.output {
                ReportOutput::Json => print_json(&current)?,
                ReportOutput::Table => out!("{}", report::table(&current)),
                ReportOutput::Summary => out!("{}", report::summary_text(&current)),
                ReportOutput::PolicyReport => {
                    let now = current
                        .generated_at
                        .parse()
                        .unwrap_or_else(|_| engine.clock().now());
                    let reports = report::policyreport::policy_reports(&current, now);
                    let yaml = report::policyreport::to_yaml(&reports)
                        .map_err(|e| CliError::new("printing PolicyReports", e))?;
                    out!("{yaml}")
                }
            }
            let all = current.summary.total.compliant == current.summary.total.workloads;
            Ok(if args.fail_on_noncompliant && !all {
                Exit::Denied
            } else {
                Exit::Ok
            })
        }
        Some(p) => {
            let rt = Arc::new(Runtime::new(p, metrics));
            let proposed = report::evaluate(&engine, rt, &workloads, args.concurrency).await;
            let impact = report::diff(&current, &proposed);
            match args.output {
                ReportOutput::Json => print_json(&impact)?,
                ReportOutput::Summary => out!("{}", report::impact_summary_text(&impact)),
                ReportOutput::Table | ReportOutput::PolicyReport => {
                    out!("{}", report::impact_table(&impact))
                }
            }
            Ok(if impact.denies_more() {
                Exit::Denied
            } else {
                Exit::Ok
            })
        }
    }
}
