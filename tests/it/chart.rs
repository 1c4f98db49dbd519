//! The Helm chart (`charts/provgate`), as `.ci/chart.sh` renders it.
//!
//! `.ci/chart.sh` lints the chart and renders it with Helm's own library for
//! every scenario in `charts/ci/scenarios` into `target/chart-render/`. These
//! tests read that output, deserialise every object into its k8s-openapi type
//! (failing on any field the type does not know, so a typo in a template
//! fails here and not on a cluster), and check the facts the chart exists to
//! guarantee: fail-closed webhooks that see every workload kind and
//! ephemeral containers, namespace exclusions by the immutable
//! `kubernetes.io/metadata.name` label (and the same exclusions for the
//! report), a restricted pod, no API access unless reporting is on (and
//! PolicyReport writes only when asked for), TLS material that matches its
//! mode, and a config file that provgate's own loader compiles.
//!
//! A missing render directory is a failure, not a skip: run `.ci/chart.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::Resource;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common;

/// Every scenario `charts/ci/scenarios` must have produced.
const SCENARIOS: &[&str] = &[
    "cert-manager",
    "cert-manager-issuer",
    "default",
    "existing-secret",
    "full",
    "genca-upgrade",
    "mutating",
    "namespace-labels",
    "network-policy",
    "opt-out-label",
    "report-continuous",
    "report-ha",
    "report-policyreports",
    "report-single",
    "service-monitor",
    "shared-cache",
    "shared-cache-plain",
];

/// The workload resources admission must see, by API group.
const WORKLOADS: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
];

const CONFIG_PATH: &str = "/etc/provgate/config/config.yaml";

// ---------------------------------------------------------------------------
// Loading the render.

#[derive(Deserialize)]
struct Index {
    release: String,
    namespace: String,
    scenarios: Vec<IndexEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    name: String,
    values: Value,
    install: Option<String>,
    upgrade_manifest: Option<String>,
}

/// One rendered manifest, every object typed.
struct Render {
    scenario: String,
    /// The scenario's value overrides.
    values: Value,
    release: String,
    namespace: String,
    objects: Vec<Object>,
}

/// A rendered object in its type.
#[allow(clippy::large_enum_variant)]
enum Object {
    ConfigMap(ConfigMap),
    Secret(Secret),
    Service(Service),
    ServiceAccount(ServiceAccount),
    Deployment(Deployment),
    Pdb(PodDisruptionBudget),
    NetworkPolicy(NetworkPolicy),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    Validating(ValidatingWebhookConfiguration),
    Mutating(MutatingWebhookConfiguration),
    Certificate(Crd<CertificateSpec>),
    Issuer(Crd<IssuerSpec>),
    ServiceMonitor(Crd<ServiceMonitorSpec>),
}

fn render_dir() -> PathBuf {
    common::repo().join("target/chart-render")
}

fn index() -> Index {
    let dir = render_dir();
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nThe chart has not been rendered: run `.ci/chart.sh` first \
             (it lints and renders charts/provgate into target/chart-render/).",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every manifest: each scenario's install, then its upgrade if any.
fn renders() -> Vec<Render> {
    let idx = index();
    let names: BTreeSet<&str> = idx.scenarios.iter().map(|s| s.name.as_str()).collect();
    let want: BTreeSet<&str> = SCENARIOS.iter().copied().collect();
    assert_eq!(
        names, want,
        "scenarios in target/chart-render differ from the ones this test knows; \
         re-run `.ci/chart.sh`, or update SCENARIOS"
    );
    let mut out = Vec::new();
    for s in &idx.scenarios {
        let install = s
            .install
            .as_ref()
            .unwrap_or_else(|| panic!("scenario {}: no manifest (did the render fail?)", s.name));
        let mut files = vec![(s.name.clone(), install.clone())];
        if let Some(up) = &s.upgrade_manifest {
            files.push((format!("{} (upgrade)", s.name), up.clone()));
        }
        for (label, file) in files {
            let path = render_dir().join(&file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `.ci/chart.sh`", path.display()));
            out.push(Render {
                objects: parse_manifest(&label, &text),
                scenario: label,
                values: s.values.clone(),
                release: idx.release.clone(),
                namespace: idx.namespace.clone(),
            });
        }
    }
    out
}

fn parse_manifest(scenario: &str, text: &str) -> Vec<Object> {
    let mut objects = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{scenario}: bad YAML: {e}"));
        if v.is_null() {
            continue;
        }
        let kind = v["kind"].as_str().unwrap_or_default().to_owned();
        let ctx = format!("{scenario}: {kind} {}", v["metadata"]["name"]);
        let obj = match kind.as_str() {
            "ConfigMap" => Object::ConfigMap(strict(&v, &ctx)),
            "Secret" => Object::Secret(strict(&v, &ctx)),
            "Service" => Object::Service(strict(&v, &ctx)),
            "ServiceAccount" => Object::ServiceAccount(strict(&v, &ctx)),
            "Deployment" => Object::Deployment(strict(&v, &ctx)),
            "PodDisruptionBudget" => Object::Pdb(strict(&v, &ctx)),
            "NetworkPolicy" => Object::NetworkPolicy(strict(&v, &ctx)),
            "ClusterRole" => Object::ClusterRole(strict(&v, &ctx)),
            "ClusterRoleBinding" => Object::ClusterRoleBinding(strict(&v, &ctx)),
            "Role" => Object::Role(strict(&v, &ctx)),
            "RoleBinding" => Object::RoleBinding(strict(&v, &ctx)),
            "ValidatingWebhookConfiguration" => Object::Validating(strict(&v, &ctx)),
            "MutatingWebhookConfiguration" => Object::Mutating(strict(&v, &ctx)),
            "Certificate" => Object::Certificate(crd(&v, "cert-manager.io/v1", &ctx)),
            "Issuer" => Object::Issuer(crd(&v, "cert-manager.io/v1", &ctx)),
            "ServiceMonitor" => Object::ServiceMonitor(crd(&v, "monitoring.coreos.com/v1", &ctx)),
            other => {
                panic!("{ctx}: the chart renders kind {other:?}, which this test has no type for")
            }
        };
        objects.push(obj);
    }
    assert!(!objects.is_empty(), "{scenario}: empty manifest");
    objects
}

/// Deserialises a built-in object into its k8s-openapi type and fails on
/// anything the type dropped: k8s-openapi ignores unknown fields, so the
/// object is serialised again and compared with what the chart wrote.
fn strict<T: Resource + DeserializeOwned + Serialize>(v: &Value, ctx: &str) -> T {
    assert_eq!(v["apiVersion"], T::API_VERSION, "{ctx}: apiVersion");
    roundtrip(v, ctx)
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value, ctx: &str) -> T {
    let t: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let back = serde_json::to_value(&t).unwrap();
    let mut lost = Vec::new();
    diff("", v, &back, &mut lost);
    assert!(
        lost.is_empty(),
        "{ctx}: fields the type does not know or changed (typos?):\n  {}",
        lost.join("\n  ")
    );
    t
}

/// Paths in `want` that `got` lacks or holds differently (nulls ignored).
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                if wv.is_null() {
                    continue;
                }
                let p = format!("{path}.{k}");
                match g.get(k) {
                    None | Some(Value::Null) => out.push(p),
                    Some(gv) => diff(&p, wv, gv, out),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff(&format!("{path}[{i}]"), wv, gv, out);
            }
        }
        (w, g) if w == g => {}
        (w, g) => out.push(format!("{path}: wrote {w}, type holds {g}")),
    }
}

/// A custom resource: envelope strict by serde, metadata by round trip.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Crd<S> {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Value,
    spec: S,
}

impl<S> Crd<S> {
    fn name(&self) -> &str {
        self.metadata["name"].as_str().unwrap_or_default()
    }
}

fn crd<S: DeserializeOwned>(v: &Value, api_version: &str, ctx: &str) -> Crd<S> {
    assert_eq!(v["apiVersion"], api_version, "{ctx}: apiVersion");
    let c: Crd<S> = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let _: ObjectMeta = roundtrip(&c.metadata, &format!("{ctx} metadata"));
    c
}

// The fields of the cert-manager and prometheus-operator CRDs the chart uses
// (cert-manager.io/v1, monitoring.coreos.com/v1), strict.

#[allow(dead_code)] // read by serde, for strictness
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CertificateSpec {
    secret_name: String,
    #[serde(default)]
    dns_names: Vec<String>,
    common_name: Option<String>,
    #[serde(default, rename = "isCA")]
    is_ca: bool,
    duration: Option<String>,
    renew_before: Option<String>,
    private_key: Option<PrivateKeySpec>,
    #[serde(default)]
    usages: Vec<String>,
    issuer_ref: IssuerRef,
}

#[allow(dead_code)] // read by serde, for strictness
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrivateKeySpec {
    algorithm: Option<String>,
    size: Option<u32>,
    rotation_policy: Option<String>,
}

#[allow(dead_code)] // read by serde, for strictness
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerRef {
    name: String,
    kind: Option<String>,
    group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IssuerSpec {
    self_signed: Option<SelfSigned>,
    ca: Option<CaIssuer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SelfSigned {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CaIssuer {
    secret_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: LabelSelector,
    namespace_selector: Option<SmNamespaceSelector>,
    endpoints: Vec<SmEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SmNamespaceSelector {
    #[serde(default)]
    match_names: Vec<String>,
}

#[allow(dead_code)] // read by serde, for strictness
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SmEndpoint {
    port: String,
    scheme: Option<String>,
    path: Option<String>,
    interval: Option<String>,
    scrape_timeout: Option<String>,
    #[serde(default)]
    relabelings: Vec<Value>,
    #[serde(default)]
    metric_relabelings: Vec<Value>,
}

// ---------------------------------------------------------------------------
// Accessors.

impl Render {
    /// A value override of the scenario, by dotted path.
    fn value(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(&self.values, |v, k| v.get(k))
    }

    fn flag(&self, path: &str) -> bool {
        self.value(path).and_then(Value::as_bool).unwrap_or(false)
    }

    fn tls_mode(&self) -> &str {
        self.value("tls.mode")
            .and_then(Value::as_str)
            .unwrap_or("generate")
    }

    fn fullname(&self) -> String {
        // The release is "provgate": the full name is the release name.
        self.release.clone()
    }

    fn deployment(&self) -> &Deployment {
        let all: Vec<&Deployment> = self
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Deployment(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(all.len(), 1, "{}: Deployments", self.scenario);
        all[0]
    }

    fn pod(&self) -> &PodSpec {
        self.deployment()
            .spec
            .template
            .spec
            .as_ref()
            .unwrap_or_else(|| panic!("{}: Deployment without pod spec", self.scenario))
    }

    fn container(&self) -> &Container {
        let pod = self.pod();
        assert_eq!(pod.containers.len(), 1, "{}: containers", self.scenario);
        &pod.containers[0]
    }

    fn config_maps(&self) -> impl Iterator<Item = &ConfigMap> {
        self.objects.iter().filter_map(|o| match o {
            Object::ConfigMap(c) => Some(c),
            _ => None,
        })
    }

    fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.objects.iter().filter_map(|o| match o {
            Object::Secret(s) => Some(s),
            _ => None,
        })
    }

    fn validating(&self) -> &ValidatingWebhookConfiguration {
        let all: Vec<_> = self
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Validating(v) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(
            all.len(),
            1,
            "{}: ValidatingWebhookConfigurations",
            self.scenario
        );
        all[0]
    }

    fn mutating(&self) -> Option<&MutatingWebhookConfiguration> {
        let all: Vec<_> = self
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Mutating(m) => Some(m),
                _ => None,
            })
            .collect();
        assert!(
            all.len() <= 1,
            "{}: MutatingWebhookConfigurations",
            self.scenario
        );
        all.first().copied()
    }

    /// Every webhook of both configurations, as the parts they share.
    fn webhooks(&self) -> Vec<Hook<'_>> {
        let mut out = Vec::new();
        let v = self.validating();
        for w in v.webhooks.iter().flatten() {
            out.push(Hook {
                config: "validating",
                meta: &v.metadata,
                name: &w.name,
                path: "/validate",
                failure_policy: w.failure_policy.as_deref(),
                match_policy: w.match_policy.as_deref(),
                side_effects: &w.side_effects,
                versions: &w.admission_review_versions,
                timeout: w.timeout_seconds,
                client: &w.client_config,
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                rules: w.rules.as_deref().unwrap_or_default(),
                match_conditions: w.match_conditions.as_ref().map_or(0, Vec::len),
            });
        }
        if let Some(m) = self.mutating() {
            for w in m.webhooks.iter().flatten() {
                out.push(Hook {
                    config: "mutating",
                    meta: &m.metadata,
                    name: &w.name,
                    path: "/mutate",
                    failure_policy: w.failure_policy.as_deref(),
                    match_policy: w.match_policy.as_deref(),
                    side_effects: &w.side_effects,
                    versions: &w.admission_review_versions,
                    timeout: w.timeout_seconds,
                    client: &w.client_config,
                    namespace_selector: w.namespace_selector.as_ref(),
                    object_selector: w.object_selector.as_ref(),
                    rules: w.rules.as_deref().unwrap_or_default(),
                    match_conditions: w.match_conditions.as_ref().map_or(0, Vec::len),
                });
            }
        }
        out
    }

    /// The provgate config file the chart renders.
    fn config_text(&self) -> String {
        let cm = self
            .config_maps()
            .find(|c| c.metadata.name.as_deref() == Some(&format!("{}-config", self.fullname())))
            .unwrap_or_else(|| panic!("{}: no config ConfigMap", self.scenario));
        cm.data
            .as_ref()
            .and_then(|d| d.get("config.yaml"))
            .unwrap_or_else(|| panic!("{}: config ConfigMap without config.yaml", self.scenario))
            .clone()
    }
}

struct Hook<'a> {
    config: &'static str,
    meta: &'a ObjectMeta,
    name: &'a str,
    path: &'static str,
    failure_policy: Option<&'a str>,
    match_policy: Option<&'a str>,
    side_effects: &'a str,
    versions: &'a [String],
    timeout: Option<i32>,
    client: &'a WebhookClientConfig,
    namespace_selector: Option<&'a LabelSelector>,
    object_selector: Option<&'a LabelSelector>,
    rules: &'a [RuleWithOperations],
    match_conditions: usize,
}

fn strs(v: &Option<Vec<String>>) -> Vec<&str> {
    v.iter().flatten().map(String::as_str).collect()
}

/// Whether a port (name or number) is `want`.
fn port_is(port: Option<&IntOrString>, want: impl std::fmt::Display) -> bool {
    let want = want.to_string();
    match port {
        Some(IntOrString::Int(n)) => n.to_string() == want,
        Some(IntOrString::String(s)) => *s == want,
        None => false,
    }
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap_or_else(|e| panic!("bad base64: {e}"))
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn chart_render_has_every_scenario_and_every_object_is_typed_strictly() {
    let all = renders();
    // 11 installs plus the upgrade of genca-upgrade.
    assert_eq!(all.len(), SCENARIOS.len() + 1);
    for r in &all {
        // Every namespaced object lands in the release namespace.
        for o in &r.objects {
            let meta = match o {
                Object::ConfigMap(x) => Some(&x.metadata),
                Object::Secret(x) => Some(&x.metadata),
                Object::Service(x) => Some(&x.metadata),
                Object::ServiceAccount(x) => Some(&x.metadata),
                Object::Deployment(x) => Some(&x.metadata),
                Object::Pdb(x) => Some(&x.metadata),
                Object::NetworkPolicy(x) => Some(&x.metadata),
                Object::Role(x) => Some(&x.metadata),
                Object::RoleBinding(x) => Some(&x.metadata),
                _ => None,
            };
            if let Some(m) = meta {
                assert_eq!(
                    m.namespace.as_deref(),
                    Some(r.namespace.as_str()),
                    "{}: {:?} namespace",
                    r.scenario,
                    m.name
                );
            }
        }
    }
}

#[test]
fn chart_webhooks_fail_closed_and_see_every_workload_and_ephemeral_containers() {
    for r in renders() {
        let hooks = r.webhooks();
        let want_mutating = r.flag("mutating.enabled");
        assert_eq!(
            r.mutating().is_some(),
            want_mutating,
            "{}: mutating webhook",
            r.scenario
        );
        assert_eq!(
            hooks.len(),
            1 + usize::from(want_mutating),
            "{}",
            r.scenario
        );
        for h in &hooks {
            let ctx = format!("{} {} {}", r.scenario, h.config, h.name);
            assert_eq!(h.failure_policy, Some("Fail"), "{ctx}: failurePolicy");
            assert_eq!(h.match_policy, Some("Equivalent"), "{ctx}: matchPolicy");
            assert_eq!(h.side_effects, "None", "{ctx}: sideEffects");
            assert_eq!(h.versions, ["v1"], "{ctx}: admissionReviewVersions");
            assert_eq!(
                h.match_conditions, 0,
                "{ctx}: matchConditions would exempt requests"
            );
            assert!(
                h.object_selector.is_none(),
                "{ctx}: an objectSelector lets workload authors opt out"
            );
            let want_timeout = if h.config == "validating" { 10 } else { 5 };
            assert_eq!(h.timeout, Some(want_timeout), "{ctx}: timeoutSeconds");
            assert!(h.client.url.is_none(), "{ctx}: url");
            let svc = h.client.service.as_ref().expect("service reference");
            assert_eq!(svc.name, r.fullname(), "{ctx}: service");
            assert_eq!(svc.namespace, r.namespace, "{ctx}: service namespace");
            assert_eq!(svc.path.as_deref(), Some(h.path), "{ctx}: path");
            assert_eq!(svc.port, Some(443), "{ctx}: port");

            for rule in h.rules {
                for field in [
                    &rule.api_groups,
                    &rule.api_versions,
                    &rule.operations,
                    &rule.resources,
                ] {
                    assert!(
                        !strs(field).contains(&"*"),
                        "{ctx}: wildcard in rule {rule:?}"
                    );
                }
                assert_eq!(rule.scope.as_deref(), Some("Namespaced"), "{ctx}: scope");
            }
            let covers = |group: &str, resource: &str, op: &str| {
                h.rules.iter().any(|rule| {
                    strs(&rule.api_groups).contains(&group)
                        && strs(&rule.resources).contains(&resource)
                        && strs(&rule.operations).contains(&op)
                        && !strs(&rule.api_versions).is_empty()
                })
            };
            for (group, resource) in WORKLOADS {
                for op in ["CREATE", "UPDATE"] {
                    assert!(
                        covers(group, resource, op),
                        "{ctx}: {op} {group}/{resource} not covered"
                    );
                }
            }
            // kubectl debug adds ephemeral containers by updating this subresource.
            assert!(
                covers("", "pods/ephemeralcontainers", "UPDATE"),
                "{ctx}: pods/ephemeralcontainers not covered"
            );
        }
    }
}

#[test]
fn chart_namespace_selector_excludes_release_namespace_and_kube_system_by_name() {
    for r in renders() {
        let opt_out = r.flag("webhook.namespaceOptOut.enabled");
        for h in r.webhooks() {
            let ctx = format!("{} {}", r.scenario, h.config);
            let sel = h.namespace_selector.expect("namespaceSelector");
            assert!(
                sel.match_labels.is_none(),
                "{ctx}: matchLabels would make enforcement opt-in"
            );
            let exprs = sel.match_expressions.as_deref().unwrap_or_default();
            let by_name: Vec<_> = exprs
                .iter()
                .filter(|e| e.key == "kubernetes.io/metadata.name")
                .collect();
            assert_eq!(
                by_name.len(),
                1,
                "{ctx}: one kubernetes.io/metadata.name expression"
            );
            assert_eq!(by_name[0].operator, "NotIn", "{ctx}");
            let names = strs(&by_name[0].values);
            assert!(
                names.contains(&r.namespace.as_str()),
                "{ctx}: release namespace not excluded"
            );
            assert!(
                names.contains(&"kube-system"),
                "{ctx}: kube-system not excluded"
            );
            let extra: Vec<&str> = r
                .value("webhook.excludeNamespaces")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                names.len(),
                2 + extra.len(),
                "{ctx}: excluded namespaces {names:?}"
            );
            for n in extra {
                assert!(names.contains(&n), "{ctx}: {n} not excluded");
            }
            // The only other expression allowed is the documented opt-out.
            let others: Vec<_> = exprs
                .iter()
                .filter(|e| e.key != "kubernetes.io/metadata.name")
                .collect();
            if opt_out {
                assert_eq!(others.len(), 1, "{ctx}: opt-out expression");
                assert_eq!(others[0].key, "provgate.dev/ignore", "{ctx}");
                assert_eq!(others[0].operator, "NotIn", "{ctx}");
                assert_eq!(strs(&others[0].values), ["true"], "{ctx}");
            } else {
                assert!(
                    others.is_empty(),
                    "{ctx}: unexpected selector terms {others:?}"
                );
            }
        }
    }
}

#[test]
fn chart_pod_is_restricted_and_probed_over_https() {
    for r in renders() {
        let ctx = r.scenario.as_str();
        let d = r.deployment();
        let want_replicas = if ctx.ends_with("(upgrade)") {
            3
        } else {
            r.value("replicaCount")
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(2)
        };
        assert_eq!(d.spec.replicas, Some(want_replicas), "{ctx}: replicas");
        let pod = r.pod();
        let psc = pod.security_context.as_ref().expect("pod securityContext");
        assert_eq!(psc.run_as_non_root, Some(true), "{ctx}");
        assert_eq!(psc.run_as_user, Some(65532), "{ctx}");
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault"),
            "{ctx}"
        );
        assert!(
            pod.host_network != Some(true)
                && pod.host_pid != Some(true)
                && pod.host_ipc != Some(true)
        );
        assert!(
            pod.init_containers.is_none() && pod.ephemeral_containers.is_none(),
            "{ctx}"
        );

        let c = r.container();
        let sc = c
            .security_context
            .as_ref()
            .expect("container securityContext");
        assert_eq!(sc.run_as_non_root, Some(true), "{ctx}");
        assert_eq!(sc.run_as_user, Some(65532), "{ctx}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{ctx}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{ctx}");
        assert_ne!(sc.privileged, Some(true), "{ctx}");
        let caps = sc.capabilities.as_ref().expect("capabilities");
        assert_eq!(strs(&caps.drop), ["ALL"], "{ctx}: capabilities.drop");
        assert!(caps.add.is_none(), "{ctx}: capabilities.add");
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault"),
            "{ctx}"
        );
        let res = c.resources.as_ref().expect("resources");
        for key in ["cpu", "memory"] {
            assert!(
                res.requests.as_ref().is_some_and(|m| m.contains_key(key)),
                "{ctx}: requests.{key}"
            );
            assert!(
                res.limits.as_ref().is_some_and(|m| m.contains_key(key)),
                "{ctx}: limits.{key}"
            );
        }
        assert_eq!(
            c.args.as_deref().unwrap_or_default()[..3],
            ["serve", "--config", CONFIG_PATH]
        );

        // HTTPS on 8443, probed on /healthz and /readyz.
        let https = c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("https"))
            .expect("https port");
        assert_eq!(https.container_port, 8443, "{ctx}");
        for (probe, path) in [
            (&c.liveness_probe, "/healthz"),
            (&c.readiness_probe, "/readyz"),
            (&c.startup_probe, "/healthz"),
        ] {
            let get = probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .expect("httpGet probe");
            assert_eq!(get.path.as_deref(), Some(path), "{ctx}");
            assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "{ctx}");
            assert_eq!(
                serde_json::to_value(&get.port).unwrap(),
                Value::from("https"),
                "{ctx}: probe port"
            );
        }

        // Writable storage only where needed: the /tmp emptyDir.
        let volumes: BTreeMap<&str, _> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| (v.name.as_str(), v))
            .collect();
        for v in volumes.values() {
            assert!(v.host_path.is_none(), "{ctx}: hostPath volume {}", v.name);
        }
        for m in c.volume_mounts.iter().flatten() {
            let vol = volumes.get(m.name.as_str()).expect("mounted volume exists");
            assert!(
                m.sub_path.is_none(),
                "{ctx}: subPath mounts never see ConfigMap updates"
            );
            if let Some(dir) = &vol.empty_dir {
                assert_eq!(m.mount_path, "/tmp", "{ctx}: emptyDir {}", m.name);
                assert!(
                    dir.size_limit.is_some(),
                    "{ctx}: emptyDir without sizeLimit"
                );
            } else {
                assert_eq!(
                    m.read_only,
                    Some(true),
                    "{ctx}: {} is writable",
                    m.mount_path
                );
            }
        }
        let writable: Vec<_> = volumes.values().filter(|v| v.empty_dir.is_some()).collect();
        assert_eq!(writable.len(), 1, "{ctx}: emptyDirs");

        // Spread and anti-affinity; a PDB for more than one replica.
        assert!(
            pod.topology_spread_constraints
                .as_ref()
                .is_some_and(|t| t.len() >= 2),
            "{ctx}: topologySpreadConstraints"
        );
        assert!(
            pod.affinity
                .as_ref()
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .is_some(),
            "{ctx}: podAntiAffinity"
        );
        let pdbs: Vec<_> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Pdb(p) => Some(p),
                _ => None,
            })
            .collect();
        // A budget only protects something with more than one replica.
        if want_replicas > 1 {
            assert_eq!(pdbs.len(), 1, "{ctx}: PodDisruptionBudget");
            let pdb_sel = pdbs[0].spec.as_ref().unwrap().selector.as_ref().unwrap();
            assert_eq!(
                pdb_sel.match_labels, d.spec.selector.match_labels,
                "{ctx}: PDB selects the pods"
            );
        } else {
            assert!(
                pdbs.is_empty(),
                "{ctx}: a PodDisruptionBudget for one replica"
            );
        }

        // Metrics port annotations.
        let ann = d
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref();
        let ann = ann.expect("pod annotations");
        assert_eq!(
            ann.get("prometheus.io/scrape").map(String::as_str),
            Some("true"),
            "{ctx}"
        );
        assert_eq!(
            ann.get("prometheus.io/port").map(String::as_str),
            Some("9090"),
            "{ctx}"
        );
        assert_eq!(
            ann.get("prometheus.io/path").map(String::as_str),
            Some("/metrics"),
            "{ctx}"
        );

        // The Service reaches the https port.
        let svc = r
            .objects
            .iter()
            .find_map(|o| match o {
                Object::Service(s) => Some(s),
                _ => None,
            })
            .expect("Service");
        let sp = svc.spec.as_ref().unwrap();
        assert_eq!(sp.selector, d.spec.selector.match_labels, "{ctx}");
        let port = sp
            .ports
            .iter()
            .flatten()
            .find(|p| p.port == 443)
            .expect("port 443");
        assert_eq!(
            serde_json::to_value(&port.target_port).unwrap(),
            Value::from("https")
        );
    }
}

#[test]
fn chart_has_no_rbac_by_default_and_read_only_rbac_for_reporting() {
    for r in renders() {
        let ctx = r.scenario.as_str();
        let report = r.flag("report.continuous.enabled");
        let ns_labels = r.flag("config.admission.trustNamespaceLabels");
        let sa = r
            .objects
            .iter()
            .find_map(|o| match o {
                Object::ServiceAccount(s) => Some(s),
                _ => None,
            })
            .expect("ServiceAccount");
        assert_eq!(
            sa.automount_service_account_token,
            Some(false),
            "{ctx}: ServiceAccount automount"
        );
        assert_eq!(
            r.pod().service_account_name.as_deref(),
            sa.metadata.name.as_deref()
        );
        assert_eq!(
            r.pod().automount_service_account_token,
            Some(report || ns_labels),
            "{ctx}: a token is mounted exactly when reporting or namespace lookups are on"
        );
        // Namespaced RBAC: the Lease Role only (checked in
        // chart_grants_the_lease_role_only_when_the_report_elects_a_leader).
        assert!(
            r.objects.iter().all(|o| match o {
                Object::Role(x) => x.metadata.name == Some(format!("{}-leader", r.fullname())),
                Object::RoleBinding(x) =>
                    x.metadata.name == Some(format!("{}-leader", r.fullname())),
                _ => true,
            }),
            "{ctx}: namespaced RBAC other than the Lease Role"
        );
        let policy_reports = r.flag("report.policyReports");
        let opt_out = r.flag("webhook.namespaceOptOut.enabled");
        let is_ns =
            |name: &Option<String>| name.as_deref().is_some_and(|n| n.ends_with("-namespaces"));
        let is_polr = |name: &Option<String>| {
            name.as_deref()
                .is_some_and(|n| n.ends_with("-policyreports"))
        };
        // PolicyReport writes: exactly when asked for, and only those.
        let polr_roles: Vec<&ClusterRole> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::ClusterRole(c) if is_polr(&c.metadata.name) => Some(c),
                _ => None,
            })
            .collect();
        let polr_bindings: Vec<&ClusterRoleBinding> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::ClusterRoleBinding(c) if is_polr(&c.metadata.name) => Some(c),
                _ => None,
            })
            .collect();
        if report && policy_reports {
            assert_eq!(
                (polr_roles.len(), polr_bindings.len()),
                (1, 1),
                "{ctx}: policyreports role"
            );
            let rules = polr_roles[0].rules.as_deref().unwrap_or_default();
            assert_eq!(rules.len(), 1, "{ctx}");
            assert_eq!(strs(&rules[0].api_groups), ["wgpolicyk8s.io"], "{ctx}");
            assert_eq!(strs(&rules[0].resources), ["policyreports"], "{ctx}");
            assert_eq!(
                rules[0].verbs,
                ["get", "list", "create", "update", "patch", "delete"],
                "{ctx}"
            );
            assert!(rules[0].resource_names.is_none() && rules[0].non_resource_urls.is_none());
            let b = polr_bindings[0];
            assert_eq!(Some(&b.role_ref.name), polr_roles[0].metadata.name.as_ref());
            let subjects = b.subjects.as_deref().unwrap_or_default();
            assert_eq!(subjects.len(), 1, "{ctx}");
            assert_eq!(Some(&subjects[0].name), sa.metadata.name.as_ref());
        } else {
            assert!(
                polr_roles.is_empty() && polr_bindings.is_empty(),
                "{ctx}: policyreports RBAC without report.policyReports"
            );
        }
        // Nothing else anywhere may touch wgpolicyk8s.io.
        for o in &r.objects {
            if let Object::ClusterRole(c) = o
                && !is_polr(&c.metadata.name)
            {
                for rule in c.rules.iter().flatten() {
                    assert!(!strs(&rule.api_groups).contains(&"wgpolicyk8s.io"), "{ctx}");
                }
            }
        }
        let ns_roles: Vec<&ClusterRole> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::ClusterRole(c) if is_ns(&c.metadata.name) => Some(c),
                _ => None,
            })
            .collect();
        // `get namespaces`: for label-selected bindings, and for the report
        // to honour the webhooks' opt-out label.
        if ns_labels || (report && opt_out) {
            assert_eq!(ns_roles.len(), 1, "{ctx}: namespaces role");
            let rules = ns_roles[0].rules.as_deref().unwrap_or_default();
            assert_eq!(rules.len(), 1, "{ctx}");
            assert_eq!(strs(&rules[0].api_groups), [""]);
            assert_eq!(strs(&rules[0].resources), ["namespaces"]);
            assert_eq!(rules[0].verbs, ["get"], "{ctx}: get only");
        } else {
            assert!(
                ns_roles.is_empty(),
                "{ctx}: namespaces role without trustNamespaceLabels or the report's opt-out label"
            );
        }
        let roles: Vec<&ClusterRole> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::ClusterRole(c)
                    if !is_ns(&c.metadata.name) && !is_polr(&c.metadata.name) =>
                {
                    Some(c)
                }
                _ => None,
            })
            .collect();
        let bindings: Vec<&ClusterRoleBinding> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::ClusterRoleBinding(c)
                    if !is_ns(&c.metadata.name) && !is_polr(&c.metadata.name) =>
                {
                    Some(c)
                }
                _ => None,
            })
            .collect();
        if !report {
            assert!(
                roles.is_empty() && bindings.is_empty(),
                "{ctx}: RBAC without report.continuous"
            );
            continue;
        }
        assert_eq!((roles.len(), bindings.len()), (1, 1), "{ctx}");
        let role = roles[0];
        assert!(role.aggregation_rule.is_none(), "{ctx}: aggregationRule");
        let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
        for rule in role.rules.iter().flatten() {
            for field in [&rule.api_groups, &rule.resources, &Some(rule.verbs.clone())] {
                assert!(!strs(field).contains(&"*"), "{ctx}: wildcard in {rule:?}");
            }
            assert!(rule.non_resource_urls.is_none() && rule.resource_names.is_none());
            assert_eq!(rule.verbs, ["get", "list", "watch"], "{ctx}: verbs");
            for g in strs(&rule.api_groups) {
                for res in strs(&rule.resources) {
                    granted.insert((g.to_owned(), res.to_owned()));
                }
            }
        }
        let want: BTreeSet<(String, String)> = WORKLOADS
            .iter()
            .map(|(g, res)| ((*g).to_owned(), (*res).to_owned()))
            .collect();
        assert_eq!(
            granted, want,
            "{ctx}: exactly the workload kinds, read-only"
        );
        let b = bindings[0];
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert_eq!(Some(&b.role_ref.name), role.metadata.name.as_ref());
        let subjects = b.subjects.as_deref().unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{ctx}: subjects");
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(Some(&subjects[0].name), sa.metadata.name.as_ref());
        assert_eq!(subjects[0].namespace.as_deref(), Some(r.namespace.as_str()));
    }
}

impl Render {
    /// Whether the continuous report elects a leader (the chart's default
    /// is on).
    fn elects(&self) -> bool {
        self.flag("report.continuous.enabled")
            && self
                .value("report.leaderElection.enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true)
    }
}

#[test]
fn chart_grants_the_lease_role_only_when_the_report_elects_a_leader() {
    let mut seen = (false, false);
    for r in renders() {
        let ctx = r.scenario.as_str();
        let roles: Vec<&Role> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Role(x) => Some(x),
                _ => None,
            })
            .collect();
        let bindings: Vec<&RoleBinding> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::RoleBinding(x) => Some(x),
                _ => None,
            })
            .collect();
        let env: BTreeMap<&str, Option<&str>> = r
            .container()
            .env
            .iter()
            .flatten()
            .map(|e| {
                let field = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.field_ref.as_ref())
                    .map(|f| f.field_path.as_str());
                (e.name.as_str(), field)
            })
            .collect();
        let spec: provgate::config::ConfigSpec = serde_yaml_ng::from_str(&r.config_text())
            .unwrap_or_else(|e| panic!("{ctx}: config.yaml: {e}"));
        let le = &spec.report.leader_election;
        if r.flag("report.continuous.enabled") {
            // The identity and the Lease's namespace, from the downward API.
            assert_eq!(env.get("POD_NAME"), Some(&Some("metadata.name")), "{ctx}");
            assert_eq!(
                env.get("POD_NAMESPACE"),
                Some(&Some("metadata.namespace")),
                "{ctx}"
            );
        } else {
            assert!(!env.contains_key("POD_NAME"), "{ctx}");
        }
        if let Some(extra) = r.value("extraEnv").and_then(Value::as_array) {
            for e in extra {
                let name = e["name"].as_str().unwrap();
                assert!(env.contains_key(name), "{ctx}: extraEnv {name} lost");
            }
        }
        assert_eq!(
            le.enabled,
            r.value("report.leaderElection.enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            "{ctx}: report.leaderElection.enabled"
        );
        if !r.elects() {
            seen.1 |= r.flag("report.continuous.enabled");
            assert!(
                roles.is_empty() && bindings.is_empty(),
                "{ctx}: a Lease Role without an elected continuous report"
            );
            continue;
        }
        seen.0 = true;
        assert_eq!((roles.len(), bindings.len()), (1, 1), "{ctx}");
        let role = roles[0];
        let lease = format!("{}-report", r.fullname());
        assert_eq!(
            le.lease_name, lease,
            "{ctx}: the config names the Role's Lease"
        );
        assert_eq!(le.namespace.as_deref(), Some(r.namespace.as_str()), "{ctx}");
        assert_eq!(
            role.metadata.namespace.as_deref(),
            Some(r.namespace.as_str())
        );
        let rules = role.rules.as_deref().unwrap_or_default();
        // (apiGroups, resources, resourceNames, verbs) of each rule.
        type Rule<'a> = (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, Vec<&'a str>);
        let got: Vec<Rule> = rules
            .iter()
            .map(|x| {
                assert!(x.non_resource_urls.is_none(), "{ctx}");
                (
                    strs(&x.api_groups),
                    strs(&x.resources),
                    strs(&x.resource_names),
                    x.verbs.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    vec!["coordination.k8s.io"],
                    vec!["leases"],
                    vec![],
                    vec!["create"]
                ),
                (
                    vec!["coordination.k8s.io"],
                    vec!["leases"],
                    vec![lease.as_str()],
                    vec!["get", "update"]
                ),
            ],
            "{ctx}: create leases; get and update that Lease only"
        );
        let b = bindings[0];
        assert_eq!(b.metadata.namespace.as_deref(), Some(r.namespace.as_str()));
        assert_eq!(b.role_ref.kind, "Role");
        assert_eq!(Some(&b.role_ref.name), role.metadata.name.as_ref());
        let subjects = b.subjects.as_deref().unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{ctx}");
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(
            subjects[0].name,
            r.pod().service_account_name.clone().unwrap_or_default()
        );
        assert_eq!(subjects[0].namespace.as_deref(), Some(r.namespace.as_str()));
        if r.scenario == "report-ha" {
            assert_eq!(le.lease_duration.0, Duration::from_secs(8));
            assert_eq!(le.renew_deadline.0, Duration::from_secs(5));
            assert_eq!(le.retry_period.0, Duration::from_secs(1));
        }
    }
    assert!(seen.0, "no scenario elects a leader");
    assert!(seen.1, "no scenario runs the report without election");
}

/// The Secret the pod mounts at /etc/provgate/tls.
fn tls_secret_name(r: &Render) -> String {
    let pod = r.pod();
    let mount = r
        .container()
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/etc/provgate/tls")
        .expect("TLS mount");
    let vol = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    vol.secret
        .as_ref()
        .and_then(|s| s.secret_name.clone())
        .expect("TLS volume is a Secret")
}

/// Checks that `crt` is valid for the webhook Service's name under `ca`, and
/// that provgate's TLS stack (rustls with aws-lc-rs) loads `key`.
fn check_serving_cert(ctx: &str, ca: &[u8], crt: &[u8], key: &[u8], dns: &str) {
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain: Vec<CertificateDer> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .expect("certificate PEM");
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(dns.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .unwrap_or_else(|e| panic!("{ctx}: serving certificate not valid for {dns}: {e}"));
    let key = PrivateKeyDer::from_pem_slice(key).expect("key PEM");
    provider
        .key_provider
        .load_private_key(key)
        .unwrap_or_else(|e| panic!("{ctx}: rustls cannot use the generated key: {e}"));
}

#[test]
fn chart_tls_material_matches_the_mode() {
    for r in renders() {
        let ctx = r.scenario.as_str();
        let secret_name = tls_secret_name(&r);
        let hooks = r.webhooks();
        let svc_dns = format!("{}.{}.svc", r.fullname(), r.namespace);
        match r.tls_mode() {
            "generate" => {
                let s = r
                    .secrets()
                    .find(|s| s.metadata.name.as_deref() == Some(&secret_name))
                    .unwrap_or_else(|| panic!("{ctx}: no Secret {secret_name}"));
                assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"), "{ctx}");
                let data = s.data.as_ref().unwrap();
                let get = |k: &str| {
                    data.get(k)
                        .unwrap_or_else(|| panic!("{ctx}: {k}"))
                        .0
                        .clone()
                };
                let ca = get("ca.crt");
                for h in &hooks {
                    assert_eq!(
                        h.client.ca_bundle.as_ref().map(|b| &b.0),
                        Some(&ca),
                        "{ctx} {}: caBundle is the Secret's CA",
                        h.config
                    );
                    assert!(h.meta.annotations.is_none(), "{ctx}: annotations");
                }
                check_serving_cert(ctx, &ca, &get("tls.crt"), &get("tls.key"), &svc_dns);
            }
            "certManager" => {
                assert!(
                    r.secrets().next().is_none(),
                    "{ctx}: the chart must not write the Secret"
                );
                let certs: BTreeMap<&str, &Crd<CertificateSpec>> = r
                    .objects
                    .iter()
                    .filter_map(|o| match o {
                        Object::Certificate(c) => Some((c.name(), c)),
                        _ => None,
                    })
                    .collect();
                let serving = format!("{}-serving", r.fullname());
                let cert = certs.get(serving.as_str()).expect("serving Certificate");
                assert_eq!(
                    cert.spec.secret_name, secret_name,
                    "{ctx}: Certificate writes the mounted Secret"
                );
                assert!(!cert.spec.is_ca, "{ctx}");
                assert!(
                    cert.spec.dns_names.contains(&svc_dns),
                    "{ctx}: dnsNames {:?}",
                    cert.spec.dns_names
                );
                assert!(
                    cert.spec.usages.iter().any(|u| u == "server auth"),
                    "{ctx}: usages"
                );
                for h in &hooks {
                    let ann = h.meta.annotations.as_ref().expect("annotations");
                    assert_eq!(
                        ann.get("cert-manager.io/inject-ca-from"),
                        Some(&format!("{}/{serving}", r.namespace)),
                        "{ctx} {}: inject-ca-from",
                        h.config
                    );
                    assert!(
                        h.client.ca_bundle.is_none(),
                        "{ctx}: caBundle is cainjector's"
                    );
                }
                let issuers: Vec<&Crd<IssuerSpec>> = r
                    .objects
                    .iter()
                    .filter_map(|o| match o {
                        Object::Issuer(i) => Some(i),
                        _ => None,
                    })
                    .collect();
                if r.value("tls.certManager.issuerRef").is_some() {
                    assert!(
                        issuers.is_empty() && certs.len() == 1,
                        "{ctx}: external issuer"
                    );
                    assert_eq!(cert.spec.issuer_ref.kind.as_deref(), Some("ClusterIssuer"));
                } else {
                    // selfsigned Issuer -> CA Certificate -> CA Issuer -> serving.
                    assert_eq!((issuers.len(), certs.len()), (2, 2), "{ctx}");
                    let ca_issuer = issuers
                        .iter()
                        .find(|i| i.name() == cert.spec.issuer_ref.name)
                        .expect("serving issuer rendered");
                    let ca_secret = &ca_issuer.spec.ca.as_ref().expect("CA issuer").secret_name;
                    let ca_cert = certs
                        .values()
                        .find(|c| c.spec.is_ca)
                        .expect("CA Certificate");
                    assert_eq!(&ca_cert.spec.secret_name, ca_secret, "{ctx}");
                    let root = issuers
                        .iter()
                        .find(|i| i.name() == ca_cert.spec.issuer_ref.name)
                        .expect("CA issuer rendered");
                    assert!(root.spec.self_signed.is_some(), "{ctx}");
                }
            }
            "secret" => {
                assert!(
                    r.secrets().next().is_none(),
                    "{ctx}: the chart must not write the Secret"
                );
                assert_eq!(
                    Some(secret_name.as_str()),
                    r.value("tls.secret.name").and_then(Value::as_str)
                );
                let want = b64(r
                    .value("tls.secret.caBundle")
                    .and_then(Value::as_str)
                    .unwrap());
                for h in &hooks {
                    assert_eq!(
                        h.client.ca_bundle.as_ref().map(|b| &b.0),
                        Some(&want),
                        "{ctx}: caBundle"
                    );
                    assert!(h.meta.annotations.is_none(), "{ctx}: annotations");
                }
            }
            other => panic!("{ctx}: unknown tls.mode {other}"),
        }
    }
}

#[test]
fn chart_generated_ca_is_reused_on_upgrade() {
    let all = renders();
    let install = all.iter().find(|r| r.scenario == "genca-upgrade").unwrap();
    let upgrade = all
        .iter()
        .find(|r| r.scenario == "genca-upgrade (upgrade)")
        .unwrap();
    let secret = |r: &Render| {
        r.secrets()
            .find(|s| s.metadata.name.as_deref() == Some("provgate-tls"))
            .and_then(|s| s.data.clone())
            .expect("TLS Secret")
    };
    assert_eq!(
        secret(install),
        secret(upgrade),
        "the upgrade minted new TLS material"
    );
    let bundle = |r: &Render| {
        r.validating().webhooks.as_ref().unwrap()[0]
            .client_config
            .ca_bundle
            .clone()
    };
    assert_eq!(bundle(install), bundle(upgrade));
    // And it really was an upgrade with changed values.
    assert_ne!(
        install.deployment().spec.replicas,
        upgrade.deployment().spec.replicas
    );
    // Two independent installs do get different CAs (no fixed key in the chart).
    let other = all.iter().find(|r| r.scenario == "default").unwrap();
    assert_ne!(bundle(install), bundle(other));
}

#[test]
fn chart_config_checksum_covers_the_config_only() {
    use sha2::Digest as _;
    for r in renders() {
        let text = r.config_text();
        let ann = r.deployment().spec.template.metadata.as_ref().unwrap();
        let sum = ann
            .annotations
            .as_ref()
            .and_then(|a| a.get("checksum/config"))
            .unwrap_or_else(|| panic!("{}: checksum/config", r.scenario));
        let want = hex::encode(sha2::Sha256::digest(text.trim_end_matches('\n').as_bytes()));
        assert_eq!(
            sum, &want,
            "{}: checksum/config is not the config file's digest",
            r.scenario
        );
    }
}

/// External objects the `full` and `existing-secret` scenarios refer to.
fn external(kind: &str, name: &str) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    match (kind, name) {
        ("Secret", "regcred-a" | "regcred-shared") => {
            m.insert(".dockerconfigjson".into(), br#"{"auths":{}}"#.to_vec());
        }
        // Written by cert-manager (certManager mode) or by the user (secret mode).
        ("Secret", "provgate-tls" | "provgate-serving") => {
            m.insert("tls.crt".into(), b"placeholder".to_vec());
            m.insert("tls.key".into(), b"placeholder".to_vec());
        }
        // The shared tier's password and Redis's CA (shared-cache scenario).
        ("Secret", "provgate-redis") => {
            m.insert("redis-password".into(), b"s3cret\n".to_vec());
        }
        ("Secret", "redis-tls") => {
            let dir = tempfile::tempdir().unwrap();
            provgate::server::dev_certs::generate(&["redis.cache.svc".into()], dir.path()).unwrap();
            m.insert(
                "ca.crt".into(),
                std::fs::read(dir.path().join("ca.crt")).unwrap(),
            );
        }
        ("ConfigMap", "sigstore-roots") => {
            m.insert(
                "staging.json".into(),
                common::read_fixture("sigstore-python/trusted_root.staging.json"),
            );
        }
        ("ConfigMap", "secops-base") => {
            m.insert(
                "contract.yaml".into(),
                b"name: secops-base\nversion: \"2\"\nowner: secops\n".to_vec(),
            );
            m.insert(
                "policy.rego".into(),
                b"package provgate.contract\n\nwarn contains v if {\n  count(input.signatures) == 0\n  v := {\"msg\": \"unsigned\", \"requirement\": \"signature\", \"fix\": \"sign it\"}\n}\n".to_vec(),
            );
        }
        _ => panic!("no fixture for {kind} {name}"),
    }
    m
}

/// Writes the pod's ConfigMap and Secret volumes under `root` as the kubelet
/// would (one file per key, honouring `items`).
fn materialise(r: &Render, root: &Path) {
    let pod = r.pod();
    for m in r.container().volume_mounts.iter().flatten() {
        let vol = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .unwrap();
        let (data, items) = if let Some(cm) = &vol.config_map {
            let name = cm.name.clone();
            let data = r
                .config_maps()
                .find(|c| c.metadata.name.as_deref() == Some(&name))
                .map(|c| {
                    c.data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                        .collect()
                })
                .unwrap_or_else(|| external("ConfigMap", &name));
            (data, cm.items.clone())
        } else if let Some(s) = &vol.secret {
            let name = s.secret_name.clone().unwrap();
            let data = r
                .secrets()
                .find(|x| x.metadata.name.as_deref() == Some(&name))
                .map(|x| {
                    x.data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect()
                })
                .unwrap_or_else(|| external("Secret", &name));
            (data, s.items.clone())
        } else {
            continue;
        };
        let dir = root.join(m.mount_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        let paths: Vec<(String, String)> = match items {
            Some(items) => items.into_iter().map(|i| (i.key, i.path)).collect(),
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        for (key, path) in paths {
            let bytes = data
                .get(&key)
                .unwrap_or_else(|| panic!("{}: volume {} has no key {key}", r.scenario, m.name));
            std::fs::write(dir.join(path), bytes).unwrap();
        }
    }
}

#[test]
fn chart_config_is_what_provgate_loads() {
    for r in renders() {
        let ctx = r.scenario.as_str();
        let text = r.config_text();
        // Strict (deny_unknown_fields) as the server reads it.
        let spec: provgate::config::ConfigSpec =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{ctx}: config.yaml: {e}"));
        assert_eq!(spec.server.listen, "0.0.0.0:8443", "{ctx}");
        assert_eq!(
            spec.server.metrics_listen.as_deref(),
            Some("0.0.0.0:9090"),
            "{ctx}"
        );
        let tls = spec.server.tls.as_ref().expect("server.tls");
        assert_eq!(tls.cert_file, Path::new("/etc/provgate/tls/tls.crt"));
        assert_eq!(tls.key_file, Path::new("/etc/provgate/tls/tls.key"));
        assert_eq!(
            spec.report.continuous.enabled,
            r.flag("report.continuous.enabled"),
            "{ctx}: report.continuous"
        );
        assert_eq!(
            spec.report.policy_reports,
            r.flag("report.policyReports"),
            "{ctx}: report.policyReports"
        );
        // The report judges exactly the namespaces the webhooks see.
        for h in r.webhooks() {
            assert_eq!(
                Some(&spec.report.namespace_selector),
                h.namespace_selector,
                "{ctx}: report.namespaceSelector differs from the {} webhook's",
                h.config
            );
        }

        // Compile it the way the pod would: with its volumes where it mounts them.
        let tmp = tempfile::tempdir().unwrap();
        materialise(&r, tmp.path());
        let prefix = format!("{}/etc/provgate/", tmp.path().display());
        let cfg_path = tmp.path().join(CONFIG_PATH.trim_start_matches('/'));
        let on_disk = std::fs::read_to_string(&cfg_path).unwrap();
        assert_eq!(on_disk, text);
        std::fs::write(&cfg_path, on_disk.replace("/etc/provgate/", &prefix)).unwrap();
        let cfg = provgate::config::Config::load(&cfg_path)
            .unwrap_or_else(|e| panic!("{ctx}: provgate does not load the rendered config: {e}"));

        assert_eq!(
            cfg.shared.is_some(),
            r.flag("sharedCache.enabled"),
            "{ctx}: caches.shared"
        );
        if r.scenario == "full" {
            for c in ["has-provenance", "secops-base"] {
                assert!(
                    cfg.contracts.contains_key(c),
                    "{ctx}: contract {c} not loaded"
                );
            }
            let creds: Vec<&str> = cfg.credentials.iter().map(|(_, c)| c.name()).collect();
            assert_eq!(creds, ["tenant-a", "shared"], "{ctx}: credentials");
            assert_eq!(cfg.bindings.len(), 1);
            assert!(
                spec.trust.roots.iter().any(|r| r.name == "staging"),
                "{ctx}: trusted root"
            );
            assert_eq!(spec.gate.max_images, 64, "{ctx}: gate passed through");
        }
    }
}

#[test]
fn chart_optional_objects_follow_their_values() {
    for r in renders() {
        let ctx = r.scenario.as_str();
        let monitors: Vec<&Crd<ServiceMonitorSpec>> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::ServiceMonitor(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(
            monitors.len(),
            usize::from(r.flag("metrics.serviceMonitor.enabled")),
            "{ctx}"
        );
        for m in monitors {
            assert_eq!(m.spec.endpoints.len(), 1);
            let e = &m.spec.endpoints[0];
            assert_eq!(
                (e.port.as_str(), e.path.as_deref()),
                ("metrics", Some("/metrics"))
            );
            assert_eq!(
                m.spec.selector.match_labels,
                r.deployment().spec.selector.match_labels
            );
            assert_eq!(
                m.spec
                    .namespace_selector
                    .as_ref()
                    .map(|n| n.match_names.clone()),
                Some(vec![r.namespace.clone()])
            );
        }

        let policies: Vec<&NetworkPolicy> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::NetworkPolicy(n) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(
            policies.len(),
            usize::from(r.flag("networkPolicy.enabled")),
            "{ctx}"
        );
        for np in policies {
            let spec = np.spec.as_ref().unwrap();
            assert_eq!(
                spec.pod_selector.as_ref().unwrap().match_labels,
                r.deployment().spec.selector.match_labels
            );
            let ingress = spec.ingress.as_deref().unwrap_or_default();
            let https = ingress
                .iter()
                .find(|rule| {
                    rule.ports
                        .iter()
                        .flatten()
                        .any(|p| port_is(p.port.as_ref(), "https"))
                })
                .expect("ingress to the https port");
            let want_from = r
                .value("networkPolicy.ingress.from")
                .cloned()
                .unwrap_or(Value::Null);
            assert_eq!(
                serde_json::to_value(&https.from).unwrap(),
                want_from,
                "{ctx}: ingress peers as configured"
            );
            let egress = spec.egress.as_deref().unwrap_or_default();
            assert!(
                egress.iter().any(|e| e
                    .ports
                    .iter()
                    .flatten()
                    .any(|p| port_is(p.port.as_ref(), 53))),
                "{ctx}: DNS egress"
            );
            assert!(
                egress.iter().any(|e| e
                    .ports
                    .iter()
                    .flatten()
                    .any(|p| port_is(p.port.as_ref(), 443))),
                "{ctx}: registry egress"
            );
        }
    }
}

#[test]
fn chart_shared_cache_mounts_its_secrets_and_reaches_redis() {
    let mut seen = 0;
    for r in renders() {
        let ctx = r.scenario.as_str();
        let spec: provgate::config::ConfigSpec = serde_yaml_ng::from_str(&r.config_text()).unwrap();
        let pod = r.pod();
        let volume = |name: &str| pod.volumes.iter().flatten().find(|v| v.name == name);
        let mount = |name: &str| {
            r.container()
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.name == name)
        };
        if !r.flag("sharedCache.enabled") {
            assert!(
                spec.cache.shared.is_none(),
                "{ctx}: shared tier on by default"
            );
            assert!(
                volume("redis-auth").is_none() && volume("redis-ca").is_none(),
                "{ctx}"
            );
            continue;
        }
        seen += 1;
        let shared = spec.cache.shared.as_ref().expect("caches.shared");
        assert_eq!(
            Some(shared.url.as_str()),
            r.value("sharedCache.url").and_then(Value::as_str),
            "{ctx}"
        );
        // The password: a file from the named Secret, never a value.
        let secret = r
            .value("sharedCache.passwordSecret.name")
            .and_then(Value::as_str);
        match secret {
            Some(name) => {
                let key = r
                    .value("sharedCache.passwordSecret.key")
                    .and_then(Value::as_str)
                    .unwrap();
                let v = volume("redis-auth").expect("redis-auth volume");
                let s = v.secret.as_ref().unwrap();
                assert_eq!(s.secret_name.as_deref(), Some(name), "{ctx}");
                assert_eq!(s.default_mode, Some(0o440), "{ctx}");
                let m = mount("redis-auth").expect("redis-auth mount");
                assert_eq!(m.read_only, Some(true));
                assert_eq!(
                    shared.auth.password_file.as_deref(),
                    Some(Path::new(&format!("{}/{key}", m.mount_path))),
                    "{ctx}"
                );
                assert!(shared.auth.password_env.is_none());
                assert!(
                    !r.config_text().contains("s3cret"),
                    "{ctx}: password in the config"
                );
            }
            None => {
                assert!(volume("redis-auth").is_none(), "{ctx}");
                assert!(shared.auth.password_file.is_none(), "{ctx}");
            }
        }
        match r.value("sharedCache.tls.caSecret").and_then(Value::as_str) {
            Some(name) => {
                let s = volume("redis-ca")
                    .expect("redis-ca")
                    .secret
                    .clone()
                    .unwrap();
                assert_eq!(s.secret_name.as_deref(), Some(name), "{ctx}");
                let m = mount("redis-ca").expect("redis-ca mount");
                assert_eq!(
                    shared.tls.ca_file.as_deref(),
                    Some(Path::new(&format!("{}/ca.crt", m.mount_path))),
                    "{ctx}"
                );
                assert!(shared.url.starts_with("rediss://"), "{ctx}");
            }
            None => assert!(volume("redis-ca").is_none(), "{ctx}"),
        }
        // Restricted egress lets the pods reach Redis on the URL's port.
        if r.flag("networkPolicy.enabled") {
            let port = shared
                .url
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<i32>().ok())
                .unwrap_or(6379);
            let np = r
                .objects
                .iter()
                .find_map(|o| match o {
                    Object::NetworkPolicy(n) => Some(n),
                    _ => None,
                })
                .unwrap();
            let egress = np.spec.as_ref().unwrap().egress.clone().unwrap_or_default();
            let rule = egress
                .iter()
                .find(|e| {
                    e.ports
                        .iter()
                        .flatten()
                        .any(|p| port_is(p.port.as_ref(), port))
                })
                .unwrap_or_else(|| panic!("{ctx}: no egress to Redis port {port}"));
            assert_eq!(
                serde_json::to_value(&rule.to).unwrap(),
                r.value("sharedCache.networkPolicyTo")
                    .cloned()
                    .unwrap_or(Value::Null),
                "{ctx}: Redis peers as configured"
            );
        }
    }
    assert_eq!(seen, 2, "both shared-cache scenarios rendered");
}
