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

mod identity;
mod legacy;
mod statement;
pub mod times;
mod trust;
mod verified;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::IgnoredAny;
use sigstore_types::{
    Artifact, ArtifactDigest, Bundle, HashAlgorithm, SignatureContent,
    bundle::VerificationMaterialContent,
};

pub use identity::{
    Authority, AuthorityKind, CLAIMS, IdentityError, KeylessIdentity, Matcher, MatcherSpec,
    NotAdmitted, check_claim_name,
};
pub use legacy::{DSSE_ENVELOPE, SIMPLE_SIGNING};
pub use statement::{STATEMENT_V01, STATEMENT_V1, Statement, StatementError, Subject};
pub use times::{MAX_FUTURE_SKEW, TimeKind};
pub use trust::{
    GITHUB, NamedRoot, PUBLIC_GOOD, TrustError, TrustStore, TrustStoreBuilder, TrustedKey,
};
pub use verified::{
    EvidenceFacts, EvidenceSource, KeylessSigner, Signer, SourceKind, TimeSource, TlogFact,
    TrustedTime, Verified, VerifiedAttestation, VerifiedSignature,
};

use crate::digest::{Algorithm, Digest};

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

/// Why a piece of evidence did not verify. Each variant is one check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// More bytes than the limit.
    #[error("{what} is {size} bytes, more than the limit of {limit} (verify.maxBundleBytes)")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More items than the limit.
    #[error("{what}: {count} found, more than the limit of {limit}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The bundle JSON is malformed.
    #[error("malformed bundle: {0}")]
    Malformed(String),
    /// The bundle media type is not a known Sigstore bundle version.
    #[error("unknown bundle media type {0:?}")]
    UnknownMediaType(String),
    /// A cosign layer's annotations cannot be converted.
    #[error("malformed cosign layer: {0}")]
    Legacy(String),
    /// The DSSE payload type is not in-toto.
    #[error("DSSE payloadType {0:?} is not {IN_TOTO_PAYLOAD_TYPE}")]
    PayloadType(String),
    /// The in-toto statement is unacceptable.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// The statement or signature is about another digest.
    #[error("evidence is for another digest: it names {found}, the image is {expected}")]
    SubjectMismatch {
        /// The digest being judged.
        expected: Digest,
        /// What the evidence names.
        found: String,
    },
    /// The simple-signing payload is malformed.
    #[error("malformed simple-signing payload: {0}")]
    SimpleSigning(String),
    /// The certificate did not verify against any trusted root.
    #[error("{}", format_root_errors(.0))]
    Keyless(Vec<(String, sigstore_verify::Error)>),
    /// The signature did not verify with any trusted key.
    #[error("{0}")]
    Key(KeyFailure),
    /// The bundle has neither certificate nor key material this verifier handles.
    #[error("unsupported verification material")]
    UnsupportedMaterial,
    /// A protobuf `oneof` of the bundle is set more than once (ProtoJSON
    /// makes that a parse error; a lenient parser would pick one and ignore
    /// the other, so two verifiers could judge different material).
    #[error(
        "malformed bundle: {oneof} sets {}; the bundle format allows exactly one",
        .fields.join(" and ")
    )]
    OneofConflict {
        /// The oneof, e.g. `verificationMaterial.content`.
        oneof: &'static str,
        /// The JSON fields that are set.
        fields: Vec<&'static str>,
    },
    /// A DSSE envelope whose signature count is not exactly one.
    #[error(
        "a DSSE envelope in a Sigstore bundle must carry exactly one signature, found {0} \
         (the verification material vouches for one signature)"
    )]
    DsseSignatureCount(usize),
    /// The same transparency-log entry is listed twice.
    #[error(
        "duplicate transparency-log entries: log {log_id} index {log_index} is listed more than once"
    )]
    DuplicateTlogEntry {
        /// Hex log id.
        log_id: String,
        /// Log index.
        log_index: u64,
    },
    /// Keyless evidence with no transparency-log entry, under trusted roots
    /// that all list a log.
    #[error(
        "certificate (keyless) evidence has no transparency-log entry, and trusted root {} \
         lists a transparency log: Sigstore verifiers require the entry (an RFC 3161 \
         timestamp alone is not enough)",
        .roots.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ")
    )]
    MissingTlogEntry {
        /// The trusted roots that list a log.
        roots: Vec<String>,
    },
    /// A time in the bundle lies in the future.
    #[error(
        "{kind} {} is in the future (verifier clock {}, allowed skew {} s)",
        .time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        .now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        MAX_FUTURE_SKEW.as_secs()
    )]
    FutureTime {
        /// Which time.
        kind: TimeKind,
        /// The time.
        time: jiff::Timestamp,
        /// The verifier's clock.
        now: jiff::Timestamp,
    },
}

/// Why key-signed evidence failed.
#[derive(Debug)]
pub enum KeyFailure {
    /// No key is configured at all.
    NoKeys,
    /// Every configured key was tried; the errors per key.
    Failed(Vec<(String, sigstore_verify::Error)>),
}

impl std::fmt::Display for KeyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFailure::NoKeys => f.write_str("signed with a key, and no public key is trusted"),
            KeyFailure::Failed(errs) => {
                // A bad signature with the right key beats "wrong key" noise.
                let best = errs
                    .iter()
                    .find(|(_, e)| !matches!(e, sigstore_verify::Error::SignatureInvalid(_)))
                    .or(errs.first());
                match best {
                    Some((name, e)) if errs.len() == 1 => write!(f, "key {name:?}: {e}"),
                    Some((_, e)) => write!(
                        f,
                        "does not verify with any of the {} trusted keys (e.g. {e})",
                        errs.len()
                    ),
                    None => f.write_str("no key tried"),
                }
            }
        }
    }
}

fn format_root_errors(errs: &[(String, sigstore_verify::Error)]) -> String {
    match errs {
        [] => "no trusted root is configured for keyless evidence".into(),
        [(name, e)] => format!("{e} (trusted root {name:?})"),
        _ => errs
            .iter()
            .map(|(name, e)| format!("root {name:?}: {e}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

impl VerifyError {
    /// Whether a contract authority could never change the outcome: the bytes
    /// are bad, not merely signed by someone else. Used to label evidence.
    pub fn is_tampering(&self) -> bool {
        !matches!(
            self,
            VerifyError::Key(KeyFailure::NoKeys) | VerifyError::UnsupportedMaterial
        )
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

/// What is checked before the bundle is parsed for real: counts (limits),
/// and the oneofs, which the typed parser would resolve silently.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleShape {
    #[serde(default)]
    verification_material: Option<MaterialShape>,
    #[serde(default)]
    dsse_envelope: Option<EnvelopeShape>,
    #[serde(default)]
    message_signature: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialShape {
    #[serde(default)]
    tlog_entries: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    timestamp_verification_data: Option<TimestampShape>,
    #[serde(default)]
    public_key: Option<IgnoredAny>,
    #[serde(default)]
    certificate: Option<IgnoredAny>,
    #[serde(default)]
    x509_certificate_chain: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampShape {
    #[serde(default)]
    rfc3161_timestamps: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct EnvelopeShape {
    #[serde(default)]
    signatures: Option<Vec<IgnoredAny>>,
}

impl Verifier {
    /// A verifier over `trust` with `limits`.
    pub fn new(trust: Arc<TrustStore>, limits: VerifyLimits) -> Self {
        Verifier { trust, limits }
    }

    /// The trust material.
    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    /// The limits.
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

    fn check_size(&self, what: &'static str, size: usize) -> Result<(), VerifyError> {
        if size > self.limits.max_bundle_bytes {
            return Err(VerifyError::TooLarge {
                what,
                size,
                limit: self.limits.max_bundle_bytes,
            });
        }
        Ok(())
    }

    fn check_count(
        &self,
        what: &'static str,
        count: usize,
        limit: usize,
    ) -> Result<(), VerifyError> {
        if count > limit {
            return Err(VerifyError::TooMany { what, count, limit });
        }
        Ok(())
    }

    /// (1) limits and (2) shape.
    fn parse_bundle(&self, bytes: &[u8]) -> Result<Bundle, VerifyError> {
        self.check_size("bundle", bytes.len())?;
        let shape: BundleShape =
            serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.check_shape(&shape)?;
        let text = std::str::from_utf8(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        // Report an unknown media type as such, not as a generic parse error.
        let media: serde_json::Value =
            serde_json::from_str(text).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        match media.get("mediaType").and_then(|m| m.as_str()) {
            Some(mt) if mt.parse::<sigstore_types::MediaType>().is_err() => {
                return Err(VerifyError::UnknownMediaType(
                    mt.chars().take(200).collect(),
                ));
            }
            None => return Err(VerifyError::Malformed("bundle has no mediaType".into())),
            Some(_) => {}
        }
        let bundle: Bundle = serde_json::from_value(drop_null_oneofs(media))
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.check_bundle(&bundle)?;
        Ok(bundle)
    }

    fn parse_bundle_value(&self, value: serde_json::Value) -> Result<Bundle, VerifyError> {
        let shape: BundleShape =
            BundleShape::deserialize(&value).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.check_shape(&shape)?;
        let bundle: Bundle = serde_json::from_value(drop_null_oneofs(value))
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.check_bundle(&bundle)?;
        Ok(bundle)
    }

    fn check_shape(&self, shape: &BundleShape) -> Result<(), VerifyError> {
        // ProtoJSON: a oneof set twice is an error (JSON `null` means unset).
        let content: Vec<&'static str> = [
            ("messageSignature", shape.message_signature.is_some()),
            ("dsseEnvelope", shape.dsse_envelope.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if content.len() > 1 {
            return Err(VerifyError::OneofConflict {
                oneof: "the bundle content",
                fields: content,
            });
        }
        if let Some(m) = &shape.verification_material {
            let material: Vec<&'static str> = [
                ("publicKey", m.public_key.is_some()),
                ("x509CertificateChain", m.x509_certificate_chain.is_some()),
                ("certificate", m.certificate.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            if material.len() > 1 {
                return Err(VerifyError::OneofConflict {
                    oneof: "verificationMaterial",
                    fields: material,
                });
            }
            let tlog = m.tlog_entries.as_ref().map_or(0, Vec::len);
            self.check_count(
                "transparency-log entries",
                tlog,
                self.limits.max_tlog_entries,
            )?;
            let ts = m
                .timestamp_verification_data
                .as_ref()
                .and_then(|t| t.rfc3161_timestamps.as_ref())
                .map_or(0, Vec::len);
            self.check_count("RFC 3161 timestamps", ts, self.limits.max_timestamps)?;
        }
        if let Some(env) = &shape.dsse_envelope {
            let n = env.signatures.as_ref().map_or(0, Vec::len);
            self.check_count("DSSE signatures", n, self.limits.max_signatures)?;
            // The bundle spec allows exactly one; checked here so that the
            // rule holds whatever the parser below does with a list.
            if n != 1 {
                return Err(VerifyError::DsseSignatureCount(n));
            }
        }
        Ok(())
    }

    /// Checks of the parsed bundle that need no key: no duplicate log
    /// entries, and no `integratedTime` in the future.
    fn check_bundle(&self, bundle: &Bundle) -> Result<(), VerifyError> {
        let entries = &bundle.verification_material.tlog_entries;
        for (i, e) in entries.iter().enumerate() {
            // sigstore-go's rule ("duplicate tlog entries found"): one log,
            // one index. A duplicate would count twice toward a threshold.
            if entries[..i].iter().any(|p| {
                p.log_id.key_id.as_bytes() == e.log_id.key_id.as_bytes()
                    && p.log_index.get() == e.log_index.get()
            }) {
                return Err(VerifyError::DuplicateTlogEntry {
                    log_id: hex::encode(e.log_id.key_id.as_bytes()),
                    log_index: e.log_index.get(),
                });
            }
        }
        let now = jiff::Timestamp::now();
        for t in entries.iter().filter_map(|e| e.integrated_time) {
            times::check_not_in_future(TimeKind::IntegratedTime, t, now)?;
        }
        Ok(())
    }

    fn statement_of(&self, env: &sigstore_types::DsseEnvelope) -> Result<Statement, VerifyError> {
        if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(VerifyError::PayloadType(
                env.payload_type.chars().take(100).collect(),
            ));
        }
        Ok(Statement::parse(env.payload.as_bytes(), &self.limits)?)
    }

    /// (3) binding to the image, then (4)–(5).
    fn verify_for_image(
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

    /// (4) sigstore-verify and (5) facts.
    fn sigstore(
        &self,
        bundle: &Bundle,
        artifact: Artifact<'_>,
        evidence_bytes: &[u8],
        subject: Digest,
        source: EvidenceSource,
        format: String,
    ) -> Result<EvidenceFacts, VerifyError> {
        let has_tlog = !bundle.verification_material.tlog_entries.is_empty();
        let (signer, result) = match &bundle.verification_material.content {
            VerificationMaterialContent::Certificate(_)
            | VerificationMaterialContent::X509CertificateChain { .. } => {
                let mut errors = Vec::new();
                let mut ok = None;
                // Without a log entry, only roots that list no log (GitHub's
                // private-repository instance) may vouch for a certificate.
                let roots: Vec<&NamedRoot> = self
                    .trust
                    .roots()
                    .iter()
                    .filter(|r| has_tlog || !r.has_tlogs())
                    .collect();
                if roots.is_empty() && !self.trust.roots().is_empty() {
                    return Err(VerifyError::MissingTlogEntry {
                        roots: self
                            .trust
                            .roots()
                            .iter()
                            .map(|r| r.name().to_owned())
                            .collect(),
                    });
                }
                for root in roots {
                    let mut policy = sigstore_verify::VerificationPolicy::any_identity();
                    if !root.has_ct_logs() {
                        policy = policy.skip_sct();
                    }
                    if !has_tlog {
                        // This root lists no log, so there is nothing to
                        // verify; the fact is recorded and authorities
                        // require a tlog by default. The certificate still
                        // needs a trusted time (an RFC 3161 timestamp), or it
                        // fails below.
                        policy = policy.skip_tlog_unsafe();
                    }
                    match root.verifier().verify(artifact.clone(), bundle, &policy) {
                        Ok(r) => {
                            ok = Some((root.name().to_owned(), r));
                            break;
                        }
                        Err(e) => errors.push((root.name().to_owned(), e)),
                    }
                }
                let Some((root, result)) = ok else {
                    return Err(VerifyError::Keyless(errors));
                };
                let signer = keyless_signer(&result, &root)?;
                (signer, Checked::from(&result))
            }
            VerificationMaterialContent::PublicKey(hint) => {
                let keys = self.trust.keys();
                if keys.is_empty() {
                    return Err(VerifyError::Key(KeyFailure::NoKeys));
                }
                // The hint is unauthenticated: it only orders the candidates.
                let mut ordered: Vec<&TrustedKey> = keys.iter().collect();
                ordered.sort_by_key(|k| k.key_id() != hint.hint && k.name() != hint.hint);
                // Key-signed evidence with neither a log entry nor a
                // timestamp (a cosign layer signed with
                // `--tlog-upload=false`, a DSSE bundle such as a provgate
                // VSA) carries no time
                // evidence, which sigstore-verify refuses outright. Only its
                // signature can be checked; the facts then say "no tlog, no
                // time", and authorities require a tlog unless they opt out.
                let unlogged_layer = !has_tlog
                    && (is_cosign_layer(&format)
                        || matches!(bundle.content, SignatureContent::DsseEnvelope(_)))
                    && bundle
                        .verification_material
                        .timestamp_verification_data
                        .rfc3161_timestamps
                        .is_empty();
                // sigstore-verify binds a DSSE statement to the artifact;
                // on the signature-only path that is checked here.
                if unlogged_layer && let SignatureContent::DsseEnvelope(env) = &bundle.content {
                    let statement = self.statement_of(env)?;
                    if !statement.binds(&subject) {
                        return Err(VerifyError::SubjectMismatch {
                            expected: subject.clone(),
                            found: describe_subjects(&statement),
                        });
                    }
                }
                // Key-signed evidence needs no Fulcio CA; with no trusted
                // root at all, its log entries and timestamps are checked
                // against an empty one (and fail) instead of not at all.
                let empty;
                let verifiers: Vec<&sigstore_verify::Verifier> = if self.trust.roots().is_empty() {
                    empty = empty_verifier().map_err(|e| {
                        VerifyError::Key(KeyFailure::Failed(vec![("(no trusted root)".into(), e)]))
                    })?;
                    vec![&empty]
                } else {
                    self.trust.roots().iter().map(|r| r.verifier()).collect()
                };
                let mut errors = Vec::new();
                let mut ok = None;
                'keys: for key in ordered {
                    if unlogged_layer {
                        match verify_unlogged_signature(bundle, &artifact, key.der()) {
                            Ok(()) => {
                                ok = Some((key, Checked::default()));
                                break 'keys;
                            }
                            Err(e) => {
                                errors.push((key.name().to_owned(), e));
                                continue;
                            }
                        }
                    }
                    let mut policy =
                        sigstore_verify::PublicKeyVerificationPolicy::new(key.der().clone());
                    if !has_tlog {
                        policy = policy.skip_tlog_unsafe();
                    }
                    let mut last = None;
                    for verifier in &verifiers {
                        match verifier.verify(artifact.clone(), bundle, &policy) {
                            Ok(r) => {
                                ok = Some((key, Checked::from(&r)));
                                break 'keys;
                            }
                            Err(e) => last = Some(e),
                        }
                    }
                    if let Some(e) = last {
                        errors.push((key.name().to_owned(), e));
                    }
                }
                let Some((key, checked)) = ok else {
                    return Err(VerifyError::Key(KeyFailure::Failed(errors)));
                };
                (
                    Signer::Key {
                        key_id: key.key_id().to_owned(),
                        key_name: key.name().to_owned(),
                    },
                    checked,
                )
            }
            _ => return Err(VerifyError::UnsupportedMaterial),
        };

        let now = jiff::Timestamp::now();
        for t in &result.timestamps {
            let kind = if Some(*t) == result.integrated_time {
                TimeKind::IntegratedTime
            } else {
                TimeKind::Rfc3161
            };
            times::check_not_in_future(kind, *t, now)?;
        }
        let tsa_times: Vec<jiff::Timestamp> = if bundle
            .verification_material
            .timestamp_verification_data
            .rfc3161_timestamps
            .is_empty()
        {
            Vec::new()
        } else {
            result
                .timestamps
                .iter()
                .copied()
                .filter(|t| Some(*t) != result.integrated_time)
                .collect()
        };
        let time = if let Some(t) = tsa_times.iter().min() {
            TrustedTime {
                source: TimeSource::Rfc3161,
                value: Some(*t),
            }
        } else if let Some(t) = result.integrated_time {
            TrustedTime {
                source: TimeSource::Rekor,
                value: Some(t),
            }
        } else {
            TrustedTime {
                source: TimeSource::None,
                value: None,
            }
        };
        let tlog = bundle
            .verification_material
            .tlog_entries
            .iter()
            .map(|e| TlogFact {
                log_index: e.log_index.get(),
                log_id: hex::encode(e.log_id.key_id.as_bytes()),
                kind: format!("{}/{}", e.kind_version.kind(), e.kind_version.version()),
                // Only a Rekor v1 SET authenticates integratedTime; the
                // field of any other entry is not reported as a fact.
                integrated_time: e.integrated_time.filter(|_| {
                    e.inclusion_promise.is_some()
                        && e.kind_version != sigstore_types::KindVersion::HashedRekordV002
                }),
                inclusion_proof: e.inclusion_proof.is_some(),
                inclusion_promise: e.inclusion_promise.is_some(),
            })
            .collect();
        Ok(EvidenceFacts::new(
            signer,
            time,
            tlog,
            result.tlog_verified,
            Digest::sha256_of(evidence_bytes),
            subject,
            source,
            format,
        ))
    }
}

/// Removes oneof members whose value is JSON `null`: ProtoJSON reads null
/// as "not set", and the typed parser would otherwise take the null member
/// for the chosen one. [`Verifier::check_shape`] has already refused a
/// oneof with two non-null members.
fn drop_null_oneofs(mut value: serde_json::Value) -> serde_json::Value {
    let strip = |map: &mut serde_json::Map<String, serde_json::Value>, keys: &[&str]| {
        for k in keys {
            if map.get(*k).is_some_and(serde_json::Value::is_null) {
                map.remove(*k);
            }
        }
    };
    if let Some(top) = value.as_object_mut() {
        strip(top, &["messageSignature", "dsseEnvelope"]);
        if let Some(m) = top
            .get_mut("verificationMaterial")
            .and_then(serde_json::Value::as_object_mut)
        {
            strip(m, &["publicKey", "certificate", "x509CertificateChain"]);
        }
    }
    value
}

/// The format of evidence converted from a cosign `.sig` layer.
const COSIGN_SIG_FORMAT: &str = "cosign-sig";
/// The format of evidence converted from a cosign `.att` layer.
const COSIGN_ATT_FORMAT: &str = "cosign-att";

fn is_cosign_layer(format: &str) -> bool {
    format == COSIGN_SIG_FORMAT || format == COSIGN_ATT_FORMAT
}

/// What sigstore-verify established, independent of the path that did it.
#[derive(Default)]
struct Checked {
    /// Every authenticated time (RFC 3161 and integrated times).
    timestamps: Vec<jiff::Timestamp>,
    /// The earliest authenticated Rekor integrated time.
    integrated_time: Option<jiff::Timestamp>,
    /// Whether the tlog entries were verified.
    tlog_verified: bool,
}

impl From<&sigstore_verify::VerificationResult> for Checked {
    fn from(r: &sigstore_verify::VerificationResult) -> Self {
        Checked {
            timestamps: r.verified_timestamps().to_vec(),
            integrated_time: r.integrated_time(),
            tlog_verified: r.tlog_verified(),
        }
    }
}

/// A verifier over a trusted root with no authorities at all: key-signed
/// evidence checked with it passes only if it needs no log or TSA key.
fn empty_verifier() -> Result<sigstore_verify::Verifier, sigstore_verify::Error> {
    let root = sigstore_trust_root::TrustedRoot::from_json(
        r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
    )?;
    sigstore_verify::Verifier::new(&root)
}

/// Checks the signature of a cosign layer that has neither a Rekor entry nor
/// a timestamp, with `key`, the way sigstore-verify's public-key path does.
/// The binding to the image was checked by the caller (the simple-signing
/// payload names the digest; the DSSE statement's subjects include it).
fn verify_unlogged_signature(
    bundle: &Bundle,
    artifact: &Artifact<'_>,
    key: &sigstore_types::DerPublicKey,
) -> Result<(), sigstore_verify::Error> {
    use sigstore_verify::crypto::{KeyAlgorithm, verify_signature};
    let algorithm = KeyAlgorithm::from_spki(key)?;
    let invalid = |e: sigstore_verify::crypto::Error| {
        sigstore_verify::Error::SignatureInvalid(format!("signature verification failed: {e}"))
    };
    match (&bundle.content, artifact) {
        (SignatureContent::MessageSignature(sig), Artifact::Blob(payload)) => {
            let scheme = match &sig.message_digest {
                Some(d) => {
                    let alg = match d.algorithm {
                        HashAlgorithm::Sha2256 => Algorithm::Sha256,
                        HashAlgorithm::Sha2384 => Algorithm::Sha384,
                        HashAlgorithm::Sha2512 => Algorithm::Sha512,
                        other => {
                            return Err(sigstore_verify::Error::UnsupportedBundle(format!(
                                "message digest algorithm {other:?}"
                            )));
                        }
                    };
                    if Digest::compute(alg, payload).bytes() != d.digest.as_bytes() {
                        return Err(sigstore_verify::Error::ArtifactMismatch(
                            "message digest in bundle does not match artifact hash".into(),
                        ));
                    }
                    algorithm.resolve_signing_scheme(d.algorithm)?
                }
                None => algorithm.default_signing_scheme(),
            };
            verify_signature(key, payload, &sig.signature, scheme).map_err(invalid)
        }
        (SignatureContent::DsseEnvelope(env), _) => verify_signature(
            key,
            &env.pae(),
            &env.signature.sig,
            algorithm.default_signing_scheme(),
        )
        .map_err(invalid),
        _ => Err(sigstore_verify::Error::UnsupportedBundle(
            "unsupported signature content for a cosign layer".into(),
        )),
    }
}

fn keyless_signer(
    result: &sigstore_verify::VerificationResult,
    root: &str,
) -> Result<Signer, VerifyError> {
    let fail = |what: &str| {
        VerifyError::Keyless(vec![(
            root.to_owned(),
            sigstore_verify::Error::InvalidBundle(format!("certificate has no {what}")),
        )])
    };
    let subject = result.identity().ok_or_else(|| fail("subject (SAN)"))?;
    let issuer = result.issuer().ok_or_else(|| fail("OIDC issuer"))?;
    let mut claims = BTreeMap::new();
    if let Some(cert) = result.certificate() {
        let c = &cert.ci_claims;
        let g = &c.deprecated_github;
        let pairs: [(&str, &Option<String>); 21] = [
            ("githubWorkflowTrigger", &g.workflow_trigger),
            ("githubWorkflowSHA", &g.workflow_sha),
            ("githubWorkflowName", &g.workflow_name),
            ("githubWorkflowRepository", &g.workflow_repository),
            ("githubWorkflowRef", &g.workflow_ref),
            ("buildSignerURI", &c.build_signer_uri),
            ("buildSignerDigest", &c.build_signer_digest),
            ("runnerEnvironment", &c.runner_environment),
            ("sourceRepositoryURI", &c.source_repository_uri),
            ("sourceRepositoryDigest", &c.source_repository_digest),
            ("sourceRepositoryRef", &c.source_repository_ref),
            (
                "sourceRepositoryIdentifier",
                &c.source_repository_identifier,
            ),
            ("sourceRepositoryOwnerURI", &c.source_repository_owner_uri),
            (
                "sourceRepositoryOwnerIdentifier",
                &c.source_repository_owner_identifier,
            ),
            ("buildConfigURI", &c.build_config_uri),
            ("buildConfigDigest", &c.build_config_digest),
            ("buildTrigger", &c.build_trigger),
            ("runInvocationURI", &c.run_invocation_uri),
            (
                "sourceRepositoryVisibilityAtSigning",
                &c.source_repository_visibility_at_signing,
            ),
            ("deploymentEnvironment", &c.deployment_environment),
            ("tokenSubject", &c.token_subject),
        ];
        for (name, value) in pairs {
            if let Some(v) = value {
                claims.insert(name.to_owned(), v.clone());
            }
        }
    }
    Ok(Signer::Keyless(KeylessSigner {
        issuer: issuer.to_owned(),
        subject: subject.as_str().to_owned(),
        claims,
        trusted_root: root.to_owned(),
    }))
}

fn artifact_digest(d: &Digest) -> Result<ArtifactDigest, VerifyError> {
    let alg = match d.algorithm() {
        Algorithm::Sha256 => HashAlgorithm::Sha2256,
        Algorithm::Sha384 => HashAlgorithm::Sha2384,
        Algorithm::Sha512 => HashAlgorithm::Sha2512,
    };
    ArtifactDigest::new(alg, d.bytes()).map_err(|e| VerifyError::Malformed(e.to_string()))
}

fn describe_subjects(statement: &Statement) -> String {
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
