//! provgate's integration tests: one binary, one module per feature.
//!
//! Tests that need registries, Sigstore services or signers use the shared
//! test kit (`../shared/testkit`) through [`common::kit`], started once per
//! run and stopped when the test process exits.

mod admission;
mod advisories;
mod chart;
mod cli_exit;
mod common;
mod contracts;
mod devloop;
mod discovery;
mod discovery_cli;
mod faults;
mod fuzz_replay;
mod gate;
mod hostile;
mod integrity;
mod layers;
mod readme;
mod registry_options;
mod report;
mod server;
mod shared_cache;
mod verdicts;
mod verify;
