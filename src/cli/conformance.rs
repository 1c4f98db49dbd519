//! `provgate conformance`: the sigstore-conformance CLI protocol.
//!
//! ```text
//! verify-bundle [--staging] --bundle F (--certificate-identity I --certificate-oidc-issuer U | --key K)
//!               [--trusted-root T] FILE_OR_DIGEST
//! ```
//! Exit 0 means verified. `FILE_OR_DIGEST` is a `sha256:<hex>` digest unless
//! it names an existing file. The verification path is the same one the
//! webhook uses; identities are exact, as the protocol specifies.
//!
//! The authorities here do not require a transparency-log entry, because the
//! protocol has no flag for it; the rules that make Sigstore clients refuse
//! unlogged evidence hold anyway, in the verifier: keyless evidence without
//! an entry is refused under any trusted root that lists a log
//! ([`crate::verify::VerifyError::MissingTlogEntry`]). Key-signed evidence
//! without an entry is accepted with `--key` (its signature, timestamps and
//! statement binding are still checked), which is the opt-in cosign users of
//! `--tlog-upload=false` rely on.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{CliError, Exit, read_file};
use crate::digest::Digest;
use crate::verify::{
    ArtifactInput, Authority, AuthorityKind, KeylessIdentity, Matcher, TrustStore, Verifier,
    VerifyLimits,
};

/// Conformance subcommands.
#[derive(Debug, Subcommand)]
pub enum ConformanceCommand {
    /// Verify a bundle as the conformance suite asks.
    VerifyBundle(VerifyBundleArgs),
}

/// Arguments of `conformance verify-bundle`.
#[derive(Debug, Args)]
pub struct VerifyBundleArgs {
    /// Use the embedded staging trusted root.
    #[arg(long)]
    staging: bool,
    /// The bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// Expected certificate SAN (exact).
    #[arg(long, requires = "certificate_oidc_issuer", conflicts_with = "key")]
    certificate_identity: Option<String>,
    /// Expected OIDC issuer (exact).
    #[arg(long, requires = "certificate_identity")]
    certificate_oidc_issuer: Option<String>,
    /// PEM public key.
    #[arg(long, required_unless_present = "certificate_identity")]
    key: Option<PathBuf>,
    /// A trusted_root.json to use instead of the embedded public-good root.
    #[arg(long)]
    trusted_root: Option<PathBuf>,
    /// The artifact path, or `sha256:<hex>`.
    file_or_digest: String,
}

/// Runs a conformance subcommand.
pub fn run(cmd: ConformanceCommand) -> Result<Exit, CliError> {
    let ConformanceCommand::VerifyBundle(args) = cmd;
    let mut trust = TrustStore::builder();
    trust = match (&args.trusted_root, args.staging) {
        (Some(path), _) => trust
            .root_file("custom", path)
            .map_err(|e| CliError::new("loading --trusted-root", e))?,
        (None, true) => trust.root_json(
            "staging",
            sigstore_trust_root::SIGSTORE_STAGING_TRUSTED_ROOT,
        ),
        (None, false) => trust.public_good(),
    };
    if let Some(key) = &args.key {
        let pem =
            String::from_utf8(read_file(key)?).map_err(|e| CliError::new("reading --key", e))?;
        trust = trust
            .key_pem("key", &pem)
            .map_err(|e| CliError::new("loading --key", e))?;
    }
    let trust = trust
        .build()
        .map_err(|e| CliError::new("loading trust material", e))?;
    let authority = match (&args.certificate_identity, &args.certificate_oidc_issuer) {
        (Some(id), Some(iss)) => Authority {
            name: "conformance".into(),
            kind: AuthorityKind::Keyless(KeylessIdentity {
                issuer: Matcher::exact("--certificate-oidc-issuer", iss)
                    .map_err(|e| CliError::new("identity", e))?,
                subject: Matcher::exact("--certificate-identity", id)
                    .map_err(|e| CliError::new("identity", e))?,
                claims: Default::default(),
                trusted_root: None,
            }),
            require_tlog: false,
        },
        _ => {
            let key = trust.keys().first().ok_or_else(|| {
                CliError::new(
                    "arguments",
                    "either --key or --certificate-identity is required",
                )
            })?;
            Authority {
                name: "conformance".into(),
                kind: AuthorityKind::Key {
                    key_id: key.key_id().to_owned(),
                    key_name: key.name().to_owned(),
                },
                require_tlog: false,
            }
        }
    };
    let verifier = Verifier::new(Arc::new(trust), VerifyLimits::default());
    let bundle = read_file(&args.bundle)?;
    let path = PathBuf::from(&args.file_or_digest);
    let file_bytes;
    let digest;
    let artifact = if path.is_file() {
        file_bytes = read_file(&path)?;
        ArtifactInput::Bytes(&file_bytes)
    } else {
        digest = args
            .file_or_digest
            .parse::<Digest>()
            .map_err(|e| CliError::new("FILE_OR_DIGEST", e))?;
        ArtifactInput::Digest(&digest)
    };
    match verifier.verify_artifact(&bundle, artifact) {
        Ok((facts, _)) => match authority.admits(&facts) {
            Ok(()) => Ok(Exit::Ok),
            Err(e) => {
                errln!("provgate: verification failed: {e}");
                Ok(Exit::Denied)
            }
        },
        Err(e) => {
            errln!("provgate: verification failed: {e}");
            Ok(Exit::Denied)
        }
    }
}
