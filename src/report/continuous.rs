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
//! Workloads in namespaces the webhooks exempt (`report.namespaceSelector`)
//! are counted, not judged; when the selector (or a binding) needs
//! namespace labels, they are read from the API (`get namespaces`, cached
//! for a minute).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::inventory::{Inventory, WATCHED, watch_all};
use super::{Report, Workload, WorkloadReport, assemble, judge};
use crate::engine::Engine;
use crate::engine::decision::Outcome;
use crate::engine::namespaces::NamespaceLabels;
use crate::metrics::ComplianceLabels;

/// The latest report, shared with the HTTP handler.
#[derive(Debug, Default)]
pub struct LiveReport {
    latest: ArcSwapOption<Report>,
    /// The inventory behind it.
    pub inventory: Arc<Inventory>,
}

impl LiveReport {
    /// The latest report, once the first one is done.
    pub fn latest(&self) -> Option<Arc<Report>> {
        self.latest.load_full()
    }
}

/// Starts watching and evaluating, and the PolicyReport writer (which
/// writes only while `report.policyReports` is on); returns the live report
/// and the tasks.
pub fn start(
    engine: Arc<Engine>,
    client: kube::Client,
) -> (Arc<LiveReport>, Vec<tokio::task::JoinHandle<()>>) {
    let live = Arc::new(LiveReport::default());
    let mut tasks = watch_all(client.clone(), live.inventory.clone());
    let (tx, rx) = tokio::sync::watch::channel(None);
    let writer = super::writer::PolicyReportWriter::new(client.clone());
    tasks.push(tokio::spawn(super::writer::run(writer, engine.clone(), rx)));
    let namespaces = NamespaceLabels::new(client, Duration::from_secs(60));
    let l = live.clone();
    tasks.push(tokio::spawn(async move {
        evaluate_loop(engine, l, namespaces, tx).await
    }));
    (live, tasks)
}

async fn evaluate_loop(
    engine: Arc<Engine>,
    live: Arc<LiveReport>,
    namespaces: NamespaceLabels,
    published: tokio::sync::watch::Sender<Option<Arc<Report>>>,
) {
    let inv = live.inventory.clone();
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
