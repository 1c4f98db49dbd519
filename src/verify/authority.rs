//! Who may sign: identity matchers and authorities.
//!
//! An [`Authority`] is one trusted signer of a contract: a public key, or a
//! keyless identity (OIDC issuer + certificate subject, optionally Fulcio CI
//! claims, under a named trusted root). [`Authority::admits`] is checked
//! against the *verified* signer facts of a piece of evidence.
//!
//! Two bypass classes are closed here by construction:
//! - every regex is anchored (`^(?:…)$`) whatever the author wrote, so
//!   `.*github.com/org/repo.*` cannot match `evilorg/repo-github.com/org/repo`;
//! - an empty matcher or an authority with no constraint is a configuration
//!   error, never "match anything".
//!
//! "Who may sign" end to end: a contract lists its authorities in
//! `contract.yaml` ([`crate::policy::contract`], as `AuthoritySpec`); a
//! binding may replace a contract's list (`bindings[].authorities`,
//! [`crate::bind`]); config compiles the effective list against the trust
//! store into these [`Authority`] values (`crate::config`, refusing a
//! world-trusting one under `enforce`); and the engine's judge stage keeps,
//! for each contract, only the verified evidence one of them admits
//! (`crate::engine`'s `admit_all`), so a contract's Rego never sees
//! evidence from anyone else.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::verified::{EvidenceFacts, Signer};

/// A string constraint: an exact value or an anchored regular expression.
#[derive(Clone)]
pub enum Matcher {
    /// The value must equal this string.
    Exact(String),
    /// The value must match this regex over its whole length.
    Regex {
        /// The pattern as the author wrote it.
        pattern: String,
        /// The compiled, anchored form.
        regex: regex::Regex,
    },
}

/// Why an identity constraint cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// An empty string or pattern would match too much (or nothing useful).
    #[error("{field}: an empty constraint is not allowed (it would not restrict the signer)")]
    Empty {
        /// Which field.
        field: String,
    },
    /// The regex does not compile.
    #[error("{field}: invalid regular expression {pattern:?}: {reason}")]
    BadRegex {
        /// Which field.
        field: String,
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// A Fulcio claim name this crate does not know.
    #[error(
        "unknown Fulcio claim {0:?}; known claims: {known}",
        known = CLAIMS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    )]
    UnknownClaim(String),
    /// Neither `key` nor `keyless` given, or both.
    #[error("authority {0:?} must have exactly one of `key` or `keyless`")]
    Shape(String),
}

impl Matcher {
    /// An exact matcher; the value must not be empty.
    pub fn exact(field: &str, value: &str) -> Result<Self, IdentityError> {
        if value.is_empty() {
            return Err(IdentityError::Empty {
                field: field.into(),
            });
        }
        Ok(Matcher::Exact(value.to_owned()))
    }

    /// A regex matcher, anchored at both ends whatever the pattern says.
    pub fn regex(field: &str, pattern: &str) -> Result<Self, IdentityError> {
        let core = pattern.strip_prefix('^').unwrap_or(pattern);
        let core = core.strip_suffix('$').unwrap_or(core);
        if core.is_empty() {
            return Err(IdentityError::Empty {
                field: field.into(),
            });
        }
        let anchored = format!("^(?:{core})$");
        let regex = regex::Regex::new(&anchored).map_err(|e| IdentityError::BadRegex {
            field: field.into(),
            pattern: pattern.into(),
            reason: e.to_string(),
        })?;
        Ok(Matcher::Regex {
            pattern: pattern.into(),
            regex,
        })
    }

    /// Builds a matcher from its configuration form.
    pub fn from_spec(field: &str, spec: &MatcherSpec) -> Result<Self, IdentityError> {
        match spec {
            MatcherSpec::Exact(v) => Matcher::exact(field, v),
            MatcherSpec::Regex { regex } => Matcher::regex(field, regex),
        }
    }

    /// Whether `value` satisfies the constraint.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(v) => v == value,
            Matcher::Regex { regex, .. } => regex.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(v) => write!(f, "{v:?}"),
            Matcher::Regex { regex, .. } => write!(f, "/{}/", regex.as_str()),
        }
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The configuration form of a [`Matcher`]: a plain string is exact,
/// `{regex: "…"}` is an anchored regex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum MatcherSpec {
    /// Exact value.
    Exact(String),
    /// Anchored regex.
    Regex {
        /// The pattern; `^` and `$` are implied.
        regex: String,
    },
}

/// Fulcio CI claims by the names of Fulcio's OID documentation, with their OIDs
/// under `1.3.6.1.4.1.57264.1`.
pub const CLAIMS: &[(&str, &str)] = &[
    ("githubWorkflowTrigger", ".2"),
    ("githubWorkflowSHA", ".3"),
    ("githubWorkflowName", ".4"),
    ("githubWorkflowRepository", ".5"),
    ("githubWorkflowRef", ".6"),
    ("buildSignerURI", ".9"),
    ("buildSignerDigest", ".10"),
    ("runnerEnvironment", ".11"),
    ("sourceRepositoryURI", ".12"),
    ("sourceRepositoryDigest", ".13"),
    ("sourceRepositoryRef", ".14"),
    ("sourceRepositoryIdentifier", ".15"),
    ("sourceRepositoryOwnerURI", ".16"),
    ("sourceRepositoryOwnerIdentifier", ".17"),
    ("buildConfigURI", ".18"),
    ("buildConfigDigest", ".19"),
    ("buildTrigger", ".20"),
    ("runInvocationURI", ".21"),
    ("sourceRepositoryVisibilityAtSigning", ".22"),
    ("deploymentEnvironment", ".23"),
    ("tokenSubject", ".24"),
];

/// A keyless identity constraint.
#[derive(Debug, Clone)]
pub struct KeylessIdentity {
    /// OIDC issuer of the signing certificate.
    pub issuer: Matcher,
    /// Certificate subject (SAN: URI or e-mail).
    pub subject: Matcher,
    /// Fulcio CI claims that must match, by claim name.
    pub claims: BTreeMap<String, Matcher>,
    /// The trusted root the certificate must chain to; `None` means any
    /// configured root.
    pub trusted_root: Option<String>,
}

/// One trusted signer.
#[derive(Debug, Clone)]
pub struct Authority {
    /// A name for messages and `--explain`.
    pub name: String,
    /// Key or keyless.
    pub kind: AuthorityKind,
    /// Whether the evidence must carry a verified transparency-log entry.
    pub require_tlog: bool,
}

/// The two kinds of authority.
#[derive(Debug, Clone)]
pub enum AuthorityKind {
    /// A public key, by key id (hex SHA-256 of its SPKI DER).
    Key {
        /// The key's id.
        key_id: String,
        /// The configured name of the key, for messages.
        key_name: String,
    },
    /// A keyless identity.
    Keyless(KeylessIdentity),
}

/// Why an authority does not admit a piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAdmitted(pub String);

impl fmt::Display for NotAdmitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Authority {
    /// Whether this authority admits evidence with these verified facts.
    pub fn admits(&self, facts: &EvidenceFacts) -> Result<(), NotAdmitted> {
        if self.require_tlog && !facts.tlog_verified() {
            return Err(NotAdmitted(format!(
                "authority {:?} requires a verified transparency-log entry and the evidence has none",
                self.name
            )));
        }
        match (&self.kind, facts.signer()) {
            (AuthorityKind::Key { key_id, key_name }, Signer::Key { key_id: got, .. }) => {
                if key_id == got {
                    Ok(())
                } else {
                    Err(NotAdmitted(format!(
                        "signed by key {} which is not key {key_name:?} of authority {:?}",
                        short(got),
                        self.name
                    )))
                }
            }
            (AuthorityKind::Keyless(id), Signer::Keyless(k)) => {
                if let Some(root) = &id.trusted_root
                    && root != &k.trusted_root
                {
                    return Err(NotAdmitted(format!(
                        "certificate chains to trusted root {:?}, authority {:?} requires {root:?}",
                        k.trusted_root, self.name
                    )));
                }
                if !id.issuer.matches(&k.issuer) {
                    return Err(NotAdmitted(format!(
                        "issuer {:?} does not match {} of authority {:?}",
                        k.issuer, id.issuer, self.name
                    )));
                }
                if !id.subject.matches(&k.subject) {
                    return Err(NotAdmitted(format!(
                        "subject {:?} does not match {} of authority {:?}",
                        k.subject, id.subject, self.name
                    )));
                }
                for (claim, matcher) in &id.claims {
                    match k.claims.get(claim) {
                        Some(v) if matcher.matches(v) => {}
                        Some(v) => {
                            return Err(NotAdmitted(format!(
                                "claim {claim} {v:?} does not match {matcher} of authority {:?}",
                                self.name
                            )));
                        }
                        None => {
                            return Err(NotAdmitted(format!(
                                "certificate has no {claim} claim, required by authority {:?}",
                                self.name
                            )));
                        }
                    }
                }
                Ok(())
            }
            (AuthorityKind::Key { .. }, Signer::Keyless(k)) => Err(NotAdmitted(format!(
                "signed keyless by {:?} ({}), authority {:?} is a key",
                k.subject, k.issuer, self.name
            ))),
            (AuthorityKind::Keyless(_), Signer::Key { key_id, .. }) => Err(NotAdmitted(format!(
                "signed by key {}, authority {:?} is keyless",
                short(key_id),
                self.name
            ))),
        }
    }
}

/// Validates a claim name against [`CLAIMS`].
pub fn check_claim_name(name: &str) -> Result<(), IdentityError> {
    if CLAIMS.iter().any(|(n, _)| *n == name) {
        Ok(())
    } else {
        Err(IdentityError::UnknownClaim(name.into()))
    }
}

fn short(key_id: &str) -> String {
    key_id.chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_even_when_author_forgets() {
        let m = Matcher::regex("subject", "https://github.com/org/repo/.*").unwrap();
        assert!(m.matches("https://github.com/org/repo/.github/workflows/b.yml@refs/heads/main"));
        assert!(!m.matches("https://evil.example/https://github.com/org/repo/x"));
        let m = Matcher::regex("subject", "https://github\\.com/org/repo").unwrap();
        assert!(!m.matches("https://github.com/org/repo-evil"));
        assert!(!m.matches("xhttps://github.com/org/repo"));
    }

    #[test]
    fn explicit_anchors_are_not_doubled() {
        let m = Matcher::regex("s", "^a|b$").unwrap();
        // `^a|b$` would match "ab…" unanchored on the right; anchoring the
        // whole alternation makes it exactly "a" or "b".
        assert!(m.matches("a"));
        assert!(m.matches("b"));
        assert!(!m.matches("ax"));
        assert!(!m.matches("xb"));
    }

    #[test]
    fn empty_constraints_are_errors() {
        assert!(matches!(
            Matcher::exact("issuer", ""),
            Err(IdentityError::Empty { .. })
        ));
        assert!(matches!(
            Matcher::regex("subject", ""),
            Err(IdentityError::Empty { .. })
        ));
        assert!(matches!(
            Matcher::regex("subject", "^$"),
            Err(IdentityError::Empty { .. })
        ));
        assert!(matches!(
            Matcher::regex("subject", "(unclosed"),
            Err(IdentityError::BadRegex { .. })
        ));
    }

    #[test]
    fn claim_names_are_checked() {
        assert!(check_claim_name("sourceRepositoryURI").is_ok());
        assert!(check_claim_name("repo").is_err());
    }
}
