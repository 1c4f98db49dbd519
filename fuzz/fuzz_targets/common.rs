//! Shared by the fuzz targets (included with `#[path]`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use provgate::digest::Digest;
use provgate::verify::{EvidenceSource, SourceKind, TrustStore, Verifier, VerifyLimits};

/// A verifier over the embedded Sigstore public-good root, built once.
pub fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let trust = TrustStore::builder()
            .public_good()
            .build()
            .expect("the embedded public-good root loads");
        Verifier::new(Arc::new(trust), VerifyLimits::default())
    })
}

/// A source of the given kind.
pub fn source(kind: SourceKind) -> EvidenceSource {
    EvidenceSource {
        kind,
        manifest: None,
        layer: None,
    }
}

/// A digest no input names.
pub fn default_subject() -> Digest {
    Digest::sha256_of(b"provgate fuzz image")
}

/// The first sha256 subject of an in-toto statement, so that seeded
/// inputs get past the subject check into the signature checks.
pub fn statement_subject(statement: &[u8]) -> Option<Digest> {
    let v: serde_json::Value = serde_json::from_slice(statement).ok()?;
    let hex = v.pointer("/subject/0/digest/sha256")?.as_str()?;
    format!("sha256:{hex}").parse().ok()
}

/// The statement subject of a DSSE envelope (JSON with a base64 `payload`).
pub fn envelope_subject(envelope: &serde_json::Value) -> Option<Digest> {
    let payload = envelope.get("payload")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    statement_subject(&bytes)
}

/// Splits `ENVELOPE \n--annotations--\n ANNOTATIONS-JSON`; the annotations
/// are an object of strings (anything else: none).
pub fn split_annotations(data: &[u8]) -> (&[u8], BTreeMap<String, String>) {
    const SEP: &[u8] = b"\n--annotations--\n";
    match data.windows(SEP.len()).position(|w| w == SEP) {
        Some(i) => {
            let annotations = serde_json::from_slice(&data[i + SEP.len()..]).unwrap_or_default();
            (&data[..i], annotations)
        }
        None => (data, BTreeMap::new()),
    }
}
