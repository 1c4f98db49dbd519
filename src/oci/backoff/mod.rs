//! Back-pressure towards registries: one circuit per registry host.
//!
//! A registry that answers 429 or 5xx, times out or refuses connections is
//! in trouble, and every review that asks it again makes the trouble worse
//! (a review of an uncached digest is at least one request, and admission
//! reviews arrive by the hundred during a rollout). So each host has a
//! circuit:
//!
//! - **closed**: requests are sent. A failure that signals overload or an
//!   outage ([`Trip`]: 429, 5xx, a request timeout, a refused or dropped
//!   connection) opens it.
//! - **open** until the back-off ends: requests fail at once with
//!   [`RegistryErrorKind::BackingOff`],
//!   a transient error, without touching the network. The back-off is the
//!   registry's `Retry-After` (seconds or an HTTP date) when it sent one,
//!   capped at [`BackoffPolicy::max`]; otherwise an exponential back-off
//!   from [`BackoffPolicy::initial`], doubled per consecutive failure up to
//!   the cap, with jitter (uniform in the upper half of the step) so that
//!   replicas do not come back in step.
//! - **half-open** once the back-off has passed: exactly one request (the
//!   probe) is sent; the others still fail at once. The probe's success
//!   closes the circuit; its failure opens it again with the next back-off.
//!
//! Only the first failure of an episode counts: requests that were already
//! in flight when the circuit opened report into an older *epoch* and are
//! ignored, so a burst of 100 concurrent 429s is one failure, not 100
//! doublings of the back-off. A probe that never finishes (its discovery
//! hit the deadline and was dropped) frees the probe slot for the next
//! request.
//!
//! Errors that do not say the registry is overloaded (TLS and DNS
//! failures, 4xx, oversized answers) neither open nor hold the circuit:
//! they are reported as they are, every time, so the message keeps naming
//! the setting that fixes them.
//!
//! The circuits only decide whether a request is *sent*: a request that is
//! not sent fails with a transient error, and the registry's failure policy
//! (`fail-closed`, `last-known-good`, `warn`) decides what that means for
//! the decision, as for any outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod trip;

pub use trip::{Trip, parse_retry_after};

use super::error::{RegistryError, RegistryErrorKind};
use super::record::RequestObserver;

/// Hosts tracked at most. Hosts come from image references, so their
/// number is bounded here: closed hosts are forgotten first, and a host
/// beyond the bound is simply not tracked (its requests are sent).
const MAX_HOSTS: usize = 4096;

/// How long a host is left alone after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first back-off when the registry gives no `Retry-After`;
    /// doubled per consecutive failure.
    pub initial: Duration,
    /// The longest back-off, `Retry-After` included. Zero turns circuits
    /// off: every request is sent.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl BackoffPolicy {
    /// The exponential step after `failures` consecutive failures (1 is
    /// the first): `initial × 2^(failures-1)`, at most `max`.
    pub fn step(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The back-off after `failures` consecutive failures: `Retry-After`
    /// when the registry sent one (capped at `max`), otherwise the step
    /// jittered uniformly into `[step/2, step]` by `unit` (in `[0, 1)`).
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.max);
        }
        let step = self.step(failures);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = step / 2;
        half + (step - half).mul_f64(unit)
    }
}

/// The state of a host's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests are sent.
    Closed,
    /// Backing off: requests fail without being sent.
    Open,
    /// The back-off is over: one probe request is allowed.
    HalfOpen,
}

impl CircuitState {
    /// The metric value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }

    /// `closed`, `open`, `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        }
    }
}

/// A request that is not sent because its host is backing off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// When the host may be asked again (now, when a probe is in flight).
    pub until: Instant,
    /// Whether the back-off is over and a probe request is in flight.
    pub probing: bool,
    /// What made the host back off.
    pub cause: String,
}

impl Refusal {
    /// The transient error of a request to `host` (for `context`) that
    /// was not sent.
    pub fn error(&self, host: &str, context: &str) -> RegistryError {
        let remaining = self.until.saturating_duration_since(Instant::now());
        let until = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(remaining).unwrap_or_default())
            .unwrap_or(jiff::Timestamp::MAX);
        RegistryError::new(
            host,
            context,
            RegistryErrorKind::BackingOff {
                until,
                cause: self.cause.clone(),
                probing: self.probing,
            },
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Host {
    state: State,
    /// Consecutive failures (episodes), for the exponential back-off.
    failures: u32,
    /// Changes whenever the circuit opens: outcomes of requests admitted
    /// under another epoch are stale.
    epoch: u64,
    /// What opened the circuit last.
    cause: String,
}

/// What the metrics hear about (sent after the lock is released).
enum Event {
    State(CircuitState),
    Opened(&'static str),
    Shed,
}

/// The circuits of every registry host, shared by every transport (and
/// carried over configuration reloads).
pub struct Circuits {
    hosts: Mutex<HashMap<String, Host>>,
    epochs: AtomicU64,
    observer: Arc<dyn RequestObserver>,
}

impl std::fmt::Debug for Circuits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circuits").finish_non_exhaustive()
    }
}

/// Permission to send one request; report its outcome with
/// [`Permit::succeeded`] or [`Permit::failed`]. Dropped without either
/// (the request was cancelled), it frees the probe slot it held.
#[must_use = "report the outcome of the request"]
pub struct Permit<'a> {
    circuits: &'a Circuits,
    host: &'a str,
    policy: BackoffPolicy,
    /// The host's epoch when admitted (`None`: not tracked then).
    epoch: Option<u64>,
    probe: bool,
    settled: bool,
}

impl std::fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("host", &self.host)
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

impl Permit<'_> {
    /// Whether this request is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The registry answered (anything but a [`Trip`]).
    pub fn succeeded(mut self) {
        self.settled = true;
        self.circuits
            .succeeded_at(self.host, self.epoch, self.probe, Instant::now());
    }

    /// The request failed in a way that opens the circuit.
    pub fn failed(mut self, trip: Trip) {
        self.settled = true;
        self.circuits.failed_at(
            self.host,
            self.epoch,
            self.probe,
            &self.policy,
            trip,
            Instant::now(),
            jitter_unit(),
        );
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.circuits.release(self.host, self.epoch);
        }
    }
}

impl Circuits {
    /// No host tracked yet; state changes are reported to `observer`.
    pub fn new(observer: Arc<dyn RequestObserver>) -> Self {
        Circuits {
            hosts: Mutex::new(HashMap::new()),
            epochs: AtomicU64::new(1),
            observer,
        }
    }

    /// May a request be sent to `host` now?
    pub fn admit<'a>(
        &'a self,
        host: &'a str,
        policy: BackoffPolicy,
    ) -> Result<Permit<'a>, Refusal> {
        self.admit_at(host, policy, Instant::now())
    }

    /// [`Circuits::admit`] at `now`.
    pub fn admit_at<'a>(
        &'a self,
        host: &'a str,
        policy: BackoffPolicy,
        now: Instant,
    ) -> Result<Permit<'a>, Refusal> {
        let permit = |epoch, probe| Permit {
            circuits: self,
            host,
            policy,
            epoch,
            probe,
            settled: false,
        };
        if policy.max.is_zero() {
            return Ok(permit(None, false));
        }
        let mut events = Vec::new();
        let result = {
            let Ok(mut hosts) = self.hosts.lock() else {
                // A poisoned lock: no back-off rather than no requests.
                return Ok(permit(None, false));
            };
            match hosts.get_mut(host) {
                None => Ok(permit(None, false)),
                Some(h) => match h.state {
                    State::Closed => Ok(permit(Some(h.epoch), false)),
                    State::Open { until } if now < until => {
                        events.push(Event::Shed);
                        Err(Refusal {
                            until,
                            probing: false,
                            cause: h.cause.clone(),
                        })
                    }
                    State::Open { .. } | State::HalfOpen { probing: false } => {
                        h.state = State::HalfOpen { probing: true };
                        events.push(Event::State(CircuitState::HalfOpen));
                        Ok(permit(Some(h.epoch), true))
                    }
                    State::HalfOpen { probing: true } => {
                        events.push(Event::Shed);
                        Err(Refusal {
                            until: now,
                            probing: true,
                            cause: h.cause.clone(),
                        })
                    }
                },
            }
        };
        self.emit(host, events);
        result
    }

    /// How long until `host` may be asked again: `None` when its circuit
    /// is closed (or untracked), zero when the back-off is over.
    pub fn remaining(&self, host: &str) -> Option<Duration> {
        self.remaining_at(host, Instant::now())
    }

    /// [`Circuits::remaining`] at `now`.
    pub fn remaining_at(&self, host: &str, now: Instant) -> Option<Duration> {
        let hosts = self.hosts.lock().ok()?;
        match hosts.get(host)?.state {
            State::Closed => None,
            State::Open { until } => Some(until.saturating_duration_since(now)),
            State::HalfOpen { .. } => Some(Duration::ZERO),
        }
    }

    /// The state of `host`'s circuit at `now` (an open circuit whose
    /// back-off is over reads as half-open).
    pub fn state_at(&self, host: &str, now: Instant) -> CircuitState {
        let Ok(hosts) = self.hosts.lock() else {
            return CircuitState::Closed;
        };
        match hosts.get(host).map(|h| h.state) {
            None | Some(State::Closed) => CircuitState::Closed,
            Some(State::Open { until }) if now < until => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    fn succeeded_at(&self, host: &str, epoch: Option<u64>, probe: bool, _now: Instant) {
        let mut events = Vec::new();
        if let Ok(mut hosts) = self.hosts.lock()
            && let Some(h) = hosts.get_mut(host)
            && Some(h.epoch) == epoch
        {
            match h.state {
                State::Closed => h.failures = 0,
                State::HalfOpen { .. } if probe => {
                    h.state = State::Closed;
                    h.failures = 0;
                    events.push(Event::State(CircuitState::Closed));
                }
                // Not the probe, or opened since: stale.
                _ => {}
            }
        }
        self.emit(host, events);
    }

    #[allow(clippy::too_many_arguments)]
    fn failed_at(
        &self,
        host: &str,
        epoch: Option<u64>,
        probe: bool,
        policy: &BackoffPolicy,
        trip: Trip,
        now: Instant,
        unit: f64,
    ) {
        let mut events = Vec::new();
        if let Ok(mut hosts) = self.hosts.lock() {
            let current = hosts.get(host).map(|h| (h.epoch, h.state));
            let failures = match (current, epoch) {
                // Untracked when admitted and still untracked: first failure.
                (None, None) => 0,
                // The same episode, closed (a first failure) or this
                // request is the probe of a half-open circuit.
                (Some((e, State::Closed)), Some(p)) if e == p => {
                    hosts.get(host).map(|h| h.failures).unwrap_or(0)
                }
                (Some((e, State::HalfOpen { .. })), Some(p)) if e == p && probe => {
                    hosts.get(host).map(|h| h.failures).unwrap_or(0)
                }
                // Admitted before the circuit last changed: stale.
                _ => {
                    drop(hosts);
                    return;
                }
            };
            if current.is_none() && hosts.len() >= MAX_HOSTS {
                prune(&mut hosts, now);
                if hosts.len() >= MAX_HOSTS {
                    return;
                }
            }
            let failures = failures.saturating_add(1);
            let delay = policy.delay(failures, trip.retry_after, unit);
            let until = now.checked_add(delay).unwrap_or(now + policy.max);
            hosts.insert(
                host.to_owned(),
                Host {
                    state: State::Open { until },
                    failures,
                    epoch: self.epochs.fetch_add(1, Ordering::Relaxed) + 1,
                    cause: trip.cause,
                },
            );
            events.push(Event::State(CircuitState::Open));
            events.push(Event::Opened(trip.label));
        }
        self.emit(host, events);
    }

    /// A probe that ended without an outcome frees its slot.
    fn release(&self, host: &str, epoch: Option<u64>) {
        if let Ok(mut hosts) = self.hosts.lock()
            && let Some(h) = hosts.get_mut(host)
            && Some(h.epoch) == epoch
            && h.state == (State::HalfOpen { probing: true })
        {
            h.state = State::HalfOpen { probing: false };
        }
    }

    fn emit(&self, host: &str, events: Vec<Event>) {
        for e in events {
            match e {
                Event::State(s) => self.observer.circuit(host, s),
                Event::Opened(label) => self.observer.backoff(host, label),
                Event::Shed => self.observer.shed(host),
            }
        }
    }
}

/// Forgets closed hosts, then hosts whose back-off ended long ago.
fn prune(hosts: &mut HashMap<String, Host>, now: Instant) {
    hosts.retain(|_, h| !matches!(h.state, State::Closed));
    if hosts.len() >= MAX_HOSTS {
        hosts.retain(|_, h| match h.state {
            State::Open { until } => now < until + Duration::from_secs(600),
            _ => true,
        });
    }
}

/// A number in `[0, 1)` for jitter. Not for secrets: std's randomly keyed
/// SipHash over a counter is enough to keep replicas out of step.
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
