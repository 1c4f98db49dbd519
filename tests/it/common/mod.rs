//! Shared helpers: the test kit, fixtures and temporary files.

#![allow(dead_code)]

pub mod evidence;
pub mod fake;
pub mod fakekube;
pub mod kit;
pub mod proxy;
pub mod redis;
pub mod registry;
pub mod replicas;
pub mod server;

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/testkit`.
pub fn kit_root() -> PathBuf {
    repo().join("../shared/testkit")
}

/// A file under `../shared/testkit/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    kit_root().join("fixtures").join(rel)
}

/// Reads a fixture.
pub fn read_fixture(rel: &str) -> Vec<u8> {
    let p = fixture(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}
