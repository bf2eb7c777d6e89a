//! The QUIC side of a simulated phone: its client socket and endpoint, opening a session
//! (QUIC + TLS, then `Hello`/`Welcome` on the first bidirectional stream), reading frames
//! cancel-safely, waiting for whatever the session says next, sending live fixes and batches,
//! and which refusals are final.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;

use milepost_proto::{
    ClientDatagram, ClientMsg, DeviceInfo, ErrorCode, Fix, FixBatch, Hello, Seq, ServerMsg,
    Welcome, MAX_FRAME_HARD, PROTOCOL_VERSION,
};
use tokio::time::Sleep;

use super::config::ReplayConfig;
use crate::auth::{Claims, Role};
use crate::client::{ClientEndpoint, ClientError, Phone, Timers};
use crate::replay::metrics::Wire;
use crate::wire::{write_msg, WireError};

/// Socket buffer size asked for the client sockets (the kernel may cap it at
/// `net.core.rmem_max`/`wmem_max`, see [`crate::udp`]).
const SOCKET_BUFFER: usize = 16 << 20;

/// A UDP socket with large buffers: a thousand connections share one, and the default buffer
/// (about 200 KiB) overflows when the process is busy for a few milliseconds, which would show
/// up as lost live fixes and loss-recovery delays that are the load generator's, not the
/// gateway's.
pub(super) fn big_socket(bind: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let sock = std::net::UdpSocket::bind(bind)?;
    // Best effort: a smaller buffer still works.
    let _ = crate::udp::size_buffers(&sock, SOCKET_BUFFER);
    Ok(sock)
}

/// A client endpoint trusting `ca` with the phones' QUIC `timers`, moved onto a [`big_socket`].
pub(super) fn endpoint(
    bind: SocketAddr,
    ca: &Path,
    timers: Timers,
) -> Result<ClientEndpoint, ClientError> {
    let ep = ClientEndpoint::with_timers(bind, ca, timers)?;
    ep.quinn().rebind(big_socket(bind)?)?;
    Ok(ep)
}

/// Refusals that a retry with the same token cannot fix (PROTOCOL.md 5.2).
pub(super) fn fatal(code: Option<ErrorCode>) -> bool {
    matches!(
        code,
        Some(
            ErrorCode::ProtocolViolation
                | ErrorCode::UnsupportedVersion
                | ErrorCode::TokenInvalid
                | ErrorCode::TokenExpired
                | ErrorCode::WrongRole
                | ErrorCode::OutOfScope
                | ErrorCode::TokenRevoked
        )
    )
}

/// Reads frames from a stream, cancel-safely: bytes are only taken from quinn by
/// `read_chunk` (cancel-safe) and kept here until a whole frame is in, so a `select!` that
/// drops the read loses nothing.
pub(super) struct FrameRx {
    recv: quinn::RecvStream,
    buf: Vec<u8>,
}

impl FrameRx {
    /// Frames from `recv`.
    pub fn new(recv: quinn::RecvStream) -> FrameRx {
        FrameRx {
            recv,
            buf: Vec::new(),
        }
    }

    /// The next message, or `None` when the stream ends at a frame boundary.
    async fn next(&mut self) -> Result<Option<ServerMsg>, WireError> {
        loop {
            if let Some((payload, used)) = milepost_proto::frame::parse(&self.buf, MAX_FRAME_HARD)?
            {
                let msg = milepost_proto::decode(payload)?;
                self.buf.drain(..used);
                return Ok(Some(msg));
            }
            match self.recv.read_chunk(64 * 1024, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(WireError::Truncated),
            }
        }
    }
}

/// Waits for the next live-fix ack, or forever when the ack stream is not open yet.
async fn next_on(rx: &mut Option<FrameRx>) -> Result<Option<ServerMsg>, WireError> {
    match rx {
        Some(rx) => rx.next().await,
        None => std::future::pending().await,
    }
}

/// What woke a driver.
pub(super) enum Event {
    /// A message on the session stream, its end, or its failure.
    Session(Result<Option<ServerMsg>, WireError>),
    /// A message on one of the gateway's streams to the phone (live acks, pushes), its end, or
    /// its failure; the slot it came from.
    LiveAck(usize, Result<Option<ServerMsg>, WireError>),
    /// The gateway opened its ack stream (or the connection failed while waiting for it).
    AckStream(Result<quinn::RecvStream, quinn::ConnectionError>),
    /// The driver's timer.
    Timer,
}

/// An open session.
pub(super) struct Link {
    /// The QUIC connection.
    pub conn: quinn::Connection,
    send: quinn::SendStream,
    rx: FrameRx,
    /// The streams the gateway opened to the phone: its ack stream for live fixes and, once
    /// the driver has a route, its push stream. Which is which shows in what they carry, so
    /// both are read (a phone that took the first for the acks lost the acks behind a push).
    pub acks: [Option<FrameRx>; 2],
}

impl Link {
    /// Sends a live fix as a datagram; false when it cannot go (too big, no datagram
    /// support).
    pub fn send_live(&self, seq: u64, fix: Fix) -> bool {
        let msg = ClientDatagram::LiveFix { seq: Seq(seq), fix };
        milepost_proto::encode(&msg)
            .ok()
            .is_some_and(|b| self.conn.send_datagram(b.into()).is_ok())
    }

    /// Writes a `FixBatch` on the session stream.
    pub async fn send_batch(&mut self, first: u64, fixes: Vec<Fix>) -> Result<(), WireError> {
        let msg = ClientMsg::FixBatch(FixBatch {
            first_seq: Seq(first),
            fixes,
        });
        write_msg(&mut self.send, &msg).await
    }

    /// The connection's traffic so far.
    pub fn wire(&self) -> Wire {
        Wire::of(&self.conn)
    }
}

/// Waits for the first of: a message (or the end) on the session's streams, the gateway
/// opening its ack stream, and `sleep`. Without a session, for `sleep`.
pub(super) async fn next_event(link: Option<&mut Link>, mut sleep: Pin<&mut Sleep>) -> Event {
    match link {
        Some(l) => {
            let free = l.acks.iter().any(Option::is_none);
            let [a, b] = &mut l.acks;
            tokio::select! {
                biased;
                r = l.rx.next() => Event::Session(r),
                r = next_on(a) => Event::LiveAck(0, r),
                r = next_on(b) => Event::LiveAck(1, r),
                r = l.conn.accept_uni(), if free => Event::AckStream(r),
                _ = &mut sleep => Event::Timer,
            }
        }
        None => {
            sleep.as_mut().await;
            Event::Timer
        }
    }
}

/// Opens a session as driver `id` at `server` (the gateway or the driver's relay): QUIC + TLS, then Hello/Welcome on the first bidirectional
/// stream.
pub(super) async fn open_link(
    cfg: &ReplayConfig,
    server: SocketAddr,
    ep: &ClientEndpoint,
    phone: &Phone,
    id: &str,
) -> Result<(Link, Welcome), ClientError> {
    let conn = ep.connect_as(phone, server, &cfg.server_name).await?;
    let (mut send, recv) = conn.open_bi().await?;
    let now_s = chrono::Utc::now().timestamp();
    let token = cfg.key.mint(&Claims {
        role: Role::Driver,
        sub: id.to_owned(),
        depot: cfg.depot_of(id),
        exp: now_s + 12 * 3600 + (cfg.ramp + cfg.duration + cfg.drain).as_secs() as i64,
        iat: now_s,
        carrier: None,
    });
    let hello = ClientMsg::Hello(Hello {
        version: PROTOCOL_VERSION,
        token,
        subject: id.to_owned(),
        device: DeviceInfo {
            device_id: id.to_owned(),
            app: concat!("milepost-replay/", env!("CARGO_PKG_VERSION")).into(),
            os: std::env::consts::OS.into(),
        },
    });
    write_msg(&mut send, &hello).await?;
    let mut rx = FrameRx::new(recv);
    match rx.next().await {
        Ok(Some(ServerMsg::Welcome(w))) => Ok((
            Link {
                conn,
                send,
                rx,
                acks: [None, None],
            },
            w,
        )),
        Ok(Some(ServerMsg::Error(e))) => Err(ClientError::Refused(e)),
        Ok(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
        // The server may close before we read its error frame: its close code says why.
        Err(e) => Err(match conn.close_reason() {
            Some(reason) => ClientError::Connection(reason),
            None => e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_version_refusals_are_final_load_and_shutdown_are_not() {
        let is = |c| fatal(Some(c));
        assert!(is(ErrorCode::TokenInvalid) && is(ErrorCode::TokenExpired));
        assert!(is(ErrorCode::UnsupportedVersion) && is(ErrorCode::OutOfScope));
        for code in [
            ErrorCode::NoError,
            ErrorCode::RateLimited,
            ErrorCode::ServerBusy,
            ErrorCode::ShuttingDown,
            ErrorCode::StorageFailure,
        ] {
            assert!(!is(code), "{code:?} is worth a retry");
        }
        assert!(
            !fatal(None),
            "a failure without a code (unreachable, timed out)"
        );
        assert_eq!(ErrorCode::ALL.into_iter().filter(|c| is(*c)).count(), 7);
    }
}
