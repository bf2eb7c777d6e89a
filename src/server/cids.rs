//! Connection IDs a restarted gateway still recognises, so that it can reset the phones of its
//! previous life at once.
//!
//! After a crash (`kill -9`, power loss) the phones do not know the gateway is gone: they keep
//! sending short-header packets on their old connections. The restarted gateway answers each
//! with a stateless reset (its reset key is persistent, see `boot`), and the phone reconnects
//! within a round trip. But quinn sends a reset only for a connection ID its generator
//! *validates*, and quinn's default generator signs its IDs with a key drawn at random at every
//! start: after a restart no old ID validated, every packet was dropped as "invalid CID", and
//! every phone waited for its idle timeout (30 s) before reconnecting. These IDs are signed
//! with a key derived from the persistent reset key instead.
//!
//! An ID is 8 bytes: a 4-byte random nonce, then the first 4 bytes of HMAC-SHA256(key, nonce).
//! A forged ID validates with probability 2^-32, and then earns only a reset smaller than the
//! packet that caused it.

use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};
use rand::RngCore;
use ring::hmac;

const NONCE_LEN: usize = 4;
const TAG_LEN: usize = 4;
/// Length of the connection IDs issued.
pub const CID_LEN: usize = NONCE_LEN + TAG_LEN;

/// Issues connection IDs signed with a key that survives restarts.
#[derive(Clone, Debug)]
pub struct KeyedCids {
    key: hmac::Key,
}

impl KeyedCids {
    /// A generator whose key is derived from `reset_key` (the same key gives the same
    /// signatures, in this process or the next).
    pub fn new(reset_key: &[u8; 32]) -> KeyedCids {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, reset_key);
        let key = hmac::sign(&derive, b"milepost connection ids");
        KeyedCids {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
        }
    }

    fn tag(&self, nonce: &[u8]) -> [u8; TAG_LEN] {
        let t = hmac::sign(&self.key, nonce);
        let mut out = [0; TAG_LEN];
        out.copy_from_slice(&t.as_ref()[..TAG_LEN]);
        out
    }
}

impl ConnectionIdGenerator for KeyedCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut b = [0u8; CID_LEN];
        rand::thread_rng().fill_bytes(&mut b[..NONCE_LEN]);
        let tag = self.tag(&b[..NONCE_LEN]);
        b[NONCE_LEN..].copy_from_slice(&tag);
        ConnectionId::new(&b)
    }

    fn validate(&self, cid: &ConnectionId) -> Result<(), quinn_proto::InvalidCid> {
        if cid.len() == CID_LEN && cid[NONCE_LEN..] == self.tag(&cid[..NONCE_LEN]) {
            Ok(())
        } else {
            Err(quinn_proto::InvalidCid)
        }
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate_under_the_same_key_in_a_new_generator_and_not_under_another() {
        let key = [7u8; 32];
        let mut before_restart = KeyedCids::new(&key);
        let after_restart = KeyedCids::new(&key);
        let other = KeyedCids::new(&[8u8; 32]);
        for _ in 0..100 {
            let id = before_restart.generate_cid();
            assert_eq!(id.len(), CID_LEN);
            assert!(after_restart.validate(&id).is_ok());
            assert!(other.validate(&id).is_err());
        }
        let a = before_restart.generate_cid();
        let b = before_restart.generate_cid();
        assert_ne!(a, b, "ids are random");
        assert!(after_restart
            .validate(&ConnectionId::new(&[0u8; 5]))
            .is_err());
    }
}
