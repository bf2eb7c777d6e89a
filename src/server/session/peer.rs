//! The authenticated peer of a session (`Peer`) and what every part of a session does to it:
//! close it with a protocol error, write on its push stream, wait for its handshake to be
//! confirmed, answer it with an error frame.

use milepost_proto::{DriverId, ErrorCode, ErrorFrame, ServerMsg};
use tokio::sync::{watch, Mutex as AsyncMutex};

use crate::auth::Claims;
use crate::wire::write_msg;

/// Who is on the other end, once authenticated.
pub(super) struct Peer {
    /// The token's claims.
    pub(super) claims: Claims,
    /// The subject as a driver id (meaningful for drivers).
    pub(super) driver: DriverId,
    /// The connection.
    pub(super) conn: quinn::Connection,
    /// The protocol version spoken (its `Hello`, matching the connection's ALPN).
    pub(super) version: u16,
    /// The server-opened stream carrying acks of live-fix datagrams, opened on first use.
    pub(super) ack_stream: AsyncMutex<Option<quinn::SendStream>>,
    /// True once the TLS handshake is complete: until then the peer may be speaking 0-RTT
    /// data, which an attacker can replay, so only idempotent fix batches are served.
    pub(super) confirmed: watch::Receiver<bool>,
    /// Held while one of this connection's uploads is received: a connection uploads one file
    /// at a time (another is refused), so a few phones cannot hold every upload place.
    pub(super) upload: AsyncMutex<()>,
}

/// Writes a message on the server-opened push stream (live-fix acks and driver pushes),
/// opening it on first use. False if the connection is gone.
pub(super) async fn send_push(peer: &Peer, msg: &ServerMsg) -> bool {
    let mut guard = peer.ack_stream.lock().await;
    if guard.is_none() {
        match peer.conn.open_uni().await {
            Ok(s) => *guard = Some(s),
            Err(_) => return false,
        }
    }
    let ok = match guard.as_mut() {
        Some(stream) => write_msg(stream, msg).await.is_ok(),
        None => false,
    };
    if !ok {
        *guard = None;
    }
    ok
}

/// Closes the connection with a protocol error code.
pub(super) fn close(conn: &quinn::Connection, code: ErrorCode) {
    conn.close(
        quinn::VarInt::from_u32(code.as_u32()),
        code.to_string().as_bytes(),
    );
}

/// Waits until the handshake is complete (no 0-RTT replay possible from here on). False if the
/// connection died first.
pub(super) async fn handshake_confirmed(peer: &Peer) -> bool {
    let mut c = peer.confirmed.clone();
    let waited = c.wait_for(|done| *done).await.map(|_| ());
    waited.is_ok()
}

/// The error frame answering a request (or a Hello) refused with `code`.
pub(super) fn error_msg(code: ErrorCode) -> ServerMsg {
    ServerMsg::Error(ErrorFrame {
        code,
        message: code.to_string(),
    })
}
