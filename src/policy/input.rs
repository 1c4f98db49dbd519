//! The policy input document, `provgate.dev/policy-input/v1`.
//!
//! Built only from [`Verified`] values that a contract's authorities
//! admitted: there is no constructor taking raw bytes, so no unverified
//! registry content can reach Rego. Documented in `docs/policy-input.md`,
//! with a JSON Schema in `docs/policy-input.schema.json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::digest::Digest;
use crate::oci::{ImageRef, PlatformManifest};
use crate::verify::{Signer, SourceKind, TlogFact, TrustedTime, Verified};

/// The input's `apiVersion`.
pub const POLICY_INPUT_V1: &str = "provgate.dev/policy-input/v1";

/// The request context a decision is made in.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// `admission`, `gate`, `report` or `cli`.
    pub source: String,
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

/// The image section.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInput {
    /// The reference as written (normalised).
    #[serde(rename = "ref")]
    pub reference: String,
    /// Registry.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Tag, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The digest judged.
    pub digest: Digest,
    /// Platform manifests of an index.
    pub platforms: Vec<PlatformManifest>,
}

impl ImageInput {
    /// From a reference, its digest and platforms.
    pub fn new(image: &ImageRef, digest: &Digest, platforms: &[PlatformManifest]) -> Self {
        ImageInput {
            reference: image.to_string(),
            registry: image.registry().to_owned(),
            repository: image.repository().to_owned(),
            tag: image.tag().map(str::to_owned),
            digest: digest.clone(),
            platforms: platforms.to_vec(),
        }
    }
}

#[derive(Debug, Serialize)]
struct SourceInput {
    kind: SourceKind,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AttestationInput<'a> {
    predicate_type: &'a str,
    statement: &'a serde_json::Value,
    subject: &'a Digest,
    digest: &'a Digest,
    authority: &'a str,
    signer: &'a Signer,
    time: &'a TrustedTime,
    tlog: &'a [TlogFact],
    source: SourceInput,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SignatureInput<'a> {
    subject: &'a Digest,
    digest: &'a Digest,
    authority: &'a str,
    signer: &'a Signer,
    time: &'a TrustedTime,
    tlog: &'a [TlogFact],
    source: SourceInput,
    payload: Option<&'a serde_json::Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContractInput<'a> {
    name: &'a str,
    version: &'a str,
    parameters: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Input<'a> {
    api_version: &'static str,
    now: String,
    image: &'a ImageInput,
    attestations: Vec<AttestationInput<'a>>,
    signatures: Vec<SignatureInput<'a>>,
    context: &'a RequestContext,
    contract: ContractInput<'a>,
}

/// One piece of admitted evidence and the authority that admitted it.
pub struct Admitted<'a> {
    /// The verified evidence.
    pub evidence: &'a Verified,
    /// The admitting authority's name.
    pub authority: &'a str,
}

/// Builds the policy input for one image and one contract.
#[allow(clippy::too_many_arguments)]
pub fn build(
    now: jiff::Timestamp,
    image: &ImageInput,
    admitted: &[Admitted<'_>],
    context: &RequestContext,
    contract_name: &str,
    contract_version: &str,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let mut attestations = Vec::new();
    let mut signatures = Vec::new();
    for a in admitted {
        let f = a.evidence.facts();
        match a.evidence {
            Verified::Attestation(att) => attestations.push(AttestationInput {
                predicate_type: att.statement().predicate_type(),
                statement: att.statement().json(),
                subject: f.subject(),
                digest: f.evidence_digest(),
                authority: a.authority,
                signer: f.signer(),
                time: f.time(),
                tlog: f.tlog(),
                source: SourceInput {
                    kind: f.source().kind,
                },
            }),
            Verified::Signature(sig) => signatures.push(SignatureInput {
                subject: f.subject(),
                digest: f.evidence_digest(),
                authority: a.authority,
                signer: f.signer(),
                time: f.time(),
                tlog: f.tlog(),
                source: SourceInput {
                    kind: f.source().kind,
                },
                payload: sig.payload(),
            }),
        }
    }
    let input = Input {
        api_version: POLICY_INPUT_V1,
        now: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        image,
        attestations,
        signatures,
        context,
        contract: ContractInput {
            name: contract_name,
            version: contract_version,
            parameters,
        },
    };
    serde_json::to_value(&input).unwrap_or(serde_json::Value::Null)
}
