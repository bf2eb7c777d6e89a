//! Opening a session: the QUIC handshake (0-RTT accepted, confirmation tracked), then the
//! Hello on the first stream (version, token, deny list, subject, connection limit), answered
//! with a Welcome or a typed error, while the connection holds one of the handshake slots.

use std::sync::atomic::Ordering;
use std::time::Duration;

use milepost_proto::{version_of_alpn, VERSIONS};
use milepost_proto::{ClientMsg, DriverId, ErrorCode, Hello, Limits, Seq, ServerMsg, Welcome};
use tokio::sync::{watch, Mutex as AsyncMutex};

use crate::auth::{Claims, Role};
use crate::server::guard::Registration;
use crate::server::session::peer::{close, error_msg, Peer};
use crate::server::shared::Shared;
use crate::wire::{read_msg, write_msg};

/// Longest time a connection holds its place among the handshakes in flight
/// (`limits.max_handshakes_in_flight`).
const SLOT_HOLD: Duration = Duration::from_millis(250);

/// The handshake and the Hello: the authenticated peer, its session stream and its place in
/// the registry, or `None` when the connection was refused (and closed) or failed.
pub(super) async fn open<'a>(
    incoming: quinn::Incoming,
    shared: &'a Shared,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Option<(
    quinn::Connection,
    Peer,
    (quinn::SendStream, quinn::RecvStream),
    Registration<'a>,
)> {
    let (conn, confirmed) = handshake(incoming, shared).await?;
    let timeout = Duration::from_secs(shared.cfg.limits.handshake_timeout_s);
    // The handshake slot goes back when the Hello is answered, or after `SLOT_HOLD` at most: a
    // phone that gave up (or is very slow) must not keep others waiting for the whole
    // handshake timeout.
    let mut slot = Some(slot);
    let hold = tokio::time::sleep(SLOT_HOLD);
    tokio::pin!(hold);
    let hello = {
        let hello = tokio::time::timeout(timeout, accept_hello(&conn, shared, confirmed));
        tokio::pin!(hello);
        loop {
            tokio::select! {
                r = &mut hello => break r,
                _ = &mut hold, if slot.is_some() => slot = None,
            }
        }
    };
    drop(slot);
    match hello {
        Ok(Ok((peer, first, registration))) => Some((conn, peer, first, registration)),
        Ok(Err(code)) => {
            shared.stats.refusals.fetch_add(1, Ordering::Relaxed);
            close(&conn, code);
            None
        }
        Err(_) => {
            shared.stats.refusals.fetch_add(1, Ordering::Relaxed);
            close(&conn, ErrorCode::HelloTimeout);
            None
        }
    }
}

/// Completes the QUIC handshake. Returns the connection and whether the handshake is
/// confirmed (no 0-RTT replay possible any more), or `None` if it failed.
async fn handshake(
    incoming: quinn::Incoming,
    shared: &Shared,
) -> Option<(quinn::Connection, watch::Receiver<bool>)> {
    let handshake = Duration::from_secs(shared.cfg.limits.handshake_timeout_s);
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "handshake failed");
            return None;
        }
    };
    // Accept 0-RTT (and answer in 0.5-RTT) so a resuming phone's first fix batch costs no round
    // trip; `confirmed` flips once the handshake completes, and everything that is not an
    // idempotent fix batch waits for it (see `serve_stream`).
    let (conn, zero_rtt) = match connecting.into_0rtt() {
        Ok(v) => v,
        Err(connecting) => match tokio::time::timeout(handshake, connecting).await {
            Ok(Ok(conn)) => {
                let (tx, rx) = watch::channel(true);
                drop(tx);
                return Some((conn, rx));
            }
            _ => {
                tracing::debug!(%remote, "handshake failed or timed out");
                return None;
            }
        },
    };
    let (confirmed_tx, confirmed) = watch::channel(false);
    let c2 = conn.clone();
    tokio::spawn(async move {
        match tokio::time::timeout(handshake, zero_rtt).await {
            Ok(_) => {
                let _ = confirmed_tx.send(true);
            }
            Err(_) => c2.close(
                quinn::VarInt::from_u32(ErrorCode::HelloTimeout.as_u32()),
                b"handshake timeout",
            ),
        }
    });
    Some((conn, confirmed))
}

/// Waits for the first stream and its Hello; answers Welcome or a typed error.
async fn accept_hello<'a>(
    conn: &quinn::Connection,
    shared: &'a Shared,
    confirmed: watch::Receiver<bool>,
) -> Result<
    (
        Peer,
        (quinn::SendStream, quinn::RecvStream),
        Registration<'a>,
    ),
    ErrorCode,
> {
    let (mut send, mut recv) = conn.accept_bi().await.map_err(|_| ErrorCode::NoError)?;
    let max = shared.cfg.limits.max_frame as usize;
    let msg = read_msg::<ClientMsg>(&mut recv, max)
        .await
        .map_err(|e| e.code())?;
    let Some(ClientMsg::Hello(hello)) = msg else {
        return Err(ErrorCode::ProtocolViolation);
    };
    let limit = shared.cfg.limits.max_connections_per_subject;
    let hello_version = hello.version;
    // Folding only the partitions it owns, a gateway takes the phones of the depots it holds:
    // their watermark and their acks come from its fold. Others are told which gateway holds
    // theirs.
    let mut elsewhere = None;
    let admitted = check_hello(&hello, conn, shared).and_then(|claims| {
        if claims.role == Role::Driver {
            if let Err(e) = shared.serves(&claims.depot) {
                elsewhere = Some(e.to_string());
                return Err(ErrorCode::ServerBusy);
            }
        }
        let reg = shared
            .registry
            .register(&claims, &hello.token, conn, limit)?;
        Ok((claims, reg))
    });
    match admitted {
        Ok((claims, registration)) => {
            let driver = DriverId(claims.sub.clone());
            // From the durable ledger: seqs still in flight (or about to be refused) are not
            // settled yet, and a phone deletes what is at or below its watermark.
            if claims.role == Role::Driver && shared.cluster.is_some() {
                shared.ledger.absorb(&driver, &shared.state.ledger);
            }
            let watermark = match claims.role {
                Role::Driver => shared.state.ledger.watermark(&driver),
                _ => Seq(0),
            };
            let welcome = ServerMsg::Welcome(Welcome {
                server_time_ms: shared.now_ms(),
                limits: Limits {
                    max_frame: shared.cfg.limits.max_frame,
                    max_batch: shared.cfg.limits.max_batch,
                    max_fixes_per_s: shared.cfg.limits.max_fixes_per_s,
                },
                watermark,
            });
            write_msg(&mut send, &welcome)
                .await
                .map_err(|_| ErrorCode::NoError)?;
            let peer = Peer {
                claims,
                driver,
                conn: conn.clone(),
                version: hello_version,
                ack_stream: AsyncMutex::new(None),
                confirmed,
                upload: AsyncMutex::new(()),
            };
            Ok((peer, (send, recv), registration))
        }
        Err(code) => {
            // Tell the client why in a frame too, then give it a moment to read it.
            let err = match elsewhere {
                Some(message) => ServerMsg::Error(milepost_proto::ErrorFrame { code, message }),
                None => error_msg(code),
            };
            if write_msg(&mut send, &err).await.is_ok() && send.finish().is_ok() {
                let _ = tokio::time::timeout(Duration::from_millis(500), send.stopped()).await;
            }
            Err(code)
        }
    }
}

/// Checks version, token and claimed subject.
fn check_hello(
    hello: &Hello,
    conn: &quinn::Connection,
    shared: &Shared,
) -> Result<Claims, ErrorCode> {
    // The version must be one the server speaks, and the one the ALPN negotiated.
    let alpn = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
        .and_then(|p| version_of_alpn(&p));
    if !VERSIONS.contains(&hello.version) || alpn.is_some_and(|v| v != hello.version) {
        return Err(ErrorCode::UnsupportedVersion);
    }
    let (claims, signer) = shared
        .keys
        .verify_signed(&hello.token, shared.now_ms().div_euclid(1000))
        .map_err(|e| e.code())?;
    // A carrier's own key vouches for its own parcels and drivers only.
    if signer.is_some_and(|c| !shared.subject_is_carriers(&claims, &c)) {
        return Err(ErrorCode::OutOfScope);
    }
    if shared.deny.denies(&claims, &hello.token) {
        return Err(ErrorCode::TokenRevoked);
    }
    if hello.subject != claims.sub {
        return Err(ErrorCode::OutOfScope);
    }
    // A token made for another carrier's depot (the depot changed hands since).
    if !shared
        .cfg
        .carriers
        .token_fits(claims.carrier.as_deref(), &claims.depot)
    {
        return Err(ErrorCode::OutOfScope);
    }
    Ok(claims)
}
