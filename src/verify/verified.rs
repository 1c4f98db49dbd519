//! Values that only verification can produce.
//!
//! The constructors are private to the `verify` module (rustls's proof-token
//! pattern): holding a [`VerifiedAttestation`] or [`VerifiedSignature`] is
//! proof that its bytes passed the Sigstore checks. Policy input is built only
//! from these types, so no unverified byte can reach Rego.

use std::collections::BTreeMap;

use serde::Serialize;

use super::statement::Statement;
use crate::digest::Digest;

/// Where a piece of evidence was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// The OCI 1.1 referrers API.
    Referrers,
    /// The referrers tag schema (`sha256-<hex>` index).
    TagSchema,
    /// A cosign `sha256-<hex>.sig` tag.
    CosignSig,
    /// A cosign `sha256-<hex>.att` tag.
    CosignAtt,
    /// A file given on the command line.
    File,
}

/// Where a piece of evidence came from, down to the layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceSource {
    /// How it was discovered.
    pub kind: SourceKind,
    /// The manifest that carried it (referrer or cosign tag manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// The layer (blob) holding the bundle or payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<Digest>,
}

/// Who signed, as established by verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Signer {
    /// A Fulcio certificate.
    Keyless(KeylessSigner),
    /// A configured public key.
    Key {
        /// Hex SHA-256 of the key's SPKI DER.
        #[serde(rename = "keyId")]
        key_id: String,
        /// The configured name of the key.
        #[serde(rename = "keyName")]
        key_name: String,
    },
}

/// Facts from a verified Fulcio certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeylessSigner {
    /// OIDC issuer.
    pub issuer: String,
    /// Certificate subject (SAN URI or e-mail).
    pub subject: String,
    /// Fulcio CI claims by name (see [`super::authority::CLAIMS`]).
    #[serde(rename = "extensions")]
    pub claims: BTreeMap<String, String>,
    /// The name of the trusted root the certificate chains to.
    pub trusted_root: String,
}

/// Which source established the signing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSource {
    /// An RFC 3161 timestamp from a trusted TSA.
    Rfc3161,
    /// The integrated time of a Rekor entry, authenticated by its SET.
    Rekor,
    /// No trusted time (key-signed evidence without tlog or timestamp).
    None,
}

/// The trusted signing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrustedTime {
    /// Where it came from.
    pub source: TimeSource,
    /// The time, when there is one.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_time")]
    pub value: Option<jiff::Timestamp>,
}

fn ser_time<S: serde::Serializer>(t: &Option<jiff::Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&t.strftime("%Y-%m-%dT%H:%M:%SZ")),
        None => s.serialize_none(),
    }
}

/// One transparency-log entry of the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlogFact {
    /// Log index.
    pub log_index: u64,
    /// Log id (hex SHA-256 of the log's key).
    pub log_id: String,
    /// Entry kind and version, e.g. `dsse/0.0.1`.
    pub kind: String,
    /// Integrated time (Rekor v1), when present.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_time")]
    pub integrated_time: Option<jiff::Timestamp>,
    /// Whether an inclusion proof with a signed checkpoint was verified.
    pub inclusion_proof: bool,
    /// Whether a signed entry timestamp (inclusion promise) was verified.
    pub inclusion_promise: bool,
}

/// The facts every verified piece of evidence carries.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceFacts {
    signer: Signer,
    time: TrustedTime,
    tlog: Vec<TlogFact>,
    tlog_verified: bool,
    /// Digest of the evidence itself (bundle or layer bytes).
    evidence_digest: Digest,
    /// The digest the evidence is bound to (its subject).
    subject: Digest,
    source: EvidenceSource,
    /// The bundle media type, or the legacy layout it was converted from.
    format: String,
}

impl EvidenceFacts {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        signer: Signer,
        time: TrustedTime,
        tlog: Vec<TlogFact>,
        tlog_verified: bool,
        evidence_digest: Digest,
        subject: Digest,
        source: EvidenceSource,
        format: String,
    ) -> Self {
        EvidenceFacts {
            signer,
            time,
            tlog,
            tlog_verified,
            evidence_digest,
            subject,
            source,
            format,
        }
    }

    /// Who signed.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
    /// The trusted signing time.
    pub fn time(&self) -> &TrustedTime {
        &self.time
    }
    /// Transparency-log entries.
    pub fn tlog(&self) -> &[TlogFact] {
        &self.tlog
    }
    /// Whether the transparency-log entries were verified (and there is one).
    pub fn tlog_verified(&self) -> bool {
        self.tlog_verified && !self.tlog.is_empty()
    }
    /// Digest of the evidence bytes.
    pub fn evidence_digest(&self) -> &Digest {
        &self.evidence_digest
    }
    /// The digest the evidence is bound to.
    pub fn subject(&self) -> &Digest {
        &self.subject
    }
    /// Where it was found.
    pub fn source(&self) -> &EvidenceSource {
        &self.source
    }
    /// Bundle media type or legacy layout.
    pub fn format(&self) -> &str {
        &self.format
    }
}

/// A verified in-toto attestation.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    facts: EvidenceFacts,
    statement: Statement,
}

impl VerifiedAttestation {
    pub(super) fn new(facts: EvidenceFacts, statement: Statement) -> Self {
        VerifiedAttestation { facts, statement }
    }
    /// Signer, time, tlog and provenance of the evidence.
    pub fn facts(&self) -> &EvidenceFacts {
        &self.facts
    }
    /// The verified statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }
    /// The facts and the statement, by value.
    pub fn into_parts(self) -> (EvidenceFacts, Statement) {
        (self.facts, self.statement)
    }
}

/// A verified signature over the image (cosign simple signing, or a bundle
/// whose message signature covers the manifest digest).
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    facts: EvidenceFacts,
    payload: Option<Box<[u8]>>,
}

impl VerifiedSignature {
    pub(super) fn new(facts: EvidenceFacts, payload: Option<Box<[u8]>>) -> Self {
        VerifiedSignature { facts, payload }
    }
    /// Signer, time, tlog and provenance of the evidence.
    pub fn facts(&self) -> &EvidenceFacts {
        &self.facts
    }
    /// The simple-signing payload (JSON, as verified), for cosign `.sig`
    /// signatures.
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }
    /// The facts and the payload, by value.
    pub fn into_parts(self) -> (EvidenceFacts, Option<Box<[u8]>>) {
        (self.facts, self.payload)
    }
}

/// Either kind of verified evidence.
#[derive(Debug, Clone)]
pub enum Verified {
    /// An attestation.
    Attestation(VerifiedAttestation),
    /// A signature.
    Signature(VerifiedSignature),
}

impl Verified {
    /// The common facts.
    pub fn facts(&self) -> &EvidenceFacts {
        match self {
            Verified::Attestation(a) => a.facts(),
            Verified::Signature(s) => s.facts(),
        }
    }
}

/// One line describing a signer, for tables and messages.
pub fn describe_signer(signer: &Signer) -> String {
    match signer {
        Signer::Keyless(k) => format!(
            "{} (issuer {}, root {})",
            k.subject, k.issuer, k.trusted_root
        ),
        Signer::Key { key_id, key_name } => {
            format!("key {key_name} ({})", &key_id[..16.min(key_id.len())])
        }
    }
}

/// One line describing a trusted time.
pub fn describe_time(time: &TrustedTime) -> String {
    match (time.source, time.value) {
        (TimeSource::Rfc3161, Some(t)) => {
            format!("{} (RFC 3161 timestamp)", t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        }
        (TimeSource::Rekor, Some(t)) => format!(
            "{} (Rekor integrated time)",
            t.strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
        _ => "none".into(),
    }
}
