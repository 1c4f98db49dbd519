//! The documented JSON wire formats: the gate request and response
//! (`provgate.dev/gate/v1`), which `provgate check --output json` also
//! prints, and the per-image report that `provgate report` reuses.
//!
//! These are output types, deliberately separate from the engine's own
//! decision types: they hold plain strings and numbers, can be read back
//! (the CLI reads the gate's answer), and can never be mistaken for
//! verified evidence. Documented in `docs/gate-api.md` with JSON Schemas in
//! `docs/schemas/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::decision::{ErrorInfo, ImageDecision, Outcome};
use crate::policy::Violation;

/// The gate API version.
pub const GATE_V1: &str = "provgate.dev/gate/v1";

/// `POST /v1/gate` request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GateRequest {
    /// `provgate.dev/gate/v1` (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Image references.
    pub images: Vec<String>,
    /// The deployment context the images are judged in.
    #[serde(default)]
    pub context: GateContext,
    /// Judge these contracts instead of the bindings (the caller must be
    /// permitted to choose them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracts: Option<Vec<String>>,
}

/// The context of a gate request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GateContext {
    /// The namespace the images will run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The workload's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The workload kind (`Deployment`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The workload name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `POST /v1/gate` response, and `provgate check --output json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GateResponse {
    /// [`GATE_V1`].
    pub api_version: String,
    /// No image is denied.
    pub allowed: bool,
    /// The worst outcome.
    pub outcome: Outcome,
    /// The `provgate check` exit code this answer maps to (without
    /// `--allow-unverified`): 0 allowed with every bound contract evaluated,
    /// 1 an image could not be checked (registry unreachable, 401, TLS, a
    /// contract that could not be evaluated), 2 denied by a contract, 3
    /// denied with no verified evidence. See [`exit_code`].
    pub exit_code: u8,
    /// The authenticated caller (gate only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Per image.
    pub images: Vec<ImageReport>,
}

/// One image's decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    /// As given.
    pub image: String,
    /// Normalised reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The digest judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The container, when judged in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Platform manifests of an index: `digest` and `platform`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformReport>,
    /// `allow`, `warn` or `deny`.
    pub outcome: Outcome,
    /// How `provgate check` counts the image: the row of the exit-code table
    /// it falls in. Computed from the other fields ([`ImageReport::classify`]);
    /// absent in answers of older gates.
    #[serde(default)]
    pub status: ImageStatus,
    /// No binding covered the image.
    pub unmatched: bool,
    /// Denied, and nothing verified at all.
    pub no_verifiable_evidence: bool,
    /// The lines admission would put in its denial message.
    pub denials: Vec<String>,
    /// The lines admission would return as warnings.
    pub warnings: Vec<String>,
    /// Each bound contract.
    pub contracts: Vec<ContractReport>,
    /// Verified evidence.
    pub evidence: Vec<EvidenceReport>,
    /// Evidence that failed verification.
    pub rejected: Vec<RejectedReport>,
    /// Discovery notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The error that decided the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    /// Degraded service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    /// Registry requests of a cold discovery (`--explain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestReport>,
    /// A signed VSA (Sigstore bundle), for allowed images when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsa: Option<serde_json::Value>,
}

/// How `provgate check` counts one image.
///
/// The exit code of a run is the worst status of its images, in the order
/// `error`/`unverified` (1), `denied` (2), `no-evidence` (3), `allowed` (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStatus {
    /// Allowed (possibly with warnings), with its evidence fetched and every
    /// bound contract evaluated. Exit 0.
    #[default]
    Allowed,
    /// Allowed only because the bound contracts do not enforce (audit or
    /// warn mode, or the `warn` failure policy), although its evidence could
    /// not be fetched or a contract could not be evaluated: nothing (or not
    /// everything) was verified. Exit 1, or 0 with `--allow-unverified`.
    Unverified,
    /// Denied because it could not be checked: an invalid reference, a
    /// registry that is unreachable, refuses the credentials or fails TLS,
    /// or a contract whose evaluation failed. Exit 1.
    Error,
    /// Denied by a contract (or by `unmatched: deny`), with some evidence
    /// verified. Exit 2.
    Denied,
    /// Denied, and no evidence verified at all. Exit 3.
    NoEvidence,
}

impl ImageStatus {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Allowed => "allowed",
            ImageStatus::Unverified => "unverified",
            ImageStatus::Error => "error",
            ImageStatus::Denied => "denied",
            ImageStatus::NoEvidence => "no-evidence",
        }
    }

    /// The exit code of this status; `allow_unverified` turns
    /// [`ImageStatus::Unverified`] into 0.
    pub fn exit_code(self, allow_unverified: bool) -> u8 {
        match self {
            ImageStatus::Allowed => 0,
            ImageStatus::Unverified if allow_unverified => 0,
            ImageStatus::Unverified | ImageStatus::Error => 1,
            ImageStatus::Denied => 2,
            ImageStatus::NoEvidence => 3,
        }
    }
}

pub use crate::engine::decision::ErrorKind;

/// A platform manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlatformReport {
    /// Digest.
    pub digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
}

/// One contract's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContractReport {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The binding that applied it (empty when chosen in the request).
    pub binding: String,
    /// The mode in force.
    pub mode: String,
    /// The configured mode.
    pub configured_mode: String,
    /// When enforcement starts, for an enforce binding before its date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_after: Option<String>,
    /// `pass`, `warn`, `deny`, `error`, `exempt`.
    pub verdict: String,
    /// Deny results.
    pub deny: Vec<Violation>,
    /// Warn results.
    pub warn: Vec<Violation>,
    /// Why evaluation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exemption in use: reason and expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<ExemptionReport>,
    /// Digests of the evidence that reached the Rego.
    pub evidence_used: Vec<String>,
    /// Verified evidence the contract's authorities did not admit.
    pub ignored: Vec<IgnoredReport>,
}

/// An exemption.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExemptionReport {
    /// Why.
    pub reason: String,
    /// Until when (RFC 3339).
    pub expires: String,
}

/// Ignored evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IgnoredReport {
    /// Evidence digest.
    pub digest: String,
    /// Why.
    pub reason: String,
}

/// A verified piece of evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceReport {
    /// Digest of the bundle or layer.
    pub digest: String,
    /// `attestation` or `signature`.
    pub kind: String,
    /// The in-toto predicate type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// The digest it was attached to (the image or a platform).
    pub attached_to: String,
    /// Where it was found: `referrers`, `tag-schema`, `cosign-sig`,
    /// `cosign-att`.
    pub found_in: String,
    /// The bundle media type or legacy layout.
    pub format: String,
    /// One line naming the signer.
    pub signer: String,
    /// The signer facts: `kind` keyless (issuer, subject, extensions,
    /// trustedRoot) or key (keyId, keyName).
    pub signer_facts: serde_json::Value,
    /// The trusted time: `source` (rfc3161, rekor, none) and `value`.
    pub time: serde_json::Value,
    /// Transparency-log entries verified.
    pub tlog_entries: usize,
}

/// Evidence that failed verification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RejectedReport {
    /// Where it was found.
    pub found_in: String,
    /// The digest it was attached to.
    pub attached_to: String,
    /// The layer digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Why it was rejected.
    pub reason: String,
}

/// The deciding error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorReport {
    /// `transient` or `permanent`.
    pub class: String,
    /// `operational` (the registry, network, credentials or configuration)
    /// or `evidence`.
    #[serde(default)]
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

/// One registry request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestReport {
    /// `resolve`, `referrers`, `tag`, `manifest`, `blob`, `token`.
    pub kind: String,
    /// HTTP method.
    pub method: String,
    /// Host and path.
    pub url: String,
    /// Status or error label.
    pub outcome: String,
    /// Body bytes.
    pub bytes: u64,
    /// Milliseconds.
    pub millis: u64,
}

fn label<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The kind of a deciding error.
///
/// The engine's [`ErrorInfo`] carries only the retry class, so this is
/// conservative: every error that decided an outcome stopped provgate before
/// any contract ran (transient ones — timeouts, refused connections, DNS,
/// TLS, 5xx — and permanent ones alike: 401/403, not found, plain HTTP not
/// allowed, bad redirects, an invalid reference), so it is operational. An
/// `evidence` kind needs the engine to say so.
fn error_kind(e: &ErrorInfo) -> ErrorKind {
    e.kind
}

fn time_str(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl ImageReport {
    /// The report of a decision.
    pub fn from_decision(d: &ImageDecision, explain: bool) -> Self {
        let mut report = ImageReport {
            image: d.image.clone(),
            reference: d.reference.clone(),
            digest: d.digest.as_ref().map(|g| g.to_string()),
            container: d.context.container.clone(),
            platforms: d
                .platforms
                .iter()
                .map(|p| PlatformReport {
                    digest: p.digest.to_string(),
                    platform: p.platform.clone(),
                })
                .collect(),
            outcome: d.outcome,
            status: ImageStatus::Allowed,
            unmatched: d.unmatched,
            no_verifiable_evidence: d.no_verifiable_evidence(),
            denials: if d.outcome == Outcome::Deny {
                d.denial_lines()
            } else {
                Vec::new()
            },
            warnings: d.warning_lines(),
            contracts: d
                .contracts
                .iter()
                .map(|c| ContractReport {
                    name: c.name.clone(),
                    version: c.version.clone(),
                    binding: c.binding.clone(),
                    mode: c.mode.mode.as_str().into(),
                    configured_mode: c.mode.configured.as_str().into(),
                    enforce_after: c.mode.enforce_after.map(time_str),
                    verdict: c.verdict.as_str().into(),
                    deny: c.deny.clone(),
                    warn: c.warn.clone(),
                    error: c.error.clone(),
                    exemption: c.exemption.as_ref().map(|e| ExemptionReport {
                        reason: e.reason.clone(),
                        expires: e.expires.clone(),
                    }),
                    evidence_used: c.evidence_used.iter().map(|g| g.to_string()).collect(),
                    ignored: c
                        .ignored
                        .iter()
                        .map(|i| IgnoredReport {
                            digest: i.digest.to_string(),
                            // The field says "ignored" already.
                            reason: i
                                .reason
                                .strip_prefix("ignored: ")
                                .unwrap_or(&i.reason)
                                .to_owned(),
                        })
                        .collect(),
                })
                .collect(),
            evidence: d
                .evidence
                .iter()
                .map(|e| EvidenceReport {
                    digest: e.facts.evidence_digest().to_string(),
                    kind: e.kind.into(),
                    predicate_type: e.predicate_type.clone(),
                    attached_to: e.facts.subject().to_string(),
                    found_in: label(&e.facts.source().kind),
                    format: e.facts.format().to_owned(),
                    signer: crate::verify::describe_signer(e.facts.signer()),
                    signer_facts: serde_json::to_value(e.facts.signer()).unwrap_or_default(),
                    time: serde_json::to_value(e.facts.time()).unwrap_or_default(),
                    tlog_entries: if e.facts.tlog_verified() {
                        e.facts.tlog().len()
                    } else {
                        0
                    },
                })
                .collect(),
            rejected: d
                .rejected
                .iter()
                .map(|r| RejectedReport {
                    found_in: label(&r.source),
                    attached_to: r.subject.to_string(),
                    layer: r.layer.as_ref().map(|l| l.to_string()),
                    reason: r.reason.clone(),
                })
                .collect(),
            notes: d.notes.clone(),
            error: d.error.as_ref().map(|e| ErrorReport {
                class: label(&e.class),
                kind: error_kind(e),
                message: e.message.clone(),
            }),
            degraded: d.degraded.clone(),
            requests: if explain {
                d.requests
                    .iter()
                    .map(|r| RequestReport {
                        kind: r.kind.as_str().into(),
                        method: r.method.into(),
                        url: r.url.clone(),
                        outcome: r.outcome.clone(),
                        bytes: r.bytes,
                        millis: r.millis,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            vsa: None,
        };
        report.status = report.classify();
        report
    }

    /// The row of the exit-code table this image falls in, from its
    /// outcome, error, contract verdicts and evidence (so a client can
    /// classify a gate's answer itself).
    pub fn classify(&self) -> ImageStatus {
        // A contract whose evaluation failed (whatever its mode) was not
        // evaluated: the image was not fully checked.
        let unevaluated = self.contracts.iter().any(|c| c.verdict == "error");
        // Denied by a contract's deny results (not only by failures).
        let contract_deny = self
            .contracts
            .iter()
            .any(|c| c.mode == "enforce" && c.verdict == "deny");
        match self.outcome {
            Outcome::Deny => match &self.error {
                Some(e) if e.kind == ErrorKind::Evidence => ImageStatus::NoEvidence,
                Some(_) => ImageStatus::Error,
                None if self.unmatched => ImageStatus::Denied,
                None if !contract_deny && unevaluated => ImageStatus::Error,
                None if self.evidence.is_empty() => ImageStatus::NoEvidence,
                None => ImageStatus::Denied,
            },
            Outcome::Allow | Outcome::Warn => {
                if self.error.is_some() || unevaluated {
                    ImageStatus::Unverified
                } else {
                    ImageStatus::Allowed
                }
            }
        }
    }
}

/// The exit code of a set of image reports (see [`ImageStatus`]): 1 when
/// any image could not be checked (or was allowed unverified, unless
/// `allow_unverified`), else 2 when any was denied by a contract, else 3
/// when any was denied with no verified evidence, else 0.
pub fn exit_code_with(images: &[ImageReport], allow_unverified: bool) -> u8 {
    let codes = || images.iter().map(|i| i.status.exit_code(allow_unverified));
    [1, 2, 3]
        .into_iter()
        .find(|c| codes().any(|x| x == *c))
        .unwrap_or(0)
}

/// [`exit_code_with`] without `--allow-unverified`.
pub fn exit_code(images: &[ImageReport]) -> u8 {
    exit_code_with(images, false)
}

impl GateResponse {
    /// A response over reports.
    pub fn new(images: Vec<ImageReport>, caller: Option<String>) -> Self {
        let outcome = images
            .iter()
            .map(|i| i.outcome)
            .max()
            .unwrap_or(Outcome::Allow);
        GateResponse {
            api_version: GATE_V1.into(),
            allowed: outcome != Outcome::Deny,
            outcome,
            exit_code: exit_code(&images),
            caller,
            images,
        }
    }
}
