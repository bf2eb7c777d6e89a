//! Admission guards around sessions: the per-subject connection registry (limit and the handle
//! revocation uses to close live sessions), the token deny list reloaded without restart, and
//! the handshake-rate meter that turns on QUIC stateless retry under a handshake flood.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::SystemTime;

use dashmap::DashMap;
use milepost_proto::ErrorCode;
use sha2::{Digest, Sha256};

use crate::auth::Claims;

/// The fingerprint of a token as written in the deny list: `fp:` and the first 16 hex digits
/// of its SHA-256.
pub fn fingerprint(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("fp:{hex}")
}

/// The registry key of a token's holder.
fn subject_key(claims: &Claims) -> String {
    format!("{:?}:{}", claims.role, claims.sub).to_lowercase()
}

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
        let key = subject_key(claims);
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

/// The token deny list: a text file, one entry a line: `driver:D42` (every token of that
/// subject; also `dispatcher:north`, `recipient:T1`), or a token fingerprint `fp:0123...`
/// (`milepost revoke` prints and appends them). `#` starts a comment.
pub struct DenyList {
    path: PathBuf,
    entries: RwLock<(HashSet<String>, Option<SystemTime>)>,
    /// Entries revoked on other gateways of a cluster (see [`crate::cluster::revoke`]).
    shared: RwLock<HashSet<String>>,
}

impl DenyList {
    /// A deny list read from `path` (absent file = empty list).
    pub fn new(path: &Path) -> DenyList {
        let list = DenyList {
            path: path.to_owned(),
            entries: RwLock::new((HashSet::new(), None)),
            shared: RwLock::new(HashSet::new()),
        };
        list.reload();
        list
    }

    /// Re-reads the file if it changed. Returns the new entries when it did.
    pub fn reload(&self) -> Option<HashSet<String>> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        {
            let cur = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if cur.1 == mtime {
                return None;
            }
        }
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let set: HashSet<String> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect();
        tracing::info!(path = %self.path.display(), entries = set.len(), "token deny list loaded");
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = (set.clone(), mtime);
        Some(set)
    }

    /// True if the token (by subject or fingerprint) is denied.
    pub fn denies(&self, claims: &Claims, token: &str) -> bool {
        let hit = |set: &HashSet<String>| {
            !set.is_empty()
                && (set.contains(&subject_key(claims)) || set.contains(&fingerprint(token)))
        };
        hit(&self.entries.read().unwrap_or_else(|p| p.into_inner()).0)
            || hit(&self.shared.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The entries of this gateway's own file.
    pub fn local(&self) -> HashSet<String> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Replaces the entries revoked elsewhere in the cluster; returns them with the local ones
    /// when they changed.
    pub fn set_shared(&self, set: HashSet<String>) -> Option<HashSet<String>> {
        let mut cur = self.shared.write().unwrap_or_else(|p| p.into_inner());
        if *cur == set {
            return None;
        }
        *cur = set;
        let mut all = self.local();
        all.extend(cur.iter().cloned());
        Some(all)
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

    #[test]
    fn deny_list_by_subject_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        let list = DenyList::new(&path);
        let claims = Claims {
            role: crate::auth::Role::Driver,
            sub: "D42".into(),
            depot: "x".into(),
            exp: 1,
            iat: 0,
        };
        assert!(!list.denies(&claims, "tok"));
        std::fs::write(
            &path,
            format!("# lost phone\ndriver:D42\n{}\n", fingerprint("other")),
        )
        .unwrap();
        assert!(list.reload().is_some());
        assert!(list.denies(&claims, "tok"));
        let mut c2 = claims.clone();
        c2.sub = "D7".into();
        assert!(!list.denies(&c2, "tok"));
        assert!(list.denies(&c2, "other"));
    }
}
