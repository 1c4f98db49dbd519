//! Signature verification (`provgate::verify`), one module per capability.
//!
//! Evidence comes from the kit's real signers and services
//! (`../shared/testkit`), from the real bundles of other Sigstore clients
//! listed in `fixtures/cases.json`, and from genuine bundles with exactly
//! one field changed. Each tampering test sits beside the check that
//! catches it and asserts that check's own error; its base bundle has a
//! positive control of its own, in [`formats`] or [`time`].
//!
//! - [`formats`]: genuine evidence in every format provgate reads verifies,
//!   with the facts it should report, as the reference verifiers agree.
//! - [`bundle_shape`]: parsing, media types, DSSE shape and the size and
//!   count limits applied before any cryptography.
//! - [`subject_binding`]: in-toto statements (type, subjects, limits) and
//!   evidence naming the digest or bytes being verified, or not.
//! - [`signatures`]: the signature covers the payload; changed payloads,
//!   signatures and swapped certificates fail it.
//! - [`keyless`]: certificate chains, Fulcio identities (exact and regex),
//!   claims and trusted roots.
//! - [`keys`]: key-signed evidence, key-only trust stores and key vs
//!   keyless authorities.
//! - [`cosign_layers`]: cosign `.sig`/`.att` layers from the registry,
//!   simple signing and annotation handling.
//! - [`transparency`]: Rekor entries, inclusion proofs, promises and
//!   checkpoints, and the tlog requirement.
//! - [`time`]: RFC 3161 timestamps, integrated time and certificate expiry
//!   at the trusted time.
//! - [`cases`]: the `cases.json` harness and the check that every case has
//!   a test.
//! - [`support`]: helpers shared by the modules above.

mod bundle_shape;
mod cases;
mod cosign_layers;
mod formats;
mod keyless;
mod keys;
mod signatures;
mod subject_binding;
mod support;
mod time;
mod transparency;
