//! Which namespaces the report judges: the webhooks' own exemptions.
//!
//! Admission never sees the namespaces the webhook configurations exempt
//! (the chart's `namespaceSelector`: the release namespace, `kube-system`,
//! `webhook.excludeNamespaces` and, when enabled, the opt-out label). A
//! report that judged them would call workloads non-compliant that admission
//! deliberately never looks at, so the report applies the same selector,
//! `report.namespaceSelector`. The chart renders it from the very template
//! that renders the webhooks' selector, so the two agree by construction;
//! without the chart it defaults to the chart's default (everything but
//! `kube-system`), and an operator who writes their own webhook
//! configuration sets it to that configuration's `namespaceSelector`.
//!
//! The selector is a Kubernetes `LabelSelector` over the namespace's labels.
//! The API server gives every namespace the label
//! `kubernetes.io/metadata.name` (its name, which no user can change), so a
//! selector on that key alone needs no lookup. A selector on other labels
//! needs the namespace's labels: from `Namespace` objects in the input, or
//! read from the API. When they are unknown, a requirement on the name
//! that excludes the namespace still decides (the requirements are ANDed);
//! otherwise the workload is judged (a report that over-reports is
//! corrected by a look; one that hides a namespace is not).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::core::{Selector, SelectorExt};

/// The label the API server sets to each namespace's name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The default selector: every namespace but `kube-system`, as the chart's
/// webhooks (whose release namespace the CLI cannot know).
pub fn default_selector() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NAME_LABEL.into(),
            operator: "NotIn".into(),
            values: Some(vec!["kube-system".into()]),
        }]),
        match_labels: None,
    }
}

/// Why a `namespaceSelector` is not usable.
#[derive(Debug, thiserror::Error)]
#[error("report.namespaceSelector: {0}")]
pub struct SelectorError(String);

/// A compiled `report.namespaceSelector`.
#[derive(Debug, Clone)]
pub struct NamespaceScope {
    selector: Selector,
    /// The requirements on [`NAME_LABEL`] alone: they decide without the
    /// namespace's other labels whenever they exclude it.
    by_name: Selector,
    /// Whether matching needs labels other than [`NAME_LABEL`].
    needs_labels: bool,
}

/// Whether a namespace is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InScope {
    /// The webhooks see it: judge it.
    Judged,
    /// The webhooks exempt it: do not judge it.
    Exempt,
}

impl NamespaceScope {
    /// Compiles `selector`; an unknown operator, or `In`/`NotIn` without
    /// values, is an error (never a selector that matches everything).
    pub fn new(selector: &LabelSelector) -> Result<Self, SelectorError> {
        for r in selector.match_expressions.iter().flatten() {
            let has_values = r.values.as_ref().is_some_and(|v| !v.is_empty());
            match r.operator.as_str() {
                "In" | "NotIn" if !has_values => {
                    return Err(SelectorError(format!(
                        "`{}` on {:?} needs values",
                        r.operator, r.key
                    )));
                }
                "Exists" | "DoesNotExist" if has_values => {
                    return Err(SelectorError(format!(
                        "`{}` on {:?} takes no values",
                        r.operator, r.key
                    )));
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(SelectorError(format!(
                        "unknown operator {other:?} on {:?} (In, NotIn, Exists, DoesNotExist)",
                        r.key
                    )));
                }
            }
        }
        let needs_labels = selector
            .match_labels
            .iter()
            .flat_map(|m| m.keys())
            .chain(selector.match_expressions.iter().flatten().map(|r| &r.key))
            .any(|k| k != NAME_LABEL);
        let compiled =
            Selector::try_from(selector.clone()).map_err(|e| SelectorError(e.to_string()))?;
        let name_only = LabelSelector {
            match_labels: selector.match_labels.as_ref().map(|m| {
                m.iter()
                    .filter(|(k, _)| *k == NAME_LABEL)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            match_expressions: selector
                .match_expressions
                .as_ref()
                .map(|e| e.iter().filter(|r| r.key == NAME_LABEL).cloned().collect()),
        };
        let by_name = Selector::try_from(name_only).map_err(|e| SelectorError(e.to_string()))?;
        Ok(NamespaceScope {
            selector: compiled,
            by_name,
            needs_labels,
        })
    }

    /// Whether matching needs the namespace's labels (beyond its name).
    pub fn needs_labels(&self) -> bool {
        self.needs_labels
    }

    /// Whether the requirements on the name alone exempt `namespace` (then
    /// its other labels are not needed).
    pub fn exempt_by_name(&self, namespace: &str) -> bool {
        let name = BTreeMap::from([(NAME_LABEL.to_owned(), namespace.to_owned())]);
        !self.by_name.matches(&name)
    }

    /// Whether `namespace` (with `labels`, when known) is judged.
    pub fn check(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> InScope {
        let mut all = labels.cloned().unwrap_or_default();
        all.insert(NAME_LABEL.into(), namespace.into());
        if self.needs_labels && labels.is_none() {
            // The requirements are ANDed: one on the name that fails
            // decides. Otherwise, with the other labels unknown, judge it
            // rather than hide it.
            return if self.exempt_by_name(namespace) {
                InScope::Exempt
            } else {
                InScope::Judged
            };
        }
        if self.selector.matches(&all) {
            InScope::Judged
        } else {
            InScope::Exempt
        }
    }
}

impl Default for NamespaceScope {
    fn default() -> Self {
        // The default selector is valid by construction; fall back to
        // judging everything rather than panicking if that ever changed.
        NamespaceScope::new(&default_selector()).unwrap_or(NamespaceScope {
            selector: Selector::default(),
            by_name: Selector::default(),
            needs_labels: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(yaml: &str) -> LabelSelector {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn default_exempts_kube_system_only() {
        let s = NamespaceScope::default();
        assert!(!s.needs_labels());
        assert_eq!(s.check("kube-system", None), InScope::Exempt);
        assert_eq!(s.check("payments", None), InScope::Judged);
        assert_eq!(s.check("kube-public", None), InScope::Judged);
    }

    #[test]
    fn chart_selector_with_opt_out_label_decides_by_name_and_judges_when_labels_are_unknown() {
        let s = NamespaceScope::new(&sel(
            "matchExpressions:\n\
             - {key: kubernetes.io/metadata.name, operator: NotIn, values: [provgate, kube-system]}\n\
             - {key: provgate.dev/ignore, operator: NotIn, values: [\"true\"]}\n",
        ))
        .unwrap();
        assert!(s.needs_labels());
        // Excluded by name: decided without the other labels.
        assert_eq!(s.check("provgate", None), InScope::Exempt);
        assert_eq!(s.check("kube-system", None), InScope::Exempt);
        assert!(s.exempt_by_name("kube-system") && !s.exempt_by_name("team-a"));
        assert_eq!(s.check("provgate", Some(&BTreeMap::new())), InScope::Exempt);
        let opted_out = labels(&[("provgate.dev/ignore", "true")]);
        assert_eq!(s.check("team-a", Some(&opted_out)), InScope::Exempt);
        assert_eq!(s.check("team-a", Some(&BTreeMap::new())), InScope::Judged);
        assert_eq!(
            s.check("team-a", None),
            InScope::Judged,
            "labels unknown: judged"
        );
        // An opt-in selector with unknown labels judges too (never hides).
        let opt_in =
            NamespaceScope::new(&sel("matchLabels: {provgate.dev/enforce: \"yes\"}")).unwrap();
        assert_eq!(opt_in.check("team-a", None), InScope::Judged);
        assert_eq!(
            opt_in.check("team-a", Some(&BTreeMap::new())),
            InScope::Exempt
        );
    }

    #[test]
    fn the_name_label_cannot_be_spoofed_by_namespace_labels() {
        // A namespace labelled with another namespace's name is still
        // judged by its own name.
        let s = NamespaceScope::default();
        let spoof = labels(&[(NAME_LABEL, "kube-system")]);
        assert_eq!(s.check("team-a", Some(&spoof)), InScope::Judged);
    }

    #[test]
    fn bad_selectors_are_errors() {
        for bad in [
            "matchExpressions: [{key: a, operator: In}]",
            "matchExpressions: [{key: a, operator: NotIn, values: []}]",
            "matchExpressions: [{key: a, operator: Exists, values: [x]}]",
            "matchExpressions: [{key: a, operator: Equals, values: [x]}]",
        ] {
            assert!(NamespaceScope::new(&sel(bad)).is_err(), "{bad}");
        }
        // An empty selector judges everything, as in a webhook.
        let all = NamespaceScope::new(&LabelSelector::default()).unwrap();
        assert_eq!(all.check("kube-system", None), InScope::Judged);
    }
}
