//! Errors of RFC 3161 timestamp verification.

use thiserror::Error;

/// Why a timestamp token did not verify.
#[derive(Error, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The token, or a structure inside it, is not valid DER of the expected shape.
    #[error("failed to parse timestamp token: {0}")]
    Parse(String),

    /// The token carries no `TSTInfo`.
    #[error("timestamp token has no TSTInfo")]
    NoTstInfo,

    /// A digest inside the token does not match what it must commit to.
    #[error("timestamp hash mismatch: token commits to {expected}, computed {actual}")]
    HashMismatch {
        /// The hex digest the token commits to.
        expected: String,
        /// The hex digest computed locally.
        actual: String,
    },

    /// The CMS signature, or the signer's identity, is not acceptable.
    #[error("timestamp signature verification failed: {0}")]
    SignatureVerificationError(String),

    /// The signing certificate does not chain to the authority's root, is not
    /// valid at the signed time, or lacks the timeStamping usage.
    #[error("TSA certificate validation failed: {0}")]
    CertificateValidationError(String),

    /// The token is authentic, but its signed time falls outside the validity
    /// window of the authority that signed it.
    #[error(
        "timestamp {time} is outside the validity period of the timestamp authority that signed it"
    )]
    TimestampOutsideValidity {
        /// The authenticated signed time of the token.
        time: jiff::Timestamp,
    },
}

/// Result of timestamp verification.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn parse(context: &str, e: impl std::fmt::Display) -> Self {
        Error::Parse(format!("{context}: {e}"))
    }
}
