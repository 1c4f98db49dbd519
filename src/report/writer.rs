//! Keeps provgate's PolicyReports in the cluster equal to the continuous
//! report (`report.policyReports: true`).
//!
//! [`run`] is the writer task: it waits for each new report on a watch
//! channel (a burst of reports collapses into the latest), turns it into
//! [`PolicyReport`]s and has a [`PolicyReportWriter`] make the cluster
//! match. The evaluation loop never waits for the API: a slow or failing
//! API server delays the reports, never the report. With several replicas,
//! only the elected leader runs this task ([`super::leader`]): the
//! supervisor in [`super::continuous`] starts it with the leader's term and
//! stops it, waiting for it to end, when leadership is lost. Every request
//! carries the replica's identity in its `User-Agent`.
//!
//! A sync:
//! 1. the first time (and after a failure), lists the reports provgate
//!    owns (label `app.kubernetes.io/managed-by=provgate`, all
//!    namespaces), so reports left by an earlier pod are known;
//! 2. server-side applies (`fieldManager=provgate`, forced) each
//!    namespace's report whose content changed since provgate last wrote
//!    it (timestamps aside: an unchanged result keeps the time it was first
//!    found);
//! 3. deletes the reports of namespaces that have no judged workload left.
//!
//! Needs the PolicyReport CRD (Kyverno and policy-reporter install it) and
//! `get, list, create, update, patch, delete` on `policyreports` in
//! `wgpolicyk8s.io`, which the chart grants when `report.policyReports` is
//! on.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

use super::Report;
use super::policyreport::{
    GROUP, MANAGED_BY, MANAGED_BY_LABEL, PolicyReport, REPORT_NAME, VERSION, policy_reports,
};
use crate::engine::Engine;

/// The field manager of provgate's server-side applies.
pub const FIELD_MANAGER: &str = "provgate";
/// At most this many of provgate's reports are listed (pages of 500).
const MAX_LISTED: usize = 100_000;

/// Why a sync did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The existing reports could not be listed.
    #[error("listing PolicyReports: {0}")]
    List(String),
    /// Some reports could not be written or deleted (the others were).
    #[error("{failed} PolicyReport writes failed; first: {first}")]
    Write {
        /// How many writes failed.
        failed: usize,
        /// The first failure, with its namespace.
        first: String,
    },
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Reports created or changed.
    pub applied: usize,
    /// Reports already up to date.
    pub unchanged: usize,
    /// Reports deleted (namespaces without judged workloads).
    pub deleted: usize,
}

/// Makes the cluster's PolicyReports match what it is given.
pub struct PolicyReportWriter {
    client: kube::Client,
    resource: ApiResource,
    /// Namespaces holding a report of provgate's, with a hash of what was
    /// last written there (`None`: found by listing, content unknown).
    written: BTreeMap<String, Option<u64>>,
    listed: bool,
}

impl std::fmt::Debug for PolicyReportWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyReportWriter")
            .field("written", &self.written.len())
            .field("listed", &self.listed)
            .finish_non_exhaustive()
    }
}

fn content_hash(r: &PolicyReport) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(&r.without_timestamps())
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

/// A one-line hint for the usual causes of an API error.
fn hint(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            " (is the wgpolicyk8s.io/v1alpha2 PolicyReport CRD installed? Kyverno and policy-reporter ship it)"
        }
        kube::Error::Api(s) if s.code == 403 => {
            " (the ServiceAccount may not write policyreports: the chart grants it with report.policyReports: true)"
        }
        _ => "",
    }
}

impl PolicyReportWriter {
    /// A writer through `client`.
    pub fn new(client: kube::Client) -> Self {
        let gvk = GroupVersionKind::gvk(GROUP, VERSION, "PolicyReport");
        PolicyReportWriter {
            client,
            resource: ApiResource::from_gvk_with_plural(&gvk, "policyreports"),
            written: BTreeMap::new(),
            listed: false,
        }
    }

    async fn list(&mut self) -> Result<(), WriteError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &self.resource);
        let mut params = ListParams::default()
            .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
            .limit(500);
        let mut seen = 0usize;
        loop {
            let page = api
                .list(&params)
                .await
                .map_err(|e| WriteError::List(format!("{e}{}", hint(&e))))?;
            seen += page.items.len();
            if seen > MAX_LISTED {
                return Err(WriteError::List(format!(
                    "more than {MAX_LISTED} PolicyReports labelled {MANAGED_BY_LABEL}={MANAGED_BY}"
                )));
            }
            for o in &page.items {
                if o.metadata.name.as_deref() == Some(REPORT_NAME)
                    && let Some(ns) = &o.metadata.namespace
                {
                    self.written.entry(ns.clone()).or_insert(None);
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => params = params.continue_token(&c),
                None => break,
            }
        }
        self.listed = true;
        Ok(())
    }

    /// Makes the cluster hold exactly `desired` (namespaced reports; a
    /// cluster-scoped one is not written: in-cluster workloads always have
    /// a namespace). Every write is attempted; the first failure is
    /// returned with a count.
    pub async fn sync(&mut self, desired: &[PolicyReport]) -> Result<SyncOutcome, WriteError> {
        if !self.listed {
            self.list().await?;
        }
        let mut outcome = SyncOutcome::default();
        let mut failures: Vec<String> = Vec::new();
        let mut wanted = std::collections::BTreeSet::new();
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        for r in desired {
            let Some(ns) = r.namespace() else {
                tracing::debug!("cluster-scoped PolicyReport results not written");
                continue;
            };
            wanted.insert(ns.to_owned());
            let hash = content_hash(r);
            if self.written.get(ns) == Some(&Some(hash)) {
                outcome.unchanged += 1;
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &self.resource);
            match api.patch(REPORT_NAME, &pp, &Patch::Apply(r)).await {
                Ok(_) => {
                    self.written.insert(ns.to_owned(), Some(hash));
                    outcome.applied += 1;
                }
                Err(e) => failures.push(format!("apply {ns}/{REPORT_NAME}: {e}{}", hint(&e))),
            }
        }
        let stale: Vec<String> = self
            .written
            .keys()
            .filter(|ns| !wanted.contains(*ns))
            .cloned()
            .collect();
        for ns in stale {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &ns, &self.resource);
            match api.delete(REPORT_NAME, &DeleteParams::default()).await {
                Ok(_) => {
                    self.written.remove(&ns);
                    outcome.deleted += 1;
                }
                // Already gone (or its namespace is).
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.written.remove(&ns);
                }
                Err(e) => failures.push(format!("delete {ns}/{REPORT_NAME}: {e}{}", hint(&e))),
            }
        }
        match failures.first() {
            None => Ok(outcome),
            Some(first) => {
                // Someone else may have changed things: list again next time.
                self.listed = false;
                Err(WriteError::Write {
                    failed: failures.len(),
                    first: first.clone(),
                })
            }
        }
    }
}

/// The time a report was made (its `generatedAt`), else now.
fn report_time(report: &Report, engine: &Engine) -> jiff::Timestamp {
    report
        .generated_at
        .parse()
        .unwrap_or_else(|_| engine.clock().now())
}

/// The writer task (see the module documentation): syncs every new report
/// from `reports` while `report.policyReports` is on, retrying failures
/// with backoff (1 s to 1 min) against the latest report. Ends when the
/// sender is dropped.
pub async fn run(
    mut writer: PolicyReportWriter,
    engine: Arc<Engine>,
    mut reports: tokio::sync::watch::Receiver<Option<Arc<Report>>>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if reports.changed().await.is_err() {
            return;
        }
        loop {
            let Some(report) = reports.borrow_and_update().clone() else {
                break;
            };
            if !engine.runtime().config.spec.report.policy_reports {
                break;
            }
            let desired = policy_reports(&report, report_time(&report, &engine));
            match writer.sync(&desired).await {
                Ok(o) => {
                    tracing::debug!(
                        applied = o.applied,
                        unchanged = o.unchanged,
                        deleted = o.deleted,
                        "PolicyReports synced"
                    );
                    backoff = Duration::from_secs(1);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "PolicyReports not synced");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        changed = reports.changed() => if changed.is_err() { return },
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}
