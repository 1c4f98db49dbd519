//! Step 3: the evidence names the image being judged. A DSSE statement's
//! subjects must include its digest; a simple-signing payload must name
//! it; a message signature must be over it.

use sigstore_types::{Artifact, ArtifactDigest, Bundle, HashAlgorithm, SignatureContent};

use super::Statement;
use super::{EvidenceSource, Verified, VerifiedAttestation, VerifiedSignature};

use super::{Verifier, VerifyError};
use crate::digest::{Algorithm, Digest};

impl Verifier {
    /// (3) binding to the image, then (4)–(5).
    pub(super) fn verify_for_image(
        &self,
        bundle: &Bundle,
        simple_signing: Option<&[u8]>,
        subject: &Digest,
        source: EvidenceSource,
        evidence_bytes: &[u8],
        format: String,
    ) -> Result<Verified, VerifyError> {
        match &bundle.content {
            SignatureContent::DsseEnvelope(env) => {
                let statement = self.statement_of(env)?;
                if !statement.binds(subject) {
                    return Err(VerifyError::SubjectMismatch {
                        expected: subject.clone(),
                        found: describe_subjects(&statement),
                    });
                }
                let facts = self.sigstore(
                    bundle,
                    Artifact::Digest(artifact_digest(subject)?),
                    evidence_bytes,
                    subject.clone(),
                    source,
                    format,
                )?;
                Ok(Verified::Attestation(VerifiedAttestation::new(
                    facts, statement,
                )))
            }
            SignatureContent::MessageSignature(_) => match simple_signing {
                // cosign `.sig`: the signature covers the payload, and the
                // payload must name the image digest.
                Some(payload) => {
                    simple_signing_digest(payload, subject)?;
                    let facts = self.sigstore(
                        bundle,
                        Artifact::Blob(payload),
                        evidence_bytes,
                        subject.clone(),
                        source,
                        format,
                    )?;
                    Ok(Verified::Signature(VerifiedSignature::new(
                        facts,
                        Some(payload.into()),
                    )))
                }
                // A bundle with a message signature attached to an image: the
                // signed message is the image manifest, i.e. its digest.
                None => {
                    let facts = self
                        .sigstore(
                            bundle,
                            Artifact::Digest(artifact_digest(subject)?),
                            evidence_bytes,
                            subject.clone(),
                            source,
                            format,
                        )
                        .map_err(|e| match e {
                            VerifyError::Keyless(ref errs)
                                if errs.iter().all(|(_, e)| {
                                    matches!(e, sigstore_verify::Error::ArtifactMismatch(_))
                                }) =>
                            {
                                VerifyError::SubjectMismatch {
                                    expected: subject.clone(),
                                    found: "a message digest of another artifact".into(),
                                }
                            }
                            other => other,
                        })?;
                    Ok(Verified::Signature(VerifiedSignature::new(facts, None)))
                }
            },
            _ => Err(VerifyError::UnsupportedMaterial),
        }
    }
}

pub(super) fn artifact_digest(d: &Digest) -> Result<ArtifactDigest, VerifyError> {
    let alg = match d.algorithm() {
        Algorithm::Sha256 => HashAlgorithm::Sha2256,
        Algorithm::Sha384 => HashAlgorithm::Sha2384,
        Algorithm::Sha512 => HashAlgorithm::Sha2512,
    };
    ArtifactDigest::new(alg, d.bytes()).map_err(|e| VerifyError::Malformed(e.to_string()))
}

pub(super) fn describe_subjects(statement: &Statement) -> String {
    let mut names: Vec<String> = statement
        .subjects()
        .iter()
        .flat_map(|s| s.digests.iter().map(|d| d.to_string()))
        .take(3)
        .collect();
    let total: usize = statement.subjects().iter().map(|s| s.digests.len()).sum();
    if total > names.len() {
        names.push(format!("and {} more", total - names.len()));
    }
    if names.is_empty() {
        "no sha256/sha384/sha512 subject".into()
    } else {
        names.join(", ")
    }
}

/// The `critical.image.docker-manifest-digest` of a simple-signing payload,
/// which must equal `subject`.
fn simple_signing_digest(payload: &[u8], subject: &Digest) -> Result<(), VerifyError> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| VerifyError::SimpleSigning(e.to_string()))?;
    let named = value
        .pointer("/critical/image/docker-manifest-digest")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            VerifyError::SimpleSigning("no critical.image.docker-manifest-digest".into())
        })?;
    let named: Digest = named
        .parse()
        .map_err(|e: crate::digest::DigestError| VerifyError::SimpleSigning(e.to_string()))?;
    if &named != subject {
        return Err(VerifyError::SubjectMismatch {
            expected: subject.clone(),
            found: named.to_string(),
        });
    }
    let kind = value.pointer("/critical/type").and_then(|v| v.as_str());
    if kind != Some("cosign container image signature") {
        return Err(VerifyError::SimpleSigning(format!(
            "critical.type is {kind:?}, not \"cosign container image signature\""
        )));
    }
    Ok(())
}
