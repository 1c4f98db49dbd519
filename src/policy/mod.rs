//! Contracts and their evaluation.
//!
//! - [`analysis`]: which request-context fields a contract's Rego reads;
//! - [`contract`]: loading contracts (YAML metadata + Rego) from directories
//!   or the embedded library;
//! - [`rego`]: compiling and evaluating them on regorus, one engine per
//!   worker thread, with a time limit;
//! - [`input`]: the `provgate.dev/policy-input/v1` document, built only from
//!   verified, admitted evidence;
//! - [`testing`]: `provgate policy test`.

pub mod analysis;
pub mod contract;
pub mod input;
pub mod rego;
pub mod testing;

pub use contract::{
    AuthoritySpec, Contract, ContractError, ContractSource, ContractSpec, RegoModule,
};
pub use input::{ImageInput, POLICY_INPUT_V1, RequestContext};
pub use rego::{PolicyError, RegoOutcome, RegoProgram, Violation};
