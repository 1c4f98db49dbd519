//! Compiling a [`ConfigSpec`] into a [`Config`], one named step per
//! section, in the order the first error is reported:
//!
//! 1. [`load_contracts`]: built-in, directory and proposed contracts;
//! 2. [`build_trust`]: roots and keys, including the contracts' and the
//!    bindings' inline keys;
//! 3. [`compile_contracts`]: each contract's authorities and Rego, once;
//! 4. [`compile_bindings`]: each binding with its contracts as it applies
//!    them ([`bind_contract`]);
//! 5. [`compile_registries`] and [`compile_credentials`];
//! 6. the gate, the platform filter and the shared tier.
//!
//! The configuration fingerprint hashes the file, every contract revision
//! and the trust store; the registry fingerprint hashes what registry
//! access depends on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest as _;

use super::raw::{ConfigSpec, ContractsSpec, CredentialsSpec, RegistriesSpec, RegistrySpec};
use super::{
    BoundContract, CompiledBinding, CompiledContract, Config, ConfigError, RegistryPolicy,
};
use crate::bind::{Binding, BindingSpec, Mode, glob_set};
use crate::digest::Digest;
use crate::oci::{CredentialSet, RegistryEntry, RegistryOptions};
use crate::policy::contract::{self, compile_authorities, inline_keys};
use crate::policy::{AuthoritySpec, ContextDecl, Contract, RegoProgram};
use crate::shared::SharedSettings;
use crate::verify::{Authority, TrustStore};

impl Config {
    /// Compiles `spec`; `base` resolves relative paths, `raw` feeds the
    /// fingerprint and the contracts under `proposed` replace same-named
    /// ones.
    pub(super) fn compile_with(
        spec: ConfigSpec,
        path: Option<PathBuf>,
        base: &Path,
        raw: &[u8],
        proposed: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let mut hasher = sha2::Sha256::new();
        hasher.update(raw);

        // Contracts first: their inline keys join the trust store.
        let contracts = load_contracts(&spec.contracts, base, proposed)?;
        for c in &contracts {
            hasher.update(c.revision.to_string().as_bytes());
        }
        let trust = Arc::new(build_trust(&spec, base, &contracts)?);
        hasher.update(trust.fingerprint().to_string().as_bytes());
        let compiled = compile_contracts(contracts, &trust, spec.policy.timeout.0)?;
        let bindings = compile_bindings(&spec.bindings, &compiled, &trust)?;
        let registries = compile_registries(&spec.registries, base)?;
        let (credentials, reg_hasher) = compile_credentials(&spec, base)?;

        let fingerprint = digest_of(hasher)?;
        let registry_fingerprint = digest_of(reg_hasher)?;
        let gate = crate::gate::GateSettings::compile(&spec.gate, base)
            .map_err(|e| ConfigError::Invalid(format!("gate: {e}")))?;
        let platforms =
            crate::platform::PlatformFilter::new(&spec.platforms).map_err(ConfigError::Invalid)?;
        let caches = &spec.cache;
        let shared = caches
            .shared
            .as_ref()
            .map(|s| {
                SharedSettings::compile(
                    s,
                    |p| resolve(base, p),
                    caches.evidence_ttl.0,
                    caches.negative_ttl.0,
                )
            })
            .transpose()
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
            registry_entries: registries.entries,
            registry_default: registries.default,
            registry_policies: registries.policies,
            registry_policy_default: registries.policy_default,
            credentials,
            fingerprint,
        })
    }
}

/// `p`, or `base/p` when `p` is relative.
fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// The error for a file the configuration points at that cannot be read.
fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn digest_of(hasher: sha2::Sha256) -> Result<Digest, ConfigError> {
    Digest::from_parts("sha256", &hex::encode(hasher.finalize()))
        .map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// The built-in contracts (when enabled), then each directory's (a
/// directory contract replaces a built-in one of the same name), then the
/// proposal's, which replace any of the same name.
fn load_contracts(
    spec: &ContractsSpec,
    base: &Path,
    proposed: Option<&Path>,
) -> Result<Vec<Contract>, ConfigError> {
    let mut contracts: Vec<Contract> = Vec::new();
    if spec.builtin {
        contracts.extend(contract::builtin_contracts()?);
    }
    for d in &spec.dirs {
        let loaded = contract::load_tree(&resolve(base, d))?;
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
    Ok(contracts)
}

/// The trust store: the embedded roots asked for, `trust.roots`,
/// `trust.keys`, and the inline keys of contracts and binding overrides.
fn build_trust(
    spec: &ConfigSpec,
    base: &Path,
    contracts: &[Contract],
) -> Result<TrustStore, ConfigError> {
    let mut trust = TrustStore::builder();
    if spec.trust.public_good {
        trust = trust.public_good();
    }
    if spec.trust.github {
        trust = trust.github();
    }
    for r in &spec.trust.roots {
        trust = trust.root_file(&r.name, &resolve(base, &r.path))?;
    }
    for k in &spec.trust.keys {
        let pem = match (&k.path, &k.pem) {
            (Some(p), None) => {
                let path = resolve(base, p);
                std::fs::read_to_string(&path).map_err(read_error(&path))?
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
    for c in contracts {
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
    Ok(trust.build()?)
}

/// Each contract's authorities against the trust store and its Rego,
/// compiled once, by name.
fn compile_contracts(
    contracts: Vec<Contract>,
    trust: &TrustStore,
    timeout: std::time::Duration,
) -> Result<BTreeMap<String, CompiledContract>, ConfigError> {
    let mut compiled = BTreeMap::new();
    for c in contracts {
        let authorities = compile_authorities(c.name(), &c.spec.authorities, trust)?;
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
    Ok(compiled)
}

/// The bindings in order, each with its contracts; binding names are
/// unique.
fn compile_bindings(
    specs: &[BindingSpec],
    compiled: &BTreeMap<String, CompiledContract>,
    trust: &TrustStore,
) -> Result<Vec<CompiledBinding>, ConfigError> {
    let known: BTreeSet<String> = compiled.keys().cloned().collect();
    let mut bindings = Vec::new();
    for b in specs {
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
            bound.push(bind_contract(b, name, cc, trust)?);
        }
        bindings.push(CompiledBinding {
            binding,
            contracts: bound,
        });
    }
    Ok(bindings)
}

/// Contract `name` as binding `b` applies it: parameters and authorities
/// with the binding's overrides, and the revision the verdict cache keys
/// on (contract revision, overrides, legacy-cosign choice).
fn bind_contract(
    b: &BindingSpec,
    name: &str,
    cc: &CompiledContract,
    trust: &TrustStore,
) -> Result<BoundContract, ConfigError> {
    let mut parameters = cc.contract.spec.parameters.clone();
    let mut rev = sha2::Sha256::new();
    rev.update(cc.contract.revision.to_string().as_bytes());
    if let Some(over) = b.parameters.get(name) {
        for (k, v) in over {
            parameters.insert(k.clone(), v.clone());
        }
        rev.update(serde_json::to_vec(over).unwrap_or_default());
    }
    let (authorities, specs) = bound_authorities(b, name, cc, trust, &mut rev)?;
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
    let revision = digest_of(rev)?;
    let parameters_value = crate::policy::input::parameters_value(&parameters).map_err(|e| {
        ConfigError::Invalid(format!("binding {:?}: contract {name:?}: {e}", b.name))
    })?;
    Ok(BoundContract {
        name: name.to_owned(),
        version: cc.contract.version().to_owned(),
        parameters,
        authorities: Arc::new(authorities),
        authority_specs: Arc::new(specs),
        program: cc.program.clone(),
        revision,
        parameters_value,
        context: ContextDecl::new(cc.contract.spec.context.iter().cloned()),
        legacy_cosign,
    })
}

/// The authorities binding `b` applies for contract `name`: its override
/// (which feeds `rev`) or the contract's own.
fn bound_authorities(
    b: &BindingSpec,
    name: &str,
    cc: &CompiledContract,
    trust: &TrustStore,
    rev: &mut sha2::Sha256,
) -> Result<(Vec<Authority>, Vec<AuthoritySpec>), ConfigError> {
    let Some(over) = b.authorities.get(name) else {
        return Ok((cc.authorities.clone(), cc.contract.spec.authorities.clone()));
    };
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
    Ok((compile_authorities(name, &renamed, trust)?, over.clone()))
}

/// Registry entries and failure policies: the defaults and each host's.
struct CompiledRegistries {
    entries: HashMap<String, RegistryEntry>,
    default: RegistryEntry,
    policies: HashMap<String, RegistryPolicy>,
    policy_default: RegistryPolicy,
}

fn compile_registries(
    spec: &RegistriesSpec,
    base: &Path,
) -> Result<CompiledRegistries, ConfigError> {
    let (default, policy_default) = registry_entry(base, "defaults", &spec.defaults)?;
    let mut entries = HashMap::new();
    let mut policies = HashMap::new();
    for (name, r) in &spec.hosts {
        let (e, p) = registry_entry(base, name, r)?;
        entries.insert(name.clone(), e);
        policies.insert(name.clone(), p);
    }
    Ok(CompiledRegistries {
        entries,
        default,
        policies,
        policy_default,
    })
}

/// One registry's entry (options and mirrors) and failure policy; its CA
/// file must hold PEM certificates.
fn registry_entry(
    base: &Path,
    name: &str,
    r: &RegistrySpec,
) -> Result<(RegistryEntry, RegistryPolicy), ConfigError> {
    let ca_pem = match &r.ca_file {
        Some(p) => {
            let path = resolve(base, p);
            Some(std::fs::read(&path).map_err(read_error(&path))?)
        }
        None => None,
    };
    if let Some(pem) = &ca_pem {
        reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ConfigError::Invalid(format!("registries.hosts.{name}.caFile: {e}")))?;
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
}

/// A credential set with the namespaces it serves (`None`: all).
type ScopedCredentials = (Option<globset::GlobSet>, Arc<CredentialSet>);

/// The credential sets in order, and the registry fingerprint's hasher
/// fed with the registry settings and every credential file.
fn compile_credentials(
    spec: &ConfigSpec,
    base: &Path,
) -> Result<(Vec<ScopedCredentials>, sha2::Sha256), ConfigError> {
    let mut reg_hasher = sha2::Sha256::new();
    reg_hasher.update(format!("{:?}", spec.registries).as_bytes());
    let mut credentials: Vec<ScopedCredentials> = Vec::new();
    for c in &spec.credentials {
        credentials.push(credential_set(c, base, &credentials, &mut reg_hasher)?);
    }
    Ok((credentials, reg_hasher))
}

fn credential_set(
    c: &CredentialsSpec,
    base: &Path,
    earlier: &[ScopedCredentials],
    reg_hasher: &mut sha2::Sha256,
) -> Result<ScopedCredentials, ConfigError> {
    if earlier.iter().any(|(_, s)| s.name() == c.name) {
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
    let set = CredentialSet::from_file(&c.name, &resolve(base, &c.file))?;
    reg_hasher.update(c.name.as_bytes());
    reg_hasher.update(std::fs::read(resolve(base, &c.file)).unwrap_or_default());
    let ns = glob_set("credentials.namespaces", &c.namespaces).map_err(ConfigError::Invalid)?;
    Ok((ns, Arc::new(set)))
}
