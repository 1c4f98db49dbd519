//! Signed SLSA Verification Summary Attestations for allowed images.
//!
//! A VSA (`https://slsa.dev/verification_summary/v1`) records that provgate
//! verified an image digest against named contracts, and with which
//! evidence. It is an in-toto Statement v1 in a DSSE envelope signed with a
//! configured ECDSA P-256 key, returned as a Sigstore bundle v0.3 with
//! public-key verification material, so `provgate verify --key` (and any
//! Sigstore verifier given the key) can check it.
//!
//! Signing uses aws-lc-rs (already provgate's TLS provider) directly: DSSE
//! is a fixed pre-authentication encoding plus one ECDSA signature, and no
//! signing crate of the sigstore-rust family is part of the settled stack.

use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;

use crate::digest::Digest;

/// The VSA predicate type.
pub const VSA_PREDICATE: &str = "https://slsa.dev/verification_summary/v1";

/// VSA settings as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VsaSpec {
    /// PEM ECDSA P-256 private key (PKCS#8 or SEC1).
    pub key_file: std::path::PathBuf,
    /// `verifier.id`, e.g. `https://provgate.example.com/gate`.
    pub verifier_id: String,
}

/// A loaded signing key.
pub struct VsaSigner {
    key: EcdsaKeyPair,
    key_id: String,
    public_pem: String,
    verifier_id: String,
}

impl std::fmt::Debug for VsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VsaSigner")
            .field("key_id", &self.key_id)
            .field("verifier_id", &self.verifier_id)
            .finish()
    }
}

/// One contract in a VSA's policy.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Revision digest.
    pub revision: Digest,
}

/// Why a VSA key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("VSA signing key {path}: {reason}")]
pub struct VsaError {
    path: String,
    reason: String,
}

impl VsaSigner {
    /// Loads the key.
    pub fn load(spec: &VsaSpec, base: &Path) -> Result<Self, VsaError> {
        let path = if spec.key_file.is_absolute() {
            spec.key_file.clone()
        } else {
            base.join(&spec.key_file)
        };
        let err = |reason: String| VsaError {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
        Self::from_pem(&pem, &spec.verifier_id).map_err(err)
    }

    /// From PEM bytes.
    pub fn from_pem(pem: &[u8], verifier_id: &str) -> Result<Self, String> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        if verifier_id.trim().is_empty() {
            return Err("verifierId must not be empty".into());
        }
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("not a PEM private key: {e}"))?;
        let key =
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, der.secret_der())
                .map_err(|e| format!("not an ECDSA P-256 private key: {e}"))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|e| format!("cannot encode the public key: {e}"))?;
        let spki = spki.as_ref().to_vec();
        let key_id = hex::encode(sha2::Sha256::digest(&spki));
        let b64 = B64.encode(&spki);
        let mut public_pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            public_pem.push_str(&String::from_utf8_lossy(chunk));
            public_pem.push('\n');
        }
        public_pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(VsaSigner {
            key,
            key_id,
            public_pem,
            verifier_id: verifier_id.to_owned(),
        })
    }

    /// The public key (PEM), to verify VSAs with.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Hex SHA-256 of the public key's SPKI DER.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The in-toto statement of a VSA.
    pub fn statement(
        &self,
        image_name: &str,
        digest: &Digest,
        policy: &[PolicyEntry],
        inputs: &[Digest],
        now: jiff::Timestamp,
    ) -> serde_json::Value {
        let mut policy_hash = sha2::Sha256::new();
        for p in policy {
            policy_hash.update(format!("{}@{}={}\n", p.name, p.version, p.revision).as_bytes());
        }
        let uri = format!(
            "provgate:contracts?{}",
            policy
                .iter()
                .map(|p| format!("{}@{}", p.name, p.version))
                .collect::<Vec<_>>()
                .join(",")
        );
        json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{
                "name": image_name,
                "digest": {digest.algorithm().name(): digest.hex()},
            }],
            "predicateType": VSA_PREDICATE,
            "predicate": {
                "verifier": {"id": self.verifier_id, "version": {"provgate": env!("CARGO_PKG_VERSION")}},
                "timeVerified": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "resourceUri": format!("{image_name}@{digest}"),
                "policy": {"uri": uri, "digest": {"sha256": hex::encode(policy_hash.finalize())}},
                "inputAttestations": inputs.iter().map(|d| json!({
                    "digest": {d.algorithm().name(): d.hex()},
                })).collect::<Vec<_>>(),
                "verificationResult": "PASSED",
                "verifiedLevels": [],
                "slsaVersion": "1.0",
            },
        })
    }

    /// Signs a statement into a Sigstore bundle v0.3 (DSSE, public key).
    pub fn sign(&self, statement: &serde_json::Value) -> Result<serde_json::Value, String> {
        let payload = serde_json::to_vec(statement).map_err(|e| e.to_string())?;
        let payload_type = crate::verify::IN_TOTO_PAYLOAD_TYPE;
        let pae = pae(payload_type, &payload);
        let sig = self
            .key
            .sign(&SystemRandom::new(), &pae)
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok(json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "publicKey": {"hint": self.key_id},
                "tlogEntries": [],
                "timestampVerificationData": {"rfc3161Timestamps": []},
            },
            "dsseEnvelope": {
                "payload": B64.encode(&payload),
                "payloadType": payload_type,
                "signatures": [{"sig": B64.encode(sig.as_ref()), "keyid": self.key_id}],
            },
        }))
    }
}

/// DSSE pre-authentication encoding (what a DSSE signature signs).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn signer() -> VsaSigner {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let b64 = B64.encode(pkcs8.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        VsaSigner::from_pem(pem.as_bytes(), "https://provgate.test/gate").unwrap()
    }

    #[test]
    fn a_vsa_verifies_with_the_public_key() {
        let s = signer();
        let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let st = s.statement(
            "ghcr.io/acme/app",
            &digest,
            &[PolicyEntry {
                name: "c".into(),
                version: "1".into(),
                revision: digest.clone(),
            }],
            std::slice::from_ref(&digest),
            jiff::Timestamp::now(),
        );
        let bundle = serde_json::to_vec(&s.sign(&st).unwrap()).unwrap();
        let trust = crate::verify::TrustStore::builder()
            .key_pem("vsa", s.public_pem())
            .unwrap()
            .build()
            .unwrap();
        let v = crate::verify::Verifier::new(Arc::new(trust), Default::default());
        let src = crate::verify::EvidenceSource {
            kind: crate::verify::SourceKind::File,
            manifest: None,
            layer: None,
        };
        let verified = v.verify_bundle(&bundle, &digest, src.clone()).unwrap();
        let crate::verify::Verified::Attestation(a) = verified else {
            panic!("not an attestation")
        };
        assert_eq!(a.statement().predicate_type(), VSA_PREDICATE);
        // Not for another digest, through either entry point.
        let other: Digest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        assert!(matches!(
            v.verify_bundle(&bundle, &other, src),
            Err(crate::verify::VerifyError::SubjectMismatch { .. })
        ));
        assert!(matches!(
            v.verify_artifact(&bundle, crate::verify::ArtifactInput::Digest(&other)),
            Err(crate::verify::VerifyError::SubjectMismatch { .. })
        ));
        assert!(
            v.verify_artifact(&bundle, crate::verify::ArtifactInput::Digest(&digest))
                .is_ok()
        );
    }
}
