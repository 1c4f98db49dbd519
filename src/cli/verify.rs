//! `provgate verify`: verify one bundle offline and print what was verified.
//!
//! Who may have signed is never left open: the command needs a certificate
//! identity *and* an OIDC issuer (exact or regex), or `--key`, as cosign
//! does. Accepting any signer takes an explicit `--certificate-identity-regexp
//! '.*' --certificate-oidc-issuer-regexp '.*'`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, Exit, Output, read_file};
use crate::digest::Digest;
use crate::verify::{
    ArtifactInput, Authority, AuthorityKind, KeylessIdentity, Matcher, NotAdmitted, TrustStore,
    Verifier, VerifyLimits,
};

/// Arguments of `provgate verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The Sigstore bundle (JSON).
    #[arg(long)]
    bundle: PathBuf,
    /// Extra trusted_root.json files, as PATH or NAME=PATH (repeatable).
    #[arg(long = "trusted-root", value_name = "[NAME=]PATH")]
    trusted_roots: Vec<String>,
    /// Do not trust the embedded Sigstore public-good root.
    #[arg(long)]
    no_public_good: bool,
    /// Trusted PEM public keys (repeatable).
    #[arg(long = "key", value_name = "PATH")]
    keys: Vec<PathBuf>,
    /// Required certificate subject (exact).
    #[arg(long, conflicts_with = "certificate_identity_regexp")]
    certificate_identity: Option<String>,
    /// Required certificate subject (regex, anchored at both ends).
    #[arg(long)]
    certificate_identity_regexp: Option<String>,
    /// Required OIDC issuer (exact).
    #[arg(long, conflicts_with = "certificate_oidc_issuer_regexp")]
    certificate_oidc_issuer: Option<String>,
    /// Required OIDC issuer (regex, anchored at both ends).
    #[arg(long)]
    certificate_oidc_issuer_regexp: Option<String>,
    /// Accept key-signed evidence without a transparency-log entry (e.g.
    /// cosign `--tlog-upload=false`, provgate VSAs). Keyless evidence still
    /// needs an entry whenever its trusted root lists a log.
    #[arg(long)]
    allow_no_tlog: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// The artifact file, or its digest (`sha256:<hex>`; for attestations,
    /// the image digest the statement must name).
    artifact: String,
}

/// Runs `provgate verify`.
pub fn run(args: VerifyArgs) -> Result<Exit, CliError> {
    // Usage first: who may have signed, before any file is read.
    let keyless = keyless_authority(&args)?;
    let trust = trust_store(&args)?;

    let authorities: Vec<Authority> = keyless
        .into_iter()
        .chain(trust.keys().iter().map(|key| Authority {
            name: format!("--key {}", key.name()),
            kind: AuthorityKind::Key {
                key_id: key.key_id().to_owned(),
                key_name: key.name().to_owned(),
            },
            require_tlog: !args.allow_no_tlog,
        }))
        .collect();

    let verifier = Verifier::new(Arc::new(trust), VerifyLimits::default());
    let bundle = read_file(&args.bundle)?;
    let path = PathBuf::from(&args.artifact);
    let bytes;
    let digest;
    let artifact = if path.is_file() {
        bytes = read_file(&path)?;
        ArtifactInput::Bytes(&bytes)
    } else {
        digest = args
            .artifact
            .parse::<Digest>()
            .map_err(|e| CliError::new("ARTIFACT", e))?;
        ArtifactInput::Digest(&digest)
    };
    let (facts, statement) = match verifier.verify_artifact(&bundle, artifact) {
        Ok(v) => v,
        Err(e) => {
            errln!("FAILED: {e}");
            return Ok(Exit::Denied);
        }
    };
    // Admitted when one authority admits; otherwise every reason is told.
    let admitted = match authorities
        .iter()
        .map(|a| a.admits(&facts))
        .collect::<Vec<_>>()
    {
        results if results.iter().any(Result::is_ok) => Ok(()),
        results => Err(NotAdmitted(
            results
                .into_iter()
                .filter_map(Result::err)
                .map(|e| e.0)
                .collect::<Vec<_>>()
                .join("; "),
        )),
    };
    match args.output {
        Output::Json => {
            let out = serde_json::json!({
                "verified": admitted.is_ok(),
                "reason": admitted.as_ref().err().map(|e| e.to_string()),
                "facts": facts,
                "predicateType": statement.as_ref().map(|s| s.predicate_type()),
                "statement": statement
                    .as_ref()
                    .and_then(|s| serde_json::from_slice::<serde_json::Value>(s.raw()).ok()),
            });
            outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Output::Table => {
            match &admitted {
                Ok(()) => outln!("VERIFIED"),
                Err(e) => outln!("REJECTED: {e}"),
            }
            outln!("  format:    {}", facts.format());
            outln!(
                "  signer:    {}",
                crate::verify::describe_signer(facts.signer())
            );
            outln!(
                "  time:      {}",
                crate::verify::describe_time(facts.time())
            );
            for t in facts.tlog() {
                outln!(
                    "  tlog:      {} index {} (log {})",
                    t.kind,
                    t.log_index,
                    &t.log_id[..16.min(t.log_id.len())]
                );
            }
            if let Some(s) = &statement {
                outln!("  predicate: {}", s.predicate_type());
                for subj in s.subjects() {
                    for d in &subj.digests {
                        outln!("  subject:   {} {}", subj.name, d);
                    }
                }
            }
        }
    }
    Ok(if admitted.is_ok() {
        Exit::Ok
    } else {
        Exit::Denied
    })
}

/// The trust material of the command line: the public-good and GitHub
/// roots (unless `--no-public-good`), each `--trusted-root` and each
/// `--key`.
fn trust_store(args: &VerifyArgs) -> Result<TrustStore, CliError> {
    let mut trust = TrustStore::builder();
    if !args.no_public_good {
        trust = trust.public_good().github();
    }
    for (i, spec) in args.trusted_roots.iter().enumerate() {
        let (name, path) = match spec.split_once('=') {
            Some((n, p)) => (n.to_owned(), p.to_owned()),
            None => (format!("root-{}", i + 1), spec.clone()),
        };
        trust = trust
            .root_file(&name, std::path::Path::new(&path))
            .map_err(|e| CliError::new("loading --trusted-root", e))?;
    }
    for path in &args.keys {
        let pem =
            String::from_utf8(read_file(path)?).map_err(|e| CliError::new("reading --key", e))?;
        let name = path.display().to_string();
        trust = trust
            .key_pem(&name, &pem)
            .map_err(|e| CliError::new("loading --key", e))?;
    }
    trust
        .build()
        .map_err(|e| CliError::new("loading trust material", e))
}

/// The keyless authority of the command line: an identity and an issuer,
/// each exact or a regex. Without both, only `--key` may stand in (then only
/// the keys are trusted); anything else is a usage error that says what to
/// add.
fn keyless_authority(args: &VerifyArgs) -> Result<Option<Authority>, CliError> {
    let matcher = |exact: &Option<String>, re: &Option<String>, field: &str| match (exact, re) {
        (Some(v), _) => Matcher::exact(field, v).map(Some),
        (_, Some(r)) => Matcher::regex(&format!("{field}-regexp"), r).map(Some),
        _ => Ok(None),
    };
    let subject = matcher(
        &args.certificate_identity,
        &args.certificate_identity_regexp,
        "--certificate-identity",
    )
    .map_err(|e| CliError::new("identity", e))?;
    let issuer = matcher(
        &args.certificate_oidc_issuer,
        &args.certificate_oidc_issuer_regexp,
        "--certificate-oidc-issuer",
    )
    .map_err(|e| CliError::new("identity", e))?;
    match (subject, issuer) {
        (Some(subject), Some(issuer)) => Ok(Some(Authority {
            name: "command line".into(),
            kind: AuthorityKind::Keyless(KeylessIdentity {
                issuer,
                subject,
                claims: Default::default(),
                trusted_root: None,
            }),
            require_tlog: !args.allow_no_tlog,
        })),
        (None, None) if !args.keys.is_empty() => Ok(None),
        (subject, issuer) => Err(CliError::msg(missing_identity(
            args,
            subject.is_some(),
            issuer.is_some(),
        ))),
    }
}

/// The usage error for a missing identity, with a command to copy.
fn missing_identity(args: &VerifyArgs, has_subject: bool, has_issuer: bool) -> String {
    let missing = match (has_subject, has_issuer) {
        (true, false) => "--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is missing",
        (false, true) => "--certificate-identity or --certificate-identity-regexp is missing",
        _ => "no signer identity was given",
    };
    let bundle = shell_quote(&args.bundle.display().to_string());
    // The user's other trust flags, so that the example runs as printed.
    let mut trust: Vec<String> = Vec::new();
    if args.no_public_good {
        trust.push("--no-public-good".into());
    }
    for root in &args.trusted_roots {
        trust.push(format!("--trusted-root {}", shell_quote(root)));
    }
    if args.allow_no_tlog {
        trust.push("--allow-no-tlog".into());
    }
    let artifact = match trust.is_empty() {
        true => shell_quote(&args.artifact),
        false => format!(
            "{} \\\n    {}",
            trust.join(" "),
            shell_quote(&args.artifact)
        ),
    };
    format!(
        "{missing}.\n\
         provgate verify needs --certificate-identity or --certificate-identity-regexp, AND \
         --certificate-oidc-issuer or --certificate-oidc-issuer-regexp, unless --key is given \
         (then only that key is trusted). Without them any signer would be accepted.\n\
         For example, for a GitHub Actions workflow of one repository:\n\
         \n  provgate verify --bundle {bundle} \\\n    \
         --certificate-identity-regexp '^https://github\\.com/OWNER/REPO/\\.github/workflows/.+$' \\\n    \
         --certificate-oidc-issuer https://token.actions.githubusercontent.com \\\n    \
         {artifact}\n\
         \nTo accept any signer (and only see who it was), say so explicitly:\n\
         \n  provgate verify --bundle {bundle} \\\n    \
         --certificate-identity-regexp '.*' --certificate-oidc-issuer-regexp '.*' \\\n    \
         {artifact}"
    )
}

/// Quotes `s` for a POSIX shell unless it needs no quoting.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("sha256:ab12"), "sha256:ab12");
        assert_eq!(shell_quote("dir/b.json"), "dir/b.json");
        assert_eq!(shell_quote("my file"), "'my file'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
