//! Why a piece of evidence did not verify: one variant per check, each
//! naming what failed and, where it helps, what to do about it.

use super::StatementError;
use super::{MAX_FUTURE_SKEW, TimeKind};

use super::IN_TOTO_PAYLOAD_TYPE;
use crate::digest::Digest;

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
