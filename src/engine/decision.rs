//! What the engine decides about one image, and how it is worded.
//!
//! The same [`ImageDecision`] feeds the AdmissionResponse, the gate JSON, the
//! `check` table and the decision log, so a team sees the same requirement
//! text in `kubectl`, in CI and locally.

use serde::Serialize;

use crate::bind::EffectiveMode;
use crate::digest::Digest;
use crate::image::PlatformManifest;
// Re-exported: the front ends read `ErrorInfo::class` without importing
// the registry layer.
pub use crate::oci::ErrorClass;
use crate::oci::RequestRecord;
use crate::policy::{RequestContext, Violation};
use crate::verify::{EvidenceFacts, SourceKind};

/// The outcome for one image.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Allowed, nothing to say.
    Allow,
    /// Allowed, with warnings.
    Warn,
    /// Denied.
    Deny,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Warn => "warn",
            Outcome::Deny => "deny",
        }
    }
}

/// One contract's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No deny, no warn.
    Pass,
    /// Only warn results.
    Warn,
    /// Deny results.
    Deny,
    /// Evaluation failed (counts as deny).
    Error,
    /// Would deny, but an exemption applies.
    Exempt,
}

impl Verdict {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Deny => "deny",
            Verdict::Error => "error",
            Verdict::Exempt => "exempt",
        }
    }
}

/// An exemption that applied.
#[derive(Debug, Clone, Serialize)]
pub struct ExemptionInfo {
    /// Why.
    pub reason: String,
    /// Until when.
    pub expires: String,
}

/// Evidence a contract ignored, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    /// The evidence digest.
    pub digest: Digest,
    /// Why it did not reach the Rego.
    pub reason: String,
}

/// One contract's result for one image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractResult {
    /// Contract name.
    pub name: String,
    /// Contract version.
    pub version: String,
    /// Digest of the contract revision and the binding's overrides.
    pub revision: Digest,
    /// The binding that applied it (empty for a gate-selected contract).
    pub binding: String,
    /// The mode in force.
    pub mode: EffectiveMode,
    /// The verdict.
    pub verdict: Verdict,
    /// `deny` results.
    pub deny: Vec<Violation>,
    /// `warn` results.
    pub warn: Vec<Violation>,
    /// Why evaluation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exemption that applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<ExemptionInfo>,
    /// Digests of the evidence that reached the Rego.
    pub evidence_used: Vec<Digest>,
    /// Evidence the contract's authorities did not admit.
    pub ignored: Vec<Ignored>,
    /// For an image index: the verdict of each judged platform.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformVerdict>,
    /// The policy inputs, when the request asked for them
    /// (`check --dump-input`); never in responses or logs.
    #[serde(skip)]
    pub inputs: Vec<CapturedInput>,
}

/// A contract's policy input for one scope (the image, or one platform).
#[derive(Debug, Clone)]
pub struct CapturedInput {
    /// The platform, for a platform of an index.
    pub platform: Option<String>,
    /// The input, or why it could not be built.
    pub input: Result<serde_json::Value, String>,
}

/// One platform's verdict under a contract (image indexes are judged per
/// platform; the worst verdict is the contract's).
#[derive(Debug, Clone, Serialize)]
pub struct PlatformVerdict {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: Digest,
    /// Its verdict.
    pub verdict: Verdict,
}

/// A verified piece of evidence, summarised.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceEntry {
    /// `attestation` or `signature`.
    pub kind: &'static str,
    /// The predicate type (attestations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// Verified facts: signer, time, tlog, source, subject, digest
    /// (shared with the cached evidence, not copied per decision).
    pub facts: std::sync::Arc<EvidenceFacts>,
}

/// Evidence that failed verification.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedEvidence {
    /// Where it was found.
    pub source: SourceKind,
    /// The digest it was attached to.
    pub subject: Digest,
    /// The layer digest, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<Digest>,
    /// Why it was rejected.
    pub reason: String,
}

/// An error that decided the outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    /// Transient or permanent (registry errors), or permanent.
    pub class: ErrorClass,
    /// About the environment or about the image's evidence.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

/// Whether an error that decided an image's outcome is about the
/// environment (registry, network, credentials, configuration) or about the
/// image's evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The registry, the network, credentials or configuration: the image
    /// could not be checked. `check` exits 1.
    #[default]
    Operational,
    /// The evidence itself (a malformed, oversized or mismatching manifest
    /// or artifact, or a reference that cannot be read): the image is
    /// denied with nothing verified. `check` exits 3.
    Evidence,
}

/// The decision for one image in one context.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDecision {
    /// The image as written.
    pub image: String,
    /// The normalised reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The digest judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Platform manifests of an index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformManifest>,
    /// The request context with this use's container.
    pub context: RequestContext,
    /// What admission does with the image: the fold of its contracts'
    /// verdicts under their modes (see `engine::fold`).
    pub outcome: Outcome,
    /// Each bound contract's result.
    pub contracts: Vec<ContractResult>,
    /// Verified evidence.
    pub evidence: Vec<EvidenceEntry>,
    /// Evidence that failed verification.
    pub rejected: Vec<RejectedEvidence>,
    /// Discovery notes (skipped items).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// No binding covered the image.
    pub unmatched: bool,
    /// The error that decided the outcome, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Set when the decision was served degraded (registry failure policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    /// Whether to pin the tag to the digest (mutation).
    pub pin_digest: bool,
    /// Registry requests made for this decision (cold fetches only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestRecord>,
}

impl ImageDecision {
    /// A decision with no contracts, evidence or error yet.
    pub fn new(image: &str, context: RequestContext) -> Self {
        ImageDecision {
            image: image.to_owned(),
            reference: None,
            digest: None,
            platforms: Vec::new(),
            context,
            outcome: Outcome::Allow,
            contracts: Vec::new(),
            evidence: Vec::new(),
            rejected: Vec::new(),
            notes: Vec::new(),
            unmatched: false,
            error: None,
            degraded: None,
            pin_digest: false,
            requests: Vec::new(),
        }
    }

    /// Denied with no verified evidence at all (exit code 3 in the CLI).
    pub fn no_verifiable_evidence(&self) -> bool {
        self.outcome == Outcome::Deny
            && self.evidence.is_empty()
            && self.error.is_none()
            && !self.unmatched
    }
}
