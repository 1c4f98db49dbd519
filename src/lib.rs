//! provgate: a supply-chain enforcement gate for container images.
//!
//! provgate resolves every image of a Kubernetes object (or of a CI gate
//! request) to a digest, discovers the signatures and in-toto attestations
//! attached to it in its OCI registry, verifies them with Sigstore, and
//! evaluates the security team's Rego contracts over the verified evidence
//! only. The pipeline, one module per stage:
//!
//! ```text
//! admission::images → bind → oci::resolve → oci::discover → verify → policy → respond
//! ```
//!
//! The binary (`src/main.rs`) only dispatches subcommands to [`cli`]; all
//! logic lives here so that tests and benchmarks use it directly.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod bind;
pub mod certs;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decisionlog;
pub mod digest;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod metrics;
pub mod oci;
pub mod platform;
pub mod policy;
pub mod report;
pub mod server;
pub mod shared;
pub mod verify;
pub mod wire;
