//! `provgate verify`: verify one bundle offline and print what was verified.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, Exit, Output, read_file};
use crate::digest::Digest;
use crate::verify::{
    ArtifactInput, Authority, AuthorityKind, KeylessIdentity, Matcher, TrustStore, Verifier,
    VerifyLimits,
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
    /// Accept evidence without a transparency-log entry.
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
    let trust = trust
        .build()
        .map_err(|e| CliError::new("loading trust material", e))?;

    let identity = |exact: &Option<String>,
                    re: &Option<String>,
                    field: &str|
     -> Result<Option<Matcher>, CliError> {
        match (exact, re) {
            (Some(v), _) => Matcher::exact(field, v).map(Some),
            (_, Some(r)) => Matcher::regex(field, r).map(Some),
            _ => Ok(None),
        }
        .map_err(|e| CliError::new("identity", e))
    };
    let subject = identity(
        &args.certificate_identity,
        &args.certificate_identity_regexp,
        "--certificate-identity",
    )?;
    let issuer = identity(
        &args.certificate_oidc_issuer,
        &args.certificate_oidc_issuer_regexp,
        "--certificate-oidc-issuer",
    )?;

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
    let authority = match (subject, issuer) {
        (Some(subject), Some(issuer)) => Some(Authority {
            name: "command line".into(),
            kind: AuthorityKind::Keyless(KeylessIdentity {
                issuer,
                subject,
                claims: Default::default(),
                trusted_root: None,
            }),
            require_tlog: !args.allow_no_tlog,
        }),
        (None, None) => None,
        _ => {
            return Err(CliError::new(
                "arguments",
                "give both a certificate identity and an OIDC issuer, or neither",
            ));
        }
    };
    let admitted = match &authority {
        Some(a) => a.admits(&facts),
        None if !args.allow_no_tlog && !facts.tlog_verified() => Err(crate::verify::NotAdmitted(
            "the evidence has no verified transparency-log entry (use --allow-no-tlog to accept)"
                .into(),
        )),
        None => Ok(()),
    };
    match args.output {
        Output::Json => {
            let out = serde_json::json!({
                "verified": admitted.is_ok(),
                "reason": admitted.as_ref().err().map(|e| e.to_string()),
                "facts": facts,
                "predicateType": statement.as_ref().map(|s| s.predicate_type()),
                "statement": statement.as_ref().map(|s| s.json()),
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
