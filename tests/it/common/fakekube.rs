//! A small fake Kubernetes API: list and watch of pods (scripted by the
//! test), empty lists and idle watches for the other workload kinds. There
//! is no API server binary here; the JSON shapes are the API server's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
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
        let app = Router::new()
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
