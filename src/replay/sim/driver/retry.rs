//! How a driver retries: the exponential back-off with jitter between attempts (100 ms
//! doubling to 2 s, +-50 %), and how long one connection attempt may take.
//!
//! Like a phone that knows its network is up, a driver gives a handshake (and the Welcome) 4 s,
//! then tries again (QUIC's own retransmission backoff would otherwise stretch one attempt over
//! the whole outage; Chromium's QUIC gives a handshake 10 s). Each attempt that times out
//! doubles the next one's time, up to 10 s: a gateway busy with a reconnect storm answers late,
//! and a phone that gives up on a handshake the gateway is about to finish makes it do that work
//! twice.

use crate::replay::sim::rng::unit;

/// Time given to a first connection attempt (handshake and Welcome), ms.
pub(super) const ATTEMPT_MS: u64 = 4_000;
/// Longest time given to an attempt after earlier ones timed out, ms.
const ATTEMPT_MAX_MS: u64 = 10_000;
/// First back-off, ms.
pub(super) const BACKOFF_MS: u64 = 100;
/// Longest back-off, ms.
const BACKOFF_MAX_MS: u64 = 2_000;

/// A driver's retry state: reset by every session opened.
#[derive(Debug)]
pub(super) struct Retry {
    /// The next back-off before jitter, ms.
    pub(super) backoff_ms: u64,
    /// How long the next connection attempt may take before it is given up, ms.
    pub(super) attempt_ms: u64,
}

impl Retry {
    /// The state before any failure.
    pub fn new() -> Retry {
        Retry {
            backoff_ms: BACKOFF_MS,
            attempt_ms: ATTEMPT_MS,
        }
    }

    /// A session opened: back to the first back-off and attempt time.
    pub fn reset(&mut self) {
        *self = Retry::new();
    }

    /// An attempt timed out: the next one gets twice the time, up to 10 s.
    pub fn timed_out(&mut self) {
        self.attempt_ms = (self.attempt_ms * 2).min(ATTEMPT_MAX_MS);
    }

    /// The wait before the next retry, us, drawing the jitter from `rng`; the next one
    /// doubles, up to 2 s.
    pub fn next_backoff_us(&mut self, rng: &mut u64) -> u64 {
        let b = self.backoff_ms;
        self.backoff_ms = (b * 2).min(BACKOFF_MAX_MS);
        let jitter = 0.5 + unit(rng);
        (b as f64 * jitter * 1000.0) as u64
    }
}
