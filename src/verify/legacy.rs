//! cosign's legacy layouts, converted into Sigstore bundles.
//!
//! cosign v1/v2 store signatures in a `sha256-<hex>.sig` tag (simple-signing
//! layers) and attestations in `sha256-<hex>.att` (DSSE layers), with the
//! verification material in layer annotations:
//!
//! | annotation | content |
//! |---|---|
//! | `dev.cosignproject.cosign/signature` | base64 signature over the payload (empty for `.att`) |
//! | `dev.sigstore.cosign/certificate` | PEM leaf certificate (keyless) |
//! | `dev.sigstore.cosign/chain` | PEM intermediates and root |
//! | `dev.sigstore.cosign/bundle` | Rekor entry: `{SignedEntryTimestamp, Payload{body, integratedTime, logIndex, logID}}` |
//! | `dev.sigstore.cosign/rfc3161timestamp` | `{SignedRFC3161Timestamp}` |
//!
//! Rather than a second verifier, each layer becomes a v0.1 bundle (the
//! format that allows an inclusion promise without a proof; v0.2 when the
//! layer has no Rekor entry) and goes through the same sigstore-verify path
//! as every other bundle, including the check that the Rekor entry describes
//! this signature, key and payload. The one exception is a key-signed layer
//! with neither a Rekor entry nor a timestamp, which no Sigstore bundle may
//! be: only its signature is checked, and its facts say so.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

/// The simple-signing layer media type.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The DSSE layer media type of `.att` manifests.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";

const ANN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
const ANN_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
const ANN_CHAIN: &str = "dev.sigstore.cosign/chain";
const ANN_BUNDLE: &str = "dev.sigstore.cosign/bundle";
const ANN_TIMESTAMP: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// The annotations larger than this are rejected (a certificate chain is a
/// few KiB; a Rekor bundle annotation a few KiB more).
const MAX_ANNOTATION: usize = 256 * 1024;

/// The shape of the `dev.sigstore.cosign/bundle` annotation.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RekorBundle {
    signed_entry_timestamp: String,
    payload: RekorPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Deserialize)]
struct TimestampAnnotation {
    #[serde(rename = "SignedRFC3161Timestamp")]
    signed: String,
}

#[derive(Deserialize)]
struct BodyKind {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
}

/// What to sign-check: a message signature over a payload, or a DSSE envelope.
pub enum LegacyContent<'a> {
    /// A `.sig` simple-signing payload.
    Signature(&'a [u8]),
    /// A `.att` DSSE envelope (its JSON bytes).
    Attestation(&'a [u8]),
}

/// Builds a v0.1 bundle (as JSON) from a cosign layer and its annotations.
pub fn to_bundle(
    content: LegacyContent<'_>,
    annotations: &BTreeMap<String, String>,
) -> Result<Value, String> {
    for (k, v) in annotations {
        if v.len() > MAX_ANNOTATION {
            return Err(format!(
                "annotation {k} is {} bytes, more than the limit of {MAX_ANNOTATION}",
                v.len()
            ));
        }
    }
    let mut material = serde_json::Map::new();
    match annotations
        .get(ANN_CERTIFICATE)
        .filter(|c| !c.trim().is_empty())
    {
        Some(cert) => {
            let mut certs = vec![pem_der(cert, "certificate")?];
            if let Some(chain) = annotations.get(ANN_CHAIN) {
                certs.extend(pem_all(chain)?);
            }
            let certs: Vec<Value> = certs
                .iter()
                .map(|der| json!({"rawBytes": B64.encode(der)}))
                .collect();
            material.insert(
                "x509CertificateChain".into(),
                json!({ "certificates": certs }),
            );
        }
        None => {
            material.insert("publicKey".into(), json!({"hint": ""}));
        }
    }
    if let Some(raw) = annotations.get(ANN_BUNDLE) {
        let rb: RekorBundle = serde_json::from_str(raw)
            .map_err(|e| format!("annotation {ANN_BUNDLE} is malformed: {e}"))?;
        let body = B64
            .decode(rb.payload.body.as_bytes())
            .map_err(|e| format!("Rekor entry body is not base64: {e}"))?;
        let kind: BodyKind = serde_json::from_slice(&body)
            .map_err(|e| format!("Rekor entry body is not a Rekor entry: {e}"))?;
        let log_id =
            hex::decode(&rb.payload.log_id).map_err(|e| format!("Rekor logID is not hex: {e}"))?;
        material.insert(
            "tlogEntries".into(),
            json!([{
                "logIndex": rb.payload.log_index.to_string(),
                "logId": {"keyId": B64.encode(log_id)},
                "kindVersion": {"kind": kind.kind, "version": kind.api_version},
                "integratedTime": rb.payload.integrated_time.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": rb.signed_entry_timestamp},
                "canonicalizedBody": rb.payload.body,
            }]),
        );
    }
    if let Some(raw) = annotations.get(ANN_TIMESTAMP) {
        let ts: TimestampAnnotation = serde_json::from_str(raw)
            .map_err(|e| format!("annotation {ANN_TIMESTAMP} is malformed: {e}"))?;
        material.insert(
            "timestampVerificationData".into(),
            json!({"rfc3161Timestamps": [{"signedTimestamp": ts.signed}]}),
        );
    }

    // v0.1 is the format that allows an inclusion promise without a proof,
    // and it requires that promise; a layer signed without Rekor
    // (`--tlog-upload=false`) becomes a v0.2 bundle, whose time evidence can
    // be an RFC 3161 timestamp alone.
    let media_type = if annotations.contains_key(ANN_BUNDLE) {
        "application/vnd.dev.sigstore.bundle+json;version=0.1"
    } else {
        "application/vnd.dev.sigstore.bundle+json;version=0.2"
    };
    let mut bundle = serde_json::Map::new();
    bundle.insert("mediaType".into(), media_type.into());
    bundle.insert("verificationMaterial".into(), Value::Object(material));
    match content {
        LegacyContent::Signature(payload) => {
            let sig = annotations
                .get(ANN_SIGNATURE)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("signature layer has no {ANN_SIGNATURE} annotation"))?;
            B64.decode(sig.as_bytes())
                .map_err(|e| format!("annotation {ANN_SIGNATURE} is not base64: {e}"))?;
            let digest =
                sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(payload));
            bundle.insert(
                "messageSignature".into(),
                json!({
                    "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(digest)},
                    "signature": sig,
                }),
            );
        }
        LegacyContent::Attestation(envelope) => {
            let env: Value = serde_json::from_slice(envelope)
                .map_err(|e| format!("attestation layer is not a DSSE envelope: {e}"))?;
            bundle.insert("dsseEnvelope".into(), env);
        }
    }
    Ok(Value::Object(bundle))
}

fn pem_der(pem: &str, what: &str) -> Result<Vec<u8>, String> {
    let mut all = pem_all(pem)?;
    if all.len() != 1 {
        return Err(format!(
            "{what} annotation must hold exactly one PEM certificate, found {}",
            all.len()
        ));
    }
    Ok(all.remove(0))
}

fn pem_all(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| {
            c.map(|c| c.to_vec())
                .map_err(|e| format!("bad PEM certificate: {e:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_signature_without_rekor_becomes_public_key_bundle() {
        let mut ann = BTreeMap::new();
        ann.insert(ANN_SIGNATURE.to_string(), B64.encode(b"sig"));
        let b = to_bundle(LegacyContent::Signature(b"{}"), &ann).unwrap();
        assert_eq!(b["verificationMaterial"]["publicKey"]["hint"], "");
        assert_eq!(
            b["mediaType"],
            "application/vnd.dev.sigstore.bundle+json;version=0.2"
        );
        assert!(b["messageSignature"]["messageDigest"]["digest"].is_string());
    }

    #[test]
    fn rejects_malformed_annotations() {
        let mut ann = BTreeMap::new();
        assert!(to_bundle(LegacyContent::Signature(b"{}"), &ann).is_err());
        ann.insert(ANN_SIGNATURE.to_string(), "not base64!".into());
        assert!(to_bundle(LegacyContent::Signature(b"{}"), &ann).is_err());
        ann.insert(ANN_SIGNATURE.to_string(), B64.encode(b"sig"));
        ann.insert(ANN_BUNDLE.to_string(), "{".into());
        assert!(to_bundle(LegacyContent::Signature(b"{}"), &ann).is_err());
        ann.remove(ANN_BUNDLE);
        ann.insert(
            ANN_CERTIFICATE.to_string(),
            "-----BEGIN CERTIFICATE-----\nAA\n".into(),
        );
        assert!(to_bundle(LegacyContent::Signature(b"{}"), &ann).is_err());
        ann.remove(ANN_CERTIFICATE);
        ann.insert(ANN_CHAIN.to_string(), "x".repeat(MAX_ANNOTATION + 1));
        assert!(to_bundle(LegacyContent::Signature(b"{}"), &ann).is_err());
        assert!(to_bundle(LegacyContent::Attestation(b"nope"), &BTreeMap::new()).is_err());
    }
}
