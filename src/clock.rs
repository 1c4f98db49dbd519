//! Time, injected: the engine asks a [`Clock`], so tests can fix "now"
//! (rollout dates, evidence age) without sleeping.

use std::sync::Mutex;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> jiff::Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock that says what it was last set to.
#[derive(Debug)]
pub struct FixedClock(Mutex<jiff::Timestamp>);

impl FixedClock {
    /// A clock stopped at `t`.
    pub fn new(t: jiff::Timestamp) -> Self {
        FixedClock(Mutex::new(t))
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: jiff::Timestamp) {
        if let Ok(mut g) = self.0.lock() {
            *g = t;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
            .lock()
            .map(|g| *g)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    }
}
