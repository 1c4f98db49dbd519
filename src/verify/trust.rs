//! Trust material: Sigstore trusted roots and public keys, loaded offline.
//!
//! The public-good root is embedded in the binary (from `sigstore-trust-root`);
//! more `trusted_root.json` files and PEM keys come from configuration. No
//! TUF fetch happens at runtime. The store has a [`TrustStore::fingerprint`]
//! over all its material, which keys the verified-evidence cache: changing any
//! root or key invalidates exactly the evidence verified under the old set.

use std::fmt;

use sha2::Digest as _;
use sigstore_trust_root::TrustedRoot;
use sigstore_types::DerPublicKey;

use crate::digest::Digest;

/// Name of the embedded Sigstore public-good root.
pub const PUBLIC_GOOD: &str = "public-good";
/// Name of the embedded GitHub root (GitHub's Fulcio, used by `actions/attest`
/// for private repositories).
pub const GITHUB: &str = "github";

/// A trusted root with the verifier prepared for it.
pub struct NamedRoot {
    name: String,
    verifier: sigstore_verify::Verifier,
    has_ct_logs: bool,
    has_tlogs: bool,
}

impl NamedRoot {
    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }
    pub(super) fn verifier(&self) -> &sigstore_verify::Verifier {
        &self.verifier
    }
    /// Whether the root lists CT logs (then SCTs are required).
    pub fn has_ct_logs(&self) -> bool {
        self.has_ct_logs
    }
    /// Whether the root lists a transparency log (then keyless evidence
    /// must carry an entry, as in every Sigstore client).
    pub fn has_tlogs(&self) -> bool {
        self.has_tlogs
    }
}

/// A trusted public key.
#[derive(Clone)]
pub struct TrustedKey {
    name: String,
    key: DerPublicKey,
    key_id: String,
}

impl TrustedKey {
    /// Parses a PEM `PUBLIC KEY` (SPKI): ECDSA P-256/P-384, Ed25519 or RSA.
    pub fn from_pem(name: &str, pem: &str) -> Result<Self, TrustError> {
        let bad = |reason: String| TrustError::InvalidKey {
            name: name.into(),
            reason,
        };
        let key = DerPublicKey::from_pem(pem).map_err(|e| bad(e.to_string()))?;
        sigstore_verify::crypto::VerificationKey::from_spki(&key)
            .map_err(|e| bad(format!("unsupported key: {e}")))?;
        let key_id = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        Ok(TrustedKey {
            name: name.into(),
            key,
            key_id,
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Hex SHA-256 of the SPKI DER.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    pub(super) fn der(&self) -> &DerPublicKey {
        &self.key
    }
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedKey({:?}, {})", self.name, &self.key_id[..16])
    }
}

/// Why trust material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A trusted root is not valid.
    #[error("trusted root {name:?} is invalid: {reason}")]
    InvalidRoot {
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A key is not a supported PEM public key.
    #[error("public key {name:?} is invalid: {reason}")]
    InvalidKey {
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Two roots or two keys share a name.
    #[error("trust material name {0:?} is used twice")]
    Duplicate(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// All trust material: roots and keys.
pub struct TrustStore {
    roots: Vec<NamedRoot>,
    keys: Vec<TrustedKey>,
    fingerprint: Digest,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field(
                "roots",
                &self.roots.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .field("keys", &self.keys)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl TrustStore {
    /// Starts an empty store.
    pub fn builder() -> TrustStoreBuilder {
        TrustStoreBuilder::default()
    }

    /// The roots, in configuration order.
    pub fn roots(&self) -> &[NamedRoot] {
        &self.roots
    }

    /// The keys, in configuration order.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// A key by name.
    pub fn key(&self, name: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Whether a root of that name exists.
    pub fn has_root(&self, name: &str) -> bool {
        self.roots.iter().any(|r| r.name == name)
    }

    /// A digest over every root and key (names and bytes).
    pub fn fingerprint(&self) -> &Digest {
        &self.fingerprint
    }
}

/// Builds a [`TrustStore`].
#[derive(Default)]
pub struct TrustStoreBuilder {
    roots: Vec<(String, String)>,
    keys: Vec<TrustedKey>,
}

impl TrustStoreBuilder {
    /// Adds the embedded Sigstore public-good root as `public-good`.
    pub fn public_good(self) -> Self {
        self.root_json(
            PUBLIC_GOOD,
            sigstore_trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT,
        )
    }

    /// Adds the embedded GitHub root as `github`.
    pub fn github(self) -> Self {
        self.root_json(GITHUB, sigstore_trust_root::SIGSTORE_GITHUB_TRUSTED_ROOT)
    }

    /// Adds a `trusted_root.json` document under `name`.
    pub fn root_json(mut self, name: &str, json: &str) -> Self {
        self.roots.push((name.into(), json.into()));
        self
    }

    /// Reads a `trusted_root.json` file and adds it under `name`.
    pub fn root_file(self, name: &str, path: &std::path::Path) -> Result<Self, TrustError> {
        let json = std::fs::read_to_string(path).map_err(|source| TrustError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(self.root_json(name, &json))
    }

    /// Adds a PEM public key under `name`.
    pub fn key_pem(mut self, name: &str, pem: &str) -> Result<Self, TrustError> {
        self.keys.push(TrustedKey::from_pem(name, pem)?);
        Ok(self)
    }

    /// Parses and prepares everything; fails on the first invalid item.
    pub fn build(self) -> Result<TrustStore, TrustError> {
        let mut hasher = sha2::Sha256::new();
        let mut roots = Vec::with_capacity(self.roots.len());
        for (name, json) in &self.roots {
            if roots.iter().any(|r: &NamedRoot| &r.name == name) {
                return Err(TrustError::Duplicate(name.clone()));
            }
            let bad = |reason: String| TrustError::InvalidRoot {
                name: name.clone(),
                reason,
            };
            let root = TrustedRoot::from_json(json).map_err(|e| bad(e.to_string()))?;
            let verifier = sigstore_verify::Verifier::new(&root).map_err(|e| bad(e.to_string()))?;
            hasher.update(b"root\0");
            hasher.update(name.as_bytes());
            hasher.update(b"\0");
            hasher.update(json.as_bytes());
            roots.push(NamedRoot {
                name: name.clone(),
                has_ct_logs: !root.ctlogs.is_empty(),
                has_tlogs: !root.tlogs.is_empty(),
                verifier,
            });
        }
        for (i, key) in self.keys.iter().enumerate() {
            if self.keys[..i].iter().any(|k| k.name == key.name) {
                return Err(TrustError::Duplicate(key.name.clone()));
            }
            hasher.update(b"key\0");
            hasher.update(key.name.as_bytes());
            hasher.update(b"\0");
            hasher.update(key.key.as_bytes());
        }
        let fingerprint =
            Digest::from_parts("sha256", &hex::encode(hasher.finalize())).map_err(|e| {
                TrustError::InvalidRoot {
                    name: "fingerprint".into(),
                    reason: e.to_string(),
                }
            })?;
        Ok(TrustStore {
            roots,
            keys: self.keys,
            fingerprint,
        })
    }
}
