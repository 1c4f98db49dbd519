//! `caches.shared`: the settings as written, and compiled into a Redis
//! client with checked durations and sizes. Nothing here turns off
//! certificate checks, and credentials never sit in the URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::{ByteSize, Dur};

/// `caches.shared` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SharedSpec {
    /// `redis://host:port[/db]` or `rediss://host:port[/db]` (TLS). No
    /// credentials in the URL: they go under `auth`.
    pub url: String,
    /// TLS settings (with `rediss://`).
    #[serde(default)]
    pub tls: SharedTlsSpec,
    /// ACL user and password.
    #[serde(default)]
    pub auth: SharedAuthSpec,
    /// Prefix of every key (default `provgate:`), to share a Redis.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// How long evidence stays in Redis (default: `caches.evidenceTtl`).
    /// A discovery that found nothing stays `caches.negativeTtl`.
    #[serde(default)]
    pub ttl: Option<Dur>,
    /// Connect and per-command time limit (default 50 ms).
    #[serde(default = "d50ms")]
    pub timeout: Dur,
    /// How long the lock of a discovery in progress lives (default 5 s):
    /// if its holder dies, another replica fetches after this.
    #[serde(default = "d5s")]
    pub lock_ttl: Dur,
    /// How long a replica waits for another's discovery (default 3 s,
    /// never more than half the time left before its deadline).
    #[serde(default = "d3s")]
    pub lock_wait: Dur,
    /// How long the tier is skipped after a Redis failure (default 5 s).
    #[serde(default = "d5s")]
    pub circuit_open: Dur,
    /// The largest entry written or read (default 4 MiB); larger
    /// discoveries stay local. Reads are also bounded by
    /// `registries.limits`.
    #[serde(default = "d_entry")]
    pub max_entry_bytes: ByteSize,
}

/// `caches.shared.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SharedTlsSpec {
    /// A CA bundle (PEM) to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `caches.shared.auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SharedAuthSpec {
    /// The ACL user (Redis 6+); absent: the default user.
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (e.g. a mounted Secret).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

fn default_prefix() -> String {
    "provgate:".into()
}
fn d50ms() -> Dur {
    Dur(Duration::from_millis(50))
}
fn d3s() -> Dur {
    Dur(Duration::from_secs(3))
}
fn d5s() -> Dur {
    Dur(Duration::from_secs(5))
}
fn d_entry() -> ByteSize {
    ByteSize(4 << 20)
}

/// Why `caches.shared` does not compile.
#[derive(Debug, thiserror::Error)]
#[error("caches.shared.{setting}: {reason}")]
pub struct SharedConfigError {
    /// The setting, as spelled in the file.
    pub setting: &'static str,
    /// What is wrong and what fixes it.
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> SharedConfigError {
    SharedConfigError {
        setting,
        reason: reason.into(),
    }
}

/// `caches.shared`, compiled: a Redis client (not connected) and the
/// tier's timings.
#[derive(Clone)]
pub struct SharedSettings {
    pub(super) client: redis::Client,
    /// The URL without secrets, for logs.
    pub url: String,
    /// The key prefix.
    pub key_prefix: String,
    /// Evidence TTL.
    pub ttl: Duration,
    /// TTL of a discovery that found no evidence.
    pub negative_ttl: Duration,
    /// Connect and command time limit.
    pub timeout: Duration,
    /// Lock lifetime.
    pub lock_ttl: Duration,
    /// Longest wait for another replica's discovery.
    pub lock_wait: Duration,
    /// Circuit-open time after a failure.
    pub circuit_open: Duration,
    /// Largest entry written or read.
    pub max_entry_bytes: u64,
}

impl std::fmt::Debug for SharedSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("SharedSettings")
            .field("url", &self.url)
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SharedSettings {
    /// Compiles `spec`; `resolve` makes file paths absolute; `evidence_ttl`
    /// and `negative_ttl` are the local caches' (`caches.*Ttl`).
    pub fn compile(
        spec: &SharedSpec,
        resolve: impl Fn(&Path) -> PathBuf,
        evidence_ttl: Duration,
        negative_ttl: Duration,
    ) -> Result<Self, SharedConfigError> {
        let (url, tls) = redis_url(spec)?;
        let password = password(spec, &resolve)?;
        if spec.auth.username.is_some() && password.is_none() {
            return Err(invalid(
                "auth.username",
                "a user needs a password (auth.passwordFile or auth.passwordEnv)",
            ));
        }
        if spec.key_prefix.len() > 64 || spec.key_prefix.chars().any(char::is_whitespace) {
            return Err(invalid(
                "keyPrefix",
                "must be at most 64 characters without spaces",
            ));
        }
        let check_dur = |setting: &'static str, d: Duration, min: Duration, max: Duration| {
            if d < min || d > max {
                Err(invalid(
                    setting,
                    format!(
                        "{} ms is outside {}..={} ms",
                        d.as_millis(),
                        min.as_millis(),
                        max.as_millis()
                    ),
                ))
            } else {
                Ok(d)
            }
        };
        let ms = Duration::from_millis;
        let timeout = check_dur("timeout", spec.timeout.0, ms(1), ms(10_000))?;
        let lock_ttl = check_dur("lockTtl", spec.lock_ttl.0, ms(100), ms(600_000))?;
        let lock_wait = check_dur("lockWait", spec.lock_wait.0, ms(0), ms(60_000))?;
        let circuit_open = check_dur("circuitOpen", spec.circuit_open.0, ms(0), ms(600_000))?;
        let ttl = match spec.ttl {
            Some(t) => check_dur("ttl", t.0, ms(1000), Duration::from_secs(30 * 86_400))?,
            None => evidence_ttl,
        };
        if spec.max_entry_bytes.0 < 1024 {
            return Err(invalid("maxEntryBytes", "must be at least 1Ki"));
        }

        let client = client(&url, tls, spec, password.as_deref(), &resolve)?;
        Ok(SharedSettings {
            client,
            url: url.to_string(),
            key_prefix: spec.key_prefix.clone(),
            ttl,
            negative_ttl,
            timeout,
            lock_ttl,
            lock_wait,
            circuit_open,
            max_entry_bytes: spec.max_entry_bytes.0,
        })
    }
}

/// `caches.shared.url`, checked: `redis://` or `rediss://` (the bool says
/// TLS), a host, and no credentials, query or fragment.
fn redis_url(spec: &SharedSpec) -> Result<(url::Url, bool), SharedConfigError> {
    let url = url::Url::parse(spec.url.trim()).map_err(|e| {
        invalid(
            "url",
            format!("{:?} is not a URL like redis://redis:6379: {e}", spec.url),
        )
    })?;
    let tls = match url.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(invalid(
                "url",
                format!(
                    "scheme {other:?} is not redis:// (plain) or rediss:// (TLS); Unix sockets and Sentinel are not supported"
                ),
            ));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "url",
            "holds credentials; put the user in caches.shared.auth.username and the password in auth.passwordFile or auth.passwordEnv",
        ));
    }
    if url.fragment().is_some() || url.query().is_some() {
        return Err(invalid(
            "url",
            "has a query or fragment (such as #insecure); certificate checks cannot be turned off",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "names no host"));
    }
    Ok((url, tls))
}

/// The password, from `auth.passwordFile` or `auth.passwordEnv` (not both).
fn password(
    spec: &SharedSpec,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> Result<Option<String>, SharedConfigError> {
    let password = match (&spec.auth.password_file, &spec.auth.password_env) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "auth",
                "give one of passwordFile and passwordEnv, not both",
            ));
        }
        (Some(p), None) => {
            let path = resolve(p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    "auth.passwordFile",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                return Err(invalid(
                    "auth.passwordEnv",
                    format!("environment variable {var} is not set or empty"),
                ));
            }
        },
        (None, None) => None,
    };
    Ok(password)
}

/// The Redis client: the URL with the credentials, over TLS with
/// `tls.caFile` when it is `rediss://`.
fn client(
    url: &url::Url,
    tls: bool,
    spec: &SharedSpec,
    password: Option<&str>,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> Result<redis::Client, SharedConfigError> {
    use redis::IntoConnectionInfo as _;
    let info = url
        .clone()
        .into_connection_info()
        .map_err(|e| invalid("url", e.to_string()))?;
    let mut redis_info = info.redis_settings().clone();
    if let Some(p) = password {
        redis_info = redis_info.set_password(p);
    }
    if let Some(u) = &spec.auth.username {
        redis_info = redis_info.set_username(u);
    }
    let info = info.set_redis_settings(redis_info);
    match (&spec.tls.ca_file, tls) {
        (Some(_), false) => Err(invalid(
            "tls.caFile",
            "is set but the URL is redis:// (plain); use rediss:// for TLS",
        )),
        (Some(ca), true) => {
            let path = resolve(ca);
            let pem = std::fs::read(&path).map_err(|e| {
                invalid("tls.caFile", format!("cannot read {}: {e}", path.display()))
            })?;
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| invalid("tls.caFile", e.to_string()))
        }
        (None, _) => redis::Client::open(info).map_err(|e| invalid("url", e.to_string())),
    }
}
