//! The request context, and the part of it a contract may read.
//!
//! A contract declares the context fields it reads in `contract.yaml`
//! (`context: [namespace, labels.team]`; default: none). Its policy input
//! carries *only* those fields ([`ContextDecl::project`]), and the verdict
//! cache keys on exactly that [`ContextProjection`]. So a contract that reads
//! no context is evaluated once per image digest and contract revision, and
//! reused for every pod a ReplicaSet makes, while a contract that reads the
//! namespace is evaluated once per namespace — correct by construction,
//! because a field the input does not carry cannot change the verdict.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The request context a decision is made in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// Which path asked.
    pub source: Source,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Admission operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Object labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Namespace labels, when known.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_labels: BTreeMap<String, String>,
    /// The requesting user or CI identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Which path a decision was asked for; contracts read it as
/// `input.context.source`, a lowercase string.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The validating or mutating webhook.
    Admission,
    /// The CI gate (`POST /v1/gate`).
    Gate,
    /// The compliance report of what already runs.
    Report,
    /// `provgate check` and the policy tools. A context built without a
    /// source is the CLI's: a person at a terminal asked.
    #[default]
    Cli,
}

impl Source {
    /// The name contracts, metrics and the decision log see.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Admission => "admission",
            Source::Gate => "gate",
            Source::Report => "report",
            Source::Cli => "cli",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request-context field a contract may declare that it reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContextField {
    /// `source`: admission, gate, report or cli.
    Source,
    /// `namespace`.
    Namespace,
    /// `kind`.
    Kind,
    /// `name` (generated per pod for ReplicaSet pods: reading it disables
    /// verdict reuse across pods).
    Name,
    /// `container`.
    Container,
    /// `operation`.
    Operation,
    /// `user`.
    User,
    /// `labels`: every object label.
    Labels,
    /// `labels.<key>`: one object label.
    Label(String),
    /// `namespaceLabels`: every namespace label.
    NamespaceLabels,
    /// `namespaceLabels.<key>`: one namespace label.
    NamespaceLabel(String),
}

/// Why a declared context field is not one provgate knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown context field {0:?}; known: source, namespace, kind, name, container, operation, user, labels, labels.<key>, namespaceLabels, namespaceLabels.<key>"
)]
pub struct UnknownContextField(pub String);

impl FromStr for ContextField {
    type Err = UnknownContextField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownContextField(s.to_owned());
        Ok(match s {
            "source" => ContextField::Source,
            "namespace" => ContextField::Namespace,
            "kind" => ContextField::Kind,
            "name" => ContextField::Name,
            "container" => ContextField::Container,
            "operation" => ContextField::Operation,
            "user" => ContextField::User,
            "labels" => ContextField::Labels,
            "namespaceLabels" => ContextField::NamespaceLabels,
            _ => {
                if let Some(k) = s.strip_prefix("labels.") {
                    if k.is_empty() {
                        return Err(unknown());
                    }
                    ContextField::Label(k.to_owned())
                } else if let Some(k) = s.strip_prefix("namespaceLabels.") {
                    if k.is_empty() {
                        return Err(unknown());
                    }
                    ContextField::NamespaceLabel(k.to_owned())
                } else {
                    return Err(unknown());
                }
            }
        })
    }
}

impl fmt::Display for ContextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextField::Source => f.write_str("source"),
            ContextField::Namespace => f.write_str("namespace"),
            ContextField::Kind => f.write_str("kind"),
            ContextField::Name => f.write_str("name"),
            ContextField::Container => f.write_str("container"),
            ContextField::Operation => f.write_str("operation"),
            ContextField::User => f.write_str("user"),
            ContextField::Labels => f.write_str("labels"),
            ContextField::Label(k) => write!(f, "labels.{k}"),
            ContextField::NamespaceLabels => f.write_str("namespaceLabels"),
            ContextField::NamespaceLabel(k) => write!(f, "namespaceLabels.{k}"),
        }
    }
}

impl<'de> Deserialize<'de> for ContextField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for ContextField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl ContextField {
    /// Whether reading `self` reads (part of) `other`'s value or vice versa:
    /// `labels` covers `labels.team`.
    pub fn covers(&self, other: &ContextField) -> bool {
        self == other
            || matches!(
                (self, other),
                (ContextField::Labels, ContextField::Label(_))
            )
            || matches!(
                (self, other),
                (
                    ContextField::NamespaceLabels,
                    ContextField::NamespaceLabel(_)
                )
            )
    }
}

/// The context fields a contract declares, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ContextDecl(Arc<[ContextField]>);

impl ContextDecl {
    /// From the fields as written; duplicates and fields covered by a wider
    /// one (`labels.team` under `labels`) are dropped.
    pub fn new(fields: impl IntoIterator<Item = ContextField>) -> Self {
        let mut v: Vec<ContextField> = fields.into_iter().collect();
        v.sort();
        v.dedup();
        let wide = v.clone();
        v.retain(|f| !wide.iter().any(|w| w != f && w.covers(f)));
        ContextDecl(v.into())
    }

    /// The declared fields.
    pub fn fields(&self) -> &[ContextField] {
        &self.0
    }

    /// Whether no field is declared (the verdict is reusable across every
    /// context).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether reading `field` is allowed by this declaration.
    pub fn allows(&self, field: &ContextField) -> bool {
        self.0.iter().any(|d| d.covers(field))
    }

    /// The declared fields' values in `ctx`.
    pub fn project(&self, ctx: &RequestContext) -> ContextProjection {
        if self.0.is_empty() {
            return ContextProjection::default();
        }
        let values = self
            .0
            .iter()
            .map(|f| {
                let v = match f {
                    ContextField::Source => Projected::Text(ctx.source.as_str().to_owned()),
                    ContextField::Namespace => Projected::text(ctx.namespace.as_ref()),
                    ContextField::Kind => Projected::text(ctx.kind.as_ref()),
                    ContextField::Name => Projected::text(ctx.name.as_ref()),
                    ContextField::Container => Projected::text(ctx.container.as_ref()),
                    ContextField::Operation => Projected::text(ctx.operation.as_ref()),
                    ContextField::User => Projected::text(ctx.user.as_ref()),
                    ContextField::Labels => Projected::Map(ctx.labels.clone()),
                    ContextField::Label(k) => Projected::text(ctx.labels.get(k)),
                    ContextField::NamespaceLabels => Projected::Map(ctx.namespace_labels.clone()),
                    ContextField::NamespaceLabel(k) => Projected::text(ctx.namespace_labels.get(k)),
                };
                (f.clone(), v)
            })
            .collect::<Vec<_>>();
        ContextProjection(values.into())
    }
}

/// One projected value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Projected {
    /// The field is absent in this context.
    Absent,
    /// A string field, or one label.
    Text(String),
    /// A whole label map.
    Map(BTreeMap<String, String>),
}

impl Projected {
    fn text(s: Option<&String>) -> Self {
        match s {
            Some(s) => Projected::Text(s.clone()),
            None => Projected::Absent,
        }
    }
}

/// The values of a contract's declared context fields in one request: the
/// only context its input carries, and part of its verdict key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ContextProjection(Arc<[(ContextField, Projected)]>);

impl ContextProjection {
    /// The projected fields and values.
    pub fn values(&self) -> &[(ContextField, Projected)] {
        &self.0
    }

    /// The `input.context` object: only the projected fields that are
    /// present, with single labels nested under `labels`/`namespaceLabels`.
    pub fn to_value(&self) -> regorus::Value {
        let mut top: BTreeMap<regorus::Value, regorus::Value> = BTreeMap::new();
        let mut labels: BTreeMap<regorus::Value, regorus::Value> = BTreeMap::new();
        let mut ns_labels: BTreeMap<regorus::Value, regorus::Value> = BTreeMap::new();
        let map = |m: &BTreeMap<String, String>| {
            regorus::Value::from(
                m.iter()
                    .map(|(k, v)| {
                        (
                            regorus::Value::from(k.as_str()),
                            regorus::Value::from(v.as_str()),
                        )
                    })
                    .collect::<BTreeMap<regorus::Value, regorus::Value>>(),
            )
        };
        for (field, value) in self.0.iter() {
            let v = match value {
                Projected::Absent => continue,
                Projected::Text(s) => regorus::Value::from(s.as_str()),
                Projected::Map(m) => map(m),
            };
            match field {
                ContextField::Labels => {
                    if let Projected::Map(m) = value {
                        for (k, v) in m {
                            labels.insert(k.as_str().into(), v.as_str().into());
                        }
                    }
                }
                ContextField::Label(k) => {
                    labels.insert(k.as_str().into(), v);
                }
                ContextField::NamespaceLabels => {
                    if let Projected::Map(m) = value {
                        for (k, v) in m {
                            ns_labels.insert(k.as_str().into(), v.as_str().into());
                        }
                    }
                }
                ContextField::NamespaceLabel(k) => {
                    ns_labels.insert(k.as_str().into(), v);
                }
                other => {
                    top.insert(other.to_string().as_str().into(), v);
                }
            }
        }
        let declares = |f: &dyn Fn(&ContextField) -> bool| self.0.iter().any(|(x, _)| f(x));
        if declares(&|f| matches!(f, ContextField::Labels | ContextField::Label(_))) {
            top.insert("labels".into(), regorus::Value::from(labels));
        }
        if declares(&|f| {
            matches!(
                f,
                ContextField::NamespaceLabels | ContextField::NamespaceLabel(_)
            )
        }) {
            top.insert("namespaceLabels".into(), regorus::Value::from(ns_labels));
        }
        regorus::Value::from(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(name: &str, team: &str) -> RequestContext {
        RequestContext {
            source: Source::Admission,
            namespace: Some("payments".into()),
            kind: Some("Pod".into()),
            name: Some(name.into()),
            container: Some("app".into()),
            operation: Some("CREATE".into()),
            labels: [
                ("team".to_owned(), team.to_owned()),
                ("pod-template-hash".to_owned(), format!("{name}-hash")),
            ]
            .into(),
            namespace_labels: BTreeMap::new(),
            user: Some("system:serviceaccount:kube-system:replicaset-controller".into()),
        }
    }

    fn decl(fields: &[&str]) -> ContextDecl {
        ContextDecl::new(fields.iter().map(|f| f.parse::<ContextField>().unwrap()))
    }

    #[test]
    fn no_declared_field_projects_every_context_to_the_same_value() {
        let d = ContextDecl::default();
        assert_eq!(
            d.project(&ctx("api-7d9f-abcde", "a")),
            d.project(&ctx("api-7d9f-xyz12", "b"))
        );
        assert_eq!(
            d.project(&ctx("x", "y")).to_value(),
            regorus::Value::new_object()
        );
    }

    #[test]
    fn a_declared_field_that_differs_gives_another_projection() {
        let d = decl(&["namespace", "labels.team"]);
        // Generated pod names and template hashes do not matter…
        assert_eq!(d.project(&ctx("api-1", "a")), d.project(&ctx("api-2", "a")));
        // …the declared label does.
        assert_ne!(d.project(&ctx("api-1", "a")), d.project(&ctx("api-1", "b")));
    }

    #[test]
    fn the_input_carries_only_declared_fields() {
        let d = decl(&["namespace", "labels.team"]);
        let v = d.project(&ctx("api-1", "a")).to_value();
        let json: serde_json::Value = serde_json::from_str(&v.to_json_str().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"namespace": "payments", "labels": {"team": "a"}})
        );
    }

    #[test]
    fn wide_fields_cover_narrow_ones() {
        let d = decl(&["labels.team", "labels", "labels"]);
        assert_eq!(d.fields(), &[ContextField::Labels]);
        assert!(d.allows(&"labels.x".parse().unwrap()));
        assert!(!d.allows(&ContextField::Namespace));
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!("labels.".parse::<ContextField>().is_err());
        assert!("pod".parse::<ContextField>().is_err());
        assert_eq!(
            "namespaceLabels.tier"
                .parse::<ContextField>()
                .unwrap()
                .to_string(),
            "namespaceLabels.tier"
        );
    }
}
