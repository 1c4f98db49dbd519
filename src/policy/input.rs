//! The policy input document, `provgate.dev/policy-input/v1`, as a type.
//!
//! The "verified only" boundary is enforced by construction, not by
//! convention:
//!
//! - an [`Evidence`] is made only from a [`Verified`] value (which only
//!   `crate::verify` can make);
//! - an [`Admitted`] is made only by [`admit`], which runs the contract's
//!   authority check on the verified signer facts;
//! - a [`PolicyInput`] is made only by [`PolicyInput::build`] from admitted
//!   evidence, the image and the projected request context, and
//!   `RegoProgram::evaluate` accepts nothing else. The one other door is
//!   [`crate::policy::testing::unverified_input`], named for what it is and
//!   used by `provgate policy eval`/`test` only.
//!
//! An input that cannot be built is an error, which the engine turns into a
//! deny. Documented in `docs/policy-input.md`, with a JSON Schema in
//! `docs/policy-input.schema.json`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::context::ContextProjection;
use super::packed::Packed;
use crate::digest::Digest;
use crate::verify::{
    Authority, EvidenceFacts, Signer, SourceKind, TlogFact, TrustedTime, Verified,
};

pub use super::context::RequestContext;

/// The input's `apiVersion`.
pub const POLICY_INPUT_V1: &str = "provgate.dev/policy-input/v1";

/// Why an input could not be built (the engine denies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A part could not be converted to a policy value.
    #[error("cannot build the policy input: {part}: {reason}")]
    Convert {
        /// Which part.
        part: &'static str,
        /// What failed.
        reason: String,
    },
}

fn to_value<T: Serialize>(part: &'static str, v: &T) -> Result<regorus::Value, InputError> {
    let json = serde_json::to_value(v).map_err(|e| InputError::Convert {
        part,
        reason: e.to_string(),
    })?;
    regorus::Value::deserialize(&json).map_err(|e| InputError::Convert {
        part,
        reason: e.to_string(),
    })
}

/// The `image` section: what is judged.
///
/// For a single-platform image, `digest` is its manifest. An image index is
/// judged once per platform: `digest` is the platform manifest, `platform`
/// names it and `index` is the index it was reached through; evidence bound
/// to either counts (the index's signature covers the list that names this
/// manifest), evidence bound to another platform does not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
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
    /// The platform judged (`os/arch[/variant]`), when judging one platform
    /// of an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The index digest, when judging one platform of an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
}

impl ImageInput {
    /// The digests whose evidence applies to this image: the digest judged
    /// and, for a platform of an index, the index.
    pub fn evidence_digests(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.digest).chain(self.index.iter())
    }
}

#[derive(Serialize)]
struct SourceInput {
    kind: SourceKind,
}

/// The parts of an input entry that come from the verified facts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FactsInput<'a> {
    subject: &'a Digest,
    digest: &'a Digest,
    signer: &'a Signer,
    time: &'a TrustedTime,
    tlog: &'a [TlogFact],
    source: SourceInput,
}

/// What kind of evidence, with what an attestation adds.
#[derive(Debug, Clone)]
pub enum EvidenceKind {
    /// An in-toto attestation of this predicate type.
    Attestation {
        /// `predicateType`.
        predicate_type: Box<str>,
    },
    /// A signature over the image.
    Signature,
}

/// A verified piece of evidence, held compactly while it is cached: its
/// verified facts, and its statement or payload as the verified bytes. The
/// policy-input entry is built from them when a contract is evaluated,
/// which the verdict cache makes rare (once per digest, contract revision,
/// platform and declared context); a parsed JSON tree would cost about
/// nine times the bytes for as long as the evidence is cached.
#[derive(Debug, Clone)]
pub struct Evidence {
    facts: Arc<EvidenceFacts>,
    kind: EvidenceKind,
    /// The statement (attestations) or simple-signing payload (cosign
    /// signatures), exactly as verified (held deflated); `None` for a
    /// bundle's message signature over the digest itself.
    raw: Option<Packed>,
}

impl Evidence {
    /// Takes verified evidence into its cached form.
    pub fn new(verified: Verified) -> Self {
        match verified {
            Verified::Attestation(att) => {
                let (facts, statement) = att.into_parts();
                Evidence {
                    facts: Arc::new(facts),
                    kind: EvidenceKind::Attestation {
                        predicate_type: statement.predicate_type().into(),
                    },
                    raw: Some(Packed::new(statement.raw())),
                }
            }
            Verified::Signature(sig) => {
                let (facts, payload) = sig.into_parts();
                Evidence {
                    facts: Arc::new(facts),
                    kind: EvidenceKind::Signature,
                    raw: payload.as_deref().map(Packed::new),
                }
            }
        }
    }

    /// The verified facts: signer, time, tlog, source, subject, digest.
    pub fn facts(&self) -> &Arc<EvidenceFacts> {
        &self.facts
    }

    /// Attestation (with its predicate type) or signature.
    pub fn kind(&self) -> &EvidenceKind {
        &self.kind
    }

    /// The bytes this evidence holds (for cache weighing).
    pub fn weight(&self) -> usize {
        let claims: usize = match self.facts.signer() {
            Signer::Keyless(k) => {
                k.subject.len()
                    + k.issuer.len()
                    + k.claims
                        .iter()
                        .map(|(a, b)| a.len() + b.len() + 64)
                        .sum::<usize>()
            }
            Signer::Key { .. } => 160,
        };
        self.raw.as_ref().map_or(0, Packed::stored_len)
            + claims
            + self.facts.tlog().len() * 160
            + 512
    }

    /// The policy-input entry, without `authority` (which depends on the
    /// contract that admitted it).
    pub fn value(&self) -> Result<regorus::Value, InputError> {
        let f = &self.facts;
        let mut entry = to_value(
            "evidence",
            &FactsInput {
                subject: f.subject(),
                digest: f.evidence_digest(),
                signer: f.signer(),
                time: f.time(),
                tlog: f.tlog(),
                source: SourceInput {
                    kind: f.source().kind,
                },
            },
        )?;
        let parsed = |part: &'static str, raw: &[u8]| {
            regorus::Value::deserialize(&mut serde_json::Deserializer::from_slice(raw)).map_err(
                |e| InputError::Convert {
                    part,
                    reason: e.to_string(),
                },
            )
        };
        let obj = entry.as_object_mut().map_err(|e| InputError::Convert {
            part: "evidence",
            reason: e.to_string(),
        })?;
        match &self.kind {
            EvidenceKind::Attestation { predicate_type } => {
                let raw = self.raw.as_ref().ok_or(InputError::Convert {
                    part: "statement",
                    reason: "an attestation without its statement".into(),
                })?;
                obj.insert("predicateType".into(), (&**predicate_type).into());
                obj.insert("statement".into(), parsed("statement", &unpack(raw)?)?);
            }
            EvidenceKind::Signature => {
                let payload = match &self.raw {
                    Some(raw) => parsed("payload", &unpack(raw)?)?,
                    None => regorus::Value::Null,
                };
                obj.insert("payload".into(), payload);
            }
        }
        Ok(entry)
    }
}

/// The verified bytes of a [`Packed`], or the input error that fails the
/// contract closed.
fn unpack(p: &Packed) -> Result<std::borrow::Cow<'_, [u8]>, InputError> {
    p.bytes().map_err(|e| InputError::Convert {
        part: "evidence",
        reason: e.to_string(),
    })
}

/// Evidence that an authority of the contract admitted. Only [`admit`]
/// makes one.
#[derive(Debug, Clone, Copy)]
pub struct Admitted<'a> {
    evidence: &'a Evidence,
    authority: &'a str,
}

impl<'a> Admitted<'a> {
    /// The evidence.
    pub fn evidence(&self) -> &'a Evidence {
        self.evidence
    }

    /// The name of the authority that admitted it.
    pub fn authority(&self) -> &'a str {
        self.authority
    }
}

/// Runs the authority check: the first of `authorities` that admits the
/// evidence's verified signer facts admits it; otherwise the reasons of
/// every authority are returned. No authority admits nothing.
pub fn admit<'a>(
    authorities: &'a [Authority],
    evidence: &'a Evidence,
) -> Result<Admitted<'a>, Vec<String>> {
    let facts = &evidence.facts;
    let mut reasons = Vec::new();
    for a in authorities {
        match a.admits(facts) {
            Ok(()) => {
                return Ok(Admitted {
                    evidence,
                    authority: &a.name,
                });
            }
            Err(e) => reasons.push(e.to_string()),
        }
    }
    Err(reasons)
}

/// The contract section.
#[derive(Debug, Clone, Copy)]
pub struct ContractInfo<'a> {
    /// Name.
    pub name: &'a str,
    /// Version.
    pub version: &'a str,
    /// Effective parameters, as a policy value.
    pub parameters: &'a regorus::Value,
}

/// Converts contract parameters once per compiled binding.
pub fn parameters_value(
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> Result<regorus::Value, InputError> {
    to_value("contract.parameters", parameters)
}

/// A complete policy input. Only [`PolicyInput::build`] (from admitted,
/// verified evidence) and the named testing door make one.
#[derive(Debug, Clone)]
pub struct PolicyInput {
    value: regorus::Value,
}

impl PolicyInput {
    /// Builds the input for one image and one contract from the evidence
    /// its authorities admitted, the image and the projected context.
    pub fn build(
        now: jiff::Timestamp,
        image: &ImageInput,
        admitted: &[Admitted<'_>],
        context: &ContextProjection,
        contract: ContractInfo<'_>,
    ) -> Result<Self, InputError> {
        let mut attestations = Vec::new();
        let mut signatures = Vec::new();
        for a in admitted {
            let mut entry = a.evidence.value()?;
            entry
                .as_object_mut()
                .map_err(|e| InputError::Convert {
                    part: "evidence",
                    reason: e.to_string(),
                })?
                .insert("authority".into(), a.authority.into());
            match a.evidence.kind {
                EvidenceKind::Attestation { .. } => attestations.push(entry),
                EvidenceKind::Signature => signatures.push(entry),
            }
        }
        let mut contract_obj = BTreeMap::new();
        contract_obj.insert("name".into(), contract.name.into());
        contract_obj.insert("version".into(), contract.version.into());
        contract_obj.insert("parameters".into(), contract.parameters.clone());
        let mut top = BTreeMap::new();
        top.insert("apiVersion".into(), POLICY_INPUT_V1.into());
        top.insert(
            "now".into(),
            now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string().into(),
        );
        top.insert("image".into(), to_value("image", image)?);
        top.insert("attestations".into(), regorus::Value::from(attestations));
        top.insert("signatures".into(), regorus::Value::from(signatures));
        top.insert("context".into(), context.to_value());
        top.insert("contract".into(), regorus::Value::from(contract_obj));
        Ok(PolicyInput {
            value: regorus::Value::from(top),
        })
    }

    /// The input as a regorus value.
    pub fn value(&self) -> &regorus::Value {
        &self.value
    }

    /// The input as JSON (for `--dump-input` and `policy input`).
    pub fn to_json(&self) -> Result<serde_json::Value, InputError> {
        let text = self.value.to_json_str().map_err(|e| InputError::Convert {
            part: "input",
            reason: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| InputError::Convert {
            part: "input",
            reason: e.to_string(),
        })
    }

    /// The testing door: any JSON document, unverified. Only
    /// `crate::policy::testing` calls it.
    pub(super) fn unverified(json: &serde_json::Value) -> Result<Self, InputError> {
        Ok(PolicyInput {
            value: regorus::Value::deserialize(json).map_err(|e| InputError::Convert {
                part: "input",
                reason: e.to_string(),
            })?,
        })
    }
}
