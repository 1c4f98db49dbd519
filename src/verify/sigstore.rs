//! Steps 4 and 5: sigstore-verify, under each trusted root (keyless) or
//! each trusted key, and the facts it established: signer, trusted time
//! and transparency-log entries.

use std::collections::BTreeMap;

use sigstore_types::{
    Artifact, Bundle, HashAlgorithm, SignatureContent, bundle::VerificationMaterialContent,
};

use super::TimeKind;
use super::{
    EvidenceFacts, EvidenceSource, KeylessSigner, Signer, TimeSource, TlogFact, TrustedTime,
};
use super::{NamedRoot, TrustedKey};

use super::binding::describe_subjects;
use super::{KeyFailure, Verifier, VerifyError, times};
use crate::digest::{Algorithm, Digest};

impl Verifier {
    /// (4) sigstore-verify and (5) facts.
    pub(super) fn sigstore(
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
                self.keyless(bundle, &artifact, has_tlog)?
            }
            VerificationMaterialContent::PublicKey(hint) => {
                self.keyed(bundle, &artifact, &hint.hint, has_tlog, &subject, &format)?
            }
            _ => return Err(VerifyError::UnsupportedMaterial),
        };
        let time = trusted_time(bundle, &result)?;
        Ok(EvidenceFacts::new(
            signer,
            time,
            tlog_facts(bundle),
            result.tlog_verified,
            Digest::sha256_of(evidence_bytes),
            subject,
            source,
            format,
        ))
    }

    /// A certificate-signed bundle, under each trusted root that may vouch
    /// for it: the first root that verifies it names the signer.
    fn keyless(
        &self,
        bundle: &Bundle,
        artifact: &Artifact<'_>,
        has_tlog: bool,
    ) -> Result<(Signer, Checked), VerifyError> {
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
        Ok((signer, Checked::from(&result)))
    }

    /// A key-signed bundle, under each trusted key (the bundle's key hint
    /// only orders them). A cosign layer with neither a log entry nor a
    /// timestamp has only its signature checked.
    fn keyed(
        &self,
        bundle: &Bundle,
        artifact: &Artifact<'_>,
        hint: &str,
        has_tlog: bool,
        subject: &Digest,
        format: &str,
    ) -> Result<(Signer, Checked), VerifyError> {
        let keys = self.trust.keys();
        if keys.is_empty() {
            return Err(VerifyError::Key(KeyFailure::NoKeys));
        }
        // The hint is unauthenticated: it only orders the candidates.
        let mut ordered: Vec<&TrustedKey> = keys.iter().collect();
        ordered.sort_by_key(|k| k.key_id() != hint && k.name() != hint);
        // Key-signed evidence with neither a log entry nor a
        // timestamp (a cosign layer signed with
        // `--tlog-upload=false`, a DSSE bundle such as a provgate
        // VSA) carries no time
        // evidence, which sigstore-verify refuses outright. Only its
        // signature can be checked; the facts then say "no tlog, no
        // time", and authorities require a tlog unless they opt out.
        let unlogged_layer = !has_tlog
            && (is_cosign_layer(format)
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
            if !statement.binds(subject) {
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
                match verify_unlogged_signature(bundle, artifact, key.der()) {
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
            let mut policy = sigstore_verify::PublicKeyVerificationPolicy::new(key.der().clone());
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
        Ok((
            Signer::Key {
                key_id: key.key_id().to_owned(),
                key_name: key.name().to_owned(),
            },
            checked,
        ))
    }
}

/// The trusted time of a verified bundle: its earliest RFC 3161 timestamp,
/// else its Rekor integrated time, else none. No authenticated time may lie
/// in the future.
fn trusted_time(bundle: &Bundle, result: &Checked) -> Result<TrustedTime, VerifyError> {
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
    Ok(time)
}

/// The bundle's transparency-log entries, as facts.
fn tlog_facts(bundle: &Bundle) -> Vec<TlogFact> {
    bundle
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
        .collect()
}

/// The format of evidence converted from a cosign `.sig` layer.
pub(super) const COSIGN_SIG_FORMAT: &str = "cosign-sig";
/// The format of evidence converted from a cosign `.att` layer.
pub(super) const COSIGN_ATT_FORMAT: &str = "cosign-att";

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
