//! The election itself: one candidate's loop of acquire, renew, step down
//! and release on the Lease, with optimistic concurrency on every write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::{ElectorConfig, LeaderState, RELEASE_TIMEOUT, REQUEST_TIMEOUT};
use crate::metrics::Metrics;

/// The outcome of one acquisition attempt.
pub(super) enum Attempt {
    /// This candidate holds the lease (as written).
    Acquired(Box<Lease>),
    /// Another candidate holds it (`None`: unknown, lost a race).
    Held(Option<String>),
}

/// Why a Lease request failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum LeaseError {
    /// Another writer changed the Lease first.
    #[error("the lease was changed by another candidate")]
    Conflict,
    /// The request failed.
    #[error("{0}")]
    Api(String),
}

pub(super) fn api_error(what: &str, lease: &str, e: &kube::Error) -> LeaseError {
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
pub(super) struct Record {
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

pub(super) fn holder_of(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

pub(super) struct Elector {
    pub(super) api: Api<Lease>,
    pub(super) config: ElectorConfig,
    pub(super) state: tokio::sync::watch::Sender<LeaderState>,
    pub(super) metrics: Option<Arc<Metrics>>,
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

    pub(super) async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
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
