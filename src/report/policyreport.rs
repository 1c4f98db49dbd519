//! A compliance report as `wgpolicyk8s.io/v1alpha2` PolicyReports, the
//! format Kyverno and Kubewarden write and policy-reporter shows.
//!
//! One `PolicyReport` named [`REPORT_NAME`] per namespace with judged
//! workloads, labelled `app.kubernetes.io/managed-by: provgate`; results for
//! objects without a namespace (unreadable input) go to one
//! `ClusterPolicyReport`. Each result is one requirement of one contract
//! for one image of one workload:
//!
//! | provgate | `result` | `policy` / `rule` |
//! |---|---|---|
//! | contract `pass` | `pass` | contract / contract name |
//! | a `deny` violation | `fail` | contract / the violation's `requirement` (else the contract name) |
//! | a `warn` violation | `warn` (`scored: false`) | contract / the violation's `requirement` |
//! | contract `error` (evaluation failed) | `error` | contract / contract name |
//! | `exempt` (a binding exemption covers a failure) | `skip` | contract / requirement |
//! | image error (unresolvable, evidence not fetched) | `error` | `provgate` / `image` |
//! | no binding covers the image | `fail`, `warn` or `skip` as `unmatched` decides | `provgate` / `unmatched` |
//! | unreadable object | `error` | `provgate` / `unreadable` |
//!
//! The mode does not change `result`: a requirement that is not met is
//! `fail` in `audit` and `warn` mode too (as Kyverno reports `Audit`
//! policies), so a dashboard shows what enforcement would break before it
//! starts. What admission does with it is in `properties`: `mode` (in force
//! now), `configuredMode`, `enforceAfter`, and `admission` (`allow`, `warn`
//! or `deny` for that image).
//!
//! `properties` also carry `image`, `digest`, `container`, `contractVersion`,
//! `binding` and, for violations, `fix`. `timestamp` is when the report was
//! made. An object larger than the API server accepts is cut to
//! [`MAX_RESULTS_BYTES`]: failures and errors are kept first, and a final
//! result says how many were left out; `summary` still counts them all.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{Report, WorkloadReport};
use crate::engine::decision::Outcome;
use crate::respond::json::{ContractReport, ImageReport};

/// `apiVersion` of the objects.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// The API group.
pub const GROUP: &str = "wgpolicyk8s.io";
/// The API version within the group.
pub const VERSION: &str = "v1alpha2";
/// The name of provgate's report in each namespace.
pub const REPORT_NAME: &str = "provgate";
/// `source` of every result.
pub const SOURCE: &str = "provgate";
/// The label that marks the objects provgate owns.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "provgate";
/// `policy` of results about images and objects rather than a contract.
pub const PROVGATE_POLICY: &str = "provgate";
/// The largest `results` (serialised JSON bytes) of one object: the API
/// server refuses requests over 3 MiB and etcd values over 1.5 MiB.
pub const MAX_RESULTS_BYTES: usize = 1024 * 1024;

/// `result` of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultKind {
    /// The requirement is met.
    Pass,
    /// The requirement is not met.
    Fail,
    /// A non-scored requirement is not met.
    Warn,
    /// It could not be evaluated.
    Error,
    /// Not evaluated or exempted.
    Skip,
}

impl ResultKind {
    /// Which results survive a cut first (lower first).
    fn keep_order(self) -> u8 {
        match self {
            ResultKind::Error => 0,
            ResultKind::Fail => 1,
            ResultKind::Warn => 2,
            ResultKind::Skip => 3,
            ResultKind::Pass => 4,
        }
    }
}

/// `timestamp` of a result (protobuf `Timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds, 0 to 999,999,999.
    pub nanos: i32,
}

impl From<jiff::Timestamp> for Timestamp {
    fn from(t: jiff::Timestamp) -> Self {
        Timestamp {
            seconds: t.as_second(),
            nanos: t.subsec_nanosecond().clamp(0, 999_999_999),
        }
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResult {
    /// The contract (or [`PROVGATE_POLICY`]).
    pub policy: String,
    /// The requirement id, or the contract name.
    pub rule: String,
    /// The outcome.
    pub result: ResultKind,
    /// What is wrong, or that all is well.
    pub message: String,
    /// [`SOURCE`].
    pub source: String,
    /// `false` only for `warn` results (advisory requirements).
    pub scored: bool,
    /// When it was found.
    pub timestamp: Timestamp,
    /// The workload.
    pub resources: Vec<ObjectReference>,
    /// Image, digest, container, mode and the rest (see the module docs).
    pub properties: BTreeMap<String, String>,
}

/// Counts of results by `result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultSummary {
    /// Requirements met.
    pub pass: usize,
    /// Requirements not met.
    pub fail: usize,
    /// Advisory requirements not met.
    pub warn: usize,
    /// Not evaluated because of an error.
    pub error: usize,
    /// Exempted or not evaluated.
    pub skip: usize,
}

impl ResultSummary {
    fn count(&mut self, r: ResultKind) {
        match r {
            ResultKind::Pass => self.pass += 1,
            ResultKind::Fail => self.fail += 1,
            ResultKind::Warn => self.warn += 1,
            ResultKind::Error => self.error += 1,
            ResultKind::Skip => self.skip += 1,
        }
    }
}

/// A `PolicyReport` (or `ClusterPolicyReport`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `PolicyReport` or `ClusterPolicyReport`.
    pub kind: String,
    /// Name [`REPORT_NAME`], the namespace, the managed-by label.
    pub metadata: ObjectMeta,
    /// The counts.
    pub summary: ResultSummary,
    /// The results.
    pub results: Vec<PolicyResult>,
}

impl PolicyReport {
    /// The namespace (`None` for the cluster report).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }

    /// The same object with every timestamp zeroed: what changed, apart
    /// from when it was found.
    pub fn without_timestamps(&self) -> PolicyReport {
        let mut r = self.clone();
        for x in &mut r.results {
            x.timestamp = Timestamp {
                seconds: 0,
                nanos: 0,
            };
        }
        r
    }
}

/// The verdict of a violation-free contract, as one result.
fn outcome_result(o: Outcome) -> ResultKind {
    match o {
        Outcome::Allow => ResultKind::Skip,
        Outcome::Warn => ResultKind::Warn,
        Outcome::Deny => ResultKind::Fail,
    }
}

struct Builder {
    timestamp: Timestamp,
    results: Vec<PolicyResult>,
}

impl Builder {
    fn push(
        &mut self,
        w: &WorkloadReport,
        policy: &str,
        rule: &str,
        result: ResultKind,
        message: String,
        properties: BTreeMap<String, String>,
    ) {
        self.results.push(PolicyResult {
            policy: policy.to_owned(),
            rule: rule.to_owned(),
            result,
            message,
            source: SOURCE.into(),
            scored: result != ResultKind::Warn,
            timestamp: self.timestamp,
            resources: vec![ObjectReference {
                api_version: Some(w.api_version.clone()).filter(|v| !v.is_empty()),
                kind: Some(w.kind.clone()),
                name: Some(w.name.clone()).filter(|n| !n.is_empty()),
                namespace: Some(w.namespace.clone()).filter(|n| !n.is_empty()),
                uid: w.uid.clone(),
                ..Default::default()
            }],
            properties,
        });
    }

    fn workload(&mut self, w: &WorkloadReport) {
        if let Some(why) = &w.unreadable {
            self.push(
                w,
                PROVGATE_POLICY,
                "unreadable",
                ResultKind::Error,
                why.clone(),
                BTreeMap::new(),
            );
            return;
        }
        for i in &w.images {
            self.image(w, i);
        }
    }

    fn image(&mut self, w: &WorkloadReport, i: &ImageReport) {
        let mut base = BTreeMap::new();
        base.insert("image".to_owned(), i.image.clone());
        if let Some(d) = &i.digest {
            base.insert("digest".to_owned(), d.clone());
        }
        if let Some(c) = &i.container {
            base.insert("container".to_owned(), c.clone());
        }
        base.insert("admission".to_owned(), i.outcome.as_str().to_owned());
        if let Some(d) = &i.degraded {
            base.insert("degraded".to_owned(), d.clone());
        }
        if i.unmatched {
            self.push(
                w,
                PROVGATE_POLICY,
                "unmatched",
                outcome_result(i.outcome),
                format!(
                    "no binding covers this image; `unmatched` makes it {}",
                    i.outcome.as_str()
                ),
                base.clone(),
            );
        }
        if let Some(e) = &i.error
            && i.contracts.is_empty()
        {
            self.push(
                w,
                PROVGATE_POLICY,
                "image",
                ResultKind::Error,
                e.message.clone(),
                base.clone(),
            );
        }
        for c in &i.contracts {
            self.contract(w, c, &base);
        }
    }

    fn contract(
        &mut self,
        w: &WorkloadReport,
        c: &ContractReport,
        base: &BTreeMap<String, String>,
    ) {
        let mut props = base.clone();
        props.insert("contractVersion".into(), c.version.clone());
        props.insert("mode".into(), c.mode.clone());
        props.insert("configuredMode".into(), c.configured_mode.clone());
        if !c.binding.is_empty() {
            props.insert("binding".into(), c.binding.clone());
        }
        if let Some(t) = &c.enforce_after {
            props.insert("enforceAfter".into(), t.clone());
        }
        let violation = |v: &crate::policy::Violation| {
            let mut p = props.clone();
            if let Some(f) = &v.fix {
                p.insert("fix".into(), f.clone());
            }
            (v.requirement.clone().unwrap_or_else(|| c.name.clone()), p)
        };
        match c.verdict.as_str() {
            "pass" => self.push(
                w,
                &c.name,
                &c.name,
                ResultKind::Pass,
                "every requirement of the contract is met".into(),
                props.clone(),
            ),
            "error" => self.push(
                w,
                &c.name,
                &c.name,
                ResultKind::Error,
                c.error
                    .clone()
                    .unwrap_or_else(|| "the contract could not be evaluated".into()),
                props.clone(),
            ),
            "exempt" => {
                let why = c
                    .exemption
                    .as_ref()
                    .map(|e| format!("exempt until {}: {}", e.expires, e.reason))
                    .unwrap_or_else(|| "exempt".into());
                if c.deny.is_empty() {
                    let what = c.error.clone().unwrap_or_default();
                    self.push(
                        w,
                        &c.name,
                        &c.name,
                        ResultKind::Skip,
                        format!("{why}; {what}").trim_end_matches("; ").to_owned(),
                        props.clone(),
                    );
                }
                for v in &c.deny {
                    let (rule, p) = violation(v);
                    self.push(
                        w,
                        &c.name,
                        &rule,
                        ResultKind::Skip,
                        format!("{why}; {}", v.msg),
                        p,
                    );
                }
            }
            // `deny`, `warn`, and anything newer: each violation on its own.
            _ => {
                for v in &c.deny {
                    let (rule, p) = violation(v);
                    self.push(w, &c.name, &rule, ResultKind::Fail, v.msg.clone(), p);
                }
                if c.deny.is_empty() && c.verdict == "deny" {
                    self.push(
                        w,
                        &c.name,
                        &c.name,
                        ResultKind::Fail,
                        "the contract denies this image".into(),
                        props.clone(),
                    );
                }
            }
        }
        for v in &c.warn {
            let (rule, p) = violation(v);
            self.push(w, &c.name, &rule, ResultKind::Warn, v.msg.clone(), p);
        }
    }
}

/// Keeps the results within [`MAX_RESULTS_BYTES`]: errors, failures,
/// warnings, skips, then passes, in their order; a final result counts the
/// rest.
fn cut(results: Vec<PolicyResult>, timestamp: Timestamp) -> Vec<PolicyResult> {
    // Each element's JSON and its comma.
    let sizes: Vec<usize> = results
        .iter()
        .map(|r| {
            serde_json::to_vec(r)
                .map(|v| v.len() + 1)
                .unwrap_or(usize::MAX)
        })
        .collect();
    if sizes.iter().fold(0usize, |a, s| a.saturating_add(*s)) <= MAX_RESULTS_BYTES {
        return results;
    }
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by_key(|&i| (results[i].result.keep_order(), i));
    // Room for the closing note.
    let budget = MAX_RESULTS_BYTES - 1024;
    let mut used = 0usize;
    let mut keep = vec![false; results.len()];
    for &i in &order {
        if used.saturating_add(sizes[i]) > budget {
            break;
        }
        used += sizes[i];
        keep[i] = true;
    }
    let omitted = keep.iter().filter(|k| !**k).count();
    let mut out: Vec<PolicyResult> = results
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect();
    out.push(PolicyResult {
        policy: PROVGATE_POLICY.into(),
        rule: "report-size".into(),
        result: ResultKind::Warn,
        message: format!(
            "{omitted} results left out to stay within the API's object size; \
             `provgate report -o json` (or GET /v1/report) has them all"
        ),
        source: SOURCE.into(),
        scored: false,
        timestamp,
        resources: Vec::new(),
        properties: BTreeMap::new(),
    });
    out
}

/// The PolicyReports of `report`: one per namespace with judged workloads
/// (sorted by namespace), then a `ClusterPolicyReport` if any workload has
/// no namespace. `now` stamps the results.
pub fn policy_reports(report: &Report, now: jiff::Timestamp) -> Vec<PolicyReport> {
    let timestamp = Timestamp::from(now);
    let mut by_ns: BTreeMap<&str, Builder> = BTreeMap::new();
    for w in &report.workloads {
        by_ns
            .entry(w.namespace.as_str())
            .or_insert_with(|| Builder {
                timestamp,
                results: Vec::new(),
            })
            .workload(w);
    }
    let mut out = Vec::new();
    let mut cluster = None;
    for (ns, b) in by_ns {
        let mut summary = ResultSummary::default();
        for r in &b.results {
            summary.count(r.result);
        }
        let results = cut(b.results, timestamp);
        let metadata = ObjectMeta {
            name: Some(REPORT_NAME.into()),
            namespace: Some(ns.to_owned()).filter(|n| !n.is_empty()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY.to_owned(),
            )])),
            ..Default::default()
        };
        let r = PolicyReport {
            api_version: API_VERSION.into(),
            kind: if ns.is_empty() {
                "ClusterPolicyReport"
            } else {
                "PolicyReport"
            }
            .into(),
            metadata,
            summary,
            results,
        };
        if ns.is_empty() {
            cluster = Some(r);
        } else {
            out.push(r);
        }
    }
    out.extend(cluster);
    out
}

/// Why the YAML could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the PolicyReport YAML: {0}")]
pub struct YamlError(String);

/// The reports as a YAML stream (`---` between objects), for `kubectl
/// apply -f -`. An empty report gives an empty stream.
pub fn to_yaml(reports: &[PolicyReport]) -> Result<String, YamlError> {
    let mut s = String::new();
    for r in reports {
        s.push_str("---\n");
        s.push_str(&serde_yaml_ng::to_string(r).map_err(|e| YamlError(e.to_string()))?);
    }
    Ok(s)
}

#[cfg(test)]
#[path = "policyreport_tests.rs"]
mod tests;
