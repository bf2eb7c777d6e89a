//! Connection IDs a QUIC-LB style load balancer can route on (draft-ietf-quic-load-balancers,
//! plaintext algorithm).
//!
//! Every connection ID this gateway issues is 8 bytes: a first octet with config id 0 in its
//! top 3 bits and the length minus one in the low 5 bits, then this gateway's 2-byte server id
//! (big endian), then 5 random bytes. A load balancer in front of several gateways reads bytes
//! 1..3 of the destination connection ID of every packet (short or long header) and forwards
//! it to that server; packets whose ID it does not know (a phone's first Initial) it spreads by
//! hash. So a phone that changes network (a new address, the same connection ID) keeps
//! reaching the gateway that holds its connection.
//!
//! The plaintext algorithm lets an observer link the connection IDs of one connection to the
//! same server (not to each other beyond that); the draft's encrypted variants would hide it
//! and are a drop-in change of this generator.

use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};
use rand::RngCore;

/// Length of the connection IDs issued.
pub const CID_LEN: usize = 8;

/// Issues QUIC-LB plaintext connection IDs naming one server.
#[derive(Clone, Copy, Debug)]
pub struct QuicLbCids {
    server_id: u16,
}

impl QuicLbCids {
    /// A generator for `server_id`.
    pub fn new(server_id: u16) -> QuicLbCids {
        QuicLbCids { server_id }
    }
}

/// The server id a connection ID issued by [`QuicLbCids`] names (what a load balancer reads);
/// `None` for an ID of another shape.
pub fn server_id_of(cid: &[u8]) -> Option<u16> {
    if cid.len() != CID_LEN || cid[0] != (CID_LEN - 1) as u8 {
        return None;
    }
    Some(u16::from_be_bytes([cid[1], cid[2]]))
}

/// The server id used when none is configured: derived from the node name (stable across
/// restarts; a collision only costs a load balancer's routing, so configure ids in production).
pub fn server_id_for(node: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in node.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h ^ (h >> 16)) as u16).max(1)
}

impl ConnectionIdGenerator for QuicLbCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut b = [0u8; CID_LEN];
        b[0] = (CID_LEN - 1) as u8; // config id 0, length self-encoded
        b[1..3].copy_from_slice(&self.server_id.to_be_bytes());
        rand::thread_rng().fill_bytes(&mut b[3..]);
        ConnectionId::new(&b)
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
    fn ids_name_their_server_and_differ() {
        let mut g = QuicLbCids::new(0x1234);
        let a = g.generate_cid();
        let b = g.generate_cid();
        assert_eq!(a.len(), CID_LEN);
        assert_eq!(server_id_of(&a), Some(0x1234));
        assert_eq!(server_id_of(&b), Some(0x1234));
        assert_ne!(&a[..], &b[..]);
        assert_eq!(server_id_of(&[7, 0, 1]), None);
        assert_ne!(server_id_for("gw-a"), server_id_for("gw-b"));
        assert_ne!(server_id_for("gw-a"), 0);
    }
}
