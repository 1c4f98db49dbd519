//! Compliance of what already runs, and the impact of a contract change.
//!
//! [`workloads_from_list`] reads `kubectl get … -o json` output (or objects
//! from the API, [`inventory`]) into [`Workload`]s: one per top-level object
//! (a Pod or Job owned by a controller is represented by that controller's
//! template). An object that cannot be read (no name, no namespace, a
//! malformed spec) is kept as an unreadable workload, reported and counted,
//! never dropped or counted compliant. [`evaluate`] judges the workloads in
//! the namespaces admission sees ([`crate::config::scope`]: the webhooks'
//! own exemptions) with the engine — through the same caches as admission,
//! with a concurrency limit, so every distinct digest is discovered and
//! verified once — into a [`Report`] grouped by namespace and team. [`diff`] compares
//! two reports (current and proposed contracts) into an [`Impact`].
//! [`policyreport`] turns a report into `wgpolicyk8s.io/v1alpha2`
//! PolicyReports, and [`writer`] keeps them in the cluster. [`continuous`]
//! runs the report inside `provgate serve`, on the one replica that
//! [`leader`] elects.

pub mod continuous;
mod impact;
pub mod inventory;
pub mod leader;
pub mod policyreport;
mod render;
pub mod scope;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::admission::images::{ObjectImage, images_of};
use crate::engine::decision::{Outcome, Verdict};
use crate::engine::{DecisionRequest, Engine, Runtime};
use crate::policy::RequestContext;
use crate::respond::json::ImageReport;

use crate::config::scope::InScope;

pub use impact::{Change, Impact, diff};
pub use render::{impact_summary_text, impact_table, summary_text, table};

/// The report's `apiVersion`.
pub const REPORT_V1: &str = "provgate.dev/report/v1";

/// One running workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Namespace (empty when the object has none: then it is unreadable).
    pub namespace: String,
    /// Kind.
    pub kind: String,
    /// Name (empty when the object has none: then it is unreadable).
    pub name: String,
    /// `apiVersion` of the object (`apps/v1`, `v1`, …).
    pub api_version: String,
    /// `metadata.uid`, when the object has one.
    pub uid: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Its images.
    pub images: Vec<ObjectImage>,
    /// Why the object could not be read; such a workload is reported as
    /// unreadable (not compliant), never judged or dropped.
    pub unreadable: Option<String>,
    /// The labels of its namespace, when known (from `Namespace` objects in
    /// the input, or the API). Used by the namespace selector and by
    /// label-selected bindings (`admission.trustNamespaceLabels`).
    pub namespace_labels: Option<BTreeMap<String, String>>,
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

/// Objects judged, by kind, with the `apiVersion` the API serves them as.
pub const KINDS: &[(&str, &str)] = &[
    ("Pod", "v1"),
    ("Deployment", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"),
    ("Job", "batch/v1"),
    ("CronJob", "batch/v1"),
    ("ReplicationController", "v1"),
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
/// objects. An object of a judged kind that cannot be read (no name, no
/// namespace, a spec that does not parse) is an unreadable workload: the
/// report must neither drop it quietly nor count it compliant.
pub fn workload_of(object: &serde_json::Value) -> Option<Workload> {
    let kind = object
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    let (_, default_version) = KINDS.iter().find(|(k, _)| *k == kind)?;
    if controlled(object) {
        return None;
    }
    let meta = |k: &str| {
        object
            .pointer(&format!("/metadata/{k}"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let api_version = object
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or(default_version)
        .to_owned();
    let labels = object
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l.clone()).ok())
        .unwrap_or_default();
    let (namespace, name) = (meta("namespace"), meta("name"));
    let mut problems = Vec::new();
    if name.is_empty() {
        problems.push("it has no metadata.name".to_owned());
    }
    if namespace.is_empty() {
        problems.push("it has no metadata.namespace".to_owned());
    }
    let images = match images_of(kind, object) {
        Ok(images) => images.unwrap_or_default(),
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    let uid = Some(meta("uid")).filter(|u| !u.is_empty());
    Some(Workload {
        namespace,
        kind: kind.to_owned(),
        name,
        api_version,
        uid,
        labels,
        images,
        unreadable: (!problems.is_empty())
            .then(|| format!("unreadable {kind}: {}", problems.join("; "))),
        namespace_labels: None,
    })
}

/// Workloads from `kubectl get … -A -o json` (a `List`) or one object.
/// `Namespace` objects in the list give their namespaces' labels (for the
/// namespace selector and label-selected bindings).
pub fn workloads_from_list(bytes: &[u8]) -> Result<Vec<Workload>, ReportError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ReportError::Input(e.to_string()))?;
    let items: Vec<serde_json::Value> = match v.get("items").and_then(|i| i.as_array()) {
        Some(items) => items.clone(),
        None if v.get("kind").is_some() => vec![v],
        None => return Err(ReportError::Input("no `items` and no `kind`".into())),
    };
    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if item.get("kind").and_then(|k| k.as_str()) == Some("Namespace") {
            if let Some(name) = item.pointer("/metadata/name").and_then(|n| n.as_str()) {
                let labels = item
                    .pointer("/metadata/labels")
                    .and_then(|l| serde_json::from_value(l.clone()).ok())
                    .unwrap_or_default();
                namespaces.insert(name.to_owned(), labels);
            }
            continue;
        }
        if let Some(mut w) = workload_of(item) {
            if let Some(why) = &mut w.unreadable {
                why.push_str(&format!(" (items[{i}])"));
            }
            out.push(w);
        }
    }
    for w in &mut out {
        w.namespace_labels = namespaces.get(&w.namespace).cloned();
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
    /// `apiVersion` of the object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `metadata.uid`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The team (the configured label), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// What admission would answer for it now (`deny` for an unreadable
    /// object: admission fails closed on what it cannot read).
    pub outcome: Outcome,
    /// No contract fails for any image, in any mode (audit and warn
    /// included); exemptions count as compliant. Never true for an
    /// unreadable object.
    pub compliant: bool,
    /// Why the object could not be read (it was not judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// In a namespace the webhooks exempt (`report.namespaceSelector`):
    /// not judged, only counted in `summary.excluded`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub excluded: bool,
    /// Each image.
    pub images: Vec<ImageReport>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Workloads (unreadable ones included).
    pub workloads: usize,
    /// Compliant ones.
    pub compliant: usize,
    /// Ones admission would deny now.
    pub would_deny: usize,
    /// Objects that could not be read (neither judged nor compliant).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unreadable: usize,
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
    /// Workloads not judged because the webhooks exempt their namespace
    /// (`report.namespaceSelector`), by namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub excluded: BTreeMap<String, usize>,
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
    /// Per judged workload (unreadable ones included), sorted by
    /// namespace, kind and name.
    pub workloads: Vec<WorkloadReport>,
}

fn image_compliant(i: &ImageReport) -> bool {
    i.error.is_none()
        && !(i.unmatched && i.outcome == Outcome::Deny)
        && i.contracts
            .iter()
            .all(|c| c.verdict != Verdict::Deny.as_str() && c.verdict != Verdict::Error.as_str())
}

/// A report entry for a workload that is not judged: unreadable, or in an
/// exempt namespace.
fn unjudged(w: &Workload, team_label: &str, excluded: bool) -> WorkloadReport {
    WorkloadReport {
        namespace: w.namespace.clone(),
        kind: w.kind.clone(),
        name: w.name.clone(),
        api_version: w.api_version.clone(),
        uid: w.uid.clone(),
        team: w.labels.get(team_label).cloned(),
        outcome: if excluded {
            Outcome::Allow
        } else {
            Outcome::Deny
        },
        compliant: excluded,
        unreadable: if excluded { None } else { w.unreadable.clone() },
        excluded,
        images: Vec::new(),
    }
}

/// Judges `workloads` with `engine` under the configuration `rt` (the
/// engine's own, or a proposed one sharing its caches). Workloads in
/// namespaces the configuration's `report.namespaceSelector` exempts are
/// only counted; unreadable ones are reported, not judged.
pub async fn evaluate(
    engine: &Engine,
    rt: Arc<Runtime>,
    workloads: &[Workload],
    concurrency: usize,
) -> Report {
    let team_label = rt.config.spec.report.team_label.clone();
    let results = judge(engine, rt, workloads, concurrency).await;
    assemble(engine.clock().now(), team_label, results)
}

/// One result per workload, in the order given (see [`evaluate`]).
pub async fn judge(
    engine: &Engine,
    rt: Arc<Runtime>,
    workloads: &[Workload],
    concurrency: usize,
) -> Vec<WorkloadReport> {
    let team_label = rt.config.spec.report.team_label.clone();
    // Owned items: the futures must not borrow from the iterator (they run
    // on the server's tasks in continuous mode).
    futures_util::stream::iter(workloads.iter().cloned().map(|w| {
        let rt = rt.clone();
        let team_label = team_label.clone();
        async move {
            // An exempt namespace first: admission never sees anything in
            // it, readable or not. An object without a namespace cannot be
            // placed, so it is unreadable wherever it came from.
            let scope = rt.config.spec.report.scope();
            if !w.namespace.is_empty()
                && scope.check(&w.namespace, w.namespace_labels.as_ref()) == InScope::Exempt
            {
                return unjudged(&w, &team_label, true);
            }
            if w.unreadable.is_some() {
                return unjudged(&w, &team_label, false);
            }
            let request = DecisionRequest {
                images: w.images.iter().map(ObjectImage::to_use).collect(),
                context: RequestContext {
                    source: crate::policy::Source::Report,
                    namespace: Some(w.namespace.clone()),
                    kind: Some(w.kind.clone()),
                    name: Some(w.name.clone()),
                    container: None,
                    operation: None,
                    labels: w.labels.clone(),
                    // Known labels serve label-selected bindings exactly
                    // as admission's lookup would (only when the operator
                    // trusts namespace labels; the engine checks).
                    namespace_labels: w.namespace_labels.clone().unwrap_or_default(),
                    user: None,
                },
                deadline: None,
                contracts: None,
                capture_inputs: false,
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
                api_version: w.api_version.clone(),
                uid: w.uid.clone(),
                team: w.labels.get(&team_label).cloned(),
                outcome,
                compliant: images.iter().all(image_compliant),
                unreadable: None,
                excluded: false,
                images,
            }
        }
    }))
    .buffered(concurrency.max(1))
    .collect()
    .await
}

/// A report over workload results (sorted by namespace, kind and name).
/// Results in exempt namespaces are counted in `summary.excluded` and left
/// out of the list.
pub fn assemble(now: jiff::Timestamp, team_label: String, results: Vec<WorkloadReport>) -> Report {
    let (excluded, mut results): (Vec<WorkloadReport>, Vec<WorkloadReport>) =
        results.into_iter().partition(|w| w.excluded);
    results.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    let mut summary = Summary::default();
    for w in &excluded {
        *summary.excluded.entry(w.namespace.clone()).or_default() += 1;
    }
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
            c.unreadable += usize::from(w.unreadable.is_some());
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

#[cfg(test)]
mod tests;
