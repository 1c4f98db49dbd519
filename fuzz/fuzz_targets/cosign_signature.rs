//! A cosign `.sig` layer (simple-signing payload plus annotations).
//!
//! The body is `provgate::fuzzing::cosign_signature` (see its documentation for the
//! input format and invariants); `cargo test` replays the corpus and the
//! regressions through the same function (tests/it/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| provgate::fuzzing::cosign_signature(data));
