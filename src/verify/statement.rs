//! in-toto Statements (v0.1 and v1), parsed with limits.
//!
//! The statement is kept whole, as the verified bytes (compact: a parsed
//! JSON tree is about nine times larger), because contracts read any part
//! of it; its envelope fields are checked here: a known `_type`, a
//! non-empty subject list within limits, valid digests, a `predicateType`,
//! and no envelope field given twice. [`Statement::binds`] answers whether
//! it is about a given image digest.

use serde::Deserialize;
use serde_json::Value;

use super::VerifyLimits;
use crate::digest::Digest;

/// in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// in-toto Statement v0.1, which cosign still emits.
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";

/// A parsed in-toto Statement.
#[derive(Debug, Clone)]
pub struct Statement {
    type_: String,
    predicate_type: String,
    subjects: Vec<Subject>,
    raw: Box<[u8]>,
}

/// One statement subject: a name and the digests that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The subject name (for images, usually the repository).
    pub name: String,
    /// The subject's digests in the algorithms this crate understands.
    pub digests: Vec<Digest>,
}

/// Why a payload is not an acceptable statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The payload is not JSON of the statement shape.
    #[error("in-toto statement is not valid JSON of the statement shape: {0}")]
    Malformed(String),
    /// `_type` is not an in-toto Statement type.
    #[error("unsupported in-toto statement type {0:?}")]
    UnknownType(String),
    /// The statement has no subjects.
    #[error("in-toto statement has no subjects")]
    NoSubjects,
    /// Too many subjects.
    #[error("in-toto statement has {count} subjects, more than the limit of {limit}")]
    TooManySubjects {
        /// Subjects found.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A subject carries too many digests.
    #[error("an in-toto subject has {count} digests, more than the limit of {limit}")]
    TooManyDigests {
        /// Digests found.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A subject digest of a known algorithm is malformed.
    #[error("in-toto subject digest is malformed: {0}")]
    BadDigest(String),
    /// `predicateType` is missing or empty.
    #[error("in-toto statement has no predicateType")]
    NoPredicateType,
}

#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "_type")]
    type_: String,
    #[serde(default)]
    subject: Vec<SubjectShape>,
    #[serde(rename = "predicateType", default)]
    predicate_type: String,
}

#[derive(Deserialize)]
struct SubjectShape {
    #[serde(default)]
    name: String,
    #[serde(default)]
    digest: serde_json::Map<String, Value>,
}

impl Statement {
    /// Parses a statement payload, enforcing `limits`.
    pub fn parse(payload: &[u8], limits: &VerifyLimits) -> Result<Self, StatementError> {
        // Straight from the bytes, so that an envelope field given twice
        // (`"subject"` twice) is an error, not "the last one wins".
        let shape: Shape = serde_json::from_slice(payload)
            .map_err(|e| StatementError::Malformed(e.to_string()))?;
        if shape.type_ != STATEMENT_V1 && shape.type_ != STATEMENT_V01 {
            return Err(StatementError::UnknownType(shape.type_));
        }
        if shape.subject.is_empty() {
            return Err(StatementError::NoSubjects);
        }
        if shape.subject.len() > limits.max_subjects {
            return Err(StatementError::TooManySubjects {
                count: shape.subject.len(),
                limit: limits.max_subjects,
            });
        }
        if shape.predicate_type.is_empty() {
            return Err(StatementError::NoPredicateType);
        }
        let mut subjects = Vec::with_capacity(shape.subject.len());
        for s in shape.subject {
            if s.digest.len() > limits.max_digests_per_subject {
                return Err(StatementError::TooManyDigests {
                    count: s.digest.len(),
                    limit: limits.max_digests_per_subject,
                });
            }
            let mut digests = Vec::new();
            for (alg, value) in &s.digest {
                // Only sha256/384/512 can name an OCI image; other algorithms
                // (sha1, gitCommit, …) are legal in in-toto and ignored here.
                if !matches!(alg.as_str(), "sha256" | "sha384" | "sha512") {
                    continue;
                }
                let hex = value
                    .as_str()
                    .ok_or_else(|| StatementError::BadDigest(format!("{alg} is not a string")))?;
                let digest = Digest::from_parts(alg, hex)
                    .map_err(|e| StatementError::BadDigest(e.to_string()))?;
                digests.push(digest);
            }
            subjects.push(Subject {
                name: s.name,
                digests,
            });
        }
        Ok(Statement {
            type_: shape.type_,
            predicate_type: shape.predicate_type,
            subjects,
            raw: payload.into(),
        })
    }

    /// Whether any subject names `digest`.
    pub fn binds(&self, digest: &Digest) -> bool {
        self.subjects.iter().any(|s| s.digests.contains(digest))
    }

    /// The statement `_type`.
    pub fn statement_type(&self) -> &str {
        &self.type_
    }

    /// The `predicateType` URI.
    pub fn predicate_type(&self) -> &str {
        &self.predicate_type
    }

    /// The subjects.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    /// The whole statement, as the bytes that were verified.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a";

    fn stmt(subjects: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "_type": STATEMENT_V1,
            "subject": subjects,
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"x": 1}
        }))
        .unwrap()
    }

    #[test]
    fn parses_v1_and_binds_its_subject_digest() {
        let s = Statement::parse(
            &stmt(serde_json::json!([{"name": "app", "digest": {"sha256": HEX, "sha1": "abc"}}])),
            &VerifyLimits::default(),
        )
        .unwrap();
        assert_eq!(s.predicate_type(), "https://slsa.dev/provenance/v1");
        assert!(s.binds(&format!("sha256:{HEX}").parse().unwrap()));
        assert!(!s.binds(&Digest::sha256_of(b"other")));
        let whole: Value = serde_json::from_slice(s.raw()).unwrap();
        assert_eq!(whole["predicate"]["x"], 1);
    }

    #[test]
    fn accepts_v01() {
        let mut v: Value = serde_json::from_slice(&stmt(
            serde_json::json!([{"name": "a", "digest": {"sha256": HEX}}]),
        ))
        .unwrap();
        v["_type"] = STATEMENT_V01.into();
        assert!(
            Statement::parse(&serde_json::to_vec(&v).unwrap(), &VerifyLimits::default()).is_ok()
        );
    }

    #[test]
    fn rejects_bad_statements() {
        let limits = VerifyLimits::default();
        assert!(matches!(
            Statement::parse(b"{not json", &limits),
            Err(StatementError::Malformed(_))
        ));
        assert!(matches!(
            Statement::parse(&stmt(serde_json::json!([])), &limits),
            Err(StatementError::NoSubjects)
        ));
        assert!(matches!(
            Statement::parse(
                &stmt(serde_json::json!([{"name": "a", "digest": {"sha256": "ABC"}}])),
                &limits
            ),
            Err(StatementError::BadDigest(_))
        ));
        let mut v: Value = serde_json::from_slice(&stmt(
            serde_json::json!([{"name": "a", "digest": {"sha256": HEX}}]),
        ))
        .unwrap();
        v["_type"] = "https://example.com/Statement".into();
        assert!(matches!(
            Statement::parse(&serde_json::to_vec(&v).unwrap(), &limits),
            Err(StatementError::UnknownType(_))
        ));
    }

    #[test]
    fn enforces_subject_limits() {
        let limits = VerifyLimits {
            max_subjects: 2,
            ..VerifyLimits::default()
        };
        let many: Vec<Value> = (0..3)
            .map(|i| serde_json::json!({"name": format!("s{i}"), "digest": {"sha256": HEX}}))
            .collect();
        assert!(matches!(
            Statement::parse(&stmt(Value::Array(many)), &limits),
            Err(StatementError::TooManySubjects { count: 3, limit: 2 })
        ));
    }
}
