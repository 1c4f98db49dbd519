//! What a proposed configuration changes: the workloads whose answer
//! moves, and whether any would now be denied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Report, WorkloadReport};
use crate::engine::decision::Outcome;

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
