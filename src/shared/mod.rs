//! The shared evidence tier: what one replica discovered, on Redis, for the
//! others (`caches.shared`, off by default).
//!
//! An HA install runs several webhook replicas; without this tier each one
//! discovers every new digest on its own, so a rollout multiplies registry
//! traffic by the replica count. With it, the first replica to miss a
//! digest takes a short lock in Redis (`SET NX PX`), discovers, and stores
//! the *raw, unverified* evidence it fetched; the others wait for it
//! briefly, then read it.
//!
//! Three rules shape the module:
//!
//! - **Nothing read from Redis is trusted.** An entry is only ever turned
//!   back into [`crate::oci::UnverifiedEvidence`], which the engine
//!   verifies exactly as if it came from the registry. Before that,
//!   [`codec::decode`] re-checks what is cheap to re-check (framing and
//!   version, the key fields inside the value, the manifest's and each
//!   blob's digest, each piece's subject, the `registries.limits` sizes);
//!   an entry that fails is deleted and the replica asks the registry, and
//!   the decision's notes say so. A tampered Redis can therefore cause a
//!   deny (by withholding or corrupting evidence), never an allow of an
//!   image the registry's evidence would deny — with the one caveat any
//!   cache of a registry has: an entry can omit evidence, so a contract
//!   that denies on the *presence* of an attestation is only as strong as
//!   the replicas' trust in Redis (see `docs/operating.md`).
//! - **Redis is never on the critical path.** Every command runs under a
//!   short timeout (`timeout`, 50 ms by default); any failure opens a
//!   circuit for `circuitOpen` (5 s), during which the tier is skipped and
//!   each replica uses its local cache and the registry, as without it.
//! - **No replica waits past its deadline.** A replica that finds the lock
//!   taken waits at most `lockWait`, and never more than half of the time
//!   left before the admission deadline, then fetches by itself.
//!
//! Tag → digest answers are *not* shared: nothing can verify a tag's
//! answer without asking the registry (a tampered answer would make a
//! replica judge a signed digest while the kubelet pulls another), so each
//! replica still makes its own tag HEAD; digests, which verification binds
//! to, are what is shared.

pub mod codec;
mod settings;

pub use settings::{SharedAuthSpec, SharedConfigError, SharedSettings, SharedSpec, SharedTlsSpec};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::Digest as _;

use crate::digest::Digest;
use crate::image::ImageRef;
use crate::metrics::{Metrics, observe};
use crate::oci::{Discovery, Limits, Traced};

/// What makes two discoveries differ, as the engine's evidence key has it,
/// minus the trust material (raw evidence does not depend on it: each
/// replica verifies with its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKey {
    /// The registry name, as in image references.
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// The digest discovered.
    pub digest: Digest,
    /// Hex SHA-256 of the registry-settings fingerprint and the credential
    /// set's name: replicas with other settings or tenants never share.
    pub scope: String,
    /// Whether cosign's legacy tags were searched.
    pub cosign: bool,
}

impl SharedKey {
    /// The key of a discovery of `digest` in `image`'s repository.
    pub fn new(
        image: &ImageRef,
        digest: &Digest,
        registries: &Digest,
        creds: &str,
        cosign: bool,
    ) -> Self {
        let mut h = sha2::Sha256::new();
        h.update(registries.to_string().as_bytes());
        h.update([0]);
        h.update(creds.as_bytes());
        SharedKey {
            registry: image.registry().to_owned(),
            repository: image.repository().to_owned(),
            digest: digest.clone(),
            scope: hex::encode(h.finalize()),
            cosign,
        }
    }

    /// `PREFIX ev1:c:SCOPE16:registry/repo@digest` (readable in
    /// `redis-cli --scan`; the full scope is checked inside the value).
    pub fn entry(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.suffix("ev1"))
    }

    /// The lock key of the same discovery.
    pub fn lock(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.suffix("lock1"))
    }

    fn suffix(&self, kind: &str) -> String {
        format!(
            "{kind}:{}:{}:{}/{}@{}",
            if self.cosign { "c" } else { "n" },
            self.scope.get(..16).unwrap_or(&self.scope),
            self.registry,
            self.repository,
            self.digest
        )
    }
}

/// A Redis failure (connect, timeout, protocol): the tier is skipped for a
/// while.
#[derive(Debug, thiserror::Error)]
#[error("shared cache (Redis) unavailable: {0}")]
struct Unavailable(String);

/// What to do for a key.
enum Plan {
    /// Serve this entry.
    Hit(Discovery),
    /// Fetch from the registry; store the result; release the lock.
    Fetch {
        store: bool,
        lock: Option<(String, String)>,
    },
}

/// What one read found.
enum Read {
    Hit(Discovery),
    Miss,
    Refused(codec::Refusal),
}

/// The tier: a lazily opened multiplexed connection, a circuit, metrics.
pub struct SharedTier {
    settings: SharedSettings,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    open_until: Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The note of a decision whose evidence came from the shared tier.
pub const NOTE_HIT: &str = "evidence read from the shared cache (Redis), where another replica's discovery put it; verified here like registry evidence";

/// Discovers through `tier` when there is one, else by `fetch` alone.
pub async fn discover<F, Fut>(
    tier: Option<&SharedTier>,
    key: &SharedKey,
    limits: &Limits,
    deadline: Option<Instant>,
    fetch: F,
) -> Traced<Discovery>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Traced<Discovery>>,
{
    match tier {
        Some(t) => t.discover(key, limits, deadline, fetch).await,
        None => fetch().await,
    }
}

impl SharedTier {
    /// A tier over compiled settings (connects on first use).
    pub fn new(settings: SharedSettings, metrics: Arc<Metrics>) -> Self {
        SharedTier {
            settings,
            conn: tokio::sync::Mutex::new(None),
            open_until: Mutex::new(None),
            metrics,
        }
    }

    /// The compiled `caches.shared` settings.
    pub fn settings(&self) -> &SharedSettings {
        &self.settings
    }

    /// One discovery, shared: a valid entry in Redis, or the result of
    /// another replica's discovery in progress (waited for within the
    /// budget), or `fetch` (whose result is then stored). A refused entry
    /// is deleted and noted in the result; a Redis failure falls back to
    /// `fetch` and opens the circuit.
    pub async fn discover<F, Fut>(
        &self,
        key: &SharedKey,
        limits: &Limits,
        deadline: Option<Instant>,
        fetch: F,
    ) -> Traced<Discovery>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Traced<Discovery>>,
    {
        let (plan, refused) = if self.circuit_is_open() {
            self.count("skipped");
            (
                Plan::Fetch {
                    store: false,
                    lock: None,
                },
                None,
            )
        } else {
            self.plan(key, limits, deadline).await
        };
        let (store, lock) = match plan {
            Plan::Hit(mut d) => {
                d.notes.push(NOTE_HIT.to_owned());
                d.notes.extend(refused);
                return Traced {
                    result: Ok(d),
                    requests: Vec::new(),
                };
            }
            Plan::Fetch { store, lock } => (store, lock),
        };
        // On the heap: a discovery's future is large.
        let traced = Box::pin(fetch()).await;
        if store {
            self.store(&key.entry(&self.settings.key_prefix), key, &traced)
                .await;
        }
        if let Some((lock, token)) = lock {
            self.unlock(&lock, &token).await;
        }
        noted(traced, refused)
    }

    /// What to do for `key`: serve an entry (this replica's read, or
    /// another's discovery waited for), or fetch (holding the lock, after
    /// the wait expired, or without Redis when it fails). The second value
    /// is the note of a refused entry.
    async fn plan(
        &self,
        key: &SharedKey,
        limits: &Limits,
        deadline: Option<Instant>,
    ) -> (Plan, Option<String>) {
        let started = Instant::now();
        let wait_until = started + self.wait_budget(started, deadline);
        let entry = key.entry(&self.settings.key_prefix);
        let lock = key.lock(&self.settings.key_prefix);
        let bound = codec::read_bound(limits, self.settings.max_entry_bytes);
        let without_redis = Plan::Fetch {
            store: false,
            lock: None,
        };
        let mut refused: Option<String> = None;
        let mut poll = Duration::from_millis(5);
        let mut waited = false;
        loop {
            match self.read(&entry, key, limits, bound).await {
                Ok(Read::Hit(d)) => {
                    self.count(if waited { "hit-after-wait" } else { "hit" });
                    return (Plan::Hit(d), refused);
                }
                Ok(Read::Refused(reason)) => {
                    self.count("refused");
                    tracing::warn!(key = %entry, %reason, "shared cache entry refused; deleting it and asking the registry");
                    refused = Some(format!(
                        "shared cache (Redis) entry refused: {reason}; it was deleted and the evidence fetched from the registry"
                    ));
                    if self
                        .command::<i64>(redis::cmd("DEL").arg(&entry))
                        .await
                        .is_err()
                    {
                        return (without_redis, refused);
                    }
                }
                Ok(Read::Miss) => {}
                Err(_) => return (without_redis, refused),
            }
            let token = lock_token();
            let taken = self
                .command::<redis::Value>(
                    redis::cmd("SET")
                        .arg(&lock)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(self.settings.lock_ttl)),
                )
                .await;
            match taken {
                Ok(redis::Value::Nil) => {
                    // Another replica is discovering: wait for its entry.
                    let now = Instant::now();
                    if now >= wait_until {
                        self.count("wait-expired");
                        return (
                            Plan::Fetch {
                                store: true,
                                lock: None,
                            },
                            refused,
                        );
                    }
                    waited = true;
                    tokio::time::sleep(poll.min(wait_until - now)).await;
                    poll = (poll * 2).min(Duration::from_millis(20));
                }
                Ok(_) => {
                    self.count("miss");
                    return (
                        Plan::Fetch {
                            store: true,
                            lock: Some((lock, token)),
                        },
                        refused,
                    );
                }
                Err(_) => return (without_redis, refused),
            }
        }
    }

    /// How long a replica may wait for another's discovery: `lockWait`,
    /// and at most half of what is left before `deadline` (the other half
    /// is for its own discovery, should the wait be in vain).
    fn wait_budget(&self, now: Instant, deadline: Option<Instant>) -> Duration {
        let budget = self.settings.lock_wait;
        match deadline {
            Some(d) => budget.min(d.saturating_duration_since(now) / 2),
            None => budget,
        }
    }

    async fn read(
        &self,
        entry: &str,
        key: &SharedKey,
        limits: &Limits,
        bound: u64,
    ) -> Result<Read, Unavailable> {
        // GETRANGE returns at most bound + 1 bytes, whatever is stored:
        // an oversized entry is seen as such without reading it whole.
        let bytes: Vec<u8> = self
            .command(redis::cmd("GETRANGE").arg(entry).arg(0).arg(bound))
            .await?;
        if bytes.is_empty() {
            return Ok(Read::Miss);
        }
        if bytes.len() as u64 > bound {
            return Ok(Read::Refused(codec::Refusal::TooLarge {
                what: "the entry".into(),
                size: bytes.len() as u64,
                limit: bound,
                setting: "caches.shared.maxEntryBytes and registries.limits",
            }));
        }
        Ok(match codec::decode(Bytes::from(bytes), key, limits) {
            Ok(d) => Read::Hit(d),
            Err(r) => Read::Refused(r),
        })
    }

    async fn store(&self, entry: &str, key: &SharedKey, traced: &Traced<Discovery>) {
        let Ok(d) = &traced.result else { return };
        let Some(value) = codec::encode(key, d, self.settings.max_entry_bytes) else {
            self.count("not-stored");
            return;
        };
        let ttl = if d.evidence.is_empty() {
            self.settings.negative_ttl
        } else {
            self.settings.ttl
        };
        let _ = self
            .command::<()>(
                redis::cmd("SET")
                    .arg(entry)
                    .arg(value)
                    .arg("PX")
                    .arg(millis(ttl).max(1)),
            )
            .await;
    }

    async fn unlock(&self, lock: &str, token: &str) {
        // Only our own lock: it may have expired and been taken since.
        const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";
        let _ = self
            .command::<i64>(redis::cmd("EVAL").arg(RELEASE).arg(1).arg(lock).arg(token))
            .await;
    }

    /// One command under the time limit; a failure opens the circuit.
    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Unavailable> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.settings.timeout, async {
            let mut conn = self.connection().await?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| Unavailable(e.to_string()))
        })
        .await
        .unwrap_or_else(|_| {
            Err(Unavailable(format!(
                "no answer within {} ms (caches.shared.timeout)",
                self.settings.timeout.as_millis()
            )))
        });
        observe(&self.metrics.shared_cache_seconds, started.elapsed());
        if let Err(e) = &result {
            self.trip(e).await;
        }
        result
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, Unavailable> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout));
        let c = self
            .settings
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Opens the circuit and drops the connection (reopened on next use).
    async fn trip(&self, e: &Unavailable) {
        self.count("error");
        let first = {
            let mut open = self.open_until.lock().unwrap_or_else(|p| p.into_inner());
            let was_open = open.is_some_and(|t| t > Instant::now());
            *open = Some(Instant::now() + self.settings.circuit_open);
            !was_open
        };
        self.metrics.shared_cache_circuit.set(1);
        if first {
            tracing::warn!(url = %self.settings.url, error = %e, pause_ms = self.settings.circuit_open.as_millis() as u64, "shared cache unavailable; using the local cache and the registry");
        }
        *self.conn.lock().await = None;
    }

    fn circuit_is_open(&self) -> bool {
        let open = self.open_until.lock().unwrap_or_else(|p| p.into_inner());
        let is_open = open.is_some_and(|t| t > Instant::now());
        if !is_open {
            self.metrics.shared_cache_circuit.set(0);
        }
        is_open
    }

    fn count(&self, result: &str) {
        self.metrics.shared_cache_result(result);
    }
}

fn noted(mut traced: Traced<Discovery>, refused: Option<String>) -> Traced<Discovery> {
    if let (Ok(d), Some(r)) = (&mut traced.result, refused) {
        d.notes.push(r);
    }
    traced
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A value no other lock holder has: process id, time and a counter.
fn lock_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests;
