//! Who may call the gate: static bearer tokens and CI OIDC JWTs.
//!
//! Static tokens are stored as SHA-256 hex digests in the configuration and
//! compared in constant time. OIDC tokens (GitHub Actions, GitLab CI) are
//! JWTs checked against a configured issuer and JWKS: the signature with
//! the key named by `kid` (asymmetric algorithms only, so `alg: none` and an
//! HMAC "signed" with the public key are refused before any key is used),
//! `iss`, `aud`, `exp`/`nbf` with a small leeway, and claim constraints
//! (anchored matchers, as for signer identities).
//!
//! Every failure is the same [`AuthError::Unauthorized`] to the caller: the
//! reason goes to the log (without the token), never into the response.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::Digest as _;

use crate::verify::{Matcher, MatcherSpec};

/// A static token as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenSpec {
    /// The caller's name in the decision log.
    pub name: String,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
    /// Contracts this caller may select by name (none by default).
    #[serde(default)]
    pub contracts: Vec<String>,
}

/// A trusted OIDC issuer as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OidcSpec {
    /// The caller's name prefix in the decision log.
    pub name: String,
    /// The exact `iss`.
    pub issuer: String,
    /// Accepted `aud` values (at least one).
    pub audiences: Vec<String>,
    /// A JWKS file.
    #[serde(default)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// A JWKS URL (https), fetched when first needed and cached.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Extra CA certificates (PEM) for `jwksUrl` (a self-managed GitLab).
    #[serde(default)]
    pub jwks_ca_file: Option<std::path::PathBuf>,
    /// Claims that must match (e.g. `repository: {regex: "acme/.+"}`).
    #[serde(default)]
    pub claims: BTreeMap<String, MatcherSpec>,
    /// Contracts these callers may select by name.
    #[serde(default)]
    pub contracts: Vec<String>,
    /// Clock leeway for `exp`/`nbf`, seconds (default 30).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_leeway() -> u64 {
    30
}

/// A compiled static token.
#[derive(Debug, Clone)]
struct Token {
    name: String,
    digest: [u8; 32],
    contracts: Vec<String>,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
enum Jwks {
    Static(JwkSet),
    Url(JwksSource),
}

/// Where a JWKS is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    /// The https URL.
    pub url: String,
    /// Extra CA certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
}

/// A compiled issuer.
#[derive(Debug, Clone)]
struct Issuer {
    name: String,
    issuer: String,
    audiences: Vec<String>,
    jwks: Jwks,
    claims: Vec<(String, Matcher)>,
    contracts: Vec<String>,
    leeway: u64,
}

/// The compiled authentication settings.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Vec<Token>,
    issuers: Vec<Issuer>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `token:<name>` or `oidc:<name>:<sub>`.
    pub identity: String,
    /// Contracts the caller may select.
    pub contracts: Vec<String>,
}

/// Why a request is not authenticated (logged, never returned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing or malformed `Authorization` header.
    #[error("no bearer token")]
    Missing,
    /// The token matched nothing, for the reason given.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The issuer's JWKS (from a URL) is not at hand, or lacks the token's
    /// key id: fetching it again may help.
    #[error("JWKS {0} unavailable or without the token's key")]
    JwksNeeded(String),
}

/// Why the authentication settings are invalid.
#[derive(Debug, Clone, thiserror::Error)]
#[error("gate authentication: {0}")]
pub struct AuthConfigError(pub String);

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: u64 = 256 * 1024;
/// Largest token accepted.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

fn parse_sha256(hex_str: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_str.trim()).ok()?;
    bytes.try_into().ok()
}

impl Authenticator {
    /// Compiles the settings; JWKS files are read now, URLs on first use.
    pub fn compile(
        tokens: &[TokenSpec],
        oidc: &[OidcSpec],
        base: &Path,
    ) -> Result<Self, AuthConfigError> {
        let mut out = Authenticator::default();
        for t in tokens {
            if t.name.trim().is_empty() {
                return Err(AuthConfigError("a token has an empty name".into()));
            }
            let digest = parse_sha256(&t.sha256).ok_or_else(|| {
                AuthConfigError(format!(
                    "token {:?}: sha256 must be 64 hex digits (printf %s \"$TOKEN\" | sha256sum)",
                    t.name
                ))
            })?;
            out.tokens.push(Token {
                name: t.name.clone(),
                digest,
                contracts: t.contracts.clone(),
            });
        }
        for o in oidc {
            let err = |m: String| AuthConfigError(format!("oidc {:?}: {m}", o.name));
            if o.issuer.is_empty() {
                return Err(err("issuer must not be empty".into()));
            }
            if o.audiences.is_empty() || o.audiences.iter().any(|a| a.is_empty()) {
                return Err(err(
                    "give at least one non-empty audience (tokens for another service must not pass)"
                        .into(),
                ));
            }
            let jwks = match (&o.jwks_file, &o.jwks_url) {
                (Some(f), None) => {
                    let path = if f.is_absolute() {
                        f.clone()
                    } else {
                        base.join(f)
                    };
                    let bytes = std::fs::read(&path)
                        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
                    Jwks::Static(
                        serde_json::from_slice(&bytes)
                            .map_err(|e| err(format!("{} is not a JWKS: {e}", path.display())))?,
                    )
                }
                (None, Some(u)) => {
                    let url = url::Url::parse(u).map_err(|e| err(format!("jwksUrl: {e}")))?;
                    if url.scheme() != "https" {
                        return Err(err("jwksUrl must be https".into()));
                    }
                    let ca_pem = match &o.jwks_ca_file {
                        Some(f) => {
                            let path = if f.is_absolute() {
                                f.clone()
                            } else {
                                base.join(f)
                            };
                            let pem = std::fs::read(&path)
                                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
                            reqwest::Certificate::from_pem_bundle(&pem)
                                .map_err(|e| err(format!("jwksCaFile: {e}")))?;
                            Some(pem)
                        }
                        None => None,
                    };
                    Jwks::Url(JwksSource {
                        url: u.clone(),
                        ca_pem,
                    })
                }
                _ => return Err(err("give exactly one of jwksFile or jwksUrl".into())),
            };
            let mut claims = Vec::new();
            for (k, m) in &o.claims {
                claims.push((
                    k.clone(),
                    Matcher::from_spec(&format!("claims.{k}"), m)
                        .map_err(|e| err(e.to_string()))?,
                ));
            }
            out.issuers.push(Issuer {
                name: o.name.clone(),
                issuer: o.issuer.clone(),
                audiences: o.audiences.clone(),
                jwks,
                claims,
                contracts: o.contracts.clone(),
                leeway: o.leeway_seconds.min(300),
            });
        }
        Ok(out)
    }

    /// Whether any caller could ever authenticate.
    pub fn is_configured(&self) -> bool {
        !self.tokens.is_empty() || !self.issuers.is_empty()
    }

    /// The JWKS sources of URL-configured issuers.
    pub fn jwks_sources(&self) -> Vec<JwksSource> {
        self.issuers
            .iter()
            .filter_map(|i| match &i.jwks {
                Jwks::Url(u) => Some(u.clone()),
                Jwks::Static(_) => None,
            })
            .collect()
    }

    /// Authenticates an `Authorization` header value. `fetched` supplies
    /// the JWKS of URL-configured issuers.
    pub fn authenticate(
        &self,
        header: Option<&str>,
        now_unix: u64,
        fetched: &dyn Fn(&str) -> Option<JwkSet>,
    ) -> Result<Caller, AuthError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Unauthorized("token too long".into()));
        }
        // Static tokens: hash, then compare every configured digest in
        // constant time (no early exit that would time the match).
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&Token> = None;
        for t in &self.tokens {
            let mut diff = 0u8;
            for (a, b) in t.digest.iter().zip(digest.iter()) {
                diff |= a ^ b;
            }
            if diff == 0 {
                found = Some(t);
            }
        }
        if let Some(t) = found {
            return Ok(Caller {
                identity: format!("token:{}", t.name),
                contracts: t.contracts.clone(),
            });
        }
        if token.matches('.').count() != 2 {
            return Err(AuthError::Unauthorized(
                "not a known token and not a JWT".into(),
            ));
        }
        self.verify_jwt(token, now_unix, fetched)
    }

    fn verify_jwt(
        &self,
        token: &str,
        now_unix: u64,
        fetched: &dyn Fn(&str) -> Option<JwkSet>,
    ) -> Result<Caller, AuthError> {
        let unauthorized = |m: String| AuthError::Unauthorized(m);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthorized(format!("bad JWT header: {e}")))?;
        // Asymmetric algorithms only: this refuses `none` and every HMAC
        // before a key is even looked up (alg confusion).
        let allowed = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ];
        if !allowed.contains(&header.alg) {
            return Err(unauthorized(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        // Which issuer: read `iss` unverified only to choose; it is verified
        // below with that issuer's keys.
        let claims: serde_json::Value =
            unverified_claims(token).ok_or_else(|| unauthorized("unreadable JWT claims".into()))?;
        let iss = claims
            .get("iss")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == iss)
            .ok_or_else(|| unauthorized(format!("issuer {iss:?} is not trusted")))?;
        let set = match &issuer.jwks {
            Jwks::Static(s) => s.clone(),
            Jwks::Url(u) => fetched(&u.url).ok_or_else(|| AuthError::JwksNeeded(u.url.clone()))?,
        };
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| unauthorized("JWT has no kid".into()))?;
        let jwk = match (set.find(kid), &issuer.jwks) {
            (Some(j), _) => j,
            // A key rotated in since the last fetch.
            (None, Jwks::Url(u)) => return Err(AuthError::JwksNeeded(u.url.clone())),
            (None, Jwks::Static(_)) => return Err(unauthorized(format!("unknown kid {kid:?}"))),
        };
        // The key's type must fit the algorithm's family.
        let family_ok = matches!(
            (&jwk.algorithm, header.alg),
            (
                AlgorithmParameters::RSA(_),
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (
                AlgorithmParameters::EllipticCurve(_),
                Algorithm::ES256 | Algorithm::ES384
            ) | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
        );
        if !family_ok {
            return Err(unauthorized(format!(
                "kid {kid:?} is not a key for {:?}",
                header.alg
            )));
        }
        if let Some(ka) = jwk.common.key_algorithm
            && format!("{ka:?}") != format!("{:?}", header.alg)
        {
            return Err(unauthorized(format!("kid {kid:?} is for {ka:?}")));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| unauthorized(format!("bad JWK: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[issuer.issuer.as_str()]);
        v.set_audience(&issuer.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.leeway = issuer.leeway;
        // Time is checked here against our clock (`now_unix`), not
        // jsonwebtoken's (the system clock).
        v.validate_exp = false;
        v.validate_nbf = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .map_err(|e| unauthorized(format!("JWT rejected: {e}")))?;
        let c = data.claims;
        check_times(&c, now_unix, issuer.leeway)?;
        for (name, m) in &issuer.claims {
            let value = match c.get(name) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Bool(b)) => b.to_string(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => return Err(unauthorized(format!("claim {name} missing"))),
            };
            if !m.matches(&value) {
                return Err(unauthorized(format!(
                    "claim {name} = {value:?} does not match {m}"
                )));
            }
        }
        let sub = c.get("sub").and_then(|v| v.as_str()).unwrap_or("?");
        Ok(Caller {
            identity: format!("oidc:{}:{sub}", issuer.name),
            contracts: issuer.contracts.clone(),
        })
    }
}

/// `exp` (required, numeric) and `nbf` (optional, numeric) against our
/// clock (`now_unix`), with the issuer's leeway.
fn check_times(c: &serde_json::Value, now_unix: u64, leeway: u64) -> Result<(), AuthError> {
    let unauthorized = |m: &str| AuthError::Unauthorized(m.to_owned());
    let exp = c
        .get("exp")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| unauthorized("JWT has no numeric exp"))?;
    if now_unix > exp.saturating_add(leeway) {
        return Err(unauthorized("JWT expired"));
    }
    let nbf = c
        .get("nbf")
        .filter(|v| !v.is_null())
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| unauthorized("JWT has a non-numeric nbf"))
        })
        .transpose()?;
    if let Some(nbf) = nbf
        && now_unix.saturating_add(leeway) < nbf
    {
        return Err(unauthorized("JWT not yet valid"));
    }
    Ok(())
}

fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let part = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// JWKS fetched from URLs, cached with a bounded refresh.
///
/// A set is fetched when a token needs it; it is used for [`JWKS_TTL`],
/// then fetched again the next time a token arrives (the stale set stays
/// usable for [`JWKS_MAX_AGE`] if the issuer is down). A token whose key id
/// is missing triggers one early refetch (keys rotate), and no URL is
/// fetched more often than a minimum interval: a flood of tokens with bogus
/// key ids cannot turn the gate into a client hammering the issuer
/// (`gate.jwksMinRefresh`, default 30 s, between two fetches of one URL).
#[derive(Debug, Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, (JwkSet, Instant)>>,
    attempts: Mutex<HashMap<String, Instant>>,
}

/// How long a fetched JWKS is used before it is fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(600);
/// How long a stale JWKS remains usable when refetching fails.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

impl JwksCache {
    /// The cached set for `url`, unless too old.
    pub fn get(&self, url: &str) -> Option<JwkSet> {
        let map = self.entries.lock().ok()?;
        let (set, at) = map.get(url)?;
        (at.elapsed() < JWKS_MAX_AGE).then(|| set.clone())
    }

    /// Whether the set of `url` is missing or older than [`JWKS_TTL`].
    pub fn stale(&self, url: &str) -> bool {
        self.entries
            .lock()
            .map(|m| m.get(url).is_none_or(|(_, at)| at.elapsed() >= JWKS_TTL))
            .unwrap_or(true)
    }

    /// Whether `url` may be fetched now (`min` since the last try).
    pub fn may_fetch(&self, url: &str, min: Duration) -> bool {
        self.attempts
            .lock()
            .map(|a| a.get(url).is_none_or(|at| at.elapsed() >= min))
            .unwrap_or(false)
    }

    /// Fetches a JWKS (bounded size and time, no redirects) into the cache.
    pub async fn refresh(&self, source: &JwksSource) -> Result<(), String> {
        let url = source.url.as_str();
        if let Ok(mut a) = self.attempts.lock() {
            a.insert(url.to_owned(), Instant::now());
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5));
        if let Some(pem) = &source.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        if resp.content_length().is_some_and(|l| l > MAX_JWKS_BYTES) {
            return Err("JWKS too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > MAX_JWKS_BYTES {
                return Err("JWKS too large".into());
            }
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if let Ok(mut m) = self.entries.lock() {
            m.insert(url.to_owned(), (set, Instant::now()));
        }
        Ok(())
    }
}

/// Per-caller rate limiting: a token bucket per identity.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` requests per caller (0 disables the limit).
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `who`'s bucket; `Err(retry_after_seconds)`
    /// when it is empty.
    pub fn take(&self, who: &str) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let Ok(mut map) = self.buckets.lock() else {
            return Err(1);
        };
        if map.len() > 10_000 {
            map.retain(|_, (_, t)| t.elapsed() < Duration::from_secs(120));
        }
        let now = Instant::now();
        let (tokens, at) = map.entry(who.to_owned()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
