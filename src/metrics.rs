//! Prometheus metrics (prefix `provgate_`), on `prometheus-client`.
//!
//! The registry is built once and passed around (no globals). Label values
//! are bounded: endpoints, results, modes, cache names and registry request
//! kinds are fixed sets; registries, namespaces, teams and contracts come
//! from configuration or the cluster, not from request payloads beyond
//! the namespace.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::oci::{CircuitState, RequestKind, RequestObserver};

/// Endpoint × result × mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `validate`, `mutate`, `gate`, `report`.
    pub endpoint: String,
    /// `allowed`, `denied`, `error`, `invalid`, `unauthorized`.
    pub result: String,
}

/// Per-image decision labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `admission`, `gate`, `report`, `cli`.
    pub source: &'static str,
    /// Namespace (empty for CI without context).
    pub namespace: String,
    /// `allow`, `warn`, `deny`.
    pub outcome: &'static str,
}

/// Contract verdict labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// Contract name.
    pub contract: String,
    /// `pass`, `warn`, `deny`, `error`, `exempt`.
    pub verdict: &'static str,
    /// Effective mode.
    pub mode: &'static str,
}

/// Registry request labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    /// Registry host.
    pub registry: String,
    /// `resolve`, `referrers`, `tag`, `manifest`, `blob`, `token`.
    pub kind: String,
    /// HTTP status or error label.
    pub status: String,
}

/// A registry host.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryHostLabels {
    /// Registry host.
    pub registry: String,
}

/// Back-off labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackoffLabels {
    /// Registry host.
    pub registry: String,
    /// `429`, `5xx`, `timeout`, `connect`.
    pub cause: String,
}

/// Cache labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `tag`, `evidence`, `verdict`.
    pub cache: &'static str,
    /// `hit`, `miss`, `negative-hit`, `transient-negative-hit`.
    pub result: &'static str,
}

/// A cache's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheNameLabels {
    /// `evidence`.
    pub cache: String,
}

/// Degraded decision labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DegradedLabels {
    /// Registry.
    pub registry: String,
    /// `last-known-good` or `warn`.
    pub policy: String,
}

/// Result label only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `failure`.
    pub result: String,
}

/// Endpoint label only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// Endpoint.
    pub endpoint: String,
}

/// Compliance gauge labels (reporting).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComplianceLabels {
    /// Namespace.
    pub namespace: String,
    /// Team (from the configured label), or empty.
    pub team: String,
    /// `compliant` or `non-compliant`.
    pub status: String,
}

/// Shared-tier (Redis) lookup labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SharedCacheLabels {
    /// `hit`, `hit-after-wait` (another replica's discovery, waited for),
    /// `miss` (this replica discovers), `refused` (an entry failed its
    /// checks), `wait-expired`, `error` (Redis failed), `skipped` (circuit
    /// open), `not-stored` (over `maxEntryBytes`).
    pub result: String,
}

/// All of provgate's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Requests by endpoint and result.
    pub requests: Family<RequestLabels, Counter>,
    /// Per-image decisions.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Contract verdicts.
    pub verdicts: Family<VerdictLabels, Counter>,
    /// End-to-end decision latency.
    pub decision_seconds: Family<EndpointLabels, Histogram>,
    /// Verification time per piece of evidence.
    pub verification_seconds: Histogram,
    /// Discovery time per image (registry).
    pub registry_seconds: Histogram,
    /// Contract evaluation time.
    pub policy_seconds: Histogram,
    /// Registry requests.
    pub registry_requests: Family<RegistryLabels, Counter>,
    /// Each registry host's circuit: 0 closed, 1 half-open, 2 open.
    pub registry_circuit: Family<RegistryHostLabels, Gauge>,
    /// Back-offs begun (circuits opened), by host and cause.
    pub registry_backoffs: Family<BackoffLabels, Counter>,
    /// Requests not sent because their host was backing off.
    pub registry_shed: Family<RegistryHostLabels, Counter>,
    /// Cache lookups.
    pub cache: Family<CacheLabels, Counter>,
    /// Degraded decisions.
    pub degraded: Family<DegradedLabels, Counter>,
    /// Config/contract reloads.
    pub reloads: Family<ResultLabels, Counter>,
    /// Workloads by compliance (reporting).
    pub workloads: Family<ComplianceLabels, Gauge>,
    /// Running workloads whose images admission would now deny.
    pub would_deny: Family<ComplianceLabels, Gauge>,
    /// Bytes a cache holds, as its weigher counts them.
    pub cache_bytes: Family<CacheNameLabels, Gauge>,
    /// Entries a cache holds.
    pub cache_entries: Family<CacheNameLabels, Gauge>,
    /// Shared-tier lookups by result.
    pub shared_cache: Family<SharedCacheLabels, Counter>,
    /// Time of one shared-tier (Redis) command.
    pub shared_cache_seconds: Histogram,
    /// 1 while the shared tier is skipped after a Redis failure.
    pub shared_cache_circuit: Gauge,
    /// 1 on the replica that runs the continuous report (the elected
    /// leader, or every replica when leader election is off), else 0.
    pub report_leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("provgate")),
            requests: Family::<RequestLabels, Counter>::default(),
            decisions: Family::<DecisionLabels, Counter>::default(),
            verdicts: Family::<VerdictLabels, Counter>::default(),
            decision_seconds: Family::<EndpointLabels, Histogram>::new_with_constructor(
                latency as fn() -> Histogram,
            ),
            verification_seconds: latency(),
            registry_seconds: latency(),
            policy_seconds: latency(),
            registry_requests: Family::<RegistryLabels, Counter>::default(),
            registry_circuit: Family::<RegistryHostLabels, Gauge>::default(),
            registry_backoffs: Family::<BackoffLabels, Counter>::default(),
            registry_shed: Family::<RegistryHostLabels, Counter>::default(),
            cache: Family::<CacheLabels, Counter>::default(),
            degraded: Family::<DegradedLabels, Counter>::default(),
            reloads: Family::<ResultLabels, Counter>::default(),
            workloads: Family::<ComplianceLabels, Gauge>::default(),
            would_deny: Family::<ComplianceLabels, Gauge>::default(),
            cache_bytes: Family::<CacheNameLabels, Gauge>::default(),
            cache_entries: Family::<CacheNameLabels, Gauge>::default(),
            shared_cache: Family::<SharedCacheLabels, Counter>::default(),
            shared_cache_seconds: latency(),
            shared_cache_circuit: Gauge::default(),
            report_leader: Gauge::default(),
        };
        if let Ok(mut registry) = metrics.registry.lock() {
            metrics.register(&mut registry);
        }
        metrics
    }

    /// Registers every metric, with its help text.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "report_leader",
            "1 on the replica that runs the continuous report (watches workloads, sets provgate_workloads, writes PolicyReports), else 0",
            self.report_leader.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes held by a cache (the verified-evidence cache is bounded by caches.evidenceBytes)",
            self.cache_bytes.clone(),
        );
        registry.register(
            "cache_entries",
            "Entries held by a cache",
            self.cache_entries.clone(),
        );
        registry.register(
            "requests",
            "Requests by endpoint and result",
            self.requests.clone(),
        );
        registry.register(
            "decisions",
            "Image decisions by source, namespace and outcome",
            self.decisions.clone(),
        );
        registry.register(
            "contract_verdicts",
            "Contract verdicts by contract, verdict and effective mode",
            self.verdicts.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time to answer a request",
            self.decision_seconds.clone(),
        );
        registry.register(
            "verification_duration_seconds",
            "Time to verify one piece of evidence",
            self.verification_seconds.clone(),
        );
        registry.register(
            "registry_duration_seconds",
            "Time to discover one image's evidence (cold)",
            self.registry_seconds.clone(),
        );
        registry.register(
            "policy_duration_seconds",
            "Time to evaluate one contract",
            self.policy_seconds.clone(),
        );
        registry.register(
            "registry_requests",
            "Registry requests by registry, kind and status",
            self.registry_requests.clone(),
        );
        registry.register(
            "registry_circuit_state",
            "Each registry host's circuit: 0 closed, 1 half-open (one probe allowed), 2 open (backing off)",
            self.registry_circuit.clone(),
        );
        registry.register(
            "registry_backoffs",
            "Back-offs begun towards a registry host, by cause (429, 5xx, timeout, connect)",
            self.registry_backoffs.clone(),
        );
        registry.register(
            "registry_shed_requests",
            "Registry requests not sent because the host was backing off",
            self.registry_shed.clone(),
        );
        registry.register(
            "cache_requests",
            "Cache lookups by cache and result",
            self.cache.clone(),
        );
        registry.register(
            "degraded_decisions",
            "Decisions served degraded (last-known-good or warn) on registry failure",
            self.degraded.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration and contract reloads by result",
            self.reloads.clone(),
        );
        registry.register(
            "workloads",
            "Running workloads by namespace, team and compliance",
            self.workloads.clone(),
        );
        registry.register(
            "workloads_would_deny",
            "Running workloads whose images admission would now deny",
            self.would_deny.clone(),
        );
        registry.register(
            "shared_cache_requests",
            "Shared-tier (Redis) evidence lookups by result",
            self.shared_cache.clone(),
        );
        registry.register(
            "shared_cache_duration_seconds",
            "Time of one shared-tier (Redis) command",
            self.shared_cache_seconds.clone(),
        );
        registry.register(
            "shared_cache_circuit_open",
            "1 while the shared tier is skipped after a Redis failure",
            self.shared_cache_circuit.clone(),
        );
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        }
        out
    }

    /// Counts a cache lookup.
    pub fn cache_result(&self, cache: &'static str, result: &'static str) {
        self.cache
            .get_or_create(&CacheLabels { cache, result })
            .inc();
    }

    /// Counts a shared-tier lookup.
    pub fn shared_cache_result(&self, result: &str) {
        self.shared_cache
            .get_or_create(&SharedCacheLabels {
                result: result.into(),
            })
            .inc();
    }

    /// Total registry requests so far (all labels), for tests and benches.
    pub fn registry_request_count(&self) -> u64 {
        let text = self.encode();
        text.lines()
            .filter(|l| l.starts_with("provgate_registry_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, registry: &str, kind: RequestKind, outcome: &str) {
        self.registry_requests
            .get_or_create(&RegistryLabels {
                registry: registry.into(),
                kind: kind.as_str().into(),
                status: outcome.into(),
            })
            .inc();
    }

    fn circuit(&self, registry: &str, state: CircuitState) {
        self.registry_circuit
            .get_or_create(&RegistryHostLabels {
                registry: registry.into(),
            })
            .set(state.gauge());
    }

    fn backoff(&self, registry: &str, cause: &str) {
        self.registry_backoffs
            .get_or_create(&BackoffLabels {
                registry: registry.into(),
                cause: cause.into(),
            })
            .inc();
    }

    fn shed(&self, registry: &str) {
        self.registry_shed
            .get_or_create(&RegistryHostLabels {
                registry: registry.into(),
            })
            .inc();
    }
}

/// Observes a duration in seconds.
pub fn observe(h: &Histogram, d: Duration) {
    h.observe(d.as_secs_f64());
}
