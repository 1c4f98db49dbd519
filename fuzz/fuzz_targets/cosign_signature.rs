//! A cosign `.sig` layer: a simple-signing payload plus its annotations
//! (`dev.cosignproject.cosign/signature`, `dev.sigstore.cosign/bundle`,
//! `…/certificate`), through `Verifier::verify_cosign_signature` against the
//! public-good root.
//!
//! Input: `PAYLOAD` or `PAYLOAD\n--annotations--\n{JSON object of strings}`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use provgate::digest::Digest;
use provgate::verify::SourceKind;

fuzz_target!(|data: &[u8]| {
    let (payload, annotations) = common::split_annotations(data);
    let subject = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|p| {
            p.pointer("/critical/image/docker-manifest-digest")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse::<Digest>().ok())
        })
        .unwrap_or_else(common::default_subject);
    let _ = common::verifier().verify_cosign_signature(
        payload,
        &annotations,
        &subject,
        common::source(SourceKind::CosignSig),
    );
});
