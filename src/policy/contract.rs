//! Contracts: metadata (YAML) plus Rego, loaded from directories or from the
//! embedded library.
//!
//! A contract directory holds `contract.yaml`, its `*.rego` modules (package
//! `provgate.contract`), `*_test.rego` tests and `testdata/*.json`. The
//! shared helper library (`policies/lib/*.rego`, package `provgate.lib`) is
//! loaded into every contract. A contract's [`Contract::revision`] is a
//! digest of all of that, so caches keyed by it are invalidated exactly when
//! the contract (or the library) changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest as _;

use super::context::ContextField;
use crate::digest::Digest;
use crate::verify::{
    Authority, AuthorityKind, IdentityError, KeylessIdentity, Matcher, MatcherSpec, TrustStore,
    check_claim_name,
};

/// The embedded contract library.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_policies.rs"));
}

/// The Rego package contract rules live in.
pub const CONTRACT_PACKAGE: &str = "provgate.contract";

/// Contract files larger than this are rejected.
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// The `contract.yaml` schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContractSpec {
    /// `provgate.dev/v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `Contract`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Unique name, `[a-z0-9-]+`.
    pub name: String,
    /// Version string.
    pub version: String,
    /// One sentence.
    #[serde(default)]
    pub description: String,
    /// Who owns it.
    #[serde(default)]
    pub owner: String,
    /// Trusted signers.
    #[serde(default)]
    pub authorities: Vec<AuthoritySpec>,
    /// Default parameters (a binding may override them).
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// The request-context fields the Rego reads (`namespace`,
    /// `labels.team`, …; default: none). The input carries only these, and
    /// verdicts are reused across requests that agree on them.
    #[serde(default)]
    pub context: Vec<ContextField>,
    /// Whether evidence found under cosign's legacy `sha256-<hex>.sig` and
    /// `.att` tags counts for this contract (default: true). When no bound
    /// contract accepts it, discovery does not even look for those tags.
    #[serde(default = "default_legacy_cosign")]
    pub legacy_cosign: bool,
}

fn default_legacy_cosign() -> bool {
    true
}

/// One authority as written.
#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthoritySpec {
    /// Its name.
    pub name: String,
    /// Keyless identity.
    #[serde(default)]
    pub keyless: Option<KeylessSpec>,
    /// A key, by name in the trust configuration or inline PEM.
    #[serde(default)]
    pub key: Option<KeySpec>,
    /// Whether a verified tlog entry is required (default `required`).
    #[serde(default)]
    pub tlog: TlogRequirement,
}

/// A keyless identity as written.
#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeylessSpec {
    /// OIDC issuer.
    pub issuer: MatcherSpec,
    /// Certificate subject.
    pub subject: MatcherSpec,
    /// Fulcio claims by name.
    #[serde(default)]
    pub claims: BTreeMap<String, MatcherSpec>,
    /// Trusted root name.
    #[serde(default)]
    pub trusted_root: Option<String>,
}

/// A key reference.
#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// A key configured under `trust.keys`.
    #[serde(default)]
    pub name: Option<String>,
    /// An inline PEM public key.
    #[serde(default)]
    pub pem: Option<String>,
}

/// Transparency-log requirement of an authority.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlogRequirement {
    /// A verified tlog entry is required.
    #[default]
    Required,
    /// Evidence without a tlog entry is accepted (keys only, usually).
    Optional,
}

/// A Rego source file.
#[derive(Debug, Clone)]
pub struct RegoModule {
    /// Path (for messages), e.g. `slsa-provenance/policy.rego`.
    pub path: String,
    /// Text.
    pub text: String,
}

/// Where a contract came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractSource {
    /// The embedded library.
    Builtin,
    /// A directory.
    Dir(PathBuf),
}

/// A loaded contract (not yet bound to trust material).
#[derive(Debug, Clone)]
pub struct Contract {
    /// Metadata.
    pub spec: ContractSpec,
    /// Policy modules (including the shared library).
    pub modules: Vec<RegoModule>,
    /// Test modules.
    pub tests: Vec<RegoModule>,
    /// `data.testdata.<stem>` documents for tests.
    pub testdata: BTreeMap<String, serde_json::Value>,
    /// Where it came from.
    pub source: ContractSource,
    /// Digest over metadata, modules and library.
    pub revision: Digest,
}

/// Why a contract could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// `contract.yaml` is invalid.
    #[error("{path}: {reason}")]
    Spec {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An authority is invalid.
    #[error("contract {contract:?}, authority {authority:?}: {reason}")]
    Authority {
        /// The contract.
        contract: String,
        /// The authority.
        authority: String,
        /// What is wrong.
        reason: String,
    },
    /// Two contracts share a name.
    #[error("contract name {0:?} is defined twice")]
    Duplicate(String),
}

impl Contract {
    /// The name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.spec.version
    }

    /// Inline PEM keys of this contract's authorities, as (trust name, PEM).
    pub fn inline_keys(&self) -> Vec<(String, String)> {
        inline_keys(&self.spec.name, &self.spec.authorities)
    }
}

/// Inline PEM keys of `authorities`, named `<contract>/<authority>`.
pub fn inline_keys(contract: &str, authorities: &[AuthoritySpec]) -> Vec<(String, String)> {
    authorities
        .iter()
        .filter_map(|a| {
            a.key
                .as_ref()
                .and_then(|k| k.pem.clone())
                .map(|pem| (format!("{contract}/{}", a.name), pem))
        })
        .collect()
}

/// Compiles authority specs against the trust store.
pub fn compile_authorities(
    contract: &str,
    specs: &[AuthoritySpec],
    trust: &TrustStore,
) -> Result<Vec<Authority>, ContractError> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let err = |reason: String| ContractError::Authority {
            contract: contract.into(),
            authority: spec.name.clone(),
            reason,
        };
        let id = |e: IdentityError| err(e.to_string());
        if out.iter().any(|a: &Authority| a.name == spec.name) {
            return Err(err("authority name used twice".into()));
        }
        let kind = match (&spec.keyless, &spec.key) {
            (Some(k), None) => {
                let mut claims = BTreeMap::new();
                for (name, m) in &k.claims {
                    check_claim_name(name).map_err(id)?;
                    claims.insert(
                        name.clone(),
                        Matcher::from_spec(&format!("claims.{name}"), m).map_err(id)?,
                    );
                }
                if let Some(root) = &k.trusted_root
                    && !trust.has_root(root)
                {
                    return Err(err(format!("trusted root {root:?} is not configured")));
                }
                AuthorityKind::Keyless(KeylessIdentity {
                    issuer: Matcher::from_spec("issuer", &k.issuer).map_err(id)?,
                    subject: Matcher::from_spec("subject", &k.subject).map_err(id)?,
                    claims,
                    trusted_root: k.trusted_root.clone(),
                })
            }
            (None, Some(key)) => {
                let name = match (&key.name, &key.pem) {
                    (Some(n), None) => n.clone(),
                    (None, Some(_)) => format!("{contract}/{}", spec.name),
                    _ => return Err(err("key needs exactly one of `name` or `pem`".into())),
                };
                let k = trust.key(&name).ok_or_else(|| {
                    err(format!("key {name:?} is not configured under trust.keys"))
                })?;
                AuthorityKind::Key {
                    key_id: k.key_id().to_owned(),
                    key_name: k.name().to_owned(),
                }
            }
            _ => return Err(id(IdentityError::Shape(spec.name.clone()))),
        };
        out.push(Authority {
            name: spec.name.clone(),
            kind,
            require_tlog: spec.tlog == TlogRequirement::Required,
        });
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The shared library modules (embedded).
pub fn library() -> Vec<RegoModule> {
    builtin::FILES
        .iter()
        .filter(|(p, _)| {
            p.starts_with("lib/") && p.ends_with(".rego") && !p.ends_with("_test.rego")
        })
        .map(|(p, t)| RegoModule {
            path: (*p).to_owned(),
            text: (*t).to_owned(),
        })
        .collect()
}

/// The shared library's own tests (embedded).
pub fn library_tests() -> Vec<RegoModule> {
    builtin::FILES
        .iter()
        .filter(|(p, _)| p.starts_with("lib/") && p.ends_with("_test.rego"))
        .map(|(p, t)| RegoModule {
            path: (*p).to_owned(),
            text: (*t).to_owned(),
        })
        .collect()
}

/// Builds a contract from its files: (relative path, text).
fn assemble(
    files: &[(String, String)],
    source: ContractSource,
    origin: &str,
    library: &[RegoModule],
) -> Result<Contract, ContractError> {
    let spec_text = files
        .iter()
        .find(|(p, _)| p == "contract.yaml")
        .map(|(_, t)| t.as_str())
        .ok_or_else(|| ContractError::Spec {
            path: origin.into(),
            reason: "no contract.yaml".into(),
        })?;
    let spec: ContractSpec =
        serde_yaml_ng::from_str(spec_text).map_err(|e| ContractError::Spec {
            path: format!("{origin}/contract.yaml"),
            reason: e.to_string(),
        })?;
    if !valid_name(&spec.name) {
        return Err(ContractError::Spec {
            path: format!("{origin}/contract.yaml"),
            reason: format!("name {:?} must match [a-z0-9-]{{1,63}}", spec.name),
        });
    }
    if spec.version.trim().is_empty() {
        return Err(ContractError::Spec {
            path: format!("{origin}/contract.yaml"),
            reason: "version must not be empty".into(),
        });
    }
    for a in &spec.authorities {
        if (a.keyless.is_some()) == (a.key.is_some()) {
            return Err(ContractError::Authority {
                contract: spec.name.clone(),
                authority: a.name.clone(),
                reason: "needs exactly one of `keyless` or `key`".into(),
            });
        }
    }
    let mut modules = library.to_vec();
    let mut tests = Vec::new();
    let mut testdata = BTreeMap::new();
    let mut hasher = sha2::Sha256::new();
    for m in &modules {
        hasher.update(m.path.as_bytes());
        hasher.update(b"\0");
        hasher.update(m.text.as_bytes());
    }
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, text) in sorted {
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(text.as_bytes());
        let display = format!("{}/{path}", spec.name);
        if let Some(stem) = path
            .strip_prefix("testdata/")
            .and_then(|p| p.strip_suffix(".json"))
        {
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| ContractError::Spec {
                    path: format!("{origin}/{path}"),
                    reason: e.to_string(),
                })?;
            testdata.insert(stem.replace('-', "_"), v);
        } else if path.ends_with("_test.rego") {
            tests.push(RegoModule {
                path: display,
                text: text.clone(),
            });
        } else if path.ends_with(".rego") {
            modules.push(RegoModule {
                path: display,
                text: text.clone(),
            });
        }
    }
    if !modules.iter().any(|m| !m.path.starts_with("lib/")) {
        return Err(ContractError::Spec {
            path: origin.into(),
            reason: "no .rego module".into(),
        });
    }
    let revision = Digest::from_parts("sha256", &hex::encode(hasher.finalize())).map_err(|e| {
        ContractError::Spec {
            path: origin.into(),
            reason: e.to_string(),
        }
    })?;
    Ok(Contract {
        spec,
        modules,
        tests,
        testdata,
        source,
        revision,
    })
}

/// The embedded library contracts.
pub fn builtin_contracts() -> Result<Vec<Contract>, ContractError> {
    let mut by_dir: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for (path, text) in builtin::FILES {
        let Some((dir, rest)) = path.split_once('/') else {
            continue;
        };
        if dir == "lib" {
            continue;
        }
        by_dir
            .entry(dir)
            .or_default()
            .push((rest.to_owned(), (*text).to_owned()));
    }
    by_dir
        .into_iter()
        .map(|(dir, files)| {
            assemble(
                &files,
                ContractSource::Builtin,
                &format!("builtin:{dir}"),
                &library(),
            )
        })
        .collect()
}

fn read_text(path: &Path) -> Result<String, ContractError> {
    let err = |reason: String| ContractError::Read {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    std::fs::read_to_string(path).map_err(|e| err(e.to_string()))
}

/// Loads one contract directory.
pub fn load_dir(dir: &Path) -> Result<Contract, ContractError> {
    load_dir_with_library(dir, &library())
}

/// Loads one contract directory with another shared library (the one of a
/// policy tree under development, `provgate policy test DIR`).
pub fn load_dir_with_library(
    dir: &Path,
    library: &[RegoModule],
) -> Result<Contract, ContractError> {
    let mut files = Vec::new();
    let mut push_dir = |d: &Path, prefix: &str| -> Result<(), ContractError> {
        let Ok(entries) = std::fs::read_dir(d) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            // Kubernetes ConfigMap mounts add `..data` symlinks; skip dotfiles.
            if name.starts_with('.') || !p.is_file() {
                continue;
            }
            let keep = if prefix.is_empty() {
                name == "contract.yaml" || name.ends_with(".rego")
            } else {
                name.ends_with(".json")
            };
            if keep {
                files.push((format!("{prefix}{name}"), read_text(&p)?));
            }
        }
        Ok(())
    };
    push_dir(dir, "")?;
    push_dir(&dir.join("testdata"), "testdata/")?;
    assemble(
        &files,
        ContractSource::Dir(dir.to_owned()),
        &dir.display().to_string(),
        library,
    )
}

/// Loads every contract under `dir`: the directory itself if it holds a
/// `contract.yaml`, otherwise each subdirectory that does.
pub fn load_tree(dir: &Path) -> Result<Vec<Contract>, ContractError> {
    load_tree_with_library(dir, &library())
}

/// The shared library of a policy tree: `DIR/lib/*.rego` without the
/// tests, and the tests, when the tree has its own `lib/` (as `policies/`
/// does). `None` when it has none.
pub fn tree_library(dir: &Path) -> Result<Option<TreeLibrary>, ContractError> {
    let lib = dir.join("lib");
    let Ok(entries) = std::fs::read_dir(&lib) else {
        return Ok(None);
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rego") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Ok(None);
    }
    let (mut modules, mut tests) = (Vec::new(), Vec::new());
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let m = RegoModule {
            path: format!("lib/{name}"),
            text: read_text(&p)?,
        };
        if name.ends_with("_test.rego") {
            tests.push(m);
        } else {
            modules.push(m);
        }
    }
    Ok(Some(TreeLibrary { modules, tests }))
}

/// A policy tree's own shared library and its tests.
#[derive(Debug, Clone)]
pub struct TreeLibrary {
    /// `lib/*.rego` without the tests.
    pub modules: Vec<RegoModule>,
    /// `lib/*_test.rego`.
    pub tests: Vec<RegoModule>,
}

/// [`load_tree`] with another shared library.
pub fn load_tree_with_library(
    dir: &Path,
    library: &[RegoModule],
) -> Result<Vec<Contract>, ContractError> {
    if dir.join("contract.yaml").is_file() {
        return Ok(vec![load_dir_with_library(dir, library)?]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| ContractError::Read {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("contract.yaml").is_file())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| load_dir_with_library(d, library))
        .collect()
}

/// Checks that contract names are unique.
pub fn check_unique(contracts: &[Contract]) -> Result<(), ContractError> {
    for (i, c) in contracts.iter().enumerate() {
        if contracts[..i].iter().any(|o| o.name() == c.name()) {
            return Err(ContractError::Duplicate(c.name().into()));
        }
    }
    Ok(())
}
