//! provgate: a supply-chain enforcement gate for container images.
//!
//! provgate resolves every image of a Kubernetes object (or of a CI gate
//! request) to a digest, discovers the signatures and in-toto attestations
//! attached to it in its OCI registry, verifies them with Sigstore, and
//! evaluates the security team's Rego contracts over the verified evidence
//! only. The pipeline, with the module of each stage:
//!
//! ```text
//! server (routes: /validate, /mutate, /v1/gate)   cli (check, report, …)
//!   → admission::review, admission::images         (the images of an object)
//!   → engine::Engine::decide
//!       → bind                                     (bindings, mode, exemptions)
//!       → oci::Registries::resolve                 (tag → digest)
//!       → oci::Registries::discover                (evidence attached to it)
//!       → verify                                   (Sigstore, trusted signers)
//!       → policy                                   (contracts' Rego)
//!   → engine::decision                             (one ImageDecision per image)
//!   → respond                                      (gate JSON, decision log)
//!   → admission::response                          (the AdmissionReview answer)
//! ```
//!
//! Imports point down that pipeline only: `tests/it/layers.rs` fails on an
//! import cycle between top-level modules, on `policy` and `oci` importing
//! each other, and on `server`, `gate` or `admission` importing `oci`.
//! Beside the pipeline: [`config`] compiles the file every stage reads (its
//! units in [`units`]); [`digest`] and [`image`] (references and index
//! platforms), [`clock`], [`request`], [`metrics`], [`platform`] and
//! [`shared`] (the Redis evidence tier) serve the stages;
//! [`gate`] holds the CI gate's caller authentication and VSA signing;
//! [`report`] judges what already runs, through the engine; the server makes
//! development TLS certificates ([`server::dev_certs`]).
//!
//! The binary (`src/main.rs`) only dispatches subcommands to [`cli`]; all
//! logic lives here so that tests and benchmarks use it directly.

// Lints that hold for the whole package are in Cargo.toml's `[lints]`;
// these two concern the library only.
// Every public item says what a caller needs to know.
#![warn(missing_docs)]
// No unwrap or expect in the library: a panic on registry bytes, an
// AdmissionReview, a token or the configuration would take the webhook
// down. Tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod admission;
pub mod bind;
pub mod cli;
pub mod clock;
pub mod config;
pub mod digest;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod image;
pub mod metrics;
pub mod oci;
pub mod platform;
pub mod policy;
pub mod report;
pub mod request;
pub mod respond;
pub mod server;
pub mod shared;
pub mod units;
pub mod verify;
