//! Namespace labels for the report: whether they must be read, and reading
//! them. The selector they feed (`report.namespaceSelector`, the webhooks'
//! own exemptions) is compiled with the configuration, in
//! [`crate::config::scope`], whose documentation explains the rules.

use std::collections::BTreeMap;

use crate::config::scope::NamespaceScope;

/// Whether the namespaces' labels must be read to judge under `rt`: the
/// selector uses labels beyond the name, or bindings may select namespaces
/// by label (`admission.trustNamespaceLabels`).
pub fn labels_needed(rt: &crate::engine::Runtime) -> bool {
    rt.config.spec.report.scope().needs_labels() || rt.config.spec.admission.trust_namespace_labels
}

/// Fills in the labels of each workload's namespace from the API (`get
/// namespaces`, cached by `source`), for workloads that do not have them
/// yet and whose namespace `scope` does not already exempt by name. A
/// namespace that cannot be read keeps unknown labels: it is judged (see
/// [`crate::config::scope`]) and label-selected bindings do not match it,
/// as in admission.
pub async fn fill_namespace_labels(
    workloads: &mut [super::Workload],
    source: &crate::engine::namespaces::NamespaceLabels,
    scope: &NamespaceScope,
) {
    use futures_util::StreamExt as _;
    let wanted: std::collections::BTreeSet<String> = workloads
        .iter()
        .filter(|w| {
            w.namespace_labels.is_none()
                && !w.namespace.is_empty()
                && !scope.exempt_by_name(&w.namespace)
        })
        .map(|w| w.namespace.clone())
        .collect();
    let found: BTreeMap<String, BTreeMap<String, String>> =
        futures_util::stream::iter(wanted.into_iter().map(|ns| async move {
            match source.labels(&ns).await {
                Ok(l) => Some((ns, (*l).clone())),
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "namespace labels unknown: judged anyway");
                    None
                }
            }
        }))
        .buffer_unordered(8)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    for w in workloads.iter_mut() {
        if w.namespace_labels.is_none() {
            w.namespace_labels = found.get(&w.namespace).cloned();
        }
    }
}
