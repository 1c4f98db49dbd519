//! Content digests: validated once, never a free string afterwards.
//!
//! A [`Digest`] is `algorithm:hex` where the algorithm is sha256, sha384 or
//! sha512 and the hex part is lowercase with exactly the length of that
//! algorithm's output. Everything that names content (images, evidence,
//! blobs) uses this type, so a malformed or upper-case digest from a registry
//! or an AdmissionReview is rejected at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A digest algorithm allowed in OCI and in-toto subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the OCI default.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears in digests and in-toto subjects.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// A validated content digest such as `sha256:00c6…1f0a`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    /// Shared: digests are cloned into every cache key and decision, and
    /// a clone should not allocate.
    hex: std::sync::Arc<str>,
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid digest {input:?}: {reason} (expected sha256:<64 lowercase hex>, sha384:<96> or sha512:<128>)"
)]
pub struct DigestError {
    input: String,
    reason: &'static str,
}

impl Digest {
    /// Computes the SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(bytes)).into(),
        }
    }

    /// Computes the digest of `bytes` with `algorithm`.
    pub fn compute(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let hex = match algorithm {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sha384 => hex::encode(sha2::Sha384::digest(bytes)),
            Algorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        Digest {
            algorithm,
            hex: hex.into(),
        }
    }

    /// Builds a digest from an algorithm name and a hex value, as found in
    /// in-toto subjects (`{"sha256": "…"}`).
    pub fn from_parts(algorithm: &str, hex: &str) -> Result<Self, DigestError> {
        format!("{algorithm}:{hex}").parse()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex value, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The raw digest bytes.
    pub fn bytes(&self) -> Vec<u8> {
        // The hex was validated on construction, so decoding cannot fail; an
        // empty vector would only ever fail a comparison, never pass one.
        hex::decode(self.hex.as_bytes()).unwrap_or_default()
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Digest::compute(self.algorithm, bytes) == *self
    }

    /// The referrers tag-schema tag for this digest: `sha256-<hex>`.
    pub fn tag_schema(&self) -> String {
        format!("{}-{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DigestError {
            input: s.chars().take(200).collect(),
            reason,
        };
        let (alg, hex) = s.split_once(':').ok_or_else(|| err("missing ':'"))?;
        let algorithm = Algorithm::from_name(alg).ok_or_else(|| err("unsupported algorithm"))?;
        if hex.len() != algorithm.hex_len() {
            return Err(err("wrong length"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(err("not lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.into(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a";

    #[test]
    fn parses_and_round_trips() {
        let d: Digest = D.parse().unwrap();
        assert_eq!(d.to_string(), D);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.tag_schema(), D.replace(':', "-"));
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "md5:00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a",
            "sha256:00C669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a",
            "sha256:00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0",
            "sha256:00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a0",
            "sha256:zzc669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a",
            "sha512:00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn computes_and_matches() {
        let d = Digest::sha256_of(b"hello");
        assert!(d.matches(b"hello"));
        assert!(!d.matches(b"hellO"));
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(Digest::compute(Algorithm::Sha512, b"x").hex().len(), 128);
    }
}
