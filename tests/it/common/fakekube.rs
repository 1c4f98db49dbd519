//! A small fake Kubernetes API: list and watch of pods (scripted by the
//! test), empty lists and idle watches for the other workload kinds,
//! namespaces by name, a store of `wgpolicyk8s.io/v1alpha2`
//! PolicyReports, and `coordination.k8s.io/v1` Leases. There is no API
//! server binary here; the JSON shapes are the API server's.
//!
//! Leases are updated as the API server does with optimistic concurrency:
//! an update must carry the stored `metadata.resourceVersion`, else it is
//! answered `409 Conflict` (the fake is stricter than the server in one
//! way: an update without a `resourceVersion` is refused, 422, so an
//! unconditional overwrite fails a test). A create of an existing Lease is
//! `409 AlreadyExists`. Every write of a Lease or a PolicyReport is
//! recorded with the request's `User-Agent`, which provgate sets to its
//! replica identity, so tests can tell which replica wrote what.
//!
//! PolicyReport writes (create, update, server-side apply) are validated
//! against the published CRD's `openAPIV3Schema`
//! (`tests/crds/wgpolicyk8s.io_policyreports.yaml`) with the `jsonschema`
//! crate, as the API server validates custom resources, and answered 422
//! `Invalid` when they do not validate. The fake is stricter than the API
//! server in one way: an unknown field is an error (as with `kubectl
//! --validate=strict`), where the server would silently prune it, so a
//! misspelt field fails a test instead of vanishing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

#[derive(Default)]
struct Inner {
    pods: Vec<Value>,
    resource_version: u64,
    lists: Vec<String>,
    watches: Vec<String>,
    watcher: Option<tokio::sync::mpsc::UnboundedSender<Option<String>>>,
    namespaces: std::collections::BTreeMap<String, Value>,
    namespace_gets: usize,
    /// PolicyReports by (namespace, name).
    policy_reports: std::collections::BTreeMap<(String, String), Value>,
    /// Every PolicyReport write: `METHOD namespace/name`.
    report_writes: Vec<String>,
    /// Why writes were refused (422s).
    report_rejections: Vec<String>,
    /// Answer PolicyReport requests with this status (an outage, a missing CRD).
    report_failure: Option<u16>,
    /// The `User-Agent` of every PolicyReport write, with the write.
    report_writers: Vec<(String, String)>,
    /// Leases by (namespace, name).
    leases: std::collections::BTreeMap<(String, String), Value>,
    /// Every Lease write.
    lease_writes: Vec<LeaseWrite>,
    /// Answer Lease requests with this status (an API outage).
    lease_failure: Option<u16>,
}

/// One Lease write as the fake saw it.
#[derive(Debug, Clone)]
pub struct LeaseWrite {
    /// `CREATE` or `UPDATE`.
    pub method: String,
    /// `namespace/name`.
    pub lease: String,
    /// The request's `User-Agent`.
    pub user_agent: String,
    /// `spec.holderIdentity` written (`None`: released).
    pub holder: Option<String>,
    /// The answer's status code.
    pub status: u16,
}

/// The fake API.
#[derive(Clone, Default)]
pub struct FakeKube {
    inner: Arc<Mutex<Inner>>,
}

/// A running fake API.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The fake.
    pub kube: FakeKube,
    _rt: tokio::runtime::Runtime,
}

/// A pod object as the API server returns it (no kind inside lists).
pub fn pod(namespace: &str, name: &str, images: &[(&str, &str)], labels: Value, rv: u64) -> Value {
    json!({
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
            "resourceVersion": rv.to_string(), "labels": labels, "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": {"containers": images.iter().map(|(n, i)| json!({"name": n, "image": i})).collect::<Vec<_>>()},
        "status": {"phase": "Running"}
    })
}

impl FakeKube {
    /// Starts it on a free port.
    pub fn start() -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let kube = FakeKube::default();
        let reports = "/apis/wgpolicyk8s.io/v1alpha2";
        let app = Router::new()
            .route(&format!("{reports}/policyreports"), get(list_reports))
            .route(
                &format!("{reports}/namespaces/{{ns}}/policyreports"),
                get(list_reports_in).post(create_report),
            )
            .route(
                &format!("{reports}/namespaces/{{ns}}/policyreports/{{name}}"),
                get(get_report)
                    .put(put_report)
                    .patch(patch_report)
                    .delete(delete_report),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                axum::routing::post(create_lease),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
                get(get_lease).put(put_lease),
            )
            .route("/api/v1/pods", get(pods))
            .route("/api/v1/namespaces/{name}", get(namespace))
            .route("/api/v1/{plural}", get(empty_core))
            .route("/apis/{group}/{version}/{plural}", get(empty_group))
            .with_state(kube.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Running {
            url: format!("http://{addr}"),
            kube,
            _rt: rt,
        }
    }

    /// Replaces the pods (what the next list returns).
    pub fn set_pods(&self, pods: Vec<Value>) {
        let mut g = self.inner.lock().unwrap();
        g.resource_version += 1;
        g.pods = pods;
    }

    /// Defines a namespace with `labels`.
    pub fn set_namespace(&self, name: &str, labels: Value) {
        self.inner
            .lock()
            .unwrap()
            .namespaces
            .insert(name.to_owned(), labels);
    }

    /// How many namespace GETs were served.
    pub fn namespace_gets(&self) -> usize {
        self.inner.lock().unwrap().namespace_gets
    }

    /// The next resource version.
    pub fn next_rv(&self) -> u64 {
        let mut g = self.inner.lock().unwrap();
        g.resource_version += 1;
        g.resource_version
    }

    /// Sends a watch event (`ADDED`, `MODIFIED`, `DELETED`) to the pod
    /// watcher, if one is connected; returns whether one was.
    pub fn event(&self, kind: &str, object: Value) -> bool {
        let line = json!({"type": kind, "object": object}).to_string();
        self.send(Some(line))
    }

    /// Sends `410 Gone` as a watch error event.
    pub fn gone(&self) -> bool {
        let status = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
        self.send(Some(status.to_string()))
    }

    /// Ends the current pod watch (as the API server does on timeout).
    pub fn close_watch(&self) -> bool {
        self.send(None)
    }

    fn send(&self, line: Option<String>) -> bool {
        let g = self.inner.lock().unwrap();
        g.watcher.as_ref().is_some_and(|w| w.send(line).is_ok())
    }

    /// Query strings of the pod list requests so far.
    pub fn lists(&self) -> Vec<String> {
        self.inner.lock().unwrap().lists.clone()
    }

    /// Query strings of the pod watch requests so far.
    pub fn watches(&self) -> Vec<String> {
        self.inner.lock().unwrap().watches.clone()
    }

    /// The stored PolicyReports by `namespace/name`.
    pub fn policy_reports(&self) -> std::collections::BTreeMap<String, Value> {
        self.inner
            .lock()
            .unwrap()
            .policy_reports
            .iter()
            .map(|((ns, n), v)| (format!("{ns}/{n}"), v.clone()))
            .collect()
    }

    /// Stores a PolicyReport as if someone else (or an earlier pod) wrote it.
    pub fn put_policy_report(&self, namespace: &str, name: &str, object: Value) {
        let mut g = self.inner.lock().unwrap();
        g.resource_version += 1;
        let rv = g.resource_version;
        let mut object = object;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        g.policy_reports
            .insert((namespace.to_owned(), name.to_owned()), object);
    }

    /// Every PolicyReport write so far (`APPLY ns/name`, `DELETE ns/name`, …).
    pub fn report_writes(&self) -> Vec<String> {
        self.inner.lock().unwrap().report_writes.clone()
    }

    /// Why PolicyReport writes were refused.
    pub fn report_rejections(&self) -> Vec<String> {
        self.inner.lock().unwrap().report_rejections.clone()
    }

    /// Makes every PolicyReport request fail with `status` (or not).
    pub fn fail_policy_reports(&self, status: Option<u16>) {
        self.inner.lock().unwrap().report_failure = status;
    }

    /// PolicyReport writes per `User-Agent`.
    pub fn report_writes_by_agent(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for (agent, _) in &self.inner.lock().unwrap().report_writers {
            *out.entry(agent.clone()).or_default() += 1;
        }
        out
    }

    /// The stored Lease `namespace/name`.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Stores a Lease as if another client wrote it (a new resource
    /// version); returns the version.
    pub fn put_lease(&self, namespace: &str, name: &str, spec: Value) -> u64 {
        let mut g = self.inner.lock().unwrap();
        g.resource_version += 1;
        let rv = g.resource_version;
        let object = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv.to_string(),
                "uid": format!("uid-lease-{namespace}-{name}")},
            "spec": spec});
        g.leases
            .insert((namespace.to_owned(), name.to_owned()), object);
        rv
    }

    /// Every Lease write so far.
    pub fn lease_writes(&self) -> Vec<LeaseWrite> {
        self.inner.lock().unwrap().lease_writes.clone()
    }

    /// Makes every Lease request fail with `status` (or not).
    pub fn fail_leases(&self, status: Option<u16>) {
        self.inner.lock().unwrap().lease_failure = status;
    }

    /// Whether a pod watch is connected.
    pub fn watching(&self) -> bool {
        self.inner
            .lock()
            .unwrap()
            .watcher
            .as_ref()
            .is_some_and(|w| !w.is_closed())
    }
}

fn query_string(q: &std::collections::HashMap<String, String>) -> String {
    let mut v: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    v.join("&")
}

async fn pods(
    State(k): State<FakeKube>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        {
            let mut g = k.inner.lock().unwrap();
            g.watches.push(query_string(&q));
            g.watcher = Some(tx);
        }
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Some(Some(line)) => Some((Ok::<_, std::io::Error>(format!("{line}\n")), rx)),
                _ => None,
            }
        });
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let g = {
        let mut g = k.inner.lock().unwrap();
        g.lists.push(query_string(&q));
        (g.pods.clone(), g.resource_version)
    };
    axum::Json(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": g.1.to_string()}, "items": g.0})).into_response()
}

async fn namespace(State(k): State<FakeKube>, Path(name): Path<String>) -> Response {
    let mut g = k.inner.lock().unwrap();
    g.namespace_gets += 1;
    match g.namespaces.get(&name) {
        Some(labels) => axum::Json(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels, "resourceVersion": "1"}})).into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, axum::Json(json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("namespaces \"{name}\" not found")}))).into_response(),
    }
}

fn empty_list(kind: &str, api_version: &str) -> Response {
    axum::Json(json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": {"resourceVersion": "1"}, "items": []})).into_response()
}

async fn idle_watch() -> Response {
    // An idle watch: nothing happens until the client gives up.
    let stream = futures_util::stream::unfold((), |_| async {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        None::<(Result<String, std::io::Error>, ())>
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn empty_core(
    Path(plural): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if q.contains_key("watch") {
        return idle_watch().await;
    }
    empty_list(&plural, "v1")
}

async fn empty_group(
    Path((group, version, plural)): Path<(String, String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if q.contains_key("watch") {
        return idle_watch().await;
    }
    empty_list(&plural, &format!("{group}/{version}"))
}

// ---------------------------------------------------------------------------
// PolicyReports.

/// The CRD's `openAPIV3Schema` as a JSON Schema: `x-kubernetes-*` markers
/// dropped, and `additionalProperties: false` on every object that lists
/// its properties (unknown fields are errors; see the module docs).
pub fn policy_report_schema() -> Value {
    let path = crate::common::repo().join("tests/crds/wgpolicyk8s.io_policyreports.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha2")
        .expect("v1alpha2 in the CRD")
        .clone();
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    fn strict(s: &mut Value) {
        let Some(o) = s.as_object_mut() else { return };
        o.retain(|k, _| !k.starts_with("x-kubernetes-"));
        if o.contains_key("properties") && !o.contains_key("additionalProperties") {
            o.insert("additionalProperties".into(), Value::Bool(false));
        }
        if let Some(Value::Object(props)) = o.get_mut("properties") {
            for v in props.values_mut() {
                strict(v);
            }
        }
        for k in ["items", "additionalProperties"] {
            if let Some(v) = o.get_mut(k) {
                strict(v);
            }
        }
    }
    strict(&mut schema);
    schema
}

/// Checks `object` against the PolicyReport CRD schema; the errors, one a line
/// with their JSON pointer, when it does not validate.
pub fn validate_policy_report(object: &Value) -> Result<(), Vec<String>> {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let v = VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(&policy_report_schema()).expect("the CRD schema compiles")
    });
    let errors: Vec<String> = v
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": reason, "message": message, "code": code.as_u16()}),
        ),
    )
        .into_response()
}

fn injected_failure(k: &FakeKube) -> Option<Response> {
    let code = k.inner.lock().unwrap().report_failure?;
    let code = StatusCode::from_u16(code).unwrap();
    let reason = match code.as_u16() {
        403 => "Forbidden",
        404 => "NotFound",
        _ => "InternalError",
    };
    Some(status(code, reason, format!("injected {code}")))
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Validates and stores a PolicyReport written to `ns/name` by `method`.
fn store_report(
    k: &FakeKube,
    agent: &str,
    method: &str,
    ns: &str,
    name: &str,
    mut object: Value,
) -> Response {
    let mut problems = Vec::new();
    if object["apiVersion"] != "wgpolicyk8s.io/v1alpha2" {
        problems.push(format!(
            "apiVersion: {} is not wgpolicyk8s.io/v1alpha2",
            object["apiVersion"]
        ));
    }
    if object["kind"] != "PolicyReport" {
        problems.push(format!("kind: {} is not PolicyReport", object["kind"]));
    }
    if object["metadata"]["name"] != name {
        problems.push(format!(
            "metadata.name: {} does not match the URL's {name:?}",
            object["metadata"]["name"]
        ));
    }
    if !object["metadata"]["namespace"].is_null() && object["metadata"]["namespace"] != ns {
        problems.push(format!(
            "metadata.namespace: {} does not match the URL's {ns:?}",
            object["metadata"]["namespace"]
        ));
    }
    if let Err(e) = validate_policy_report(&object) {
        problems.extend(e);
    }
    let mut g = k.inner.lock().unwrap();
    g.report_writes.push(format!("{method} {ns}/{name}"));
    g.report_writers
        .push((agent.to_owned(), format!("{method} {ns}/{name}")));
    if !problems.is_empty() {
        let message = format!(
            "PolicyReport.wgpolicyk8s.io {name:?} is invalid: {}",
            problems.join("; ")
        );
        g.report_rejections.push(message.clone());
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message);
    }
    g.resource_version += 1;
    let rv = g.resource_version;
    let key = (ns.to_owned(), name.to_owned());
    let created = !g.policy_reports.contains_key(&key);
    let meta = object["metadata"].as_object_mut().unwrap();
    meta.insert("namespace".into(), json!(ns));
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    meta.insert("uid".into(), json!(format!("uid-polr-{ns}-{name}")));
    g.policy_reports.insert(key, object.clone());
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (code, axum::Json(object)).into_response()
}

fn report_list(items: Vec<Value>) -> Response {
    axum::Json(
        json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReportList",
        "metadata": {"resourceVersion": "1"}, "items": items}),
    )
    .into_response()
}

/// Items matching a `labelSelector` of `k=v` terms.
fn select(
    items: impl Iterator<Item = Value>,
    q: &std::collections::HashMap<String, String>,
) -> Vec<Value> {
    let terms: Vec<(String, String)> = q
        .get("labelSelector")
        .map(|s| {
            s.split(',')
                .filter_map(|t| t.split_once('='))
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    items
        .filter(|o| {
            terms
                .iter()
                .all(|(a, b)| o["metadata"]["labels"][a] == b.as_str())
        })
        .collect()
}

async fn list_reports(
    State(k): State<FakeKube>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(r) = injected_failure(&k) {
        return r;
    }
    let items: Vec<Value> = k
        .inner
        .lock()
        .unwrap()
        .policy_reports
        .values()
        .cloned()
        .collect();
    report_list(select(items.into_iter(), &q))
}

async fn list_reports_in(
    State(k): State<FakeKube>,
    Path(ns): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(r) = injected_failure(&k) {
        return r;
    }
    let items: Vec<Value> = k
        .inner
        .lock()
        .unwrap()
        .policy_reports
        .iter()
        .filter(|((n, _), _)| *n == ns)
        .map(|(_, v)| v.clone())
        .collect();
    report_list(select(items.into_iter(), &q))
}

async fn get_report(
    State(k): State<FakeKube>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if let Some(r) = injected_failure(&k) {
        return r;
    }
    match k
        .inner
        .lock()
        .unwrap()
        .policy_reports
        .get(&(ns, name.clone()))
    {
        Some(v) => axum::Json(v.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("policyreports.wgpolicyk8s.io {name:?} not found"),
        ),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml_ng::from_slice(body))
        .map_err(|e| format!("body: {e}"))
}

async fn create_report(
    State(k): State<FakeKube>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = injected_failure(&k) {
        return r;
    }
    let object = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if k.inner
        .lock()
        .unwrap()
        .policy_reports
        .contains_key(&(ns.clone(), name.clone()))
    {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{name:?} already exists"),
        );
    }
    store_report(&k, &user_agent(&headers), "CREATE", &ns, &name, object)
}

async fn put_report(
    State(k): State<FakeKube>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = injected_failure(&k) {
        return r;
    }
    let object = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    if !k
        .inner
        .lock()
        .unwrap()
        .policy_reports
        .contains_key(&(ns.clone(), name.clone()))
    {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{name:?} not found"),
        );
    }
    store_report(&k, &user_agent(&headers), "UPDATE", &ns, &name, object)
}

/// Server-side apply only (`application/apply-patch+yaml` with a
/// `fieldManager`): provgate owns every field of its reports, so the
/// applied object replaces the stored one.
async fn patch_report(
    State(k): State<FakeKube>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = injected_failure(&k) {
        return r;
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct != "application/apply-patch+yaml" {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("patch type {ct:?}"),
        );
    }
    if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "fieldManager is required for apply patch".into(),
        );
    }
    let object = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    store_report(&k, &user_agent(&headers), "APPLY", &ns, &name, object)
}

async fn delete_report(
    State(k): State<FakeKube>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = injected_failure(&k) {
        return r;
    }
    let mut g = k.inner.lock().unwrap();
    g.report_writes.push(format!("DELETE {ns}/{name}"));
    g.report_writers
        .push((user_agent(&headers), format!("DELETE {ns}/{name}")));
    match g.policy_reports.remove(&(ns, name.clone())) {
        Some(v) => axum::Json(v).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("policyreports.wgpolicyk8s.io {name:?} not found"),
        ),
    }
}

// ---------------------------------------------------------------------------
// Leases.

fn lease_failure(k: &FakeKube) -> Option<Response> {
    let code = k.inner.lock().unwrap().lease_failure?;
    let code = StatusCode::from_u16(code).unwrap();
    let reason = match code.as_u16() {
        403 => "Forbidden",
        _ => "InternalError",
    };
    Some(status(code, reason, format!("injected {code}")))
}

/// What is wrong with a Lease body for `ns/name`, as the API server would
/// say (the fields provgate writes; MicroTime with six fractional digits).
fn lease_problems(ns: &str, name: &str, object: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if object["apiVersion"] != "coordination.k8s.io/v1" || object["kind"] != "Lease" {
        problems.push(format!(
            "apiVersion/kind: {} {}",
            object["apiVersion"], object["kind"]
        ));
    }
    if object["metadata"]["name"] != name {
        problems.push(format!("metadata.name: {}", object["metadata"]["name"]));
    }
    if !object["metadata"]["namespace"].is_null() && object["metadata"]["namespace"] != ns {
        problems.push(format!(
            "metadata.namespace: {}",
            object["metadata"]["namespace"]
        ));
    }
    let spec = &object["spec"];
    let micro = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$").unwrap();
    for t in ["acquireTime", "renewTime"] {
        if !spec[t].is_null() && !spec[t].as_str().is_some_and(|v| micro.is_match(v)) {
            problems.push(format!("spec.{t}: {} is not a MicroTime", spec[t]));
        }
    }
    for n in ["leaseDurationSeconds", "leaseTransitions"] {
        if !spec[n].is_null()
            && !spec[n]
                .as_i64()
                .is_some_and(|v| v >= 0 && v <= i32::MAX as i64)
        {
            problems.push(format!("spec.{n}: {}", spec[n]));
        }
    }
    if !spec["holderIdentity"].is_null() && !spec["holderIdentity"].is_string() {
        problems.push(format!("spec.holderIdentity: {}", spec["holderIdentity"]));
    }
    problems
}

fn record_lease(
    g: &mut Inner,
    method: &str,
    ns: &str,
    name: &str,
    agent: String,
    object: &Value,
    status: StatusCode,
) {
    g.lease_writes.push(LeaseWrite {
        method: method.into(),
        lease: format!("{ns}/{name}"),
        user_agent: agent,
        holder: object["spec"]["holderIdentity"].as_str().map(str::to_owned),
        status: status.as_u16(),
    });
}

async fn get_lease(
    State(k): State<FakeKube>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if let Some(r) = lease_failure(&k) {
        return r;
    }
    match k.lease(&ns, &name) {
        Some(v) => axum::Json(v).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("leases.coordination.k8s.io {name:?} not found"),
        ),
    }
}

async fn create_lease(
    State(k): State<FakeKube>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = lease_failure(&k) {
        return r;
    }
    let mut object = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut g = k.inner.lock().unwrap();
    let agent = user_agent(&headers);
    let problems = lease_problems(&ns, &name, &object);
    if !problems.is_empty() {
        record_lease(
            &mut g,
            "CREATE",
            &ns,
            &name,
            agent,
            &object,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            problems.join("; "),
        );
    }
    let key = (ns.clone(), name.clone());
    if g.leases.contains_key(&key) {
        record_lease(
            &mut g,
            "CREATE",
            &ns,
            &name,
            agent,
            &object,
            StatusCode::CONFLICT,
        );
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("leases.coordination.k8s.io {name:?} already exists"),
        );
    }
    g.resource_version += 1;
    let rv = g.resource_version;
    let meta = object["metadata"].as_object_mut().unwrap();
    meta.insert("namespace".into(), json!(ns));
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    meta.insert("uid".into(), json!(format!("uid-lease-{ns}-{name}")));
    record_lease(
        &mut g,
        "CREATE",
        &ns,
        &name,
        agent,
        &object,
        StatusCode::CREATED,
    );
    g.leases.insert(key, object.clone());
    (StatusCode::CREATED, axum::Json(object)).into_response()
}

async fn put_lease(
    State(k): State<FakeKube>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = lease_failure(&k) {
        return r;
    }
    let mut object = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let mut g = k.inner.lock().unwrap();
    let agent = user_agent(&headers);
    let key = (ns.clone(), name.clone());
    let mut problems = lease_problems(&ns, &name, &object);
    let sent = object["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned);
    if sent.is_none() {
        problems.push(
            "metadata.resourceVersion: Required value (this fake demands optimistic concurrency)"
                .into(),
        );
    }
    if !problems.is_empty() {
        record_lease(
            &mut g,
            "UPDATE",
            &ns,
            &name,
            agent,
            &object,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            problems.join("; "),
        );
    }
    let Some(stored) = g.leases.get(&key) else {
        record_lease(
            &mut g,
            "UPDATE",
            &ns,
            &name,
            agent,
            &object,
            StatusCode::NOT_FOUND,
        );
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("leases.coordination.k8s.io {name:?} not found"),
        );
    };
    if stored["metadata"]["resourceVersion"].as_str() != sent.as_deref() {
        record_lease(
            &mut g,
            "UPDATE",
            &ns,
            &name,
            agent,
            &object,
            StatusCode::CONFLICT,
        );
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on leases.coordination.k8s.io {name:?}: the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    g.resource_version += 1;
    let rv = g.resource_version;
    let meta = object["metadata"].as_object_mut().unwrap();
    meta.insert("namespace".into(), json!(ns));
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    record_lease(&mut g, "UPDATE", &ns, &name, agent, &object, StatusCode::OK);
    g.leases.insert(key, object.clone());
    axum::Json(object).into_response()
}
