//! What provgate remembers about registries between discoveries: which ones
//! lack the OCI 1.1 referrers API.
//!
//! A registry without the API (distribution 2.8, older Harbor, …) answers
//! `GET /v2/<name>/referrers/<digest>` with 404, 400, 405 or 501, and every
//! discovery then falls back to the referrers tag schema. Asking again for
//! every image costs one request each time for an answer that does not
//! change, so the answer is remembered per registry host and settings (a
//! mirror, or the same host with other options, is asked on its own) for a
//! bounded time ([`DEFAULT_REFERRERS_MEMO_TTL`]), after which the next
//! discovery asks again, so a registry upgraded to the API is noticed.
//!
//! Only an answer from a discovery that succeeded is remembered: the
//! referrers endpoint of a registry *with* the API may also answer 404 for
//! a repository that does not exist, and a failed discovery cannot tell the
//! two apart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::limits::RegistryOptions;

/// How long the absence of the referrers API is remembered (10 minutes).
pub const DEFAULT_REFERRERS_MEMO_TTL: Duration = Duration::from_secs(600);

/// At most this many registries are remembered; hosts are few, but the set
/// must not grow without bound (the oldest entry makes room).
pub(crate) const MAX_REMEMBERED: usize = 256;

/// One remembered absence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Absence {
    /// When it was first seen (monotonic, for expiry).
    pub at: Instant,
    /// When it was first seen (wall clock, for `--explain`).
    pub since: jiff::Timestamp,
    /// The status the registry answered.
    pub status: u16,
    /// Insertion order (eviction picks the lowest).
    seq: u64,
}

/// Registries (host + settings) known to lack the referrers API.
#[derive(Debug)]
pub(crate) struct ReferrersMemo {
    ttl: Duration,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<(String, RegistryOptions), Absence>,
    next: u64,
}

impl ReferrersMemo {
    /// A memo keeping answers for `ttl` (zero: remember nothing).
    pub fn new(ttl: Duration) -> Self {
        ReferrersMemo {
            ttl,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// How long answers are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The remembered absence of the API on `host` with `options`, if it is
    /// younger than the TTL (an expired one is forgotten).
    pub fn absent(&self, host: &str, options: &RegistryOptions) -> Option<Absence> {
        let mut entries = self.entries.lock().ok()?;
        let key = (host.to_owned(), options.clone());
        let a = *entries.map.get(&key)?;
        if a.at.elapsed() < self.ttl {
            Some(a)
        } else {
            entries.map.remove(&key);
            None
        }
    }

    /// Remembers that `host` with `options` answered `status` to the
    /// referrers API. An absence already remembered keeps its first time.
    pub fn remember(&self, host: &str, options: &RegistryOptions, status: u16) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let ttl = self.ttl;
        let key = (host.to_owned(), options.clone());
        if entries.map.get(&key).is_some_and(|a| a.at.elapsed() < ttl) {
            return;
        }
        if entries.map.len() >= MAX_REMEMBERED {
            entries.map.retain(|_, a| a.at.elapsed() < ttl);
        }
        if entries.map.len() >= MAX_REMEMBERED
            && let Some(oldest) = entries
                .map
                .iter()
                .min_by_key(|(_, a)| a.seq)
                .map(|(k, _)| k.clone())
        {
            entries.map.remove(&oldest);
        }
        let seq = entries.next;
        entries.next += 1;
        entries.map.insert(
            key,
            Absence {
                at: Instant::now(),
                since: jiff::Timestamp::now(),
                status,
                seq,
            },
        );
    }

    /// Number of registries remembered (expired ones included until they
    /// are looked up or make room).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RegistryOptions {
        RegistryOptions::default()
    }

    #[test]
    fn an_absence_is_remembered_per_host_and_settings() {
        let m = ReferrersMemo::new(Duration::from_secs(60));
        m.remember("a:5000", &opts(), 404);
        let a = m.absent("a:5000", &opts()).expect("remembered");
        assert_eq!(a.status, 404);
        assert!(m.absent("b:5000", &opts()).is_none(), "another host");
        let insecure = RegistryOptions {
            insecure: true,
            ..opts()
        };
        assert!(
            m.absent("a:5000", &insecure).is_none(),
            "the same host with other settings is asked on its own"
        );
        // A second answer keeps the first time.
        m.remember("a:5000", &opts(), 405);
        assert_eq!(m.absent("a:5000", &opts()), Some(a));
    }

    #[test]
    fn an_absence_expires_and_a_zero_ttl_remembers_nothing() {
        let m = ReferrersMemo::new(Duration::from_millis(20));
        m.remember("a:5000", &opts(), 404);
        assert!(m.absent("a:5000", &opts()).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(m.absent("a:5000", &opts()).is_none());
        assert_eq!(m.len(), 0, "the expired entry is forgotten");

        let off = ReferrersMemo::new(Duration::ZERO);
        off.remember("a:5000", &opts(), 404);
        assert!(off.absent("a:5000", &opts()).is_none());
        assert_eq!(off.len(), 0);
    }

    #[test]
    fn the_memo_is_bounded_and_the_oldest_entry_makes_room() {
        let m = ReferrersMemo::new(Duration::from_secs(60));
        for i in 0..MAX_REMEMBERED + 10 {
            m.remember(&format!("host{i}:5000"), &opts(), 404);
        }
        assert_eq!(m.len(), MAX_REMEMBERED);
        assert!(m.absent("host0:5000", &opts()).is_none(), "oldest evicted");
        let last = format!("host{}:5000", MAX_REMEMBERED + 9);
        assert!(m.absent(&last, &opts()).is_some());
    }
}
