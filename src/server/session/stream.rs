//! One bidirectional stream of a session: a reader that admits requests (fix batches,
//! commands, queries; a new stream opening with a Subscribe becomes a feed stream, one opening
//! with an Upload an upload stream) and a writer
//! that answers them in request order, joined by a bounded queue: a phone can pipeline batches,
//! and a slow disk pushes back through that queue and then QUIC flow control.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use milepost_proto::{ClientMsg, ErrorCode, ErrorFrame, Fix, Seq, ServerMsg};
use tokio::sync::mpsc;

use crate::auth::Role;
use crate::server::commands::handle as handle_command;
use crate::server::feed::serve as serve_feed;
use crate::server::session::fixes::{admit_from, settle, Settling};
use crate::server::session::peer::{close, error_msg, handshake_confirmed, Peer};
use crate::server::session::query::on_query;
use crate::server::session::upload::serve_upload;
use crate::server::shared::Shared;
use crate::wire::{read_msg, write_msg, WireError};

/// Requests in flight per stream before the reader stops reading.
const PIPELINE_DEPTH: usize = 64;

/// An answer waiting its turn on a stream. Large variants are boxed: tokio allocates a
/// channel's slots in blocks of 32, so the size of this type times 32 is memory every
/// connection pays, whether or not it ever sends a command.
enum Pending {
    /// A batch waiting to be durable.
    Batch(Box<Settling>),
    /// A command to run (logged, then applied) when its turn comes.
    Command(Box<milepost_proto::Command>),
    /// An answer ready now.
    Ready(Box<ServerMsg>),
}

/// How a stream's service begins.
pub(super) enum Opening {
    /// The session's first stream (the Hello's), whose first request the session has read
    /// (it waits for it itself: most phones never send one, and a task waiting for each would
    /// cost every phone its memory).
    Session(ClientMsg),
    /// A stream the client opened later: a Subscribe or an Upload makes it a feed or an upload
    /// stream, anything else a request stream like the session's.
    New,
}

/// Serves one bidirectional stream: a reader admitting requests, a writer answering them in
/// order.
pub(super) async fn serve_stream(
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: Arc<Peer>,
    shared: Arc<Shared>,
    opening: Opening,
) {
    let max = shared.cfg.limits.max_frame as usize;
    let mut first = match opening {
        Opening::Session(msg) => Some(msg),
        Opening::New => None,
    };
    if first.is_none() {
        match read_msg::<ClientMsg>(&mut recv, max).await {
            Ok(Some(ClientMsg::Subscribe(sub))) => {
                if handshake_confirmed(&peer).await {
                    // Boxed: a feed stream's state must not size every stream's future.
                    Box::pin(serve_feed(
                        send,
                        recv,
                        &peer.claims,
                        &shared,
                        sub,
                        peer.version,
                    ))
                    .await;
                }
                return;
            }
            Ok(Some(ClientMsg::Upload(up))) => {
                if handshake_confirmed(&peer).await {
                    Box::pin(serve_upload(send, recv, &peer, &shared, up)).await;
                }
                return;
            }
            Ok(Some(msg)) => first = Some(msg),
            Ok(None) | Err(WireError::Read(_)) => return,
            Err(e) => {
                shared.stats.refusals.fetch_add(1, Ordering::Relaxed);
                close(&peer.conn, e.code());
                return;
            }
        }
    }
    // The first request is read: the writer and its queue start only for a stream that carries
    // requests.
    let (tx, rx) = mpsc::channel::<Pending>(PIPELINE_DEPTH);
    let writer = tokio::spawn(answer_stream(send, rx, peer.clone(), shared.clone()));
    loop {
        let next = match first.take() {
            Some(msg) => Some(msg),
            None => read_next(&mut recv, max, &peer, &shared).await,
        };
        let Some(msg) = next else { break };
        let pending = match msg {
            ClientMsg::Hello(_) => {
                close(&peer.conn, ErrorCode::ProtocolViolation);
                break;
            }
            ClientMsg::FixBatch(batch) => {
                on_batch(&peer, &shared, batch.first_seq, &batch.fixes).await
            }
            // Both only open a new stream of their own.
            ClientMsg::Subscribe(_) => error(ErrorCode::ProtocolViolation),
            ClientMsg::Upload(_) => {
                // Its raw bytes would follow in this stream's frames: nothing here can be
                // read reliably any more.
                close(&peer.conn, ErrorCode::ProtocolViolation);
                break;
            }
            ClientMsg::Command(c) => {
                // Commands are not idempotent: never from replayable 0-RTT data.
                if !handshake_confirmed(&peer).await {
                    break;
                }
                if peer.version == 1 && !c.kind.in_version_1() {
                    // A version-1 client never sends it (PROTOCOL.md, "Version 2").
                    Pending::Ready(Box::new(ServerMsg::Error(ErrorFrame {
                        code: ErrorCode::ProtocolViolation,
                        message: "a version-2 command on a version-1 session".into(),
                    })))
                } else {
                    Pending::Command(Box::new(c))
                }
            }
            ClientMsg::Query(q) => {
                if !handshake_confirmed(&peer).await {
                    break;
                }
                Pending::Ready(Box::new(on_query(&peer, &shared, q)))
            }
        };
        if tx.send(pending).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The next request on the stream, or `None` once it ends (a bad frame closes the connection).
pub(super) async fn read_next(
    recv: &mut quinn::RecvStream,
    max: usize,
    peer: &Peer,
    shared: &Shared,
) -> Option<ClientMsg> {
    match read_msg::<ClientMsg>(recv, max).await {
        Ok(Some(msg)) => Some(msg),
        Ok(None) | Err(WireError::Read(_)) => None,
        Err(e) => {
            tracing::debug!(error = %e, "bad frame");
            shared.stats.refusals.fetch_add(1, Ordering::Relaxed);
            close(&peer.conn, e.code());
            None
        }
    }
}

/// Admits a batch, or answers with a request-level error.
async fn on_batch(peer: &Peer, shared: &Arc<Shared>, first_seq: Seq, fixes: &[Fix]) -> Pending {
    if peer.claims.role != Role::Driver {
        return error(ErrorCode::WrongRole);
    }
    if fixes.is_empty() || fixes.len() > shared.cfg.limits.max_batch as usize {
        return error(ErrorCode::BadBatchSize);
    }
    // The only wait: a place in the writer's queue (backpressure when the disk lags).
    let Ok(permit) = shared.log.reserve().await else {
        return error(ErrorCode::StorageFailure);
    };
    match admit_from(peer, shared, first_seq, fixes, permit) {
        Ok(a) => Pending::Batch(Settling::new(a, shared)),
        Err(code) => {
            if code == ErrorCode::RateLimited {
                shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            error(code)
        }
    }
}

/// A request-level error, ready now.
fn error(code: ErrorCode) -> Pending {
    Pending::Ready(Box::new(error_msg(code)))
}

/// Writes the answers of one stream in request order.
async fn answer_stream(
    mut send: quinn::SendStream,
    mut rx: mpsc::Receiver<Pending>,
    peer: Arc<Peer>,
    shared: Arc<Shared>,
) {
    while let Some(p) = rx.recv().await {
        let msg = match p {
            Pending::Ready(msg) => *msg,
            // Boxed: commands are rare, and their state must not size every stream's future.
            Pending::Command(c) => Box::pin(handle_command(&peer.claims, &shared, *c)).await,
            Pending::Batch(a) => match settle(a, &peer).await {
                Ok(ack) => ServerMsg::Ack(ack),
                Err(code @ ErrorCode::DiskFull) => ServerMsg::Error(ErrorFrame {
                    code,
                    message: "disk full: fixes not stored; keep them and retry later".into(),
                }),
                Err(code) => {
                    let _ = write_msg(
                        &mut send,
                        &ServerMsg::Error(ErrorFrame {
                            code,
                            message: "fixes not stored: keep them and retry later".into(),
                        }),
                    )
                    .await;
                    close(&peer.conn, code);
                    return;
                }
            },
        };
        if write_msg(&mut send, &msg).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
}
