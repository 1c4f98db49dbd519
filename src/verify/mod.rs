//! The trust core: Sigstore verification of bundles and cosign layouts.
//!
//! Everything provgate believes about an image comes out of this module as a
//! [`Verified`] value, which nothing else can construct. Verification of one
//! piece of evidence, in order:
//!
//! 1. **Limits.** The bytes, signatures, tlog entries and timestamps are
//!    bounded ([`VerifyLimits`]); exceeding one is an error that names it.
//! 2. **Shape.** The bundle parses with a known media type (v0.1–v0.3);
//!    cosign `.sig`/`.att` layers are first converted into v0.1 bundles.
//!    A protobuf `oneof` set twice (`publicKey` *and* `certificate`;
//!    `messageSignature` *and* `dsseEnvelope`) is an error, as ProtoJSON
//!    makes it, a DSSE envelope carries exactly one signature, the same
//!    transparency-log entry may not appear twice, and no time in the bundle
//!    lies in the future ([`times`]).
//! 3. **Binding.** A DSSE payload must be an in-toto Statement (v0.1 or v1)
//!    with `payloadType` `application/vnd.in-toto+json` whose subjects include
//!    the digest being judged; a simple-signing payload must name that digest.
//!    A statement for another digest is rejected with that reason.
//! 4. **Sigstore.** `sigstore-verify` checks the certificate chain to a
//!    trusted Fulcio CA at a trusted time, the SCT when the root has CT logs,
//!    the Rekor SET / inclusion proof / signed checkpoint (v1) or v2 entry,
//!    RFC 3161 timestamps, the DSSE PAE or message signature, and that the
//!    tlog entry describes this signature, key and artifact. Keyless evidence
//!    is tried against each trusted root; key-signed evidence against each
//!    trusted key. Keyless evidence without a transparency-log entry is
//!    refused under every root that lists a log, whatever the authorities
//!    say (as sigstore-go, -js and -python do): an RFC 3161 timestamp alone
//!    proves when, not that the signing was published.
//! 5. **Facts.** The signer (key id, or issuer + SAN + Fulcio claims + root),
//!    the trusted time and its source, and the tlog entries are recorded.
//!
//! Who is *allowed* to sign is not decided here: each contract's
//! [`Authority`] list is applied to the verified facts later.
//!
//! Steps 1–2 live in `bundle`, 3 in `binding`, 4–5 in `sigstore`; `legacy`
//! converts cosign layers, `statement` parses in-toto, `trust` holds the
//! roots and keys, `identity` defines authorities, `verified` the sealed
//! result, and `error` the one error type with a variant per check.

mod authority;
mod binding;
mod bundle;
mod error;
mod legacy;
mod sigstore;
mod statement;
pub mod times;
mod trust;
mod verified;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use sigstore_types::{Artifact, SignatureContent};

pub use authority::{
    Authority, AuthorityKind, CLAIMS, IdentityError, KeylessIdentity, Matcher, MatcherSpec,
    NotAdmitted, check_claim_name,
};
pub use error::{KeyFailure, VerifyError};
pub use legacy::{DSSE_ENVELOPE, SIMPLE_SIGNING};
pub use statement::{STATEMENT_V01, STATEMENT_V1, Statement, StatementError, Subject};
pub use times::{MAX_FUTURE_SKEW, TimeKind};
pub use trust::{
    GITHUB, NamedRoot, PUBLIC_GOOD, TrustError, TrustStore, TrustStoreBuilder, TrustedKey,
};
pub use verified::{
    EvidenceFacts, EvidenceSource, KeylessSigner, Signer, SourceKind, TimeSource, TlogFact,
    TrustedTime, Verified, VerifiedAttestation, VerifiedSignature, describe_signer, describe_time,
};

use crate::digest::Digest;
use binding::artifact_digest;
use bundle::EnvelopeShape;
use sigstore::{COSIGN_ATT_FORMAT, COSIGN_SIG_FORMAT};

/// The in-toto DSSE payload type.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Bounds on what one piece of evidence may contain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyLimits {
    /// Bundle, envelope or payload bytes (default 16 MiB).
    pub max_bundle_bytes: usize,
    /// DSSE signatures per envelope (default 32).
    pub max_signatures: usize,
    /// Transparency-log entries per bundle (default 32, as sigstore-go).
    pub max_tlog_entries: usize,
    /// RFC 3161 timestamps per bundle (default 32, as sigstore-go).
    pub max_timestamps: usize,
    /// Statement subjects (default 1,024, as sigstore-go).
    pub max_subjects: usize,
    /// Digests per statement subject (default 32, as sigstore-go).
    pub max_digests_per_subject: usize,
}

impl Default for VerifyLimits {
    fn default() -> Self {
        VerifyLimits {
            max_bundle_bytes: 16 * 1024 * 1024,
            max_signatures: 32,
            max_tlog_entries: 32,
            max_timestamps: 32,
            max_subjects: 1024,
            max_digests_per_subject: 32,
        }
    }
}

/// What the artifact of a bundle is.
#[derive(Debug, Clone, Copy)]
pub enum ArtifactInput<'a> {
    /// A digest (an image digest, or a conformance `sha256:` input).
    Digest(&'a Digest),
    /// Raw artifact bytes.
    Bytes(&'a [u8]),
}

/// Verifies evidence against a [`TrustStore`].
#[derive(Clone)]
pub struct Verifier {
    trust: Arc<TrustStore>,
    limits: VerifyLimits,
}

impl Verifier {
    /// A verifier over `trust` with `limits`.
    pub fn new(trust: Arc<TrustStore>, limits: VerifyLimits) -> Self {
        Verifier { trust, limits }
    }

    /// The roots and keys evidence is verified against.
    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    /// The limits on bundle bytes and counts.
    pub fn limits(&self) -> &VerifyLimits {
        &self.limits
    }

    /// Verifies a Sigstore bundle attached to the image `subject`.
    pub fn verify_bundle(
        &self,
        bytes: &[u8],
        subject: &Digest,
        source: EvidenceSource,
    ) -> Result<Verified, VerifyError> {
        let bundle = self.parse_bundle(bytes)?;
        let format = bundle.media_type.as_str().to_owned();
        self.verify_for_image(&bundle, None, subject, source, bytes, format)
    }

    /// Verifies a cosign `.sig` simple-signing layer.
    pub fn verify_cosign_signature(
        &self,
        payload: &[u8],
        annotations: &BTreeMap<String, String>,
        subject: &Digest,
        source: EvidenceSource,
    ) -> Result<Verified, VerifyError> {
        self.check_size("simple-signing payload", payload.len())?;
        let json = legacy::to_bundle(legacy::LegacyContent::Signature(payload), annotations)
            .map_err(VerifyError::Legacy)?;
        let bundle = self.parse_bundle_value(json)?;
        self.verify_for_image(
            &bundle,
            Some(payload),
            subject,
            source,
            payload,
            COSIGN_SIG_FORMAT.into(),
        )
    }

    /// Verifies a cosign `.att` DSSE layer.
    pub fn verify_cosign_attestation(
        &self,
        envelope: &[u8],
        annotations: &BTreeMap<String, String>,
        subject: &Digest,
        source: EvidenceSource,
    ) -> Result<Verified, VerifyError> {
        self.check_size("DSSE envelope", envelope.len())?;
        let shape: EnvelopeShape =
            serde_json::from_slice(envelope).map_err(|e| VerifyError::Legacy(e.to_string()))?;
        self.check_count(
            "DSSE signatures",
            shape.signatures.map_or(0, |s| s.len()),
            self.limits.max_signatures,
        )?;
        let json = legacy::to_bundle(legacy::LegacyContent::Attestation(envelope), annotations)
            .map_err(VerifyError::Legacy)?;
        let bundle = self.parse_bundle_value(json)?;
        self.verify_for_image(
            &bundle,
            None,
            subject,
            source,
            envelope,
            COSIGN_ATT_FORMAT.into(),
        )
    }

    /// Verifies a bundle over an arbitrary artifact (the conformance
    /// protocol and `provgate verify`): no image binding beyond what the
    /// bundle itself requires.
    pub fn verify_artifact(
        &self,
        bytes: &[u8],
        artifact: ArtifactInput<'_>,
    ) -> Result<(EvidenceFacts, Option<Statement>), VerifyError> {
        let bundle = self.parse_bundle(bytes)?;
        let statement = match &bundle.content {
            SignatureContent::DsseEnvelope(env) => Some(self.statement_of(env)?),
            _ => None,
        };
        let art = match artifact {
            ArtifactInput::Digest(d) => Artifact::Digest(artifact_digest(d)?),
            ArtifactInput::Bytes(b) => Artifact::Blob(b),
        };
        let subject = match artifact {
            ArtifactInput::Digest(d) => d.clone(),
            ArtifactInput::Bytes(b) => Digest::sha256_of(b),
        };
        let source = EvidenceSource {
            kind: SourceKind::File,
            manifest: None,
            layer: None,
        };
        let format = bundle.media_type.as_str().to_owned();
        let facts = self.sigstore(&bundle, art, bytes, subject, source, format)?;
        Ok((facts, statement))
    }

    fn statement_of(&self, env: &sigstore_types::DsseEnvelope) -> Result<Statement, VerifyError> {
        if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(VerifyError::PayloadType(
                env.payload_type.chars().take(100).collect(),
            ));
        }
        Ok(Statement::parse(env.payload.as_bytes(), &self.limits)?)
    }
}
