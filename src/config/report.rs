//! The `report` section: continuous reporting, the namespaces judged and
//! leader election, checked as they are read (an invalid selector or an
//! impossible lease timing is a configuration error, never a report that
//! silently covers the wrong namespaces or two leaders).
//!
//! The reporting itself lives in `crate::report`, above the engine; its
//! settings live here so the configuration does not import it.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use super::scope::{self, NamespaceScope};
use crate::units::Dur;

/// The `report` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "RawReportSpec", rename_all = "camelCase")]
pub struct ReportSpec {
    /// The object label that names the owning team.
    pub team_label: String,
    /// Continuous in-cluster reporting in `provgate serve`.
    pub continuous: ContinuousSpec,
    /// The namespaces judged: the admission webhooks' `namespaceSelector`
    /// (the chart writes the same selector into both). Default: every
    /// namespace but `kube-system`. See [`super::scope`].
    pub namespace_selector: LabelSelector,
    /// Keep `wgpolicyk8s.io/v1alpha2` PolicyReports (one per namespace,
    /// named `provgate`) up to date in the cluster from the continuous
    /// report. Needs `continuous.enabled`.
    pub policy_reports: bool,
    /// Which replica runs the continuous report (a Lease); see `report::leader`.
    pub leader_election: LeaderElectionSpec,
    /// The compiled `namespace_selector`.
    #[serde(skip)]
    scope: NamespaceScope,
}

/// The `report` section as written; checked into a [`ReportSpec`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawReportSpec {
    #[serde(default = "default_team_label")]
    team_label: String,
    #[serde(default)]
    continuous: ContinuousSpec,
    #[serde(default = "scope::default_selector")]
    namespace_selector: LabelSelector,
    #[serde(default)]
    policy_reports: bool,
    #[serde(default)]
    leader_election: LeaderElectionSpec,
}

impl TryFrom<RawReportSpec> for ReportSpec {
    type Error = String;

    fn try_from(raw: RawReportSpec) -> Result<Self, String> {
        let scope = NamespaceScope::new(&raw.namespace_selector).map_err(|e| e.to_string())?;
        if raw.policy_reports && !raw.continuous.enabled {
            return Err(
                "report.policyReports needs report.continuous.enabled: true \
                 (the server writes PolicyReports from its continuous report; \
                 `provgate report -o policyreport` needs neither)"
                    .into(),
            );
        }
        Ok(ReportSpec {
            team_label: raw.team_label,
            continuous: raw.continuous,
            namespace_selector: raw.namespace_selector,
            policy_reports: raw.policy_reports,
            leader_election: raw.leader_election,
            scope,
        })
    }
}

impl ReportSpec {
    /// The compiled `namespaceSelector`.
    pub fn scope(&self) -> &NamespaceScope {
        &self.scope
    }
}

fn default_team_label() -> String {
    "team".into()
}

impl Default for ReportSpec {
    fn default() -> Self {
        ReportSpec {
            team_label: default_team_label(),
            continuous: ContinuousSpec::default(),
            namespace_selector: scope::default_selector(),
            policy_reports: false,
            leader_election: LeaderElectionSpec::default(),
            scope: NamespaceScope::default(),
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
    pub interval: Dur,
    /// Workloads judged at once (the first report must not stampede the
    /// registries).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The API server (default: in-cluster service account configuration).
    #[serde(default)]
    pub api_server: Option<String>,
}

fn default_interval() -> Dur {
    Dur(Duration::from_secs(600))
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

/// `report.leaderElection`: which replica runs the continuous report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLeaderElectionSpec", rename_all = "camelCase")]
pub struct LeaderElectionSpec {
    /// Elect one replica (default). Off: every replica runs the report,
    /// which is right for a single replica only.
    pub enabled: bool,
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace. Default: `POD_NAMESPACE`, else the service
    /// account's namespace, else the client configuration's.
    pub namespace: Option<String>,
    /// How long a lease holds without renewal (whole seconds: the Lease
    /// stores seconds). Default 15 s.
    pub lease_duration: Dur,
    /// The leader steps down when it has not renewed for this long; shorter
    /// than `leaseDuration`. Default 10 s.
    pub renew_deadline: Dur,
    /// How often candidates try to acquire and the leader renews; shorter
    /// than `renewDeadline`. Default 2 s.
    pub retry_period: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLeaderElectionSpec {
    #[serde(default = "default_enabled")]
    enabled: bool,
    #[serde(default = "default_lease_name")]
    lease_name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default = "default_lease_duration")]
    lease_duration: Dur,
    #[serde(default = "default_renew_deadline")]
    renew_deadline: Dur,
    #[serde(default = "default_retry_period")]
    retry_period: Dur,
}

fn default_enabled() -> bool {
    true
}
fn default_lease_name() -> String {
    "provgate-report".into()
}
fn default_lease_duration() -> Dur {
    Dur(Duration::from_secs(15))
}
fn default_renew_deadline() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_retry_period() -> Dur {
    Dur(Duration::from_secs(2))
}

/// Whether `s` is a DNS-1123 subdomain (the rule for object names).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `s` is a DNS-1123 label (the rule for namespace names).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

impl TryFrom<RawLeaderElectionSpec> for LeaderElectionSpec {
    type Error = String;

    fn try_from(raw: RawLeaderElectionSpec) -> Result<Self, String> {
        if !is_dns_subdomain(&raw.lease_name) {
            return Err(format!(
                "report.leaderElection.leaseName {:?} is not a valid object name \
                 (lower-case letters, digits, '-' and '.')",
                raw.lease_name
            ));
        }
        if let Some(ns) = &raw.namespace
            && !is_dns_label(ns)
        {
            return Err(format!(
                "report.leaderElection.namespace {ns:?} is not a valid namespace name"
            ));
        }
        let (lease, renew, retry) = (
            raw.lease_duration.0,
            raw.renew_deadline.0,
            raw.retry_period.0,
        );
        if lease.subsec_nanos() != 0 || lease < Duration::from_secs(1) {
            return Err(format!(
                "report.leaderElection.leaseDuration must be whole seconds, at least 1s (got {}ms)",
                lease.as_millis()
            ));
        }
        if lease > Duration::from_secs(3600) {
            return Err("report.leaderElection.leaseDuration must be at most 1h".into());
        }
        if retry.is_zero() || retry >= renew || renew >= lease {
            return Err(format!(
                "report.leaderElection needs retryPeriod < renewDeadline < leaseDuration \
                 (got {}ms, {}ms, {}ms): the leader must step down before its lease expires",
                retry.as_millis(),
                renew.as_millis(),
                lease.as_millis()
            ));
        }
        Ok(LeaderElectionSpec {
            enabled: raw.enabled,
            lease_name: raw.lease_name,
            namespace: raw.namespace,
            lease_duration: raw.lease_duration,
            renew_deadline: raw.renew_deadline,
            retry_period: raw.retry_period,
        })
    }
}

impl Default for LeaderElectionSpec {
    fn default() -> Self {
        LeaderElectionSpec {
            enabled: default_enabled(),
            lease_name: default_lease_name(),
            namespace: None,
            lease_duration: default_lease_duration(),
            renew_deadline: default_renew_deadline(),
            retry_period: default_retry_period(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scope::InScope;

    #[test]
    fn defaults_follow_client_go_and_order_is_checked() {
        let d: LeaderElectionSpec = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(d, LeaderElectionSpec::default());
        assert!(d.enabled);
        assert_eq!(d.lease_duration.0, Duration::from_secs(15));
        assert_eq!(d.renew_deadline.0, Duration::from_secs(10));
        assert_eq!(d.retry_period.0, Duration::from_secs(2));
        for bad in [
            "leaseDuration: 10s\nrenewDeadline: 10s",
            "renewDeadline: 2s\nretryPeriod: 2s",
            "leaseDuration: 1500ms\nrenewDeadline: 1s\nretryPeriod: 100ms",
            "retryPeriod: 0ms",
            "leaseDuration: 2h",
            "leaseName: Not_A_Name",
            "namespace: a.b",
            "leaseDurationSeconds: 3",
        ] {
            assert!(
                serde_yaml_ng::from_str::<LeaderElectionSpec>(bad).is_err(),
                "{bad} was accepted"
            );
        }
        let ok: LeaderElectionSpec = serde_yaml_ng::from_str(
            "leaseDuration: 2s\nrenewDeadline: 1500ms\nretryPeriod: 200ms\nleaseName: x.y-z\nnamespace: ops",
        )
        .unwrap();
        assert_eq!(ok.namespace.as_deref(), Some("ops"));
    }

    #[test]
    fn report_spec_checks_its_selector_and_policy_reports_needs_continuous() {
        let ok: ReportSpec = serde_yaml_ng::from_str("{}").unwrap();
        assert!(!ok.policy_reports);
        assert_eq!(ok.scope().check("kube-system", None), InScope::Exempt);
        let err = serde_yaml_ng::from_str::<ReportSpec>("policyReports: true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("report.continuous.enabled"), "{err}");
        assert!(
            serde_yaml_ng::from_str::<ReportSpec>(
                "policyReports: true\ncontinuous: {enabled: true}"
            )
            .is_ok()
        );
        let err = serde_yaml_ng::from_str::<ReportSpec>(
            "namespaceSelector: {matchExpressions: [{key: a, operator: Bogus, values: [x]}]}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown operator"), "{err}");
        assert!(serde_yaml_ng::from_str::<ReportSpec>("teamLabl: x").is_err());
    }
}
