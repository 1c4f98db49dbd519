//! The CI gate's configuration and its two security pieces: who may call
//! ([`auth`]) and the signed VSAs it returns for allowed images ([`vsa`]).
//!
//! The gate answers `POST /v1/gate` with the same engine, caches and
//! wording as admission; its HTTP handler lives with the other routes
//! (`server::routes::gate`). What sits here is what a compiled
//! configuration holds ([`GateSettings`]), so the configuration can compile
//! it without importing the server.

pub mod auth;
pub mod vsa;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use auth::{Authenticator, OidcSpec, TokenSpec};
use vsa::{VsaSigner, VsaSpec};

/// The `gate` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GateSpec {
    /// Static bearer tokens (stored hashed).
    #[serde(default)]
    pub tokens: Vec<TokenSpec>,
    /// Trusted CI OIDC issuers.
    #[serde(default)]
    pub oidc: Vec<OidcSpec>,
    /// Images per request.
    #[serde(default = "default_max_images")]
    pub max_images: usize,
    /// Requests per minute per caller (0: unlimited).
    #[serde(default = "default_rate")]
    pub rate_limit_per_minute: u32,
    /// Time to receive the whole request body.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: crate::units::Dur,
    /// Signed VSAs for allowed images.
    #[serde(default)]
    pub vsa: Option<VsaSpec>,
    /// The least time between two fetches of one JWKS URL.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh: crate::units::Dur,
}

fn default_jwks_min_refresh() -> crate::units::Dur {
    crate::units::Dur(Duration::from_secs(30))
}

fn default_max_images() -> usize {
    64
}
fn default_rate() -> u32 {
    120
}
fn default_body_timeout() -> crate::units::Dur {
    crate::units::Dur(Duration::from_secs(10))
}

impl Default for GateSpec {
    fn default() -> Self {
        GateSpec {
            tokens: Vec::new(),
            oidc: Vec::new(),
            max_images: default_max_images(),
            rate_limit_per_minute: default_rate(),
            body_timeout: default_body_timeout(),
            vsa: None,
            jwks_min_refresh: default_jwks_min_refresh(),
        }
    }
}

/// The compiled gate settings (part of a compiled configuration).
#[derive(Debug, Clone, Default)]
pub struct GateSettings {
    /// Who may call.
    pub auth: Authenticator,
    /// The VSA signer.
    pub vsa: Option<Arc<VsaSigner>>,
}

impl GateSettings {
    /// Compiles the `gate` section; relative paths resolve against `base`.
    pub fn compile(spec: &GateSpec, base: &Path) -> Result<Self, String> {
        let auth =
            Authenticator::compile(&spec.tokens, &spec.oidc, base).map_err(|e| e.to_string())?;
        let vsa = match &spec.vsa {
            Some(v) => Some(Arc::new(
                VsaSigner::load(v, base).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        if spec.max_images == 0 {
            return Err("gate.maxImages must be at least 1".into());
        }
        Ok(GateSettings { auth, vsa })
    }
}
