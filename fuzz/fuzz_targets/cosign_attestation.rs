//! A cosign `.att` layer: a DSSE envelope plus the layer annotations
//! (`dev.sigstore.cosign/bundle`, `…/certificate`, `…/chain`, …) that
//! `Verifier::verify_cosign_attestation` converts into a bundle and
//! verifies against the public-good root.
//!
//! Input: `ENVELOPE` or `ENVELOPE\n--annotations--\n{JSON object of strings}`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use provgate::verify::SourceKind;

fuzz_target!(|data: &[u8]| {
    let (envelope, annotations) = common::split_annotations(data);
    let subject = serde_json::from_slice::<serde_json::Value>(envelope)
        .ok()
        .and_then(|e| common::envelope_subject(&e))
        .unwrap_or_else(common::default_subject);
    let _ = common::verifier().verify_cosign_attestation(
        envelope,
        &annotations,
        &subject,
        common::source(SourceKind::CosignAtt),
    );
});
