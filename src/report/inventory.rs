//! The live inventory of running workloads, from the Kubernetes API.
//!
//! For each workload kind: list (remembering the collection's
//! `resourceVersion`), then watch from it. Added and modified objects are
//! upserted, deleted ones removed, bookmarks advance the version. A watch
//! that ends (the API server closes them every few minutes) is resumed from
//! the last version; a `410 Gone` (the version is too old) relists. Only
//! `list` and `watch` are used, so the RBAC is read-only.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

use super::{Workload, workload_of};

/// The kinds watched: (group, version, kind, plural).
pub const WATCHED: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Pod", "pods"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("", "v1", "ReplicationController", "replicationcontrollers"),
];

/// Why the inventory could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// No usable client configuration.
    #[error("kubernetes client configuration: {0}")]
    Config(String),
    /// The API refused or failed.
    #[error("kubernetes API: {0}")]
    Api(String),
}

/// A client: in-cluster configuration, or `api_server` (tests, local use).
pub async fn client(api_server: Option<&str>) -> Result<kube::Client, InventoryError> {
    client_as(api_server, None).await
}

/// [`client`], sending `user_agent` as the `User-Agent` of every request
/// (the API server's audit log then names the replica).
pub async fn client_as(
    api_server: Option<&str>,
    user_agent: Option<&str>,
) -> Result<kube::Client, InventoryError> {
    let mut config = match api_server {
        Some(url) => kube::Config::new(
            url.parse()
                .map_err(|e| InventoryError::Config(format!("{url}: {e}")))?,
        ),
        None => kube::Config::infer()
            .await
            .map_err(|e| InventoryError::Config(e.to_string()))?,
    };
    if let Some(ua) = user_agent {
        let value = axum::http::HeaderValue::from_str(ua)
            .map_err(|e| InventoryError::Config(format!("user agent {ua:?}: {e}")))?;
        config.headers.push((axum::http::header::USER_AGENT, value));
    }
    kube::Client::try_from(config).map_err(|e| InventoryError::Config(e.to_string()))
}

fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::all_with(client.clone(), &resource)
}

/// The `apiVersion` of a watched kind.
fn api_version_of(kind: &str) -> String {
    WATCHED
        .iter()
        .find(|(_, _, k, _)| *k == kind)
        .map(|(g, v, _, _)| {
            if g.is_empty() {
                (*v).to_owned()
            } else {
                format!("{g}/{v}")
            }
        })
        .unwrap_or_default()
}

/// Workloads from one object, keyed by `namespace/Kind/name`. An object
/// that does not read is kept as an unreadable workload (reported, not
/// compliant), never skipped.
fn from_object(kind: &str, o: &DynamicObject) -> Option<(String, Workload)> {
    let mut v = match serde_json::to_value(o) {
        Ok(v) => v,
        Err(e) => serde_json::json!({"metadata": {
            "name": o.metadata.name, "namespace": o.metadata.namespace, "uid": o.metadata.uid},
            "spec": format!("unserialisable: {e}")}),
    };
    // List items carry no kind; the collection says what they are.
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), serde_json::Value::String(kind.to_owned()));
        m.insert(
            "apiVersion".into(),
            serde_json::Value::String(api_version_of(kind)),
        );
    }
    let w = workload_of(&v)?;
    if let Some(why) = &w.unreadable {
        tracing::warn!(kind, workload = %w.key(), error = %why, "unreadable workload: reported as such");
    }
    Some((w.key(), w))
}

async fn list_kind(
    api: &Api<DynamicObject>,
    kind: &str,
) -> Result<(BTreeMap<String, Workload>, String), InventoryError> {
    let mut out = BTreeMap::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let list = api
            .list(&params)
            .await
            .map_err(|e| InventoryError::Api(format!("list {kind}: {e}")))?;
        for o in &list.items {
            if let Some((k, w)) = from_object(kind, o) {
                out.insert(k, w);
            }
        }
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = params.continue_token(&c),
            None => return Ok((out, list.metadata.resource_version.unwrap_or_default())),
        }
    }
}

/// Lists every watched kind once.
pub async fn list_all(client: &kube::Client) -> Result<BTreeMap<String, Workload>, InventoryError> {
    let mut all = BTreeMap::new();
    for (g, v, k, p) in WATCHED {
        let (items, _) = list_kind(&api(client, g, v, k, p), k).await?;
        all.extend(items);
    }
    Ok(all)
}

/// The live inventory.
#[derive(Debug)]
pub struct Inventory {
    workloads: RwLock<BTreeMap<String, Workload>>,
    /// The change counter; receivers never miss a change that happens
    /// while they are busy (a `Notify` would).
    version: tokio::sync::watch::Sender<u64>,
    relists: std::sync::atomic::AtomicU64,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory {
            workloads: RwLock::default(),
            version: tokio::sync::watch::Sender::new(0),
            relists: std::sync::atomic::AtomicU64::default(),
        }
    }
}

impl Inventory {
    /// A copy of the workloads.
    pub fn snapshot(&self) -> BTreeMap<String, Workload> {
        self.workloads.read().map(|w| w.clone()).unwrap_or_default()
    }

    /// Increases on every change.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// How many times a kind was (re)listed.
    pub fn lists(&self) -> u64 {
        self.relists.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for the next change.
    pub async fn changed(&self) {
        let _ = self.subscribe().changed().await;
    }

    /// Changes from now on: `changed()` on the receiver returns as soon as
    /// a change happened since the receiver last looked
    /// (`borrow_and_update`), even one made while its holder was busy.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    fn replace_kind(&self, kind: &str, items: BTreeMap<String, Workload>) {
        if let Ok(mut w) = self.workloads.write() {
            w.retain(|_, v| v.kind != kind);
            w.extend(items);
        }
        self.relists
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.bump();
    }

    fn upsert(&self, kind: &str, o: &DynamicObject) {
        let key = object_key(kind, o);
        if let Ok(mut w) = self.workloads.write() {
            match from_object(kind, o) {
                Some((k, v)) => {
                    w.insert(k, v);
                }
                // Now controlled, or no longer a workload: drop it.
                None => {
                    w.remove(&key);
                }
            }
        }
        self.bump();
    }

    fn remove(&self, kind: &str, o: &DynamicObject) {
        if let Ok(mut w) = self.workloads.write() {
            w.remove(&object_key(kind, o));
        }
        self.bump();
    }
}

fn object_key(kind: &str, o: &DynamicObject) -> String {
    format!(
        "{}/{kind}/{}",
        o.metadata.namespace.as_deref().unwrap_or_default(),
        o.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Keeps `inventory` current: one list+watch loop per kind, until aborted.
pub fn watch_all(
    client: kube::Client,
    inventory: Arc<Inventory>,
) -> Vec<tokio::task::JoinHandle<()>> {
    WATCHED
        .iter()
        .map(|(g, v, k, p)| {
            let api = api(&client, g, v, k, p);
            let inv = inventory.clone();
            let kind = (*k).to_owned();
            tokio::spawn(async move { watch_kind(api, kind, inv).await })
        })
        .collect()
}

async fn watch_kind(api: Api<DynamicObject>, kind: String, inv: Arc<Inventory>) {
    let mut backoff = Duration::from_millis(200);
    'relist: loop {
        let version = match list_kind(&api, &kind).await {
            Ok((items, rv)) => {
                inv.replace_kind(&kind, items);
                backoff = Duration::from_millis(200);
                rv
            }
            Err(e) => {
                tracing::warn!(kind, error = %e, "list failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue 'relist;
            }
        };
        let mut version = version;
        loop {
            let params = WatchParams::default().timeout(290);
            let stream = match api.watch(&params, &version).await {
                Ok(s) => s,
                Err(kube::Error::Api(s)) if s.code == 410 => continue 'relist,
                Err(e) => {
                    tracing::warn!(kind, error = %e, "watch failed; relisting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue 'relist;
                }
            };
            futures_util::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                        if let Some(rv) = &o.metadata.resource_version {
                            version = rv.clone();
                        }
                        inv.upsert(&kind, &o);
                    }
                    Ok(WatchEvent::Deleted(o)) => {
                        if let Some(rv) = &o.metadata.resource_version {
                            version = rv.clone();
                        }
                        inv.remove(&kind, &o);
                    }
                    Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                    // 410 Gone: the version expired; everything is listed
                    // again (deletions missed meanwhile disappear with it).
                    Ok(WatchEvent::Error(s)) if s.code == 410 => continue 'relist,
                    Ok(WatchEvent::Error(s)) => {
                        tracing::warn!(kind, code = s.code, message = %s.message, "watch error; relisting");
                        continue 'relist;
                    }
                    Err(e) => {
                        tracing::warn!(kind, error = %e, "watch stream failed; resuming");
                        break;
                    }
                }
            }
            // The server closed the watch (timeout): resume from `version`.
        }
    }
}
