//! One inventory writer: leader election on a Kubernetes Lease.
//!
//! With several replicas of `provgate serve`, exactly one should watch the
//! cluster, judge the running workloads, set the compliance gauges and
//! write PolicyReports; otherwise every replica repeats the watches, the
//! gauges are counted once per replica and the PolicyReports have as many
//! writers. The replicas elect that one with a `coordination.k8s.io/v1`
//! Lease (`report.leaderElection`), the way client-go's `leaderelection`
//! package does:
//!
//! 1. **Acquire.** A candidate reads the Lease. It takes it when it does not
//!    exist (create; `409 AlreadyExists` means another candidate created it
//!    first), when it has no holder (a leader released it), or when the
//!    record (holder, `renewTime`, `resourceVersion`) has not changed for
//!    `leaseDurationSeconds` *as this candidate measured it* (the holder
//!    died). Expiry is measured on the candidate's own monotonic clock from
//!    the moment it first saw the record, never by comparing `renewTime`
//!    with its wall clock, so clock skew between nodes cannot shorten a
//!    lease. Taking it is an update carrying the `resourceVersion` that was
//!    read (optimistic concurrency): a `409 Conflict` means another
//!    candidate won, and nothing is retried blindly.
//! 2. **Renew.** The leader updates `renewTime` every `retryPeriod`, again
//!    with the `resourceVersion` of its last write. A conflict means the
//!    Lease was taken: it stops leading at once.
//! 3. **Step down.** When no renewal has succeeded for `renewDeadline`
//!    (shorter than `leaseDuration`), the leader stops leading *before* any
//!    other candidate may consider the lease expired; its work is stopped
//!    by the caller (see [`super::continuous`]).
//! 4. **Release.** On graceful shutdown ([`Leadership::release`]) the leader
//!    stops its work, then clears `holderIdentity`: the next candidate takes
//!    the lease on its next try, without waiting for expiry.
//!
//! There is no fencing: a leader that is partitioned from the API server
//! may still be finishing a PolicyReport write while its successor starts.
//! The writes are idempotent server-side applies of the same content, and
//! the `renewDeadline` margin makes the overlap short.
//!
//! The identity is the pod name (`POD_NAME`, from the chart's downward
//! API; else `HOSTNAME`) plus a random suffix, so a restarted pod with the
//! same name is a new candidate.
//!
//! **Why not a crate.** kube 5's `kube-runtime` has no elector.
//! `kube-leader-election` 0.44 is built on kube 4 and writes merge patches
//! without a `resourceVersion` precondition, so two candidates can both
//! believe they acquired. `kube-lease-manager` 0.13 (kube 5) relies on
//! server-side-apply field ownership instead of `resourceVersion`, takes a
//! lease in two writes (an apply, then a patch of `leaseTransitions`) and
//! needs `patch` on leases. The algorithm above is small over
//! `Api<Lease>`, and every step of it is tested against a fake API server
//! that enforces `resourceVersion` (`tests/it/report.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::Api;

mod lease;

use lease::Elector;

use crate::config::report::{LeaderElectionSpec, is_dns_label};
use crate::metrics::Metrics;

/// How long a Lease request may take at most (also bounded by the renew
/// deadline while leading).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful release may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// This replica's candidate identity: the pod name (`POD_NAME`, else
/// `HOSTNAME`, else `provgate`) and a random suffix.
pub fn identity() -> String {
    let pod = ["POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .map(|v| {
            // Pod names are DNS names; anything else is replaced, so the
            // identity is also a valid `User-Agent` part.
            v.trim()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .find(|v| !v.is_empty() && v.len() <= 200)
        .unwrap_or_else(|| "provgate".into());
    let mut suffix = [0u8; 4];
    // A failing system RNG leaves the suffix zero: identities may then
    // collide only between pods of the same name, which Kubernetes does
    // not run at once.
    let _ = aws_lc_rs::rand::fill(&mut suffix);
    format!("{pod}-{}", hex::encode(suffix))
}

/// The Lease's namespace: the configured one, else `POD_NAMESPACE`, else
/// the service account's, else the client's default.
pub fn namespace(spec: &LeaderElectionSpec, client: &kube::Client) -> String {
    if let Some(ns) = &spec.namespace {
        return ns.clone();
    }
    if let Ok(ns) = std::env::var("POD_NAMESPACE")
        && is_dns_label(ns.trim())
    {
        return ns.trim().to_owned();
    }
    if let Ok(ns) =
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        && is_dns_label(ns.trim())
    {
        return ns.trim().to_owned();
    }
    client.default_namespace().to_owned()
}

/// What the elector last knew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderState {
    /// This replica leads.
    pub leading: bool,
    /// The holder of the lease as last read (this replica's identity when
    /// it leads); `None` when the lease is free or could not be read.
    pub holder: Option<String>,
    /// Why the last Lease request failed, until one succeeds.
    pub error: Option<String>,
}

/// The settings of one elector.
#[derive(Debug, Clone)]
pub struct ElectorConfig {
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This candidate's identity.
    pub identity: String,
    /// Lease duration (whole seconds).
    pub lease_duration: Duration,
    /// Step down when not renewed for this long.
    pub renew_deadline: Duration,
    /// Try or renew this often.
    pub retry_period: Duration,
}

impl ElectorConfig {
    /// The settings from `report.leaderElection`, for `identity` in
    /// `namespace`.
    pub fn from_spec(spec: &LeaderElectionSpec, namespace: String, identity: String) -> Self {
        ElectorConfig {
            lease_name: spec.lease_name.clone(),
            namespace,
            identity,
            lease_duration: spec.lease_duration.0,
            renew_deadline: spec.renew_deadline.0,
            retry_period: spec.retry_period.0,
        }
    }
}

/// A running elector (see the module documentation).
pub struct Leadership {
    identity: String,
    retry_period: Duration,
    state: tokio::sync::watch::Receiver<LeaderState>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("identity", &self.identity)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// Starts electing through `client`; `metrics` gets
    /// `provgate_report_leader`.
    pub fn start(
        client: kube::Client,
        config: ElectorConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Leadership> {
        let (state_tx, state_rx) = tokio::sync::watch::channel(LeaderState::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let identity = config.identity.clone();
        let retry_period = config.retry_period;
        let elector = Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            state: state_tx,
            metrics,
        };
        let task = tokio::spawn(elector.run(stop_rx));
        Arc::new(Leadership {
            identity,
            retry_period,
            state: state_rx,
            stop: stop_tx,
            task: Mutex::new(Some(task)),
        })
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How often the elector tries: a caller turned away by a follower may
    /// retry after this.
    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        self.state.borrow().leading
    }

    /// What the elector last knew.
    pub fn state(&self) -> LeaderState {
        self.state.borrow().clone()
    }

    /// Changes of [`LeaderState`].
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// Stops electing and, when leading, releases the lease so that another
    /// replica takes it at once. Callers stop the leader's work first.
    /// Returns when done (at most a few seconds).
    pub async fn release(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(RELEASE_TIMEOUT + Duration::from_secs(1), task).await;
        }
    }

    /// Stops electing without releasing (the lease then expires), as when
    /// the process dies.
    pub fn abandon(&self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_differ_between_candidates_of_one_pod_name() {
        let (a, b) = (identity(), identity());
        assert_ne!(a, b);
        assert!(a.len() > 9 && a.as_bytes()[a.len() - 9] == b'-', "{a}");
    }
}
