//! Sigstore bundle parsing and verification over arbitrary bytes, against
//! the embedded public-good root: `Verifier::verify_bundle` (an image's
//! evidence) and `Verifier::verify_artifact` (the `provgate verify` and
//! conformance path, digest and bytes inputs).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use provgate::verify::{ArtifactInput, SourceKind};

fuzz_target!(|data: &[u8]| {
    let v = common::verifier();
    // The subject the bundle's statement names, when it has one, so that a
    // seeded bundle reaches the signature, certificate and log checks.
    let subject = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|b| b.get("dsseEnvelope").and_then(common::envelope_subject))
        .unwrap_or_else(common::default_subject);
    if let Ok(verified) = v.verify_bundle(data, &subject, common::source(SourceKind::TagSchema)) {
        // Nothing random verifies against public-good; a seed might.
        assert_eq!(verified.facts().subject(), &subject);
    }
    let _ = v.verify_artifact(data, ArtifactInput::Digest(&subject));
    let _ = v.verify_artifact(data, ArtifactInput::Bytes(b"a.txt"));
});
