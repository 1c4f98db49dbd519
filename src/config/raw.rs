//! The configuration file as written: one serde type per section, strict
//! about unknown fields, with the defaults the documentation promises.
//!
//! Sections compiled by a module below the configuration keep their raw
//! type beside their compiler (`bindings` in [`crate::bind`], `verify` in
//! [`crate::verify`], `registries.limits` in [`crate::oci`],
//! `caches.shared` in [`crate::shared`], `gate` in [`crate::gate`]); the
//! rest, including `report` (see [`super::report`]), is defined here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::report::ReportSpec;
use crate::bind::BindingSpec;
use crate::gate::GateSpec;
use crate::oci::Limits;
use crate::shared::SharedSpec;
use crate::units::{ByteSize, Dur};
use crate::verify::VerifyLimits;

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
    pub gate: GateSpec,
    /// Compliance reporting.
    #[serde(default)]
    pub report: ReportSpec,
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
    pub shared: Option<SharedSpec>,
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
