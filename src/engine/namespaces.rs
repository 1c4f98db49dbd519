//! Namespace labels from the Kubernetes API, for bindings that select
//! namespaces by label.
//!
//! An AdmissionReview carries the object, not its namespace, so the labels
//! are read (`get namespaces`, read-only) and cached briefly; concurrent
//! lookups of one namespace are coalesced. Only used when the operator opted
//! in with `admission.trustNamespaceLabels`: labels that namespace owners
//! can set are a bypass unless something else controls them. A lookup that
//! fails leaves the labels unknown, so label-selected bindings do not match
//! and the image falls to `unmatched` (deny by default): fail closed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use moka::future::Cache;

/// Namespace labels, looked up and cached.
#[derive(Clone)]
pub struct NamespaceLabels {
    client: kube::Client,
    cache: Cache<String, Arc<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for NamespaceLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceLabels").finish_non_exhaustive()
    }
}

impl NamespaceLabels {
    /// Labels through `client`, cached for `ttl`.
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        NamespaceLabels {
            client,
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    /// The labels of `namespace`.
    pub async fn labels(&self, namespace: &str) -> Result<Arc<BTreeMap<String, String>>, String> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        self.cache
            .try_get_with(namespace.to_owned(), async {
                let ns = tokio::time::timeout(Duration::from_secs(2), api.get(namespace))
                    .await
                    .map_err(|_| format!("namespace {namespace}: lookup timed out"))?
                    .map_err(|e| format!("namespace {namespace}: {e}"))?;
                Ok::<_, String>(Arc::new(ns.metadata.labels.unwrap_or_default()))
            })
            .await
            .map_err(|e| (*e).clone())
    }
}
