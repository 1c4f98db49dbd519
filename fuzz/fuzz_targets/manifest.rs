//! OCI manifest, index and descriptor parsing as discovery uses it.
//!
//! The body is `provgate::fuzzing::manifest` (see its documentation for the
//! input format and invariants); `cargo test` replays the corpus and the
//! regressions through the same function (tests/it/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| provgate::fuzzing::manifest(data));
