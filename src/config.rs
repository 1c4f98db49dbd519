//! Configuration: the YAML file as written ([`ConfigSpec`], strict about
//! unknown fields) and its compiled form ([`Config`]).
//!
//! Compiling loads everything the config points at (trusted roots, keys,
//! credential files, contract directories), compiles every contract's Rego
//! once and every binding, and reports the first error with its location.
//! A running server compiles a new config completely before swapping it in,
//! so a broken config never replaces a working one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::Digest as _;

use crate::bind::{Binding, BindingError, BindingSpec, Mode, SelectorSpec, glob_set};
use crate::digest::Digest;
use crate::oci::{CredentialSet, Limits, RegistryEntry, RegistryOptions};
use crate::policy::contract::{self, compile_authorities, inline_keys};
use crate::policy::{AuthoritySpec, ContextDecl, Contract, RegoProgram};
use crate::verify::{Authority, TrustStore, VerifyLimits};

/// A duration written as `30s`, `500ms`, `10m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

/// Parses `500ms`, `30s`, `10m`, `1h`, `2d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 500ms, 10m, 1h"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        _ => return Err(format!("{s:?} is not a duration like 30s, 500ms, 10m, 1h")),
    };
    Ok(Duration::from_millis(ms))
}

/// What happens to an image no binding covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Deny it (the default).
    #[default]
    Deny,
    /// Allow it with a warning.
    Warn,
    /// Allow it.
    Allow,
}

/// What a registry failure (transient: timeout, 5xx, 429, refused) does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Deny (the default).
    #[default]
    FailClosed,
    /// Serve the last verified decision within a window, with a warning.
    LastKnownGood,
    /// Allow with a warning.
    Warn,
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigSpec {
    /// `provgate.dev/v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// HTTPS server.
    #[serde(default)]
    pub server: ServerSpec,
    /// Trust material.
    #[serde(default)]
    pub trust: TrustSpec,
    /// Verification limits.
    #[serde(default)]
    pub verify: VerifyLimits,
    /// Registries.
    #[serde(default)]
    pub registries: RegistriesSpec,
    /// Registry credential files (one per tenant).
    #[serde(default)]
    pub credentials: Vec<CredentialsSpec>,
    /// Where contracts come from.
    #[serde(default)]
    pub contracts: ContractsSpec,
    /// Bindings.
    #[serde(default)]
    pub bindings: Vec<BindingSpec>,
    /// Images no binding covers.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// Admission behaviour.
    #[serde(default)]
    pub admission: AdmissionSpec,
    /// Caches (`caches:`; `cache:` is accepted too).
    #[serde(default, alias = "caches")]
    pub cache: CacheSpec,
    /// The platforms the cluster runs (`os/arch[/variant]`, e.g.
    /// `linux/amd64`; `linux/arm64` also matches `linux/arm64/v8`). Platforms
    /// of an image index outside this list are not judged. Empty: every
    /// platform in the index.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Policy evaluation.
    #[serde(default)]
    pub policy: PolicySpec,
    /// The decision log.
    #[serde(default)]
    pub decision_log: DecisionLogSpec,
    /// The CI gate.
    #[serde(default)]
    pub gate: crate::gate::GateSpec,
    /// Compliance reporting.
    #[serde(default)]
    pub report: crate::report::ReportSpec,
}

/// Server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSpec {
    /// HTTPS listen address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Plain-HTTP metrics listen address (metrics are also on the HTTPS port).
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// TLS certificate and key files; absent means a generated dev certificate.
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    /// Grace period for draining on shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace: Dur,
    /// Largest request body.
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
}

fn default_listen() -> String {
    "0.0.0.0:8443".into()
}
fn default_grace() -> Dur {
    Dur(Duration::from_secs(20))
}
fn default_body() -> usize {
    3 * 1024 * 1024
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            listen: default_listen(),
            metrics_listen: None,
            tls: None,
            shutdown_grace: default_grace(),
            max_body_bytes: default_body(),
        }
    }
}

/// TLS files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSpec {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// Trust material.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustSpec {
    /// Trust the embedded Sigstore public-good root (`public-good`).
    #[serde(default = "yes")]
    pub public_good: bool,
    /// Trust the embedded GitHub root (`github`).
    #[serde(default = "yes")]
    pub github: bool,
    /// More `trusted_root.json` files.
    #[serde(default)]
    pub roots: Vec<NamedPath>,
    /// PEM public keys.
    #[serde(default)]
    pub keys: Vec<KeyFileSpec>,
}

fn yes() -> bool {
    true
}

impl Default for TrustSpec {
    fn default() -> Self {
        TrustSpec {
            public_good: true,
            github: true,
            roots: Vec::new(),
            keys: Vec::new(),
        }
    }
}

/// A named file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPath {
    /// Its name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
}

/// A key from a file or inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFileSpec {
    /// Its name.
    pub name: String,
    /// PEM file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Inline PEM.
    #[serde(default)]
    pub pem: Option<String>,
}

/// Registries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistriesSpec {
    /// Settings for registries not listed in `hosts`.
    #[serde(default)]
    pub defaults: RegistrySpec,
    /// Settings by registry name as in image references (`ghcr.io`,
    /// `docker.io`, `127.0.0.1:5000`).
    #[serde(default)]
    pub hosts: BTreeMap<String, RegistrySpec>,
    /// Limits on each image's discovery.
    #[serde(default)]
    pub limits: Limits,
}

/// One registry's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistrySpec {
    /// Allow plain HTTP.
    #[serde(default)]
    pub insecure: bool,
    /// Extra CA bundle (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Per-request timeout.
    #[serde(default = "default_registry_timeout")]
    pub timeout: Dur,
    /// Mirrors tried first.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Token realm hosts allowed to receive this registry's credentials.
    #[serde(default)]
    pub token_hosts: Vec<String>,
    /// Failure behaviour on transient errors.
    #[serde(default)]
    pub failure: FailurePolicy,
    /// How old a last-known-good decision may be.
    #[serde(default = "default_lkg")]
    pub last_known_good_window: Dur,
}

fn default_registry_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_lkg() -> Dur {
    Dur(Duration::from_secs(3600))
}

impl Default for RegistrySpec {
    fn default() -> Self {
        RegistrySpec {
            insecure: false,
            ca_file: None,
            timeout: default_registry_timeout(),
            mirrors: Vec::new(),
            token_hosts: Vec::new(),
            failure: FailurePolicy::default(),
            last_known_good_window: default_lkg(),
        }
    }
}

/// A credentials file and the namespaces it serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// A unique name (the tenant).
    pub name: String,
    /// A Docker `config.json` / `.dockerconfigjson`.
    pub file: PathBuf,
    /// Namespace globs this set serves (default: all); the first matching
    /// set is used.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// Contract sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContractsSpec {
    /// Load the embedded library.
    #[serde(default = "yes")]
    pub builtin: bool,
    /// Directories of contracts (each a contract, or a tree of them).
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

impl Default for ContractsSpec {
    fn default() -> Self {
        ContractsSpec {
            builtin: true,
            dirs: Vec::new(),
        }
    }
}

/// Admission settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdmissionSpec {
    /// Allow bindings to select namespaces by label. Namespace owners can
    /// usually set their namespace's labels, so this is off unless the
    /// operator controls them (e.g. with a separate policy).
    #[serde(default)]
    pub trust_namespace_labels: bool,
    /// On UPDATE, judge every image, not only changed ones.
    #[serde(default)]
    pub judge_all_on_update: bool,
    /// The deadline when the request has no `?timeout=`.
    #[serde(default = "default_adm_timeout")]
    pub default_timeout: Dur,
    /// Subtracted from the deadline, to answer before the API server gives up.
    #[serde(default = "default_margin")]
    pub deadline_margin: Dur,
    /// Images per object.
    #[serde(default = "default_max_images")]
    pub max_images: usize,
    /// The Kubernetes API for namespace labels (default: the in-cluster
    /// service account configuration); used with `trustNamespaceLabels`.
    #[serde(default)]
    pub api_server: Option<String>,
    /// Kinds with no pod spec that are allowed without judging when the
    /// webhook is sent them: `Kind` (any API group) or `group/Kind`. Any
    /// other kind whose pod spec provgate cannot locate is denied. A kind
    /// whose pod template provgate can read is judged even if listed.
    #[serde(default)]
    pub skip_kinds: Vec<String>,
}

fn default_adm_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_margin() -> Dur {
    Dur(Duration::from_secs(1))
}
fn default_max_images() -> usize {
    256
}

impl Default for AdmissionSpec {
    fn default() -> Self {
        AdmissionSpec {
            trust_namespace_labels: false,
            judge_all_on_update: false,
            default_timeout: default_adm_timeout(),
            deadline_margin: default_margin(),
            max_images: default_max_images(),
            api_server: None,
            skip_kinds: Vec::new(),
        }
    }
}

/// Cache settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheSpec {
    /// Tag → digest.
    #[serde(default = "d30s")]
    pub tag_ttl: Dur,
    /// Verified evidence by digest.
    #[serde(default = "d1h")]
    pub evidence_ttl: Dur,
    /// Permanent failures (not found, invalid manifest).
    #[serde(default = "d30s")]
    pub negative_ttl: Dur,
    /// Transient failures (429, 5xx, timeouts, a registry backing off),
    /// never longer than the registry's back-off, and answers over a limit
    /// (oversized, endless paging). Zero: not cached.
    #[serde(default = "d2s")]
    pub transient_negative_ttl: Dur,
    /// Contract verdicts.
    #[serde(default = "d60s")]
    pub verdict_ttl: Dur,
    /// Entries per cache.
    #[serde(default = "d_entries")]
    pub max_entries: u64,
    /// The byte budget of the verified-evidence cache (bytes, or with a
    /// `Ki`/`Mi`/`Gi` suffix). Sets are weighed by the bytes they hold.
    #[serde(default = "d_evidence_bytes")]
    pub evidence_bytes: ByteSize,
    /// The shared evidence tier on Redis (off when absent).
    #[serde(default)]
    pub shared: Option<crate::shared::SharedSpec>,
}

/// A byte count written as `1048576`, `512Ki`, `64Mi` or `1Gi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_bytes(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `1048576`, `512Ki`, `64Mi`, `1Gi`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 1048576, 512Ki, 64Mi or 1Gi"))?;
    let mul = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?} is not a size like 1048576, 512Ki, 64Mi or 1Gi"
            ));
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn d_evidence_bytes() -> ByteSize {
    ByteSize(256 << 20)
}

fn d2s() -> Dur {
    Dur(Duration::from_secs(2))
}
fn d30s() -> Dur {
    Dur(Duration::from_secs(30))
}
fn d60s() -> Dur {
    Dur(Duration::from_secs(60))
}
fn d1h() -> Dur {
    Dur(Duration::from_secs(3600))
}
fn d_entries() -> u64 {
    10_000
}

impl Default for CacheSpec {
    fn default() -> Self {
        CacheSpec {
            tag_ttl: d30s(),
            evidence_ttl: d1h(),
            negative_ttl: d30s(),
            transient_negative_ttl: d2s(),
            verdict_ttl: d60s(),
            max_entries: d_entries(),
            evidence_bytes: d_evidence_bytes(),
            shared: None,
        }
    }
}

/// Policy settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    /// Time limit of one contract evaluation.
    #[serde(default = "d500ms")]
    pub timeout: Dur,
}

fn d500ms() -> Dur {
    Dur(Duration::from_millis(500))
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec { timeout: d500ms() }
    }
}

/// Decision log settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DecisionLogSpec {
    /// Write decisions.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A file to append to; absent or `-` means stdout.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

impl Default for DecisionLogSpec {
    fn default() -> Self {
        DecisionLogSpec {
            enabled: true,
            path: None,
        }
    }
}

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
    /// The contract.
    pub contract: Contract,
    /// Its authorities.
    pub authorities: Vec<Authority>,
    /// Its program.
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
    /// The program.
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
    /// The binding.
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
    /// The spec as written.
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
    pub shared: Option<crate::shared::SharedSettings>,
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

    fn compile_with(
        spec: ConfigSpec,
        path: Option<PathBuf>,
        base: &Path,
        raw: &[u8],
        proposed: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let mut hasher = sha2::Sha256::new();
        hasher.update(raw);

        // Contracts first: their inline keys join the trust store.
        let mut contracts: Vec<Contract> = Vec::new();
        if spec.contracts.builtin {
            contracts.extend(contract::builtin_contracts()?);
        }
        for d in &spec.contracts.dirs {
            let loaded = contract::load_tree(&resolve(d))?;
            // A directory contract replaces a built-in one of the same name.
            for c in loaded {
                contracts.retain(|o| {
                    !(o.name() == c.name() && o.source == crate::policy::ContractSource::Builtin)
                });
                contracts.push(c);
            }
        }
        contract::check_unique(&contracts)?;
        if let Some(dir) = proposed {
            for c in contract::load_tree(dir)? {
                contracts.retain(|o| o.name() != c.name());
                contracts.push(c);
            }
        }
        for c in &contracts {
            hasher.update(c.revision.to_string().as_bytes());
        }

        // Trust.
        let mut trust = TrustStore::builder();
        if spec.trust.public_good {
            trust = trust.public_good();
        }
        if spec.trust.github {
            trust = trust.github();
        }
        for r in &spec.trust.roots {
            trust = trust.root_file(&r.name, &resolve(&r.path))?;
        }
        for k in &spec.trust.keys {
            let pem = match (&k.path, &k.pem) {
                (Some(p), None) => {
                    std::fs::read_to_string(resolve(p)).map_err(|e| ConfigError::Read {
                        path: resolve(p).display().to_string(),
                        reason: e.to_string(),
                    })?
                }
                (None, Some(pem)) => pem.clone(),
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "trust.keys {:?}: give exactly one of path or pem",
                        k.name
                    )));
                }
            };
            trust = trust.key_pem(&k.name, &pem)?;
        }
        for c in &contracts {
            for (name, pem) in c.inline_keys() {
                trust = trust.key_pem(&name, &pem)?;
            }
        }
        for b in &spec.bindings {
            for (cname, auths) in &b.authorities {
                for (name, pem) in inline_keys(&format!("{}/{cname}", b.name), auths) {
                    trust = trust.key_pem(&name, &pem)?;
                }
            }
        }
        let trust = Arc::new(trust.build()?);
        hasher.update(trust.fingerprint().to_string().as_bytes());

        // Compile contracts.
        let timeout = spec.policy.timeout.0;
        let mut compiled = BTreeMap::new();
        for c in contracts {
            let authorities = compile_authorities(c.name(), &c.spec.authorities, &trust)?;
            let program = RegoProgram::compile(c.modules.clone(), None, timeout).map_err(|e| {
                ConfigError::Rego {
                    contract: c.name().into(),
                    reason: e.to_string(),
                }
            })?;
            compiled.insert(
                c.name().to_owned(),
                CompiledContract {
                    contract: c,
                    authorities,
                    program: Arc::new(program),
                },
            );
        }

        // Bindings.
        let known: BTreeSet<String> = compiled.keys().cloned().collect();
        let mut bindings = Vec::new();
        for b in &spec.bindings {
            if bindings
                .iter()
                .any(|o: &CompiledBinding| o.binding.name() == b.name)
            {
                return Err(ConfigError::Invalid(format!(
                    "binding name {:?} is used twice",
                    b.name
                )));
            }
            let binding = Binding::compile(b.clone(), &known)?;
            let mut bound = Vec::new();
            for name in &b.contracts {
                let Some(cc) = compiled.get(name) else {
                    return Err(ConfigError::Invalid(format!(
                        "binding {:?}: unknown contract {name:?}",
                        b.name
                    )));
                };
                let mut parameters = cc.contract.spec.parameters.clone();
                let mut rev = sha2::Sha256::new();
                rev.update(cc.contract.revision.to_string().as_bytes());
                if let Some(over) = b.parameters.get(name) {
                    for (k, v) in over {
                        parameters.insert(k.clone(), v.clone());
                    }
                    rev.update(serde_json::to_vec(over).unwrap_or_default());
                }
                let (authorities, specs) = match b.authorities.get(name) {
                    Some(over) => {
                        rev.update(serde_json::to_vec(over).unwrap_or_default());
                        // Inline keys of overrides live under `<binding>/<contract>/<authority>`.
                        let renamed: Vec<AuthoritySpec> = over
                            .iter()
                            .map(|a| {
                                let mut a = a.clone();
                                if let Some(k) = &mut a.key
                                    && k.pem.is_some()
                                {
                                    k.name = Some(format!("{}/{name}/{}", b.name, a.name));
                                    k.pem = None;
                                }
                                a
                            })
                            .collect();
                        (compile_authorities(name, &renamed, &trust)?, over.clone())
                    }
                    None => (cc.authorities.clone(), cc.contract.spec.authorities.clone()),
                };
                // An empty list must never mean "anyone": refuse it.
                if authorities.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "binding {:?}: contract {name:?} has no authorities, so no evidence could \
                         ever reach its Rego; list its trusted signers in the contract or in \
                         the binding's `authorities.{name}`",
                        b.name
                    )));
                }
                // No authority that admits every tenant of a public issuer
                // may guard an enforcing binding: a stranger building in
                // their own public repository would pass.
                if b.mode == Mode::Enforce {
                    for a in &authorities {
                        if let Some(issuer) = crate::policy::world::trusts_any_tenant(a) {
                            return Err(ConfigError::Invalid(format!(
                                "binding {:?}: contract {name:?} would enforce with authority {:?},                                  which trusts every {issuer} identity (anyone who builds in a                                  repository of their own passes); {}",
                                b.name,
                                a.name,
                                crate::policy::world::WORLD_TRUST_FIX
                            )));
                        }
                    }
                }
                let legacy_cosign = b
                    .legacy_cosign
                    .get(name)
                    .copied()
                    .unwrap_or(cc.contract.spec.legacy_cosign);
                rev.update(if legacy_cosign {
                    b"legacy:1"
                } else {
                    b"legacy:0"
                });
                let revision = Digest::from_parts("sha256", &hex::encode(rev.finalize()))
                    .map_err(|e| ConfigError::Invalid(e.to_string()))?;
                let parameters_value = crate::policy::input::parameters_value(&parameters)
                    .map_err(|e| {
                        ConfigError::Invalid(format!(
                            "binding {:?}: contract {name:?}: {e}",
                            b.name
                        ))
                    })?;
                bound.push(BoundContract {
                    name: name.clone(),
                    version: cc.contract.version().to_owned(),
                    parameters,
                    authorities: Arc::new(authorities),
                    authority_specs: Arc::new(specs),
                    program: cc.program.clone(),
                    revision,
                    parameters_value,
                    context: ContextDecl::new(cc.contract.spec.context.iter().cloned()),
                    legacy_cosign,
                });
            }
            bindings.push(CompiledBinding {
                binding,
                contracts: bound,
            });
        }

        // Registries.
        let entry = |name: &str,
                     r: &RegistrySpec|
         -> Result<(RegistryEntry, RegistryPolicy), ConfigError> {
            let ca_pem = match &r.ca_file {
                Some(p) => Some(std::fs::read(resolve(p)).map_err(|e| ConfigError::Read {
                    path: resolve(p).display().to_string(),
                    reason: e.to_string(),
                })?),
                None => None,
            };
            if let Some(pem) = &ca_pem {
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                    ConfigError::Invalid(format!("registries.hosts.{name}.caFile: {e}"))
                })?;
            }
            Ok((
                RegistryEntry {
                    options: RegistryOptions {
                        insecure: r.insecure,
                        ca_pem,
                        timeout: r.timeout.0,
                        token_hosts: r.token_hosts.clone(),
                    },
                    mirrors: r.mirrors.clone(),
                },
                RegistryPolicy {
                    failure: r.failure,
                    last_known_good_window: r.last_known_good_window.0,
                },
            ))
        };
        let (registry_default, registry_policy_default) =
            entry("defaults", &spec.registries.defaults)?;
        let mut registry_entries = HashMap::new();
        let mut registry_policies = HashMap::new();
        for (name, r) in &spec.registries.hosts {
            let (e, p) = entry(name, r)?;
            registry_entries.insert(name.clone(), e);
            registry_policies.insert(name.clone(), p);
        }

        // Credentials.
        let mut reg_hasher = sha2::Sha256::new();
        reg_hasher.update(format!("{:?}", spec.registries).as_bytes());
        let mut credentials = Vec::new();
        for c in &spec.credentials {
            if credentials
                .iter()
                .any(|(_, s): &(Option<globset::GlobSet>, Arc<CredentialSet>)| s.name() == c.name)
            {
                return Err(ConfigError::Invalid(format!(
                    "credentials name {:?} is used twice",
                    c.name
                )));
            }
            if c.name.is_empty() {
                return Err(ConfigError::Invalid(
                    "credentials: name must not be empty".into(),
                ));
            }
            let set = CredentialSet::from_file(&c.name, &resolve(&c.file))?;
            reg_hasher.update(c.name.as_bytes());
            reg_hasher.update(std::fs::read(resolve(&c.file)).unwrap_or_default());
            let ns =
                glob_set("credentials.namespaces", &c.namespaces).map_err(ConfigError::Invalid)?;
            credentials.push((ns, Arc::new(set)));
        }

        let fingerprint = Digest::from_parts("sha256", &hex::encode(hasher.finalize()))
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let registry_fingerprint =
            Digest::from_parts("sha256", &hex::encode(reg_hasher.finalize()))
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let gate = crate::gate::GateSettings::compile(&spec.gate, base)
            .map_err(|e| ConfigError::Invalid(format!("gate: {e}")))?;
        let platforms =
            crate::platform::PlatformFilter::new(&spec.platforms).map_err(ConfigError::Invalid)?;
        let shared = crate::shared::SharedSettings::of_caches(&spec.cache, resolve)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(Config {
            shared,
            platforms,
            gate,
            registry_fingerprint,
            spec,
            path,
            trust,
            contracts: compiled,
            bindings,
            registry_entries,
            registry_default,
            registry_policies,
            registry_policy_default,
            credentials,
            fingerprint,
        })
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
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1y").is_err());
    }

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
