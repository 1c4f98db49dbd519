//! Continuous reporting inside `provgate serve`.
//!
//! A live [`Inventory`] (list + watch) feeds an evaluator that keeps one
//! result per workload. A changed or new workload is judged again; removed
//! ones are dropped; a configuration reload (contracts, bindings, trust) and
//! the periodic interval (evidence ages, certificates and timestamps
//! expire) judge everything. Judging goes through the engine's caches with a
//! concurrency limit, so the first report after start discovers each digest
//! once, a few at a time. The latest report is served at `GET /v1/report`
//! and summarised in gauges; with `report.policyReports`, the writer task
//! ([`super::writer`]) keeps the cluster's PolicyReports equal to it.
//!
//! **One replica runs it.** With `report.leaderElection.enabled` (the
//! default) the replicas elect a leader on a Lease ([`super::leader`]). A
//! supervisor task starts the work (watches, evaluation, writer) when this
//! replica becomes the leader and stops it, waiting until it has stopped,
//! when it no longer is: then the report is dropped and the compliance
//! gauges are emptied, so only the leader exports them. A follower answers
//! `GET /v1/report` with 503 and the leader's identity ([`Answer`]).
//! A graceful shutdown ([`LiveReport::shutdown`]) stops the work, then
//! releases the lease so that another replica takes over at once.
//!
//! Workloads in namespaces the webhooks exempt (`report.namespaceSelector`)
//! are counted, not judged; when the selector (or a binding) needs
//! namespace labels, they are read from the API (`get namespaces`, cached
//! for a minute).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};

use super::inventory::{Inventory, InventoryError, WATCHED, client_as, watch_all};
use super::leader::{self, ElectorConfig, Leadership};
use super::{Report, Workload, WorkloadReport, assemble, judge};
use crate::engine::Engine;
use crate::engine::decision::Outcome;
use crate::engine::namespaces::NamespaceLabels;
use crate::metrics::ComplianceLabels;

/// How long a shutdown waits for the report's tasks to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The continuous report of this replica, shared with the HTTP handler.
pub struct LiveReport {
    latest: ArcSwapOption<Report>,
    inventory: ArcSwap<Inventory>,
    identity: String,
    leadership: Option<Arc<Leadership>>,
    stop: tokio::sync::watch::Sender<bool>,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for LiveReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveReport")
            .field("identity", &self.identity)
            .field("leadership", &self.leadership)
            .finish_non_exhaustive()
    }
}

/// What `GET /v1/report` can answer on this replica.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The latest report.
    Ready(Arc<Report>),
    /// This replica leads, but its first report is not done yet.
    NotReady,
    /// Another replica runs the report (or none does yet).
    NotLeader {
        /// The leader's identity, when known.
        leader: Option<String>,
        /// When asking again may help.
        retry_after: Duration,
    },
}

impl LiveReport {
    /// The latest report, once the first one is done (on the leader only).
    pub fn latest(&self) -> Option<Arc<Report>> {
        self.latest.load_full()
    }

    /// The inventory of the current term (empty on a follower).
    pub fn inventory(&self) -> Arc<Inventory> {
        self.inventory.load_full()
    }

    /// This replica's identity (its candidate identity when electing).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The elector, when `report.leaderElection.enabled`.
    pub fn leadership(&self) -> Option<&Arc<Leadership>> {
        self.leadership.as_ref()
    }

    /// Whether this replica runs the report (always, without election).
    pub fn is_leader(&self) -> bool {
        self.leadership.as_ref().is_none_or(|l| l.is_leader())
    }

    /// What `GET /v1/report` answers now. A follower never serves a
    /// report, not even one left from an earlier term.
    pub fn answer(&self) -> Answer {
        if let Some(l) = &self.leadership
            && !l.is_leader()
        {
            return Answer::NotLeader {
                leader: l.state().holder,
                retry_after: l.retry_period(),
            };
        }
        match self.latest() {
            Some(r) => Answer::Ready(r),
            None => Answer::NotReady,
        }
    }

    /// Stops the report's work, then releases the lease (when leading) so
    /// that another replica takes over at once. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let supervisor = self.supervisor.lock().ok().and_then(|mut s| s.take());
        if let Some(s) = supervisor {
            let _ = tokio::time::timeout(STOP_TIMEOUT, s).await;
        }
        if let Some(l) = &self.leadership {
            l.release().await;
        }
    }
}

/// Starts continuous reporting as `report` configures it: a client of the
/// API server (`continuous.apiServer`, else in-cluster), the elector when
/// `leaderElection.enabled`, and the supervisor that runs the work while
/// this replica leads. Every API request carries the replica's identity in
/// its `User-Agent`.
pub async fn start(engine: Arc<Engine>) -> Result<Arc<LiveReport>, InventoryError> {
    let spec = engine.runtime().config.spec.report.clone();
    let identity = leader::identity();
    let user_agent = format!("provgate/{} ({identity})", env!("CARGO_PKG_VERSION"));
    let client = client_as(spec.continuous.api_server.as_deref(), Some(&user_agent)).await?;
    let leadership = if spec.leader_election.enabled {
        let namespace = leader::namespace(&spec.leader_election, &client);
        tracing::info!(
            identity = %identity,
            lease = %format!("{namespace}/{}", spec.leader_election.lease_name),
            "continuous report: electing a leader"
        );
        Some(Leadership::start(
            client.clone(),
            ElectorConfig::from_spec(&spec.leader_election, namespace, identity.clone()),
            Some(engine.metrics().clone()),
        ))
    } else {
        engine.metrics().report_leader.set(1);
        None
    };
    Ok(start_with(engine, client, identity, leadership))
}

/// Starts the supervisor over `client` with an elector already started
/// (`None`: this replica always runs the report).
pub fn start_with(
    engine: Arc<Engine>,
    client: kube::Client,
    identity: String,
    leadership: Option<Arc<Leadership>>,
) -> Arc<LiveReport> {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let live = Arc::new(LiveReport {
        latest: ArcSwapOption::empty(),
        inventory: ArcSwap::from_pointee(Inventory::default()),
        identity,
        leadership,
        stop,
        supervisor: Mutex::new(None),
    });
    let task = tokio::spawn(supervise(engine, live.clone(), client, stop_rx));
    if let Ok(mut s) = live.supervisor.lock() {
        *s = Some(task);
    }
    live
}

/// Runs the work while this replica leads.
async fn supervise(
    engine: Arc<Engine>,
    live: Arc<LiveReport>,
    client: kube::Client,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let namespaces = NamespaceLabels::new(client.clone(), Duration::from_secs(60));
    let mut leading = live.leadership.as_ref().map(|l| l.subscribe());
    let mut term: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let lead = match &mut leading {
            Some(rx) => rx.borrow_and_update().leading,
            None => true,
        };
        if lead && term.is_empty() {
            term = start_term(&engine, &live, &client, namespaces.clone());
        } else if !lead && !term.is_empty() {
            end_term(&engine, &live, &mut term).await;
        }
        let changed = async {
            match &mut leading {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ok = changed => if !ok { break },
            _ = stop.changed() => break,
        }
    }
    end_term(&engine, &live, &mut term).await;
}

/// Starts a leader's work on a fresh inventory.
fn start_term(
    engine: &Arc<Engine>,
    live: &Arc<LiveReport>,
    client: &kube::Client,
    namespaces: NamespaceLabels,
) -> Vec<tokio::task::JoinHandle<()>> {
    let inventory = Arc::new(Inventory::default());
    live.inventory.store(inventory.clone());
    let mut tasks = watch_all(client.clone(), inventory.clone());
    let (tx, rx) = tokio::sync::watch::channel(None);
    let writer = super::writer::PolicyReportWriter::new(client.clone());
    tasks.push(tokio::spawn(super::writer::run(writer, engine.clone(), rx)));
    let (e, l) = (engine.clone(), live.clone());
    tasks.push(tokio::spawn(async move {
        evaluate_loop(e, l, inventory, namespaces, tx).await
    }));
    tasks
}

/// Stops a leader's work and waits until it has stopped (no write or gauge
/// update can follow), then forgets its report and empties the gauges.
async fn end_term(engine: &Engine, live: &LiveReport, term: &mut Vec<tokio::task::JoinHandle<()>>) {
    if term.is_empty() {
        return;
    }
    for t in term.iter() {
        t.abort();
    }
    for t in term.drain(..) {
        let _ = t.await;
    }
    live.latest.store(None);
    live.inventory.store(Arc::new(Inventory::default()));
    let m = engine.metrics();
    m.workloads.clear();
    m.would_deny.clear();
}

async fn evaluate_loop(
    engine: Arc<Engine>,
    live: Arc<LiveReport>,
    inv: Arc<Inventory>,
    namespaces: NamespaceLabels,
    published: tokio::sync::watch::Sender<Option<Arc<Report>>>,
) {
    let mut changes = inv.subscribe();
    // Wait for the first list of every kind.
    while inv.lists() < WATCHED.len() as u64 {
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let mut results: BTreeMap<String, (Workload, WorkloadReport)> = BTreeMap::new();
    let mut seen_generation = u64::MAX;
    let mut last_full = tokio::time::Instant::now();
    loop {
        let spec = engine.runtime().config.spec.report.clone();
        let interval = spec.continuous.interval.0.max(Duration::from_secs(1));
        let concurrency = spec.continuous.concurrency.max(1);
        let generation = engine.generation();
        // Seen before the snapshot: a change from here on wakes the next
        // round, even one that lands while this round is judging.
        changes.borrow_and_update();
        let snapshot = inv.snapshot();
        let full = generation != seen_generation || last_full.elapsed() >= interval;
        let todo: Vec<Workload> = snapshot
            .iter()
            .filter(|(k, w)| full || results.get(*k).is_none_or(|(old, _)| old != *w))
            .map(|(_, w)| w.clone())
            .collect();
        let before = results.len();
        results.retain(|k, _| snapshot.contains_key(k));
        // A removed workload changes the report too (and may empty a
        // namespace, whose PolicyReport then goes).
        let removed = results.len() != before;
        if full || removed || !todo.is_empty() || live.latest().is_none() {
            let rt = engine.runtime();
            // Judge copies with their namespace labels; remember the
            // inventory's own version, which the next round compares.
            let mut labelled = todo.clone();
            if super::scope::labels_needed(&rt) {
                super::scope::fill_namespace_labels(
                    &mut labelled,
                    &namespaces,
                    rt.config.spec.report.scope(),
                )
                .await;
            }
            // `judge` keeps the order, so results pair with their workloads.
            let judged = judge(&engine, rt, &labelled, concurrency).await;
            for (w, r) in todo.into_iter().zip(judged) {
                results.insert(w.key(), (w, r));
            }
            let report = Arc::new(assemble(
                engine.clock().now(),
                spec.team_label.clone(),
                results.values().map(|(_, r)| r.clone()).collect(),
            ));
            publish(&engine, &report);
            live.latest.store(Some(report.clone()));
            published.send_replace(Some(report));
            if full {
                seen_generation = generation;
                last_full = tokio::time::Instant::now();
            }
        }
        // Next round: an inventory change, a reload, or the interval.
        let until_full = interval.saturating_sub(last_full.elapsed());
        tokio::select! {
            _ = changes.changed() => {
                // Coalesce bursts of events.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = tokio::time::sleep(until_full) => {}
            _ = wait_for_reload(&engine, generation) => {}
        }
    }
}

async fn wait_for_reload(engine: &Engine, generation: u64) {
    while engine.generation() == generation {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sets the compliance gauges from a report.
fn publish(engine: &Engine, report: &Report) {
    let m = engine.metrics();
    m.workloads.clear();
    m.would_deny.clear();
    let mut counts: BTreeMap<(String, String, &str), i64> = BTreeMap::new();
    let mut deny: BTreeMap<(String, String), i64> = BTreeMap::new();
    for w in &report.workloads {
        let team = w.team.clone().unwrap_or_default();
        let status = if w.unreadable.is_some() {
            "unreadable"
        } else if w.compliant {
            "compliant"
        } else {
            "non-compliant"
        };
        *counts
            .entry((w.namespace.clone(), team.clone(), status))
            .or_default() += 1;
        if w.outcome == Outcome::Deny {
            *deny.entry((w.namespace.clone(), team)).or_default() += 1;
        }
    }
    for ((namespace, team, status), n) in counts {
        m.workloads
            .get_or_create(&ComplianceLabels {
                namespace,
                team,
                status: status.into(),
            })
            .set(n);
    }
    for ((namespace, team), n) in deny {
        m.would_deny
            .get_or_create(&ComplianceLabels {
                namespace,
                team,
                status: "would-deny".into(),
            })
            .set(n);
    }
}
