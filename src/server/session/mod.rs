//! One QUIC connection, from Hello to close.
//!
//! The first bidirectional stream carries the Hello; after the Welcome every bidirectional
//! stream (the first and any the client opens later) carries request frames (batches, queries)
//! answered in order. Each stream has a reader that admits requests and a writer that awaits
//! their durability and writes the answers, joined by a bounded queue: a phone can pipeline
//! batches, and a slow disk pushes back through that queue and then QUIC flow control. Live
//! fixes arrive as datagrams and are acked on a server-opened unidirectional stream.
//!
//! - [`hello`]: the handshake and the Hello, holding a handshake slot.
//! - [`stream`]: one bidirectional stream: requests read and admitted, answers written in order.
//! - [`fixes`]: admission of batches and live-fix datagrams; settling them into acks.
//! - [`query`]: dispatchers' spatial queries.
//! - [`upload`]: proof-file upload streams (a photo or signature, checked and stored).
//! - [`peer`]: the authenticated peer and what every part does to it (close, push, errors).
//!
//! This file runs the connection: [`run`] and the loop that serves its streams, datagrams and
//! pushes until it closes, its token expires or the gateway stops.

pub mod fixes;
pub mod hello;
pub mod peer;
pub mod query;
pub mod stream;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

use milepost_proto::{ErrorCode, ServerMsg};
use tokio::sync::{mpsc, watch};

use crate::auth::Role;
use crate::server::session::fixes::{on_datagram, settle, Settling};
use crate::server::session::hello::open;
use crate::server::session::peer::{close, send_push, Peer};
use crate::server::session::stream::{read_next, serve_stream, Opening};
use crate::server::shared::Shared;

/// Runs one connection to completion. `slot` is its place among the handshakes in flight,
/// given back once the Hello is answered.
///
/// The handshake and the Hello run in boxed futures of their own: their state is freed once
/// they are done instead of sizing the session's future, which every connected phone keeps
/// for as long as it is connected.
pub async fn run(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let Some((conn, peer, first, registration)) = Box::pin(open(incoming, &shared, slot)).await
    else {
        return;
    };
    run_session(conn, peer, first, shared.clone(), stop).await;
    drop(registration);
}

/// Serves an authenticated connection: its streams and datagrams, until it closes.
async fn run_session(
    conn: quinn::Connection,
    peer: Peer,
    first: (quinn::SendStream, quinn::RecvStream),
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let remote = conn.remote_address();
    tracing::debug!(%remote, role = ?peer.claims.role, subject = %peer.claims.sub, "session open");
    let peer = Arc::new(peer);
    let expires_in = Duration::from_millis(
        (peer.claims.exp.saturating_mul(1000) - shared.now_ms()).clamp(0, i64::MAX) as u64,
    );
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);
    let mut streams = tokio::task::JoinSet::new();
    // The session stream's first request is awaited here, not in a task of its own: most
    // phones send live fixes as datagrams and never use it, and a waiting task (with the
    // stream's writer and queue) cost each of them about 3 KiB. Its service starts with it.
    let (first_send, mut first_recv) = first;
    let mut first_send = Some(first_send);
    let first_request = {
        let (peer, shared) = (peer.clone(), shared.clone());
        async move {
            let max = shared.cfg.limits.max_frame as usize;
            let msg = read_next(&mut first_recv, max, &peer, &shared).await;
            (msg, first_recv)
        }
    };
    tokio::pin!(first_request);
    // A driver's push task: live-fix acks (each datagram settled in turn: a task per
    // datagram would cost a spawn per fix) and pushes from the applier.
    let (live_tx, mut live_rx) = mpsc::channel::<Box<Settling>>(16);
    let pushes = (peer.claims.role == Role::Driver).then(|| {
        let (tx, mut rx) = mpsc::channel::<Box<ServerMsg>>(64);
        shared.pushes.insert(peer.driver.clone(), tx.clone());
        let p = peer.clone();
        let sh = shared.clone();
        streams.spawn(async move {
            loop {
                let msg = tokio::select! {
                    Some(admitted) = live_rx.recv() => match settle(admitted, &p).await {
                        Ok(ack) => ServerMsg::Ack(ack),
                        // Not stored (seqs unsettled): no ack; the phone resends it in a batch
                        // and gets the DiskFull answer there.
                        Err(ErrorCode::DiskFull) => continue,
                        Err(code) => {
                            close(&p.conn, code);
                            break;
                        }
                    },
                    Some(msg) = rx.recv() => {
                        match crate::server::service::push_for(&sh, p.version, *msg) {
                            Some(msg) => msg,
                            None => continue,
                        }
                    }
                    else => break,
                };
                if !send_push(&p, &msg).await {
                    break;
                }
            }
        });
        tx
    });
    // The futures that rarely complete stay pinned across iterations: re-creating them for
    // every datagram (as a plain `select!` over fresh futures would) registers and drops
    // their wakers each time.
    let accept = conn.accept_bi();
    tokio::pin!(accept);
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            bi = &mut accept => match bi {
                Ok((send, recv)) => {
                    let open = Opening::New;
                    streams.spawn(serve_stream(send, recv, peer.clone(), shared.clone(), open));
                    accept.set(conn.accept_bi());
                }
                Err(_) => break,
            },
            dg = conn.read_datagram() => match dg {
                Ok(bytes) => on_datagram(&bytes, &peer, &shared, &live_tx),
                Err(_) => break,
            },
            (msg, recv) = &mut first_request, if first_send.is_some() => {
                if let Some(mut send) = first_send.take() {
                    match msg {
                        Some(msg) => {
                            let open = Opening::Session(msg);
                            streams.spawn(serve_stream(send, recv, peer.clone(), shared.clone(), open));
                        }
                        None => {
                            let _ = send.finish();
                        }
                    }
                }
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            _ = &mut expiry => {
                // A session does not outlive its token: the phone reconnects with a fresh one.
                close(&conn, ErrorCode::TokenExpired);
                break;
            }
            _ = &mut stopped => {
                close(&conn, ErrorCode::ShuttingDown);
                break;
            }
        }
    }
    if let Some(tx) = pushes {
        // Only if no newer connection of this driver replaced our queue.
        shared
            .pushes
            .remove_if(&peer.driver, |_, cur| cur.same_channel(&tx));
    }
    streams.shutdown().await;
}
