//! Configuration: the YAML file as written ([`ConfigSpec`], strict about
//! unknown fields) and its compiled form ([`Config`]).
//!
//! Compiling loads everything the config points at (trusted roots, keys,
//! credential files, contract directories), compiles every contract's Rego
//! once and every binding, and reports the first error with its location.
//! A running server compiles a new config completely before swapping it in,
//! so a broken config never replaces a working one.
//!
//! The module sits in the middle of the crate: it imports the stages it
//! compiles settings for (`bind`, `oci`, `verify`, `policy`, `shared`,
//! `gate`, `platform`) and is imported by those that run on the result
//! (`engine`, `admission`, `report`, `server`, `cli`). Sections of the
//! latter (`report`) are therefore defined here; the `raw` submodule says
//! where each section's type lives.
//!
//! - `raw`: the file as written (re-exported here);
//! - [`report`] and [`scope`]: the `report` section, checked as it is read;
//! - `compile`: [`ConfigSpec`] → [`Config`], one step per section.

mod compile;
mod raw;
pub mod report;
pub mod scope;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::bind::{Binding, BindingError, BindingSpec, Mode, SelectorSpec};
use crate::digest::Digest;
use crate::oci::{CredentialSet, RegistryEntry};
use crate::policy::contract;
use crate::policy::{AuthoritySpec, ContextDecl, Contract, RegoProgram};
use crate::shared::SharedSettings;
use crate::verify::{Authority, TrustStore};
pub use raw::{
    AdmissionSpec, CacheSpec, ConfigSpec, ContractsSpec, CredentialsSpec, DecisionLogSpec,
    FailurePolicy, KeyFileSpec, NamedPath, PolicySpec, RegistriesSpec, RegistrySpec, ServerSpec,
    TlsSpec, TrustSpec, Unmatched,
};

/// Why a configuration does not compile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {reason}")]
    Read {
        /// The path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The YAML is invalid or has unknown fields.
    #[error("config {path}: {reason}")]
    Parse {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Trust material is invalid.
    #[error(transparent)]
    Trust(#[from] crate::verify::TrustError),
    /// A contract is invalid.
    #[error(transparent)]
    Contract(#[from] contract::ContractError),
    /// A contract's Rego does not compile.
    #[error("contract {contract:?}: {reason}")]
    Rego {
        /// The contract.
        contract: String,
        /// The compiler's message.
        reason: String,
    },
    /// A binding is invalid.
    #[error(transparent)]
    Binding(#[from] BindingError),
    /// A credentials file is invalid.
    #[error(transparent)]
    Credentials(#[from] crate::oci::CredentialError),
    /// Anything else, with the setting it concerns.
    #[error("{0}")]
    Invalid(String),
}

/// A contract compiled against the trust store.
#[derive(Debug)]
pub struct CompiledContract {
    /// The contract as its `contract.yaml` declares it.
    pub contract: Contract,
    /// Who may sign the evidence it judges, compiled against the trust
    /// store (a binding may replace them).
    pub authorities: Vec<Authority>,
    /// Its Rego, compiled once and shared by every binding.
    pub program: Arc<RegoProgram>,
}

/// A contract as one binding applies it (with overrides).
#[derive(Debug, Clone)]
pub struct BoundContract {
    /// Contract name.
    pub name: String,
    /// Contract version.
    pub version: String,
    /// Effective parameters (defaults merged with overrides).
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Effective authorities.
    pub authorities: Arc<Vec<Authority>>,
    /// Authority names and kinds, for messages.
    pub authority_specs: Arc<Vec<AuthoritySpec>>,
    /// The contract's compiled Rego.
    pub program: Arc<RegoProgram>,
    /// Digest of contract revision and overrides (verdict cache key).
    pub revision: Digest,
    /// The effective parameters as a policy value (converted once).
    pub parameters_value: regorus::Value,
    /// The request-context fields the contract reads.
    pub context: ContextDecl,
    /// Whether evidence under cosign's legacy `.sig`/`.att` tags counts.
    pub legacy_cosign: bool,
}

/// A bound authority that trusts every tenant of a public issuer.
#[derive(Debug, Clone)]
pub struct WorldTrust {
    /// The binding.
    pub binding: String,
    /// The contract.
    pub contract: String,
    /// The authority.
    pub authority: String,
    /// The public issuer it trusts every identity of.
    pub issuer: &'static str,
    /// The binding's mode.
    pub mode: Mode,
}

/// A compiled binding with its bound contracts.
#[derive(Debug)]
pub struct CompiledBinding {
    /// The binding's selector, mode, dates and exemptions.
    pub binding: Binding,
    /// Its contracts, in order.
    pub contracts: Vec<BoundContract>,
}

/// One registry's compiled settings.
#[derive(Debug, Clone)]
pub struct RegistryPolicy {
    /// Failure behaviour.
    pub failure: FailurePolicy,
    /// Last-known-good window.
    pub last_known_good_window: Duration,
}

/// The compiled configuration.
#[derive(Debug)]
pub struct Config {
    /// The spec as written (after defaults); stages read their settings
    /// from it.
    pub spec: ConfigSpec,
    /// Where it was read from (None: embedded defaults).
    pub path: Option<PathBuf>,
    /// Trust material.
    pub trust: Arc<TrustStore>,
    /// Contracts by name.
    pub contracts: BTreeMap<String, CompiledContract>,
    /// Bindings in order.
    pub bindings: Vec<CompiledBinding>,
    /// Registry entries for [`crate::oci::Registries`].
    pub registry_entries: HashMap<String, RegistryEntry>,
    /// The default registry entry.
    pub registry_default: RegistryEntry,
    /// Failure policies by registry name.
    pub registry_policies: HashMap<String, RegistryPolicy>,
    /// The default failure policy.
    pub registry_policy_default: RegistryPolicy,
    /// Credential sets with the namespaces they serve.
    pub credentials: Vec<(Option<globset::GlobSet>, Arc<CredentialSet>)>,
    /// Digest of the configuration and everything it loaded.
    pub fingerprint: Digest,
    /// Digest of what registry access depends on (registry options and
    /// credential files): tag and evidence caches are keyed by it.
    pub registry_fingerprint: Digest,
    /// The compiled gate settings.
    pub gate: crate::gate::GateSettings,
    /// The platforms of an index that are judged.
    pub platforms: crate::platform::PlatformFilter,
    /// The shared evidence tier (`caches.shared`), when configured.
    pub shared: Option<SharedSettings>,
}

/// Loads and compiles the configuration file at `path`, or the embedded
/// defaults when there is none (`serve`, `check` and `report` without
/// `--config`).
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => Config::embedded_defaults(),
    }
}

impl Config {
    /// Reads and compiles a config file; relative paths are relative to it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, None)
    }

    /// [`Config::load`] (or the embedded defaults, for `None`) with the
    /// contracts under `proposed` replacing same-named ones and adding
    /// new ones: the proposal an impact preview judges.
    pub fn load_proposal(path: Option<&Path>, proposed: &Path) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load_with(p, Some(proposed)),
            None => {
                let spec = Self::defaults_spec()?;
                Self::compile_with(
                    spec,
                    None,
                    Path::new("."),
                    b"embedded-defaults",
                    Some(proposed),
                )
            }
        }
    }

    fn load_with(path: &Path, proposed: Option<&Path>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let spec: ConfigSpec = serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        Self::compile_with(
            spec,
            Some(path.to_owned()),
            &base,
            text.as_bytes(),
            proposed,
        )
    }

    /// The embedded defaults: the public-good and GitHub roots, the built-in
    /// contracts bound in `audit` mode to every namespace but `kube-system`,
    /// and unmatched images (kube-system) allowed.
    pub fn embedded_defaults() -> Result<Self, ConfigError> {
        Self::compile(
            Self::defaults_spec()?,
            None,
            Path::new("."),
            b"embedded-defaults",
        )
    }

    fn defaults_spec() -> Result<ConfigSpec, ConfigError> {
        let mut spec = ConfigSpec::default();
        let builtin = contract::builtin_contracts()?;
        if !builtin.is_empty() {
            spec.bindings.push(BindingSpec {
                name: "builtin-audit".into(),
                contracts: builtin.iter().map(|c| c.name().to_owned()).collect(),
                selector: SelectorSpec {
                    namespaces: vec!["*".into()],
                    exclude_namespaces: vec!["kube-system".into()],
                    ..Default::default()
                },
                mode: Mode::Audit,
                enforce_after: None,
                exemptions: Vec::new(),
                parameters: Default::default(),
                authorities: Default::default(),
                pin_digests: false,
                legacy_cosign: Default::default(),
            });
        }
        spec.unmatched = Unmatched::Allow;
        Ok(spec)
    }

    /// Compiles a spec; `base` resolves relative paths; `raw` feeds the
    /// fingerprint.
    pub fn compile(
        spec: ConfigSpec,
        path: Option<PathBuf>,
        base: &Path,
        raw: &[u8],
    ) -> Result<Self, ConfigError> {
        Self::compile_with(spec, path, base, raw, None)
    }

    /// Bound authorities that trust every tenant of a public issuer (only
    /// possible in `warn` and `audit` bindings; refused under `enforce`).
    pub fn world_trusting(&self) -> Vec<WorldTrust> {
        let mut out = Vec::new();
        for b in &self.bindings {
            for c in &b.contracts {
                for a in c.authorities.iter() {
                    if let Some(issuer) = crate::policy::world::trusts_any_tenant(a) {
                        out.push(WorldTrust {
                            binding: b.binding.name().to_owned(),
                            contract: c.name.clone(),
                            authority: a.name.clone(),
                            issuer,
                            mode: b.binding.spec.mode,
                        });
                    }
                }
            }
        }
        out
    }

    /// The credential set for a namespace (anonymous when none matches).
    pub fn credentials_for(&self, namespace: Option<&str>) -> Arc<CredentialSet> {
        let ns = namespace.unwrap_or("");
        for (globs, set) in &self.credentials {
            match globs {
                None => return set.clone(),
                Some(g) if g.is_match(ns) => return set.clone(),
                Some(_) => {}
            }
        }
        static ANON: std::sync::OnceLock<Arc<CredentialSet>> = std::sync::OnceLock::new();
        ANON.get_or_init(|| Arc::new(CredentialSet::anonymous()))
            .clone()
    }

    /// Whether any registry's failure policy is `last-known-good` (only
    /// then is last-known-good evidence kept).
    pub fn uses_last_known_good(&self) -> bool {
        self.registry_policy_default.failure == FailurePolicy::LastKnownGood
            || self
                .registry_policies
                .values()
                .any(|p| p.failure == FailurePolicy::LastKnownGood)
    }

    /// The failure policy of a registry.
    pub fn registry_policy(&self, registry: &str) -> &RegistryPolicy {
        self.registry_policies
            .get(registry)
            .unwrap_or(&self.registry_policy_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_rejected() {
        let e = serde_yaml_ng::from_str::<ConfigSpec>("unmatched: deny\nbogus: 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = serde_yaml_ng::from_str::<ConfigSpec>(
            "registries:\n  hosts:\n    ghcr.io: {insecur: true}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("insecur"), "{e}");
    }
}
