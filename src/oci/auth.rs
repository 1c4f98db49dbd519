//! Registry credentials: Docker config files and the token challenge.
//!
//! Why not `oci-client`'s auth: it keeps one credential per registry host for
//! the whole client ("first one wins"), cannot read Docker config files, does
//! not support the `identitytoken` (OAuth2 refresh token) flow, reads token
//! responses without a size limit, and sends basic credentials to whatever
//! `realm` a registry's challenge names. provgate needs per-tenant credential
//! sets, bounded reads, and credentials that never leave the host they were
//! issued for, so the (small) challenge/token protocol is implemented here
//! and [`crate::oci::transport`] decides where credentials may be sent.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

/// Docker config files larger than this are rejected.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// One credential for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or a personal access token as the password).
    Basic {
        /// The username.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the realm with
    /// `grant_type=refresh_token`.
    IdentityToken {
        /// The refresh token.
        token: String,
    },
    /// A bearer token used as is (`registrytoken`).
    Bearer {
        /// The token.
        token: String,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets, even in debug logs.
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken { .. } => f.write_str("IdentityToken(***)"),
            Credential::Bearer { .. } => f.write_str("Bearer(***)"),
        }
    }
}

/// A named set of credentials (one Docker config file, one tenant).
#[derive(Debug, Clone, Default)]
pub struct CredentialSet {
    name: String,
    by_host: HashMap<String, Credential>,
}

/// Why a credentials file is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The file could not be read.
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is too large.
    #[error("credentials file {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge {
        /// The path.
        path: String,
    },
    /// The JSON is not a Docker config.
    #[error("credentials file {path} is not a Docker config.json: {reason}")]
    Format {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: Option<HashMap<String, AuthEntry>>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl CredentialSet {
    /// An empty set (anonymous access everywhere).
    pub fn anonymous() -> Self {
        CredentialSet::default()
    }

    /// A set from explicit entries (host → credential).
    pub fn from_entries(
        name: &str,
        entries: impl IntoIterator<Item = (String, Credential)>,
    ) -> Self {
        CredentialSet {
            name: name.into(),
            by_host: entries
                .into_iter()
                .map(|(h, c)| (normalise_host(&h), c))
                .collect(),
        }
    }

    /// Reads a Docker `config.json` or `.dockerconfigjson` (or legacy
    /// `.dockercfg`, a bare host map).
    pub fn from_file(name: &str, path: &Path) -> Result<Self, CredentialError> {
        let p = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| CredentialError::Read {
            path: p.clone(),
            source,
        })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(CredentialError::TooLarge { path: p });
        }
        let bytes = std::fs::read(path).map_err(|source| CredentialError::Read {
            path: p.clone(),
            source,
        })?;
        Self::from_json(name, &bytes).map_err(|reason| CredentialError::Format { path: p, reason })
    }

    /// Parses Docker config JSON.
    pub fn from_json(name: &str, bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let cfg: DockerConfig = DockerConfig::deserialize(&value).map_err(|e| e.to_string())?;
        let auths: HashMap<String, AuthEntry> = match cfg.auths {
            Some(a) => a,
            // Legacy .dockercfg: the host map is the top level.
            None => HashMap::deserialize(&value).map_err(|e| e.to_string())?,
        };
        let mut by_host = HashMap::new();
        for (key, entry) in auths {
            let host = normalise_host(&key);
            if let Some(cred) = entry.into_credential().map_err(|e| format!("{key}: {e}"))? {
                by_host.insert(host, cred);
            }
        }
        Ok(CredentialSet {
            name: name.into(),
            by_host,
        })
    }

    /// The set's name (the tenant), used in cache keys and logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The credential for a registry host, if any.
    pub fn for_host(&self, host: &str) -> Option<&Credential> {
        self.by_host.get(&normalise_host(host))
    }

    /// Number of hosts with credentials.
    pub fn len(&self) -> usize {
        self.by_host.len()
    }

    /// Whether there are no credentials.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

impl AuthEntry {
    fn into_credential(self) -> Result<Option<Credential>, String> {
        if let Some(token) = self.registrytoken.filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::Bearer { token }));
        }
        if let Some(token) = self.identitytoken.filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken { token }));
        }
        if let (Some(username), Some(password)) = (&self.username, &self.password)
            && !username.is_empty()
        {
            return Ok(Some(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            }));
        }
        if let Some(auth) = self.auth.filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| "`auth` is not base64".to_string())?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| "`auth` is not UTF-8".to_string())?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| "`auth` is not base64(user:password)".to_string())?;
            return Ok(Some(Credential::Basic {
                username: username.into(),
                password: password.into(),
            }));
        }
        Ok(None)
    }
}

/// Normalises a Docker config key (`https://index.docker.io/v1/`,
/// `ghcr.io`, `http://host:5000/path`) to a `host[:port]`.
pub fn normalise_host(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service parameter.
        service: Option<String>,
        /// The scope the registry asks for.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header; prefers Bearer when several
/// challenges are offered.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let lower = header.trim_start().to_ascii_lowercase();
    if lower.starts_with("bearer") {
        let params = parse_params(&header.trim_start()[6..]);
        let realm = params.get("realm")?.clone();
        return Some(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        });
    }
    if lower.starts_with("basic") {
        return Some(Challenge::Basic);
    }
    None
}

/// Parses `k="v", k2=v2` auth-params (RFC 7235), quoted strings unescaped.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            break;
        }
        chars.next();
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        out.insert(key.to_ascii_lowercase(), value);
    }
    out
}

/// A token endpoint response.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_config_entries() {
        let cfg = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
            "ghcr.io":{"username":"u","password":"p"},
            "registry.example.com:5000":{"identitytoken":"refresh"},
            "quay.io":{"registrytoken":"tok"},
            "empty.example.com":{}
        }}"#;
        let set = CredentialSet::from_json("tenant-a", cfg).unwrap();
        assert_eq!(set.name(), "tenant-a");
        assert_eq!(
            set.for_host("registry-1.docker.io"),
            Some(&Credential::Basic {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert_eq!(
            set.for_host("ghcr.io"),
            Some(&Credential::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            set.for_host("registry.example.com:5000"),
            Some(&Credential::IdentityToken {
                token: "refresh".into()
            })
        );
        assert_eq!(
            set.for_host("quay.io"),
            Some(&Credential::Bearer {
                token: "tok".into()
            })
        );
        assert_eq!(set.for_host("empty.example.com"), None);
        assert_eq!(
            set.for_host("registry.example.com"),
            None,
            "port is part of the host"
        );
        assert_eq!(set.for_host("evil.example.com"), None);
    }

    #[test]
    fn legacy_dockercfg_and_bad_files() {
        let set = CredentialSet::from_json("x", br#"{"ghcr.io":{"auth":"dTpw"}}"#).unwrap();
        assert!(set.for_host("ghcr.io").is_some());
        assert!(CredentialSet::from_json("x", b"[1]").is_err());
        assert!(CredentialSet::from_json("x", br#"{"auths":{"a":{"auth":"%%%"}}}"#).is_err());
        assert!(
            CredentialSet::from_json("x", br#"{"auths":{"a":{"auth":"bm9jb2xvbg=="}}}"#).is_err()
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }
}
