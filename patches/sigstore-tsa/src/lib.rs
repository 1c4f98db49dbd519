//! RFC 3161 timestamp verification, as used by `sigstore-verify`.
//!
//! This is provgate's replacement for the `sigstore-tsa` crate (see
//! `Cargo.toml` for why). It exposes the API surface `sigstore-verify` calls:
//! [`verify_timestamp_for_authority`], [`Error`] and [`TsaAuthority`].
//!
//! A token verifies against one authority only if all of these hold:
//!
//! 1. it is a CMS `SignedData` (optionally wrapped in a `TimeStampResp` whose
//!    status is granted) encapsulating a `TSTInfo`;
//! 2. the `TSTInfo` message imprint is the hash of the bundle's signature;
//! 3. there is exactly one `SignerInfo`, and its signer is the authority's
//!    leaf certificate (certificates embedded in the token are never trusted);
//! 4. the signed attributes carry the `TSTInfo` content type and its digest,
//!    and the leaf's key signed them;
//! 5. the leaf chains to the authority's root through the authority's own
//!    intermediates, carries the `timeStamping` extended key usage, and is
//!    valid at the signed time;
//! 6. the signed time lies inside the authority's validity window.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
mod gentime;
mod tstinfo;
mod verify;

pub use error::{Error, Result};
pub use sigstore_types::TsaAuthority;
pub use verify::verify_timestamp_for_authority;
