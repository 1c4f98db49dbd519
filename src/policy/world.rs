//! Does an authority trust the world?
//!
//! Public OIDC issuers (GitHub Actions, GitLab.com, Google accounts, …) sign
//! identities for anyone who builds in their own repository. A keyless
//! authority that admits every tenant of such an issuer lets an attacker
//! pass by building their image in a public repository of their own. That
//! is fine for an `audit` demonstration and never for `enforce`.
//!
//! The check is by probe, not by pattern reading: provgate builds the
//! verified signer facts a stranger's build would carry (an owner nobody
//! configures, with every Fulcio claim set as the issuer sets it) and asks
//! the authority whether it admits them. An organisation-scoped subject
//! (`https://github\.com/acme/.+`) or a `sourceRepositoryOwnerURI` claim
//! refuses the stranger; `https://github\.com/.+` admits them.

use std::collections::BTreeMap;

use crate::verify::{Authority, AuthorityKind, KeylessIdentity};

/// The owner of the stranger's repository in probes.
const STRANGER: &str = "provgate-stranger-probe";

/// A public issuer and how a stranger's signer facts look there.
struct Probe {
    name: &'static str,
    issuer: &'static str,
    subject: String,
    claims: BTreeMap<String, String>,
}

fn probes() -> Vec<Probe> {
    let gh_repo = format!("https://github.com/{STRANGER}/app");
    let gh_subject = format!("{gh_repo}/.github/workflows/build.yml@refs/heads/main");
    let gh_claims: BTreeMap<String, String> = [
        ("githubWorkflowTrigger", "push".to_owned()),
        ("githubWorkflowSHA", "0".repeat(40)),
        ("githubWorkflowName", "build".to_owned()),
        ("githubWorkflowRepository", format!("{STRANGER}/app")),
        ("githubWorkflowRef", "refs/heads/main".to_owned()),
        ("buildSignerURI", gh_subject.clone()),
        ("buildSignerDigest", "0".repeat(40)),
        ("runnerEnvironment", "github-hosted".to_owned()),
        ("sourceRepositoryURI", gh_repo.clone()),
        ("sourceRepositoryDigest", "0".repeat(40)),
        ("sourceRepositoryRef", "refs/heads/main".to_owned()),
        ("sourceRepositoryIdentifier", "999999999".to_owned()),
        (
            "sourceRepositoryOwnerURI",
            format!("https://github.com/{STRANGER}"),
        ),
        ("sourceRepositoryOwnerIdentifier", "999999998".to_owned()),
        ("buildConfigURI", gh_subject.clone()),
        ("buildConfigDigest", "0".repeat(40)),
        ("buildTrigger", "push".to_owned()),
        (
            "runInvocationURI",
            format!("{gh_repo}/actions/runs/1/attempts/1"),
        ),
        ("sourceRepositoryVisibilityAtSigning", "public".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let gl_repo = format!("https://gitlab.com/{STRANGER}/app");
    let gl_subject = format!("{gl_repo}//.gitlab-ci.yml@refs/heads/main");
    let gl_claims: BTreeMap<String, String> = [
        ("buildSignerURI", gl_subject.clone()),
        ("buildSignerDigest", "0".repeat(40)),
        ("runnerEnvironment", "gitlab-hosted".to_owned()),
        ("sourceRepositoryURI", gl_repo.clone()),
        ("sourceRepositoryDigest", "0".repeat(40)),
        ("sourceRepositoryRef", "refs/heads/main".to_owned()),
        ("sourceRepositoryIdentifier", "999999999".to_owned()),
        (
            "sourceRepositoryOwnerURI",
            format!("https://gitlab.com/{STRANGER}"),
        ),
        ("sourceRepositoryOwnerIdentifier", "999999998".to_owned()),
        ("buildConfigURI", gl_subject.clone()),
        ("buildConfigDigest", "0".repeat(40)),
        ("buildTrigger", "push".to_owned()),
        ("runInvocationURI", format!("{gl_repo}/-/jobs/1")),
        ("sourceRepositoryVisibilityAtSigning", "public".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let email = format!("{STRANGER}@example.com");
    let mut out = vec![
        Probe {
            name: "GitHub Actions",
            issuer: "https://token.actions.githubusercontent.com",
            subject: gh_subject,
            claims: gh_claims,
        },
        Probe {
            name: "GitLab.com CI",
            issuer: "https://gitlab.com",
            subject: gl_subject,
            claims: gl_claims,
        },
    ];
    for (name, issuer) in [
        (
            "Sigstore's public OAuth",
            "https://oauth2.sigstore.dev/auth",
        ),
        ("Google accounts", "https://accounts.google.com"),
        ("GitHub OAuth", "https://github.com/login/oauth"),
        ("Microsoft accounts", "https://login.microsoftonline.com"),
    ] {
        out.push(Probe {
            name,
            issuer,
            subject: email.clone(),
            claims: BTreeMap::new(),
        });
    }
    out
}

fn admits(id: &KeylessIdentity, p: &Probe) -> bool {
    id.issuer.matches(p.issuer)
        && id.subject.matches(&p.subject)
        && id
            .claims
            .iter()
            .all(|(claim, m)| p.claims.get(claim).is_some_and(|v| m.matches(v)))
}

/// `Some(issuer name)` when the authority admits a stranger's signature
/// from a public issuer: it trusts everyone who can build there.
pub fn trusts_any_tenant(authority: &Authority) -> Option<&'static str> {
    let AuthorityKind::Keyless(id) = &authority.kind else {
        return None;
    };
    probes().into_iter().find(|p| admits(id, p)).map(|p| p.name)
}

/// The fix to name when an authority trusts the world.
pub const WORLD_TRUST_FIX: &str = "scope the authority to your organisation: a subject such as {regex: \"https://github\\\\.com/ACME/.+/\\\\.github/workflows/.+\"}, or the claim sourceRepositoryOwnerURI: https://github.com/ACME (set it in the binding's `authorities.<contract>`)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Matcher;

    fn keyless(subject: Matcher, claims: &[(&str, Matcher)]) -> Authority {
        Authority {
            name: "a".into(),
            kind: AuthorityKind::Keyless(KeylessIdentity {
                issuer: Matcher::exact("issuer", "https://token.actions.githubusercontent.com")
                    .unwrap(),
                subject,
                claims: claims
                    .iter()
                    .map(|(k, m)| ((*k).to_owned(), m.clone()))
                    .collect(),
                trusted_root: None,
            }),
            require_tlog: true,
        }
    }

    #[test]
    fn any_github_workflow_trusts_the_world() {
        let a = keyless(
            Matcher::regex("s", r"https://github\.com/.+/\.github/workflows/.+").unwrap(),
            &[],
        );
        assert_eq!(trusts_any_tenant(&a), Some("GitHub Actions"));
        // A claim that does not restrict the tenant changes nothing.
        let a = keyless(
            Matcher::regex("s", r"https://github\.com/.+").unwrap(),
            &[(
                "runnerEnvironment",
                Matcher::exact("c", "github-hosted").unwrap(),
            )],
        );
        assert_eq!(trusts_any_tenant(&a), Some("GitHub Actions"));
    }

    #[test]
    fn an_organisation_scoped_subject_or_owner_claim_does_not() {
        let a = keyless(
            Matcher::regex("s", r"https://github\.com/acme/.+/\.github/workflows/.+").unwrap(),
            &[],
        );
        assert_eq!(trusts_any_tenant(&a), None);
        let a = keyless(
            Matcher::regex("s", r"https://github\.com/.+").unwrap(),
            &[(
                "sourceRepositoryOwnerURI",
                Matcher::exact("c", "https://github.com/acme").unwrap(),
            )],
        );
        assert_eq!(trusts_any_tenant(&a), None);
        // A claim the stranger's certificate does not carry restricts too.
        let a = keyless(
            Matcher::regex("s", r".+").unwrap(),
            &[("deploymentEnvironment", Matcher::regex("c", ".+").unwrap())],
        );
        assert_eq!(trusts_any_tenant(&a), None);
    }

    #[test]
    fn any_email_at_a_public_issuer_trusts_the_world() {
        let a = Authority {
            name: "a".into(),
            kind: AuthorityKind::Keyless(KeylessIdentity {
                issuer: Matcher::regex("issuer", ".+").unwrap(),
                subject: Matcher::regex("subject", ".+@.+").unwrap(),
                claims: BTreeMap::new(),
                trusted_root: None,
            }),
            require_tlog: true,
        };
        assert!(trusts_any_tenant(&a).is_some());
        let a = Authority {
            name: "a".into(),
            kind: AuthorityKind::Keyless(KeylessIdentity {
                issuer: Matcher::exact("issuer", "https://accounts.google.com").unwrap(),
                subject: Matcher::regex("subject", r".+@acme\.com").unwrap(),
                claims: BTreeMap::new(),
                trusted_root: None,
            }),
            require_tlog: true,
        };
        assert_eq!(trusts_any_tenant(&a), None);
    }
}
