//! Step 1, bind: which contracts apply to an image in its context, in
//! which mode, with which exemptions. A gate call's selection narrows the
//! set admission would bind and never widens it.

use std::collections::BTreeMap;

use super::decision::ExemptionInfo;
use super::{BoundUse, DecisionRequest, Engine, Prepared, Runtime};
use crate::image::ImageRef;

impl Engine {
    /// The namespace's labels, when bindings may select by them and the
    /// request does not carry them.
    pub(super) async fn namespace_labels(
        &self,
        rt: &Runtime,
        req: &DecisionRequest,
    ) -> Option<BTreeMap<String, String>> {
        if !rt.config.spec.admission.trust_namespace_labels
            || !req.context.namespace_labels.is_empty()
        {
            return None;
        }
        let ns = req.context.namespace.as_deref()?;
        let source = self.namespaces.load_full()?;
        match source.labels(ns).await {
            Ok(l) => Some((*l).clone()),
            Err(e) => {
                // Unknown labels: label-selected bindings do not match, and
                // the image falls to `unmatched` (deny by default).
                tracing::warn!(namespace = ns, error = %e, "namespace labels unavailable");
                None
            }
        }
    }

    /// The bindings that apply, as admission binds them; a gate call's
    /// `contracts` only narrows that set (gate ⊆ admission by
    /// construction: a contract's defaults never replace a binding's
    /// authorities, parameters or mode).
    pub(super) fn bind<'a>(
        &self,
        rt: &'a Runtime,
        image: &ImageRef,
        req: &DecisionRequest,
        now: jiff::Timestamp,
    ) -> Vec<BoundUse<'a>> {
        let config = &rt.config;
        let trust_labels = config.spec.admission.trust_namespace_labels;
        let mut out = Vec::new();
        for b in &config.bindings {
            if !b.binding.matches(&req.context, image, trust_labels) {
                continue;
            }
            let mode = b.binding.mode_at(now);
            let (active, expired) = b.binding.exemption_for(image, now);
            for c in &b.contracts {
                if let Some(names) = &req.contracts
                    && !names.iter().any(|n| n == &c.name)
                {
                    continue;
                }
                out.push(BoundUse {
                    binding: b.binding.name(),
                    mode,
                    exemption: active.map(|e| ExemptionInfo {
                        reason: e.reason.clone(),
                        expires: e.expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    }),
                    expired_exemption: expired.map(|e| {
                        format!(
                            "exemption of binding {:?} ({}) expired at {}",
                            b.binding.name(),
                            e.reason,
                            e.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
                        )
                    }),
                    contract: c,
                    pin: b.binding.spec.pin_digests,
                });
            }
        }
        out
    }

    /// Checks a gate call's contract selection: every named contract must
    /// be bound, in the request's context, to every image named. Returns
    /// the first (image, contract) pair that is not, for a 400 that names
    /// it; selection never falls back to a contract's defaults.
    pub async fn unbound_selection(&self, req: &DecisionRequest) -> Option<(String, String)> {
        let names = req.contracts.as_ref()?;
        let rt = self.runtime();
        let now = self.clock.now();
        let mut unnarrowed = DecisionRequest {
            contracts: None,
            ..req.clone()
        };
        if let Some(labels) = self.namespace_labels(&rt, req).await {
            unnarrowed.context.namespace_labels = labels;
        }
        for u in &req.images {
            let Ok(image) = ImageRef::parse(&u.image) else {
                // An unreadable reference is denied by the decision itself.
                continue;
            };
            let bound = self.bind(&rt, &image, &unnarrowed, now);
            for n in names {
                if !bound.iter().any(|b| &b.contract.name == n) {
                    return Some((u.image.clone(), n.clone()));
                }
            }
        }
        None
    }

    /// The start of stage 1: the reference parsed and the bindings found,
    /// nothing fetched.
    pub(super) fn bound<'a>(
        &self,
        rt: &'a Runtime,
        image: &str,
        req: &DecisionRequest,
        now: jiff::Timestamp,
    ) -> Prepared<'a> {
        let mut p = Prepared {
            reference: Err(String::new()),
            bound: Vec::new(),
            unmatched: false,
            digest: None,
            evidence: Ok(None),
            degraded: None,
            requests: Vec::new(),
        };
        match self.parse_reference(image) {
            Ok(r) => {
                p.bound = self.bind(rt, &r, req, now);
                p.unmatched = p.bound.is_empty();
                p.reference = Ok(r);
            }
            Err(e) => p.reference = Err(e.to_string()),
        }
        p
    }
}
