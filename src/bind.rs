//! Bindings: which contracts apply to an image in a context, and how.
//!
//! A binding selects by namespace (name globs, or labels when the operator
//! opted in), object labels, image globs and kinds; it names contracts, a
//! mode (`enforce`, `warn`, `audit`), an optional `enforce_after` date,
//! exemptions with expiry, and per-contract parameter/authority overrides.
//!
//! Image globs are matched against the whole normalised `registry/repository`
//! (anchored): `*` stays within one path segment, `**` crosses segments. So
//! `ghcr.io/acme/*` never matches `evil.io/ghcr.io/acme/app` or
//! `ghcr.io/acme/app/nested`, and references like `ghcr.io/acme/app@evil.io/x`
//! do not even parse.

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::image::ImageRef;
use crate::policy::{AuthoritySpec, RequestContext};

/// How a binding acts on a failed contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny.
    Enforce,
    /// Allow with a warning.
    Warn,
    /// Allow silently; record in the decision log and metrics.
    Audit,
}

impl Mode {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

/// The selector as written in configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelectorSpec {
    /// Namespace name globs (`*` for all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespace name globs excluded.
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    /// Namespace labels that must all match (needs
    /// `admission.trustNamespaceLabels`, see the operator guide).
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    /// Object labels that must all match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Image globs over `registry/repository`.
    #[serde(default)]
    pub images: Vec<String>,
    /// Image globs excluded.
    #[serde(default)]
    pub exclude_images: Vec<String>,
    /// Kinds (`Pod`, `Deployment`, …).
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// An exemption as written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExemptionSpec {
    /// Image globs exempted.
    pub images: Vec<String>,
    /// When the exemption ends (RFC 3339).
    pub expires: String,
    /// Why (shown in every decision that uses it).
    pub reason: String,
}

/// A binding as written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingSpec {
    /// Name, for messages and metrics.
    pub name: String,
    /// Contract names.
    pub contracts: Vec<String>,
    /// What it applies to; empty means everything.
    #[serde(default, rename = "match")]
    pub selector: SelectorSpec,
    /// Mode.
    pub mode: Mode,
    /// Before this date an `enforce` binding acts as `warn`.
    #[serde(default, alias = "enforce_after")]
    pub enforce_after: Option<String>,
    /// Exemptions.
    #[serde(default)]
    pub exemptions: Vec<ExemptionSpec>,
    /// Parameter overrides, by contract name.
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Authority overrides, by contract name (replace the contract's).
    #[serde(default)]
    pub authorities: BTreeMap<String, Vec<AuthoritySpec>>,
    /// Mutation: pin tags to the verified digest.
    #[serde(default)]
    pub pin_digests: bool,
    /// Per-contract override of the contract's `legacyCosign` (whether
    /// evidence under cosign's `.sig`/`.att` tags counts).
    #[serde(default)]
    pub legacy_cosign: BTreeMap<String, bool>,
}

/// Why a binding is invalid.
#[derive(Debug, Clone, thiserror::Error)]
#[error("binding {binding:?}: {reason}")]
pub struct BindingError {
    binding: String,
    reason: String,
}

/// An exemption, compiled.
#[derive(Debug, Clone)]
pub struct Exemption {
    patterns: Vec<String>,
    images: GlobSet,
    /// When it ends.
    pub expires: jiff::Timestamp,
    /// Why.
    pub reason: String,
}

impl Exemption {
    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// A compiled binding.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The spec it came from.
    pub spec: BindingSpec,
    namespaces: Option<GlobSet>,
    exclude_namespaces: Option<GlobSet>,
    images: Option<GlobSet>,
    exclude_images: Option<GlobSet>,
    kinds: BTreeSet<String>,
    /// Parsed `enforce_after`.
    pub enforce_after: Option<jiff::Timestamp>,
    /// Exemptions.
    pub exemptions: Vec<Exemption>,
}

/// The mode a binding has at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveMode {
    /// The mode in force now.
    pub mode: Mode,
    /// The configured mode.
    pub configured: Mode,
    /// When enforcement starts, if it has not.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_time"
    )]
    pub enforce_after: Option<jiff::Timestamp>,
}

fn ser_opt_time<S: serde::Serializer>(
    t: &Option<jiff::Timestamp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&t.strftime("%Y-%m-%dT%H:%M:%SZ")),
        None => s.serialize_none(),
    }
}

/// Compiles an anchored glob set; `*` does not cross `/`.
pub fn glob_set(field: &str, patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        if p.trim().is_empty() {
            return Err(format!("{field}: empty pattern"));
        }
        let g: Glob = GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("{field}: bad glob {p:?}: {e}"))?;
        b.add(g);
    }
    b.build().map(Some).map_err(|e| format!("{field}: {e}"))
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(field: &str, s: &str) -> Result<jiff::Timestamp, String> {
    s.parse::<jiff::Timestamp>()
        .map_err(|e| format!("{field}: {s:?} is not an RFC 3339 timestamp: {e}"))
}

impl Binding {
    /// Compiles a spec. `known_contracts` must contain every named contract.
    pub fn compile(
        spec: BindingSpec,
        known_contracts: &BTreeSet<String>,
    ) -> Result<Self, BindingError> {
        let err = |reason: String| BindingError {
            binding: spec.name.clone(),
            reason,
        };
        if spec.name.trim().is_empty() {
            return Err(err("name must not be empty".into()));
        }
        if spec.contracts.is_empty() {
            return Err(err("names no contract".into()));
        }
        for c in &spec.contracts {
            if !known_contracts.contains(c) {
                return Err(err(format!("unknown contract {c:?}")));
            }
        }
        for c in spec
            .parameters
            .keys()
            .chain(spec.authorities.keys())
            .chain(spec.legacy_cosign.keys())
        {
            if !spec.contracts.contains(c) {
                return Err(err(format!(
                    "overrides contract {c:?}, which the binding does not name"
                )));
            }
        }
        let s = &spec.selector;
        let namespaces = glob_set("match.namespaces", &s.namespaces).map_err(err)?;
        let exclude_namespaces =
            glob_set("match.excludeNamespaces", &s.exclude_namespaces).map_err(err)?;
        let images = glob_set("match.images", &s.images).map_err(err)?;
        let exclude_images = glob_set("match.excludeImages", &s.exclude_images).map_err(err)?;
        let enforce_after = spec
            .enforce_after
            .as_deref()
            .map(|t| parse_time("enforce_after", t))
            .transpose()
            .map_err(err)?;
        let mut exemptions = Vec::new();
        for (i, e) in spec.exemptions.iter().enumerate() {
            if e.reason.trim().is_empty() {
                return Err(err(format!("exemption {i} has no reason")));
            }
            let images = glob_set("exemptions.images", &e.images)
                .map_err(err)?
                .ok_or_else(|| err(format!("exemption {i} names no image")))?;
            exemptions.push(Exemption {
                patterns: e.images.clone(),
                images,
                expires: parse_time("exemptions.expires", &e.expires).map_err(err)?,
                reason: e.reason.clone(),
            });
        }
        let kinds = s.kinds.iter().cloned().collect();
        Ok(Binding {
            namespaces,
            exclude_namespaces,
            images,
            exclude_images,
            kinds,
            enforce_after,
            exemptions,
            spec,
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether the binding covers `image` in `ctx`. `trust_ns_labels`
    /// allows namespace-label selection (labels namespace owners may set).
    pub fn matches(&self, ctx: &RequestContext, image: &ImageRef, trust_ns_labels: bool) -> bool {
        let s = &self.spec.selector;
        let ns = ctx.namespace.as_deref().unwrap_or("");
        if let Some(g) = &self.namespaces
            && !g.is_match(ns)
        {
            return false;
        }
        if let Some(g) = &self.exclude_namespaces
            && g.is_match(ns)
        {
            return false;
        }
        if !s.namespace_labels.is_empty() {
            if !trust_ns_labels {
                return false;
            }
            if !s
                .namespace_labels
                .iter()
                .all(|(k, v)| ctx.namespace_labels.get(k) == Some(v))
            {
                return false;
            }
        }
        if !s.labels.iter().all(|(k, v)| ctx.labels.get(k) == Some(v)) {
            return false;
        }
        let name = image.name();
        if let Some(g) = &self.images
            && !g.is_match(&name)
        {
            return false;
        }
        if let Some(g) = &self.exclude_images
            && g.is_match(&name)
        {
            return false;
        }
        if !self.kinds.is_empty() && !ctx.kind.as_ref().is_some_and(|k| self.kinds.contains(k)) {
            return false;
        }
        true
    }

    /// The mode at `now`: an `enforce` binding acts as `warn` before its date.
    pub fn mode_at(&self, now: jiff::Timestamp) -> EffectiveMode {
        let configured = self.spec.mode;
        match (configured, self.enforce_after) {
            (Mode::Enforce, Some(after)) if now < after => EffectiveMode {
                mode: Mode::Warn,
                configured,
                enforce_after: Some(after),
            },
            _ => EffectiveMode {
                mode: configured,
                configured,
                enforce_after: None,
            },
        }
    }

    /// The exemption covering `image` at `now`, if any; expired ones are
    /// returned separately so decisions can say an exemption lapsed.
    pub fn exemption_for(
        &self,
        image: &ImageRef,
        now: jiff::Timestamp,
    ) -> (Option<&Exemption>, Option<&Exemption>) {
        let name = image.name();
        let mut expired = None;
        for e in &self.exemptions {
            if e.images.is_match(&name) {
                if now < e.expires {
                    return (Some(e), None);
                }
                expired = Some(e);
            }
        }
        (None, expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(images: &[&str], namespaces: &[&str]) -> Binding {
        let spec = BindingSpec {
            name: "b".into(),
            contracts: vec!["c".into()],
            selector: SelectorSpec {
                images: images.iter().map(|s| s.to_string()).collect(),
                namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            mode: Mode::Enforce,
            enforce_after: None,
            exemptions: vec![],
            parameters: Default::default(),
            authorities: Default::default(),
            pin_digests: false,
            legacy_cosign: Default::default(),
        };
        Binding::compile(spec, &["c".to_string()].into_iter().collect()).unwrap()
    }

    fn ctx(ns: &str) -> RequestContext {
        RequestContext {
            source: crate::policy::Source::Cli,
            namespace: Some(ns.into()),
            ..Default::default()
        }
    }

    #[test]
    fn image_globs_are_anchored_and_segment_bound() {
        let b = binding(&["ghcr.io/acme/*"], &[]);
        let m = |s: &str| b.matches(&ctx("x"), &ImageRef::parse(s).unwrap(), false);
        assert!(m("ghcr.io/acme/app:1"));
        assert!(!m("evil.io/ghcr.io/acme/app:1"));
        assert!(!m("ghcr.io/acme/app/nested:1"));
        assert!(!m("ghcr.io/acme-evil/app:1"));
        assert!(ImageRef::parse("ghcr.io/acme/app@evil.io/x").is_err());
        let deep = binding(&["ghcr.io/acme/**"], &[]);
        assert!(deep.matches(
            &ctx("x"),
            &ImageRef::parse("ghcr.io/acme/a/b:1").unwrap(),
            false
        ));
        assert!(!deep.matches(
            &ctx("x"),
            &ImageRef::parse("ghcr.io/acmex/a:1").unwrap(),
            false
        ));
    }

    #[test]
    fn namespace_globs_and_exclusions() {
        let mut b = binding(&[], &["team-*"]);
        let img = ImageRef::parse("nginx").unwrap();
        assert!(b.matches(&ctx("team-a"), &img, false));
        assert!(!b.matches(&ctx("kube-system"), &img, false));
        b.exclude_namespaces = glob_set("x", &["team-b".into()]).unwrap();
        assert!(!b.matches(&ctx("team-b"), &img, false));
    }

    #[test]
    fn namespace_labels_need_the_operator_opt_in() {
        let mut b = binding(&[], &[]);
        b.spec
            .selector
            .namespace_labels
            .insert("team".into(), "pay".into());
        let mut c = ctx("pay");
        c.namespace_labels.insert("team".into(), "pay".into());
        let img = ImageRef::parse("nginx").unwrap();
        assert!(!b.matches(&c, &img, false));
        assert!(b.matches(&c, &img, true));
    }

    #[test]
    fn enforce_after_in_the_past_enforces() {
        let mut b = binding(&[], &[]);
        let now: jiff::Timestamp = "2026-11-25T00:00:00Z".parse().unwrap();
        b.enforce_after = Some("2026-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(b.mode_at(now).mode, Mode::Enforce);
        b.enforce_after = Some("2027-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(b.mode_at(now).mode, Mode::Warn);
        assert!(b.mode_at(now).enforce_after.is_some());
    }
}
