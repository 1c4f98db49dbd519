//! Contracts and their evaluation.
//!
//! - [`analysis`]: which request-context fields a contract's Rego reads;
//! - [`contract`]: loading contracts (YAML metadata + Rego) from directories
//!   or the embedded library;
//! - [`rego`]: compiling and evaluating them on regorus, one engine per
//!   worker thread, with a time limit;
//! - [`context`]: the request context and the part of it a contract
//!   declares it reads (its verdicts are reused across everything else);
//! - [`input`]: the `provgate.dev/policy-input/v1` document, a type built
//!   only from verified, admitted evidence;
//! - [`testing`]: `provgate policy test`, and the named door for unverified
//!   inputs (`policy eval`);
//! - [`world`]: whether an authority trusts every tenant of a public issuer.

pub mod analysis;
pub mod context;
pub mod contract;
pub mod input;
pub mod packed;
pub mod rego;
pub mod testing;
pub mod world;

pub use context::{ContextDecl, ContextField, ContextProjection, RequestContext, Source};
pub use contract::{
    AuthoritySpec, Contract, ContractError, ContractSource, ContractSpec, RegoModule,
};
pub use input::{Evidence, ImageInput, POLICY_INPUT_V1, PolicyInput};
pub use rego::{PolicyError, RegoOutcome, RegoProgram, Violation};
