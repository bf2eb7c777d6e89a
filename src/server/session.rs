//! One QUIC connection, from Hello to close.
//!
//! The first bidirectional stream carries the Hello; after the Welcome every bidirectional
//! stream (the first and any the client opens later) carries request frames (batches, queries)
//! answered in order. Each stream has a reader that admits requests and a writer that awaits
//! their durability and writes the answers, joined by a bounded queue: a phone can pipeline
//! batches, and a slow disk pushes back through that queue and then QUIC flow control. Live
//! fixes arrive as datagrams and are acked on a server-opened unidirectional stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use milepost_proto::{
    Ack, ClientDatagram, ClientMsg, DriverId, ErrorCode, ErrorFrame, Fix, Hello, Limits, Query,
    QueryKind, QueryResult, Seq, ServerMsg, Welcome, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};

use crate::auth::{Claims, Role};
use crate::server::guard::Registration;
use crate::server::ingest::{admit, Admitted};
use crate::server::Shared;
use crate::store::LogError;
use crate::wire::{read_msg, write_msg, WireError};

/// Requests in flight per stream before the reader stops reading.
const PIPELINE_DEPTH: usize = 64;

/// Longest time a connection holds its place among the handshakes in flight
/// (`limits.max_handshakes_in_flight`).
const SLOT_HOLD: Duration = Duration::from_millis(250);

/// Who is on the other end, once authenticated.
struct Peer {
    claims: Claims,
    driver: DriverId,
    conn: quinn::Connection,
    /// The server-opened stream carrying acks of live-fix datagrams, opened on first use.
    ack_stream: AsyncMutex<Option<quinn::SendStream>>,
    /// True once the TLS handshake is complete: until then the peer may be speaking 0-RTT
    /// data, which an attacker can replay, so only idempotent fix batches are served.
    confirmed: watch::Receiver<bool>,
}

/// An answer waiting its turn on a stream. Large variants are boxed: tokio allocates a
/// channel's slots in blocks of 32, so the size of this type times 32 is memory every
/// connection pays, whether or not it ever sends a command.
enum Pending {
    /// A batch waiting to be durable.
    Batch(Box<Admitted>),
    /// A command to run (logged, then applied) when its turn comes.
    Command(Box<milepost_proto::Command>),
    /// An answer ready now.
    Ready(Box<ServerMsg>),
}

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

/// The handshake and the Hello: the authenticated peer, its session stream and its place in
/// the registry, or `None` when the connection was refused (and closed) or failed.
async fn open<'a>(
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
    streams.spawn(serve_stream(
        first.0,
        first.1,
        peer.clone(),
        shared.clone(),
        true,
    ));
    // A driver's push task: live-fix acks (each datagram settled in turn: a task per
    // datagram would cost a spawn per fix) and pushes from the applier.
    let (live_tx, mut live_rx) = mpsc::channel::<Box<Admitted>>(16);
    let pushes = (peer.claims.role == Role::Driver).then(|| {
        let (tx, mut rx) = mpsc::channel::<Box<ServerMsg>>(64);
        shared.pushes.insert(peer.driver.clone(), tx.clone());
        let (p, sh) = (peer.clone(), shared.clone());
        streams.spawn(async move {
            loop {
                let msg = tokio::select! {
                    Some(admitted) = live_rx.recv() => match settle(*admitted, &p, &sh).await {
                        Ok(ack) => ServerMsg::Ack(ack),
                        // Not stored (seqs unsettled): no ack; the phone resends it in a batch
                        // and gets the DiskFull answer there.
                        Err(ErrorCode::DiskFull) => continue,
                        Err(code) => {
                            close(&p.conn, code);
                            break;
                        }
                    },
                    Some(msg) = rx.recv() => *msg,
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
                    streams.spawn(serve_stream(send, recv, peer.clone(), shared.clone(), false));
                    accept.set(conn.accept_bi());
                }
                Err(_) => break,
            },
            dg = conn.read_datagram() => match dg {
                Ok(bytes) => on_datagram(&bytes, &peer, &shared, &live_tx),
                Err(_) => break,
            },
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

/// Writes a message on the server-opened push stream (live-fix acks and driver pushes),
/// opening it on first use. False if the connection is gone.
async fn send_push(peer: &Peer, msg: &ServerMsg) -> bool {
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
fn close(conn: &quinn::Connection, code: ErrorCode) {
    conn.close(
        quinn::VarInt::from_u32(code.as_u32()),
        code.to_string().as_bytes(),
    );
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
    let admitted = check_hello(&hello, shared).and_then(|claims| {
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
                ack_stream: AsyncMutex::new(None),
                confirmed,
            };
            Ok((peer, (send, recv), registration))
        }
        Err(code) => {
            // Tell the client why in a frame too, then give it a moment to read it.
            let err = ServerMsg::Error(ErrorFrame {
                code,
                message: code.to_string(),
            });
            if write_msg(&mut send, &err).await.is_ok() && send.finish().is_ok() {
                let _ = tokio::time::timeout(Duration::from_millis(500), send.stopped()).await;
            }
            Err(code)
        }
    }
}

/// Checks version, token and claimed subject.
fn check_hello(hello: &Hello, shared: &Shared) -> Result<Claims, ErrorCode> {
    if hello.version != PROTOCOL_VERSION {
        return Err(ErrorCode::UnsupportedVersion);
    }
    let claims = shared
        .keys
        .verify(&hello.token, shared.now_ms().div_euclid(1000))
        .map_err(|e| e.code())?;
    if shared.deny.denies(&claims, &hello.token) {
        return Err(ErrorCode::TokenRevoked);
    }
    if hello.subject != claims.sub {
        return Err(ErrorCode::OutOfScope);
    }
    Ok(claims)
}

/// Serves one bidirectional stream: a reader admitting requests, a writer answering them in
/// order.
async fn serve_stream(
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: Arc<Peer>,
    shared: Arc<Shared>,
    session_stream: bool,
) {
    let max = shared.cfg.limits.max_frame as usize;
    // A new stream whose first frame is a Subscribe becomes a feed stream.
    let mut first = None;
    if !session_stream {
        match read_msg::<ClientMsg>(&mut recv, max).await {
            Ok(Some(ClientMsg::Subscribe(sub))) => {
                if handshake_confirmed(&peer).await {
                    // Boxed: a feed stream's state must not size every stream's future.
                    Box::pin(crate::server::feed::serve(
                        send,
                        recv,
                        &peer.claims,
                        &shared,
                        sub,
                    ))
                    .await;
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
    let (tx, rx) = mpsc::channel::<Pending>(PIPELINE_DEPTH);
    let writer = tokio::spawn(answer_stream(send, rx, peer.clone(), shared.clone()));
    loop {
        let next = match first.take() {
            Some(msg) => Ok(Some(msg)),
            None => read_msg::<ClientMsg>(&mut recv, max).await,
        };
        let msg = match next {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(WireError::Read(_)) => break,
            Err(e) => {
                tracing::debug!(error = %e, "bad frame");
                shared.stats.refusals.fetch_add(1, Ordering::Relaxed);
                close(&peer.conn, e.code());
                break;
            }
        };
        let pending = match msg {
            ClientMsg::Hello(_) => {
                close(&peer.conn, ErrorCode::ProtocolViolation);
                break;
            }
            ClientMsg::FixBatch(batch) => {
                on_batch(&peer, &shared, batch.first_seq, &batch.fixes).await
            }
            ClientMsg::Subscribe(_) => error(ErrorCode::ProtocolViolation),
            ClientMsg::Command(c) => {
                // Commands are not idempotent: never from replayable 0-RTT data.
                if !handshake_confirmed(&peer).await {
                    break;
                }
                Pending::Command(Box::new(c))
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

/// Waits until the handshake is complete (no 0-RTT replay possible from here on). False if the
/// connection died first.
async fn handshake_confirmed(peer: &Peer) -> bool {
    let mut c = peer.confirmed.clone();
    let waited = c.wait_for(|done| *done).await.map(|_| ());
    waited.is_ok()
}

/// Admits a batch, or answers with a request-level error.
async fn on_batch(peer: &Peer, shared: &Shared, first_seq: Seq, fixes: &[Fix]) -> Pending {
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
    let now = shared.now_ms();
    match admit(
        &shared.cfg,
        &shared.ledger,
        &peer.driver,
        &peer.claims.depot,
        first_seq,
        fixes,
        now,
        permit,
    ) {
        Ok(a) => Pending::Batch(Box::new(a)),
        Err(code) => {
            if code == ErrorCode::RateLimited {
                shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            error(code)
        }
    }
}

fn error(code: ErrorCode) -> Pending {
    Pending::Ready(Box::new(ServerMsg::Error(ErrorFrame {
        code,
        message: code.to_string(),
    })))
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
            Pending::Command(c) => {
                Box::pin(crate::server::commands::handle(&peer.claims, &shared, *c)).await
            }
            Pending::Batch(a) => match settle(*a, &peer, &shared).await {
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

/// Waits for an admitted batch to be durable and folded into the fleet state (so a query after
/// the ack sees it), and returns its ack, whose watermark comes from the durable ledger: a
/// phone never learns a seq is settled before it is on disk. A refused batch's seqs were
/// already unsettled by the log writer (see `RefusedHook`).
async fn settle(a: Admitted, peer: &Peer, shared: &Shared) -> Result<Ack, ErrorCode> {
    let mut a = a;
    // On a single box the applier answers `done` once the record is applied, so the wait for
    // `applied` below returns at once; in a cluster `done` means "in the stream" and the
    // applier follows the stream, so it may have to wait.
    match a.done.wait().await {
        // A barrier returns the next record number: wait for everything before it.
        Ok(0) if a.barrier => {}
        Ok(next) if a.barrier => shared.applied.applied(next - 1).await,
        Ok(lsn) => shared.applied.applied(lsn).await,
        Err(LogError::DiskFull) => return Err(ErrorCode::DiskFull),
        Err(_) => return Err(ErrorCode::StorageFailure),
    }
    a.ack.watermark = shared.state.ledger.watermark(&peer.driver);
    shared.stats.ack_latency.observe(a.admitted_at.elapsed());
    let s = &shared.stats;
    s.fixes_accepted
        .fetch_add(a.accepted as u64, Ordering::Relaxed);
    s.fixes_rejected
        .fetch_add(a.ack.rejected.len() as u64, Ordering::Relaxed);
    for r in &a.ack.rejected {
        s.rejected_by_reason[r.reason as usize].fetch_add(1, Ordering::Relaxed);
    }
    s.fixes_duplicate
        .fetch_add(a.ack.duplicates as u64, Ordering::Relaxed);
    Ok(a.ack)
}

/// A live-fix datagram: admitted now, acked on the ack stream once durable.
fn on_datagram(
    bytes: &[u8],
    peer: &Arc<Peer>,
    shared: &Arc<Shared>,
    live: &mpsc::Sender<Box<Admitted>>,
) {
    let Ok(ClientDatagram::LiveFix { seq, fix }) = milepost_proto::decode::<ClientDatagram>(bytes)
    else {
        shared.stats.refusals.fetch_add(1, Ordering::Relaxed);
        close(&peer.conn, ErrorCode::ProtocolViolation);
        return;
    };
    if peer.claims.role != Role::Driver {
        return;
    }
    // A datagram never waits: with the writer's queue full it is dropped, before anything is
    // settled, as the network could have dropped it (the phone resends it in a batch).
    let Some(permit) = shared.log.try_reserve() else {
        return;
    };
    let now = shared.now_ms();
    let Ok(admitted) = admit(
        &shared.cfg,
        &shared.ledger,
        &peer.driver,
        &peer.claims.depot,
        seq,
        &[fix],
        now,
        permit,
    ) else {
        // Out of window: the phone will resend it in a batch and get the error there.
        return;
    };
    // The record is with the writer whatever happens next; a full ack queue only loses the
    // ack (the phone's resend is then acked as a duplicate, truthfully).
    let _ = live.try_send(Box::new(admitted));
}

/// Answers a dispatcher's query, scoped to its depot.
fn on_query(peer: &Peer, shared: &Shared, q: Query) -> ServerMsg {
    if peer.claims.role != Role::Dispatcher {
        return ServerMsg::Error(ErrorFrame {
            code: ErrorCode::WrongRole,
            message: "queries need a dispatcher token".into(),
        });
    }
    let depot = &peer.claims.depot;
    let limit = shared.cfg.limits.max_query_results as usize;
    let deg = |e7: i32| e7 as f64 * 1e-7;
    let bad = |what: &str| {
        ServerMsg::Error(ErrorFrame {
            code: ErrorCode::BadQuery,
            message: what.into(),
        })
    };
    // Ranges, not `abs()`: `i32::MIN.abs()` overflows.
    let valid = |lat: i32, lon: i32| {
        (-900_000_000..=900_000_000).contains(&lat)
            && (-1_800_000_000..=1_800_000_000).contains(&lon)
    };
    let pos = crate::state::lock(&shared.state.positions);
    let answer = match q.kind {
        QueryKind::Within {
            min_lat_e7,
            min_lon_e7,
            max_lat_e7,
            max_lon_e7,
        } => {
            if !valid(min_lat_e7, min_lon_e7)
                || !valid(max_lat_e7, max_lon_e7)
                || min_lat_e7 > max_lat_e7
                || min_lon_e7 > max_lon_e7
            {
                return bad("box corners out of range or inverted");
            }
            pos.within(
                depot,
                (deg(min_lat_e7), deg(min_lon_e7)),
                (deg(max_lat_e7), deg(max_lon_e7)),
                limit,
            )
        }
        QueryKind::Nearby {
            lat_e7,
            lon_e7,
            radius_m,
        } => {
            let radius_ok = radius_m > 0.0 && radius_m <= 1.0e6; // false for NaN
            if !valid(lat_e7, lon_e7) || !radius_ok {
                return bad("centre out of range or radius not in (0, 1000 km]");
            }
            pos.nearby(depot, deg(lat_e7), deg(lon_e7), radius_m as f64, limit)
        }
        QueryKind::Nearest { lat_e7, lon_e7, k } => {
            if !valid(lat_e7, lon_e7) || k == 0 {
                return bad("centre out of range or k = 0");
            }
            pos.nearest(depot, deg(lat_e7), deg(lon_e7), (k as usize).min(limit))
        }
    };
    ServerMsg::QueryResult(QueryResult {
        id: q.id,
        drivers: answer.drivers,
        truncated: answer.truncated,
    })
}
