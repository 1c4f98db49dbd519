//! A cosign `.att` layer (DSSE envelope plus layer annotations).
//!
//! The body is `provgate::fuzzing::cosign_attestation` (see its documentation for the
//! input format and invariants); `cargo test` replays the corpus and the
//! regressions through the same function (tests/it/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| provgate::fuzzing::cosign_attestation(data));
