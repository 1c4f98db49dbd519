//! provgate's `/metrics` text, read into series and compared.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Every series of one scrape: `name{labels}` → value.
#[derive(Debug, Clone, Default)]
pub struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// Parses the OpenMetrics text exposition.
    pub fn parse(text: &str) -> Self {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((series, value)) = line.rsplit_once(' ')
                && let Ok(v) = value.parse::<f64>()
            {
                out.insert(series.to_owned(), v);
            }
        }
        Scrape(out)
    }

    /// Sum of the series named `name` whose labels contain every `labels`
    /// pair (`key="value"`).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                let (n, l) = series.split_once('{').unwrap_or((series.as_str(), ""));
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// Registry requests by kind.
    fn registry_by_kind(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (series, v) in &self.0 {
            if let Some(labels) = series.strip_prefix("provgate_registry_requests_total{")
                && let Some(kind) = label(labels, "kind")
            {
                *out.entry(kind).or_insert(0.0) += v;
            }
        }
        out
    }
}

fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_owned())
}

/// What happened between two scrapes, named as the report names it.
pub fn delta(before: &Scrape, after: &Scrape) -> Value {
    let d =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let cache = |c: &str, r: &str| {
        d(
            "provgate_cache_requests_total",
            &[("cache", c), ("result", r)],
        )
    };
    let mut by_kind = serde_json::Map::new();
    let (b, a) = (before.registry_by_kind(), after.registry_by_kind());
    for (kind, v) in &a {
        let n = v - b.get(kind).copied().unwrap_or(0.0);
        if n != 0.0 {
            by_kind.insert(kind.clone(), json!(n));
        }
    }
    json!({
        // One per discovery (registry_seconds is observed once per cold
        // discovery of an image).
        "discoveries": d("provgate_registry_duration_seconds_count", &[]),
        // One per piece of evidence verified.
        "verifications": d("provgate_verification_duration_seconds_count", &[]),
        // A verdict-cache miss is one contract evaluation.
        "evaluations": cache("verdict", "miss"),
        "verdict_hits": cache("verdict", "hit"),
        "evidence_hits": cache("evidence", "hit"),
        "evidence_misses": cache("evidence", "miss"),
        "evidence_negative_hits": cache("evidence", "negative-hit"),
        "tag_hits": cache("tag", "hit"),
        "tag_misses": cache("tag", "miss"),
        "policy_observations": d("provgate_policy_duration_seconds_count", &[]),
        "registry_requests": d("provgate_registry_requests_total", &[]),
        "registry_by_kind": by_kind,
        "validate_allowed": d("provgate_requests_total", &[("endpoint", "validate"), ("result", "allowed")]),
        "validate_total": d("provgate_requests_total", &[("endpoint", "validate")]),
    })
}
