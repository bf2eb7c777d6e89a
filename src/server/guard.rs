//! Admission guards around sessions: the per-subject connection registry (limit and the handle
//! revocation uses to close live sessions) and the handshake-rate meter that turns on QUIC
//! stateless retry under a handshake flood. The token deny list itself is [`crate::auth::DenyList`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use milepost_proto::ErrorCode;

use crate::auth::{subject_key, Claims};

/// Kept here too: the path `milepost::server::guard::fingerprint` is in use (tests, tools).
pub use crate::auth::fingerprint;

/// Live connections per token subject.
#[derive(Default)]
pub struct Registry {
    live: DashMap<String, Vec<(usize, String, quinn::Connection)>>,
}

/// Removes a connection from the registry when its session ends.
pub struct Registration<'a> {
    registry: &'a Registry,
    key: String,
    id: usize,
}

impl Registry {
    /// Registers a connection of `claims`, unless the subject already has `max` of them.
    pub fn register(
        &self,
        claims: &Claims,
        token: &str,
        conn: &quinn::Connection,
        max: u32,
    ) -> Result<Registration<'_>, ErrorCode> {
        let key = subject_key(claims.role, &claims.sub);
        let mut entry = self.live.entry(key.clone()).or_default();
        if entry.len() >= max as usize {
            return Err(ErrorCode::TooManyConnections);
        }
        let id = conn.stable_id();
        entry.push((id, fingerprint(token), conn.clone()));
        Ok(Registration {
            registry: self,
            key,
            id,
        })
    }

    /// Closes every live connection whose subject key (`driver:d42`) or token fingerprint is in
    /// `deny`. Returns how many were closed.
    pub fn close_denied(&self, deny: &HashSet<String>) -> usize {
        let mut closed = 0;
        for entry in self.live.iter() {
            for (_, fp, conn) in entry.value() {
                if deny.contains(entry.key()) || deny.contains(fp) {
                    conn.close(
                        quinn::VarInt::from_u32(ErrorCode::TokenRevoked.as_u32()),
                        b"token revoked",
                    );
                    closed += 1;
                }
            }
        }
        closed
    }

    /// Live connections in all.
    pub fn len(&self) -> usize {
        self.live.iter().map(|e| e.value().len()).sum()
    }

    /// True when no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let now_empty = match self.registry.live.get_mut(&self.key) {
            Some(mut v) => {
                v.retain(|(id, _, _)| *id != self.id);
                v.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.registry.live.remove_if(&self.key, |_, v| v.is_empty());
        }
    }
}

/// Counts handshakes per wall-clock second.
#[derive(Default)]
pub struct HandshakeMeter {
    /// Upper 32 bits: the second; lower 32 bits: handshakes in it.
    state: AtomicU64,
}

impl HandshakeMeter {
    /// Counts one handshake at `now_s` and returns how many this second, this one included.
    pub fn tick(&self, now_s: u64) -> u32 {
        let now = now_s & 0xffff_ffff;
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let (sec, n) = (cur >> 32, (cur & 0xffff_ffff) as u32);
            let next_n = if sec == now { n.saturating_add(1) } else { 1 };
            let next = (now << 32) | next_n as u64;
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next_n,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_counts_per_second() {
        let m = HandshakeMeter::default();
        assert_eq!(m.tick(10), 1);
        assert_eq!(m.tick(10), 2);
        assert_eq!(m.tick(11), 1);
    }
}
