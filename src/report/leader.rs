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
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

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

/// The outcome of one acquisition attempt.
enum Attempt {
    /// This candidate holds the lease (as written).
    Acquired(Box<Lease>),
    /// Another candidate holds it (`None`: unknown, lost a race).
    Held(Option<String>),
}

/// Why a Lease request failed.
#[derive(Debug, thiserror::Error)]
enum LeaseError {
    /// Another writer changed the Lease first.
    #[error("the lease was changed by another candidate")]
    Conflict,
    /// The request failed.
    #[error("{0}")]
    Api(String),
}

fn api_error(what: &str, lease: &str, e: &kube::Error) -> LeaseError {
    match e {
        kube::Error::Api(s) if s.code == 409 => LeaseError::Conflict,
        kube::Error::Api(s) if s.code == 403 => LeaseError::Api(format!(
            "{what} lease {lease}: {e} (the ServiceAccount needs get, create and update on \
             leases in coordination.k8s.io; the chart grants them with report.continuous.enabled)"
        )),
        _ => LeaseError::Api(format!("{what} lease {lease}: {e}")),
    }
}

/// What identifies a version of the lease record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<String>,
    resource_version: Option<String>,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.as_ref();
        Record {
            holder: holder_of(lease),
            renew_time: spec
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string()),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }
}

fn holder_of(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

struct Elector {
    api: Api<Lease>,
    config: ElectorConfig,
    state: tokio::sync::watch::Sender<LeaderState>,
    metrics: Option<Arc<Metrics>>,
}

impl Elector {
    fn name(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.lease_name)
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Publishes a new state, logging and counting transitions.
    fn set(&self, next: LeaderState) {
        let prev = self.state.borrow().clone();
        if prev == next {
            return;
        }
        if prev.leading != next.leading {
            if next.leading {
                tracing::info!(identity = %self.config.identity, lease = %self.name(), "leading the continuous report");
            } else {
                tracing::warn!(identity = %self.config.identity, lease = %self.name(), "no longer leading the continuous report");
            }
            if let Some(m) = &self.metrics {
                m.report_leader.set(i64::from(next.leading));
            }
        } else if prev.holder != next.holder && !next.leading {
            tracing::info!(leader = next.holder.as_deref().unwrap_or("none"), lease = %self.name(), "continuous report leader");
        }
        if next.error != prev.error
            && let Some(e) = &next.error
        {
            tracing::warn!(error = %e, "leader election");
        }
        self.state.send_replace(next);
    }

    async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        // The lease as this candidate last wrote it, while leading.
        let mut held: Option<Box<Lease>> = None;
        let mut renewed = Instant::now();
        // The record last seen, and when it was first seen.
        let mut observed: Option<(Record, Instant)> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            match held.take() {
                Some(lease) => match self.renew(&lease, renewed).await {
                    Ok(fresh) => {
                        renewed = Instant::now();
                        held = Some(fresh);
                        self.set(self.leading());
                    }
                    Err((LeaseError::Conflict, current)) => match current {
                        // Our own earlier write landed after all: keep
                        // leading on the fresh version.
                        Some(current)
                            if holder_of(&current).as_deref() == Some(&self.config.identity) =>
                        {
                            held = Some(current);
                        }
                        other => {
                            let holder = other.as_deref().and_then(holder_of);
                            if let Some(l) = other.as_deref() {
                                observed = Some((Record::of(l), Instant::now()));
                            }
                            self.set(LeaderState {
                                leading: false,
                                holder,
                                error: None,
                            });
                        }
                    },
                    Err((LeaseError::Api(e), _)) => {
                        if renewed.elapsed() >= self.config.renew_deadline {
                            // Step down before the lease can expire for
                            // the others.
                            self.set(LeaderState {
                                leading: false,
                                holder: None,
                                error: Some(format!(
                                    "stepped down: no renewal for {}ms: {e}",
                                    self.config.renew_deadline.as_millis()
                                )),
                            });
                        } else {
                            held = Some(lease);
                            let mut s = self.leading();
                            s.error = Some(e);
                            self.set(s);
                        }
                    }
                },
                None => match self.try_acquire(&mut observed).await {
                    Ok(Attempt::Acquired(lease)) => {
                        renewed = Instant::now();
                        held = Some(lease);
                        self.set(self.leading());
                    }
                    Ok(Attempt::Held(holder)) => self.set(LeaderState {
                        leading: false,
                        holder,
                        error: None,
                    }),
                    Err(e) => self.set(LeaderState {
                        leading: false,
                        holder: None,
                        error: Some(e.to_string()),
                    }),
                },
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = stop.changed() => {}
            }
        }
        // Stopped: step down first, then release what is held.
        self.set(LeaderState::default());
        if let Some(lease) = held {
            match tokio::time::timeout(RELEASE_TIMEOUT, self.release(&lease)).await {
                Ok(Ok(())) => tracing::info!(lease = %self.name(), "lease released"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "lease not released: it expires instead")
                }
                Err(_) => tracing::warn!("lease release timed out: it expires instead"),
            }
        }
    }

    fn leading(&self) -> LeaderState {
        LeaderState {
            leading: true,
            holder: Some(self.config.identity.clone()),
            error: None,
        }
    }

    async fn call<T>(
        &self,
        budget: Duration,
        what: &str,
        f: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LeaseError> {
        match tokio::time::timeout(budget, f).await {
            Ok(r) => r.map_err(|e| api_error(what, &self.name(), &e)),
            Err(_) => Err(LeaseError::Api(format!(
                "{what} lease {}: no answer within {}ms",
                self.name(),
                budget.as_millis()
            ))),
        }
    }

    fn spec_now(&self, previous: Option<&LeaseSpec>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.lease_seconds()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..previous.cloned().unwrap_or_default()
        }
    }

    async fn try_acquire(
        &self,
        observed: &mut Option<(Record, Instant)>,
    ) -> Result<Attempt, LeaseError> {
        let name = &self.config.lease_name;
        let current = self
            .call(REQUEST_TIMEOUT, "reading", self.api.get_opt(name))
            .await?;
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    labels: Some(
                        [(
                            "app.kubernetes.io/managed-by".to_owned(),
                            "provgate".to_owned(),
                        )]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec_now(None, 0)),
            };
            return match self
                .call(
                    REQUEST_TIMEOUT,
                    "creating",
                    self.api.create(&PostParams::default(), &lease),
                )
                .await
            {
                Ok(l) => Ok(Attempt::Acquired(Box::new(l))),
                Err(LeaseError::Conflict) => Ok(Attempt::Held(None)),
                Err(e) => Err(e),
            };
        };
        let record = Record::of(&current);
        let now = Instant::now();
        let first_seen = match observed {
            Some((r, at)) if *r == record => *at,
            _ => {
                *observed = Some((record.clone(), now));
                now
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.config.lease_duration);
        let ours = record.holder.as_deref() == Some(self.config.identity.as_str());
        if let Some(holder) = &record.holder
            && !ours
            && now.duration_since(first_seen) < duration
        {
            return Ok(Attempt::Held(Some(holder.clone())));
        }
        // Free, expired, or still ours: take it, conditionally on the
        // version read.
        let transitions = spec.lease_transitions.unwrap_or(0);
        let transitions = if ours {
            transitions
        } else {
            transitions.saturating_add(1)
        };
        let mut next = current.clone();
        let mut new_spec = self.spec_now(Some(&spec), transitions);
        if ours {
            new_spec.acquire_time = spec.acquire_time.clone().or(new_spec.acquire_time);
        }
        next.spec = Some(new_spec);
        match self
            .call(
                REQUEST_TIMEOUT,
                "acquiring",
                self.api.replace(name, &PostParams::default(), &next),
            )
            .await
        {
            Ok(l) => Ok(Attempt::Acquired(Box::new(l))),
            // Another candidate took it between our read and write.
            Err(LeaseError::Conflict) => Ok(Attempt::Held(record.holder.filter(|_| !ours))),
            Err(e) => Err(e),
        }
    }

    /// Renews `lease` (as last written); on a conflict, also returns the
    /// current lease when it could be read.
    async fn renew(
        &self,
        lease: &Lease,
        renewed: Instant,
    ) -> Result<Box<Lease>, (LeaseError, Option<Box<Lease>>)> {
        let budget = self
            .config
            .renew_deadline
            .saturating_sub(renewed.elapsed())
            .clamp(Duration::from_millis(100), REQUEST_TIMEOUT);
        let mut next = lease.clone();
        let spec = next.spec.get_or_insert_with(LeaseSpec::default);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(self.lease_seconds());
        let name = &self.config.lease_name;
        match self
            .call(
                budget,
                "renewing",
                self.api.replace(name, &PostParams::default(), &next),
            )
            .await
        {
            Ok(l) => Ok(Box::new(l)),
            Err(LeaseError::Conflict) => {
                let current = self
                    .call(budget, "reading", self.api.get_opt(name))
                    .await
                    .ok()
                    .flatten()
                    .map(Box::new);
                Err((LeaseError::Conflict, current))
            }
            Err(e) => Err((e, None)),
        }
    }

    /// Clears the holder so that the next candidate takes the lease at
    /// once.
    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        let mut next = lease.clone();
        let spec = next.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        spec.lease_duration_seconds = Some(1);
        self.call(
            RELEASE_TIMEOUT,
            "releasing",
            self.api
                .replace(&self.config.lease_name, &PostParams::default(), &next),
        )
        .await
        .map(|_| ())
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
