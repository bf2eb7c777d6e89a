//! The Milepost wire protocol, sans-IO: the messages a driver app, a dispatcher console and
//! the gateway exchange, how they are framed on QUIC streams, and the one codec that turns
//! them into bytes.
//!
//! Nothing here performs I/O or depends on tokio or quinn, so a phone-side Rust client, a fuzzer
//! or a test can use it as it is. `PROTOCOL.md` beside this crate is the language-neutral
//! byte-level specification; the test vectors in `tests/vectors.rs` keep the two in step.
//!
//! # Layout
//! - [`types`]: the value types (newtypes such as [`DriverId`], [`Seq`], the GPS [`Fix`]).
//! - [`msg`]: every message, client to server and server to client, and the datagram.
//! - [`error`]: protocol error codes (also the QUIC application close codes) and per-fix
//!   rejection reasons.
//! - [`frame`]: length-prefixed framing with a hard size limit.
//! - [`route`]: routes, stops, delivery outcomes and fleet updates.
//! - [`service`]: what version 2 adds: recipients' delivery changes and the message thread.
//! - [`codec`]: the single place that names the encoder (bincode 2.0.1, standard config).
#![deny(missing_docs)]

pub mod codec;
pub mod error;
pub mod frame;
pub mod msg;
pub mod route;
pub mod service;
pub mod types;

pub use codec::{decode, encode, encode_into, CodecError};
pub use error::{ErrorCode, RejectReason};
pub use frame::{FrameError, FRAME_HEADER_LEN};
pub use msg::*;
pub use types::*;

/// The ALPN protocol identifier of the newest version, negotiated in the TLS handshake.
pub const ALPN: &[u8] = b"milepost/2";

/// The ALPN protocol identifier of version 1 (still served).
pub const ALPN_V1: &[u8] = b"milepost/1";

/// The newest protocol version, which a client puts in its [`Hello`]; the server refuses a
/// version it does not speak, or one that is not its connection's ALPN, with
/// [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u16 = 2;

/// Every version a server speaks, newest first (its ALPN list, in this order).
pub const VERSIONS: [u16; 2] = [2, 1];

/// The ALPN identifier of a protocol version (`None` for a version nobody speaks).
pub fn alpn(version: u16) -> Option<&'static [u8]> {
    match version {
        1 => Some(ALPN_V1),
        2 => Some(ALPN),
        _ => None,
    }
}

/// The protocol version an ALPN identifier names.
pub fn version_of_alpn(alpn: &[u8]) -> Option<u16> {
    VERSIONS.into_iter().find(|&v| self::alpn(v) == Some(alpn))
}

/// Hard upper bound on one frame's payload, whatever a server is configured to accept. The codec
/// refuses to allocate past this, so a hostile length prefix cannot make a peer allocate.
pub const MAX_FRAME_HARD: usize = 1 << 20;

/// Default maximum frame payload a server accepts (announced in [`Welcome`]).
pub const DEFAULT_MAX_FRAME: u32 = 64 * 1024;

/// Default maximum number of fixes in one [`FixBatch`] (announced in [`Welcome`]).
pub const DEFAULT_MAX_BATCH: u32 = 1000;
