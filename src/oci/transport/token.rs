//! The registry token dance: which `Authorization` header a request
//! carries, and how a `WWW-Authenticate` challenge is answered. Credentials
//! go only to the registry host itself, or to a token realm on that host
//! or on a host configured for it; tokens are cached per pull scope.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::HeaderValue;

use super::failure::retry_after;
use super::{Ctx, Transport, host_port, read_limited};
use crate::oci::auth::{Challenge, Credential, TokenResponse};
use crate::oci::error::{RegistryError, RegistryErrorKind};
use crate::oci::record::RequestKind;

/// The most bytes a token response may have.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// What messages call a token exchange.
const TOKEN: &str = "token";

impl Transport {
    /// Whether a token for `repo`'s pull scope is cached and fresh.
    pub(super) fn fresh_token(&self, repo: &str) -> bool {
        let scope = pull_scope(repo);
        self.tokens
            .lock()
            .map(|t| {
                t.get(&scope)
                    .is_some_and(|(_, expiry)| *expiry > Instant::now())
            })
            .unwrap_or(false)
    }

    /// The Authorization header for a request to the registry host itself.
    pub(super) fn auth_header(&self, repo: &str) -> Option<HeaderValue> {
        let scope = pull_scope(repo);
        if let Ok(tokens) = self.tokens.lock()
            && let Some((token, expiry)) = tokens.get(&scope)
            && *expiry > Instant::now()
        {
            return HeaderValue::from_str(&format!("Bearer {token}")).ok();
        }
        match &self.credential {
            Some(Credential::Basic { username, password })
                if !self.bearer_seen.load(Ordering::Relaxed) =>
            {
                basic_header(username, password)
            }
            Some(Credential::Bearer { token }) => {
                HeaderValue::from_str(&format!("Bearer {token}")).ok()
            }
            _ => None,
        }
    }

    /// Answers a challenge; returns whether retrying may now succeed.
    pub(super) async fn authorize(
        &self,
        ctx: &Ctx<'_>,
        challenge: Challenge,
    ) -> Result<bool, RegistryError> {
        match challenge {
            // Basic: we already sent the credential if we have one.
            Challenge::Basic => Ok(false),
            Challenge::Bearer { realm, service, .. } => {
                self.bearer_seen.store(true, Ordering::Relaxed);
                let _fetching = self.token_fetch.lock().await;
                if self.fresh_token(ctx.repo) {
                    // Fetched by a concurrent request while this one waited.
                    return Ok(true);
                }
                self.fetch_token(ctx, &realm, service.as_deref()).await
            }
        }
    }

    /// Asks the realm for a pull token for `ctx.repo` and caches it;
    /// returns whether one was obtained.
    async fn fetch_token(
        &self,
        ctx: &Ctx<'_>,
        realm: &str,
        service: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let realm_url = self.realm_url(realm)?;
        let scope = pull_scope(ctx.repo);
        let Some((method, req)) = self.token_request(&realm_url, &scope, service) else {
            // A registry token is sent as is; the challenge means it was
            // refused.
            return Ok(false);
        };
        let body = self.token_exchange(ctx, method, req, &realm_url).await?;
        self.store_token(&body, scope)?;
        Ok(true)
    }

    /// The challenge's realm, over HTTPS (or plain HTTP where the registry's
    /// options allow it).
    fn realm_url(&self, realm: &str) -> Result<reqwest::Url, RegistryError> {
        let realm_url = reqwest::Url::parse(realm).map_err(|e| {
            RegistryError::new(
                &self.host,
                TOKEN,
                RegistryErrorKind::Token(format!("bad realm \"{realm}\": {e}")),
            )
        })?;
        match realm_url.scheme() {
            "https" => Ok(realm_url),
            "http" if self.options.insecure => Ok(realm_url),
            s => Err(RegistryError::new(
                &self.host,
                TOKEN,
                RegistryErrorKind::Token(format!("realm scheme {s} is not allowed")),
            )),
        }
    }

    /// The token request for the realm, carrying the credential only when
    /// the realm is this registry or a host the operator listed for it
    /// (auth.docker.io); `None` for a registry token, which is never
    /// exchanged.
    fn token_request(
        &self,
        realm_url: &reqwest::Url,
        scope: &str,
        service: Option<&str>,
    ) -> Option<(&'static str, reqwest::RequestBuilder)> {
        let realm_host = host_port(realm_url);
        let may_send =
            realm_host == self.host || self.options.token_hosts.iter().any(|h| h == &realm_host);
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(s) = service {
                query.append_pair("service", s);
            }
            query.append_pair("scope", scope);
            query.finish()
        };
        let credential = if may_send {
            self.credential.as_ref()
        } else {
            None
        };
        match credential {
            Some(Credential::IdentityToken { token }) => {
                let mut body = url::form_urlencoded::Serializer::new(String::new());
                body.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token)
                    .append_pair("client_id", "provgate")
                    .append_pair("scope", scope);
                if let Some(s) = service {
                    body.append_pair("service", s);
                }
                Some((
                    "POST",
                    self.http
                        .post(realm_url.clone())
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(body.finish()),
                ))
            }
            Some(Credential::Basic { username, password }) => {
                let mut u = realm_url.clone();
                u.set_query(Some(&query));
                let mut r = self.http.get(u);
                if let Some(h) = basic_header(username, password) {
                    r = r.header(reqwest::header::AUTHORIZATION, h);
                }
                Some(("GET", r))
            }
            Some(Credential::Bearer { .. }) => None,
            None => {
                let mut u = realm_url.clone();
                u.set_query(Some(&query));
                Some(("GET", self.http.get(u)))
            }
        }
    }

    /// Sends the token request and reads the answer (at most
    /// [`MAX_TOKEN_BYTES`]), recording it.
    async fn token_exchange(
        &self,
        ctx: &Ctx<'_>,
        method: &'static str,
        req: reqwest::RequestBuilder,
        realm_url: &reqwest::Url,
    ) -> Result<bytes::Bytes, RegistryError> {
        let context = TOKEN;
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = self.map_reqwest(context, &e);
                self.record(
                    ctx,
                    RequestKind::Token,
                    method,
                    realm_url,
                    err.label(),
                    0,
                    started,
                );
                return Err(err);
            }
        };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            self.record(
                ctx,
                RequestKind::Token,
                method,
                realm_url,
                &status.to_string(),
                0,
                started,
            );
            return match status {
                401 | 403 => Err(self.unauthorized(context, status)),
                429 => Err(RegistryError::new(
                    &self.host,
                    context,
                    RegistryErrorKind::RateLimited {
                        retry_after: retry_after(resp.headers()),
                    },
                )),
                s if s >= 500 => Err(RegistryError::new(
                    &self.host,
                    context,
                    RegistryErrorKind::Server(s),
                )),
                s => Err(RegistryError::new(
                    &self.host,
                    context,
                    RegistryErrorKind::Token(format!("status {s}")),
                )),
            };
        }
        let body = read_limited(
            resp,
            MAX_TOKEN_BYTES,
            RequestKind::Token,
            self,
            context,
            ctx.budget,
        )
        .await?;
        self.record(
            ctx,
            RequestKind::Token,
            method,
            realm_url,
            &status.to_string(),
            body.len() as u64,
            started,
        );
        Ok(body)
    }

    /// Parses a token response and caches its token for `scope`.
    fn store_token(&self, body: &[u8], scope: String) -> Result<(), RegistryError> {
        let context = TOKEN;
        let tr: TokenResponse = serde_json::from_slice(body).map_err(|e| {
            RegistryError::new(
                &self.host,
                context,
                RegistryErrorKind::Token(format!("bad token response: {e}")),
            )
        })?;
        let token = tr
            .token
            .or(tr.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                RegistryError::new(
                    &self.host,
                    context,
                    RegistryErrorKind::Token("no token in response".into()),
                )
            })?;
        if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err(RegistryError::new(
                &self.host,
                context,
                RegistryErrorKind::Token("token is not a valid header value".into()),
            ));
        }
        // Refresh 10% early; never trust more than an hour.
        let ttl = tr.expires_in.unwrap_or(60).clamp(10, 3600);
        let expiry = Instant::now() + Duration::from_secs(ttl - ttl / 10);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(scope, (token, expiry));
        }
        Ok(())
    }
}

pub(super) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub(super) fn basic_header(username: &str, password: &str) -> Option<HeaderValue> {
    let raw = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {raw}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}
