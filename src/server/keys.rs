//! Keys that must survive a restart so that a reconnect storm after a restart is cheap:
//! the TLS session-ticket key (phones resume their TLS session with a stateless ticket, skipping
//! the certificate chain and its signature, also across a restart), the QUIC address-token key
//! (`address.key`: phones prove their address with a NEW_TOKEN token from their last
//! connection, so the handshake-rate guard need not send them a stateless retry) and the QUIC
//! stateless-reset key (a restarted gateway can tell phones holding old connections to drop
//! them at once instead of waiting for an idle timeout). They live in the data directory,
//! mode 0600; gateways behind one load balancer share them.
//!
//! 0-RTT is not offered: rustls (following RFC 8446 section 8.1) only allows early data with
//! stateful, in-memory resumption, which a restart loses, and the restart is exactly when a
//! storm happens. The session still holds everything but fix batches until the handshake is
//! confirmed, so enabling stateful 0-RTT later cannot open a replay hole.

use std::path::Path;
use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

/// Reads a 32-byte key file, creating it with random bytes on first use.
pub fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} holds fewer than 32 bytes", path.display()),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            crate::auth::write_private(path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Session tickets sealed with AES-256-GCM under a persistent key.
pub struct TicketKey {
    key: LessSafeKey,
    lifetime_s: u32,
    /// Tickets opened successfully: each is a resumed TLS session.
    pub resumed: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

impl TicketKey {
    /// A ticketer over `key`, issuing tickets valid for `lifetime_s` seconds.
    pub fn new(key: &[u8; 32], lifetime_s: u32) -> Arc<TicketKey> {
        // AES-256 takes any 32-byte key.
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM key is 32 bytes"));
        Arc::new(TicketKey {
            key: LessSafeKey::new(unbound),
            lifetime_s,
            resumed: Default::default(),
        })
    }
}

impl rustls::server::ProducesTickets for TicketKey {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime_s
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::empty(),
                &mut body,
            )
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let nonce = Nonce::try_assume_unique_for_key(cipher.get(..NONCE_LEN)?).ok()?;
        let mut body = cipher.get(NONCE_LEN..)?.to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .ok()?
            .len();
        body.truncate(plain_len);
        self.resumed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn tickets_round_trip_and_resist_tampering() {
        let k = TicketKey::new(&[7; 32], 3600);
        let sealed = k.encrypt(b"session state").unwrap();
        assert_eq!(k.decrypt(&sealed).unwrap(), b"session state");
        let mut bad = sealed.clone();
        bad[NONCE_LEN] ^= 1;
        assert!(k.decrypt(&bad).is_none());
        assert!(k.decrypt(&sealed[..5]).is_none());
        // Another gateway with the same key reads it (shared across restarts and instances).
        assert_eq!(
            TicketKey::new(&[7; 32], 3600).decrypt(&sealed).unwrap(),
            b"session state"
        );
        assert!(TicketKey::new(&[8; 32], 3600).decrypt(&sealed).is_none());
    }
}
