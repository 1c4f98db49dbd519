//! Compliance of what already runs, and the impact of a contract change.
//!
//! [`workloads_from_list`] reads `kubectl get … -o json` output (or objects
//! from the API, [`inventory`]) into [`Workload`]s: one per top-level object
//! (a Pod or Job owned by a controller is represented by that controller's
//! template). [`evaluate`] judges them with the engine — through the same
//! caches as admission, with a concurrency limit, so every distinct digest
//! is discovered and verified once — into a [`Report`] grouped by namespace
//! and team. [`diff`] compares two reports (current and proposed contracts)
//! into an [`Impact`].

pub mod continuous;
pub mod inventory;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::admission::images::{ObjectImage, images_of};
use crate::engine::decision::{Outcome, Verdict};
use crate::engine::{DecisionRequest, Engine, ImageUse, Runtime};
use crate::policy::RequestContext;
use crate::wire::ImageReport;

/// The report's `apiVersion`.
pub const REPORT_V1: &str = "provgate.dev/report/v1";

/// The `report` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReportSpec {
    /// The object label that names the owning team.
    #[serde(default = "default_team_label")]
    pub team_label: String,
    /// Continuous in-cluster reporting in `provgate serve`.
    #[serde(default)]
    pub continuous: ContinuousSpec,
}

fn default_team_label() -> String {
    "team".into()
}

impl Default for ReportSpec {
    fn default() -> Self {
        ReportSpec {
            team_label: default_team_label(),
            continuous: ContinuousSpec::default(),
        }
    }
}

/// Continuous reporting settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContinuousSpec {
    /// Watch the cluster and keep a live report (needs read-only RBAC).
    #[serde(default)]
    pub enabled: bool,
    /// Re-evaluate everything this often (evidence ages, certificates and
    /// timestamps expire), besides on every configuration change.
    #[serde(default = "default_interval")]
    pub interval: crate::config::Dur,
    /// Workloads judged at once (the first report must not stampede the
    /// registries).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The API server (default: in-cluster service account configuration).
    #[serde(default)]
    pub api_server: Option<String>,
}

fn default_interval() -> crate::config::Dur {
    crate::config::Dur(std::time::Duration::from_secs(600))
}
fn default_concurrency() -> usize {
    4
}

impl Default for ContinuousSpec {
    fn default() -> Self {
        ContinuousSpec {
            enabled: false,
            interval: default_interval(),
            concurrency: default_concurrency(),
            api_server: None,
        }
    }
}

/// One running workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Its images.
    pub images: Vec<ObjectImage>,
}

impl Workload {
    /// `namespace/Kind/name`, the workload's identity in a report.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// Why objects could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The input is not a Kubernetes list or object.
    #[error("not a Kubernetes list or object: {0}")]
    Input(String),
}

/// Objects judged, by kind.
const KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

/// Whether an object is owned by a controller (represented by it).
fn controlled(object: &serde_json::Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(|o| o.as_array())
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("controller").and_then(|c| c.as_bool()) == Some(true))
        })
}

/// One object into a workload; `None` for other kinds and controlled
/// objects. Objects that do not parse are errors (the report must not
/// quietly drop a workload).
pub fn workload_of(object: &serde_json::Value) -> Result<Option<Workload>, ReportError> {
    let kind = object
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    if !KINDS.contains(&kind) || controlled(object) {
        return Ok(None);
    }
    let meta = |k: &str| {
        object
            .pointer(&format!("/metadata/{k}"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let labels = object
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l.clone()).ok())
        .unwrap_or_default();
    let images = images_of(kind, object)
        .map_err(|e| ReportError::Input(e.to_string()))?
        .unwrap_or_default();
    Ok(Some(Workload {
        namespace: meta("namespace"),
        kind: kind.to_owned(),
        name: meta("name"),
        labels,
        images,
    }))
}

/// Workloads from `kubectl get … -A -o json` (a `List`) or one object.
pub fn workloads_from_list(bytes: &[u8]) -> Result<Vec<Workload>, ReportError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ReportError::Input(e.to_string()))?;
    let items: Vec<serde_json::Value> = match v.get("items").and_then(|i| i.as_array()) {
        Some(items) => items.clone(),
        None if v.get("kind").is_some() => vec![v],
        None => return Err(ReportError::Input("no `items` and no `kind`".into())),
    };
    let mut out = Vec::new();
    for item in &items {
        if let Some(w) = workload_of(item)? {
            out.push(w);
        }
    }
    out.sort_by_key(|w| w.key());
    Ok(out)
}

/// One workload's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    /// Namespace.
    pub namespace: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// The team (the configured label), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// What admission would answer for it now.
    pub outcome: Outcome,
    /// No contract fails for any image, in any mode (audit and warn
    /// included); exemptions count as compliant.
    pub compliant: bool,
    /// Each image.
    pub images: Vec<ImageReport>,
}

/// Counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Workloads.
    pub workloads: usize,
    /// Compliant ones.
    pub compliant: usize,
    /// Ones admission would deny now.
    pub would_deny: usize,
}

/// The summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Everything.
    pub total: Counts,
    /// Per team (`""` for workloads without the label).
    pub by_team: BTreeMap<String, Counts>,
    /// Per namespace.
    pub by_namespace: BTreeMap<String, Counts>,
    /// Distinct digests judged.
    pub digests: usize,
}

/// A compliance report (`provgate.dev/report/v1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`REPORT_V1`].
    pub api_version: String,
    /// When it was made (RFC 3339).
    pub generated_at: String,
    /// The label naming teams.
    pub team_label: String,
    /// The counts.
    pub summary: Summary,
    /// Per workload, sorted by namespace, kind and name.
    pub workloads: Vec<WorkloadReport>,
}

fn image_compliant(i: &ImageReport) -> bool {
    i.error.is_none()
        && !(i.unmatched && i.outcome == Outcome::Deny)
        && i.contracts
            .iter()
            .all(|c| c.verdict != Verdict::Deny.as_str() && c.verdict != Verdict::Error.as_str())
}

/// Judges `workloads` with `engine` under the configuration `rt` (the
/// engine's own, or a proposed one sharing its caches).
pub async fn evaluate(
    engine: &Engine,
    rt: Arc<Runtime>,
    workloads: &[Workload],
    concurrency: usize,
) -> Report {
    let team_label = rt.config.spec.report.team_label.clone();
    // Owned items: the futures must not borrow from the iterator (they run
    // on the server's tasks in continuous mode).
    let results: Vec<WorkloadReport> =
        futures_util::stream::iter(workloads.iter().cloned().map(|w| {
            let rt = rt.clone();
            let team_label = team_label.clone();
            async move {
                let request = DecisionRequest {
                    images: w
                        .images
                        .iter()
                        .map(|i| ImageUse {
                            image: i.image.clone(),
                            container: Some(i.name.clone()),
                            path: i.pointer.clone(),
                        })
                        .collect(),
                    context: RequestContext {
                        source: "report".into(),
                        namespace: Some(w.namespace.clone()),
                        kind: Some(w.kind.clone()),
                        name: Some(w.name.clone()),
                        container: None,
                        operation: None,
                        labels: w.labels.clone(),
                        namespace_labels: Default::default(),
                        user: None,
                    },
                    deadline: None,
                    contracts: None,
                };
                let decisions = engine.decide_with(rt, &request).await;
                let images: Vec<ImageReport> = decisions
                    .iter()
                    .map(|d| ImageReport::from_decision(d, false))
                    .collect();
                let outcome = images
                    .iter()
                    .map(|i| i.outcome)
                    .max()
                    .unwrap_or(Outcome::Allow);
                WorkloadReport {
                    namespace: w.namespace.clone(),
                    kind: w.kind.clone(),
                    name: w.name.clone(),
                    team: w.labels.get(&team_label).cloned(),
                    outcome,
                    compliant: images.iter().all(image_compliant),
                    images,
                }
            }
        }))
        .buffered(concurrency.max(1))
        .collect()
        .await;
    assemble(engine.clock().now(), team_label, results)
}

/// A report over workload results (sorted by namespace, kind and name).
pub fn assemble(
    now: jiff::Timestamp,
    team_label: String,
    mut results: Vec<WorkloadReport>,
) -> Report {
    results.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    let mut summary = Summary::default();
    let mut digests = std::collections::BTreeSet::new();
    for w in &results {
        for c in [
            &mut summary.total,
            summary
                .by_team
                .entry(w.team.clone().unwrap_or_default())
                .or_default(),
            summary.by_namespace.entry(w.namespace.clone()).or_default(),
        ] {
            c.workloads += 1;
            c.compliant += usize::from(w.compliant);
            c.would_deny += usize::from(w.outcome == Outcome::Deny);
        }
        digests.extend(w.images.iter().filter_map(|i| i.digest.clone()));
    }
    summary.digests = digests.len();
    Report {
        api_version: REPORT_V1.into(),
        generated_at: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        team_label,
        summary,
        workloads: results,
    }
}

/// One workload whose answer changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// `namespace/Kind/name`.
    pub workload: String,
    /// The team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The answer now.
    pub before: Outcome,
    /// The answer under the proposal.
    pub after: Outcome,
    /// Why: the proposal's denial and warning lines.
    pub reasons: Vec<String>,
}

/// The impact of a proposed configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Impact {
    /// `provgate.dev/report-impact/v1`.
    pub api_version: String,
    /// Workloads compared.
    pub workloads: usize,
    /// Allowed (or warned) now, denied under the proposal.
    pub newly_denied: Vec<Change>,
    /// Allowed now, warned under the proposal.
    pub newly_warned: Vec<Change>,
    /// Denied or warned now, better under the proposal.
    pub improved: Vec<Change>,
}

impl Impact {
    /// Whether the proposal would deny something that is admitted today.
    pub fn denies_more(&self) -> bool {
        !self.newly_denied.is_empty()
    }
}

/// Compares the current report with the proposed one.
pub fn diff(current: &Report, proposed: &Report) -> Impact {
    let before: BTreeMap<String, &WorkloadReport> = current
        .workloads
        .iter()
        .map(|w| (format!("{}/{}/{}", w.namespace, w.kind, w.name), w))
        .collect();
    let mut impact = Impact {
        api_version: "provgate.dev/report-impact/v1".into(),
        workloads: proposed.workloads.len(),
        newly_denied: Vec::new(),
        newly_warned: Vec::new(),
        improved: Vec::new(),
    };
    for w in &proposed.workloads {
        let key = format!("{}/{}/{}", w.namespace, w.kind, w.name);
        let Some(b) = before.get(&key) else { continue };
        if b.outcome == w.outcome {
            continue;
        }
        let reasons = w
            .images
            .iter()
            .flat_map(|i| i.denials.iter().chain(&i.warnings).cloned())
            .collect();
        let change = Change {
            workload: key,
            team: w.team.clone(),
            before: b.outcome,
            after: w.outcome,
            reasons,
        };
        match (b.outcome, w.outcome) {
            (_, Outcome::Deny) => impact.newly_denied.push(change),
            (Outcome::Allow, Outcome::Warn) => impact.newly_warned.push(change),
            _ => impact.improved.push(change),
        }
    }
    impact
}

/// The human-readable report: grouped by namespace, then the summary.
pub fn table(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mut ns = "";
    for w in &r.workloads {
        if w.namespace != ns {
            ns = &w.namespace;
            let _ = writeln!(s, "namespace {ns}");
        }
        let status = if w.compliant {
            "compliant"
        } else {
            "NON-COMPLIANT"
        };
        let team = w
            .team
            .as_deref()
            .map(|t| format!(" team={t}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {}/{}{team}: {status} (admission: {})",
            w.kind,
            w.name,
            w.outcome.as_str()
        );
        for i in &w.images {
            let _ = writeln!(
                s,
                "    {} {} {}",
                i.container.as_deref().unwrap_or("-"),
                i.image,
                i.digest.as_deref().unwrap_or("(no digest)")
            );
            for c in &i.contracts {
                if c.verdict != "pass" {
                    let _ = writeln!(
                        s,
                        "      {} {} ({}): {}",
                        c.name, c.version, c.mode, c.verdict
                    );
                    for v in c.deny.iter().chain(&c.warn) {
                        let _ = writeln!(
                            s,
                            "        - {}",
                            crate::engine::decision::violation_text(v)
                        );
                    }
                    if let Some(e) = &c.error {
                        let _ = writeln!(s, "        - {e}");
                    }
                }
            }
            if let Some(e) = &i.error {
                let _ = writeln!(s, "      error: {}", e.message);
            }
            if i.unmatched {
                let _ = writeln!(s, "      no binding covers this image");
            }
        }
    }
    s.push_str(&summary_text(r));
    s
}

/// "X of Y workloads compliant", overall and per team.
pub fn summary_text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let t = &r.summary.total;
    let _ = writeln!(
        s,
        "\n{} of {} workloads compliant; {} would be denied by admission now ({} distinct digests)",
        t.compliant, t.workloads, t.would_deny, r.summary.digests
    );
    for (team, c) in &r.summary.by_team {
        let name = if team.is_empty() {
            format!("(no {} label)", r.team_label)
        } else {
            team.clone()
        };
        let _ = writeln!(
            s,
            "  team {name}: {} of {} compliant, {} would be denied",
            c.compliant, c.workloads, c.would_deny
        );
    }
    s
}

/// The impact, for people.
pub fn impact_table(i: &Impact) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let section = |s: &mut String, title: &str, list: &[Change]| {
        if list.is_empty() {
            return;
        }
        let _ = writeln!(s, "{title} ({}):", list.len());
        for c in list {
            let team = c
                .team
                .as_deref()
                .map(|t| format!(" team={t}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {}{team}: {} -> {}",
                c.workload,
                c.before.as_str(),
                c.after.as_str()
            );
            for r in &c.reasons {
                let _ = writeln!(s, "    - {r}");
            }
        }
    };
    section(&mut s, "would newly be DENIED", &i.newly_denied);
    section(&mut s, "would newly be warned", &i.newly_warned);
    section(&mut s, "would improve", &i.improved);
    let _ = writeln!(
        s,
        "{} workloads compared: {} newly denied, {} newly warned, {} improved",
        i.workloads,
        i.newly_denied.len(),
        i.newly_warned.len(),
        i.improved.len()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn controlled_objects_are_represented_by_their_controller() {
        let list = json!({"kind": "List", "items": [
            {"kind": "Deployment", "metadata": {"name": "api", "namespace": "pay", "labels": {"team": "pay"}},
             "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:1"}]}}}},
            {"kind": "Pod", "metadata": {"name": "api-1", "namespace": "pay", "ownerReferences": [{"kind": "ReplicaSet", "name": "api-x", "controller": true, "apiVersion": "apps/v1", "uid": "u"}]},
             "spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:1"}]}},
            {"kind": "Pod", "metadata": {"name": "debug", "namespace": "pay"}, "spec": {"containers": [{"name": "sh", "image": "busybox"}]}},
            {"kind": "Service", "metadata": {"name": "svc", "namespace": "pay"}}
        ]});
        let w = workloads_from_list(list.to_string().as_bytes()).unwrap();
        let keys: Vec<String> = w.iter().map(|w| w.key()).collect();
        assert_eq!(keys, vec!["pay/Deployment/api", "pay/Pod/debug"]);
        assert_eq!(w[0].labels.get("team").map(String::as_str), Some("pay"));
    }

    #[test]
    fn malformed_workloads_are_errors() {
        let bad = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": 3}});
        assert!(workloads_from_list(bad.to_string().as_bytes()).is_err());
        assert!(workloads_from_list(b"[1,2]").is_err());
    }
}
