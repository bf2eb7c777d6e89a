//! Live updates as server-sent events, read from the feed store by cursor exactly like a QUIC
//! feed subscription (`crate::server::feed`): the stream registers a mailbox with the feed hub,
//! sends what is after its cursor, then sleeps until the applier wakes it.
//!
//! An event's `id` is its feed offset. A browser that lost the connection reconnects by itself
//! with `Last-Event-ID: <offset>` and gets exactly the events after it, so no milestone is
//! missed; the page's first connection names its starting offset with `?after=N` (the offset
//! its server-rendered state covers). Events without an id (status, positions, route
//! summaries) are state, re-sent in full on every (re)connection.
//!
//! Each stream is one task writing into a small bounded channel: a slow browser only fills its
//! own channel and TCP window, its task waits, and positions are coalesced to the newest while
//! it waits. The task ends when the browser leaves, when the token expires or is revoked, or
//! when the gateway shuts down.
//!
//! The same streams go over a WebSocket for the pages (`crate::web::ws`): a request that is a
//! handshake gets one.
//!
//! This file is the machinery every stream shares: the stream slot, the starting cursor, the
//! answer's headers, and `run`, the one loop (check the token, read after the cursor, send,
//! send the audience's state, wait). What differs between audiences is an [`Audience`]: the
//! recipient's parcel stream is in `recipient`, the dispatcher's depot stream in `dispatch`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderName};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use milepost_core::feed::{FeedKey, TooOld};
use milepost_proto::route::Update;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::auth::Claims;
use crate::feed::{FeedClass, LagTarget, Mailbox};
use crate::server::shared::Shared;
use crate::web::auth::still_valid;
use crate::web::error::WebError;
use crate::web::respond::{with_headers, NO_STORE};
use crate::web::state::WebState;

pub use crate::web::event::Ev;

/// Events read from the store per batch (bounds the work between two sends).
const READ_BATCH: usize = 256;
/// Events buffered per stream before its task waits for the browser.
const CHANNEL: usize = 32;
/// Longest sleep without looking: the privacy rule depends on time, tokens expire.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// What a browser waits before reconnecting, ms.
const RETRY_MS: u64 = 1_000;
/// Tells buffering reverse proxies (nginx) to pass events through at once.
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// A stream of events fed by a producer task through a bounded channel, as SSE: a `retry`
/// first, then the producer's events.
pub struct EventStream {
    rx: mpsc::Receiver<Ev>,
    hello: bool,
    _guard: StreamGuard,
}

impl futures_core::Stream for EventStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.hello {
            self.hello = true;
            let e = Event::default()
                .retry(Duration::from_millis(RETRY_MS))
                .comment("milepost");
            return Poll::Ready(Some(Ok(e)));
        }
        self.rx.poll_recv(cx).map(|e| e.map(|e| Ok(e.sse())))
    }
}

/// Counts a stream as open until dropped.
struct StreamGuard(Arc<WebState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reserves a stream slot, or refuses when `web.max_streams` are open.
fn reserve(st: &Arc<WebState>) -> Result<StreamGuard, WebError> {
    let n = st.streams.fetch_add(1, Ordering::Relaxed);
    let guard = StreamGuard(st.clone());
    if n >= st.cfg().max_streams {
        return Err(WebError::Busy(
            "too many live connections; retry later".into(),
        ));
    }
    Ok(guard)
}

/// The query of an event stream: the offset the page's state covers.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// Send events after this offset (overridden by `Last-Event-ID` on reconnection).
    pub after: Option<u64>,
}

/// The cursor a stream starts from: `Last-Event-ID` (a reconnection) wins over `?after=`.
pub fn start_cursor(
    headers: &HeaderMap,
    q: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Option<u64>, WebError> {
    if let Some(v) = headers.get("last-event-id") {
        let s = v
            .to_str()
            .map_err(|_| WebError::BadRequest("bad Last-Event-ID".into()))?
            .trim();
        if !s.is_empty() {
            return s
                .parse()
                .map(Some)
                .map_err(|_| WebError::BadRequest("Last-Event-ID must be a feed offset".into()));
        }
    }
    let Query(q) = q.map_err(|e| WebError::BadRequest(e.body_text()))?;
    Ok(q.after)
}

fn respond(rx: mpsc::Receiver<Ev>, guard: StreamGuard) -> Response {
    let sse = Sse::new(EventStream {
        rx,
        hello: false,
        _guard: guard,
    })
    .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    with_headers(sse, &[NO_STORE, (X_ACCEL_BUFFERING, "no")])
}

/// An event's data: `v` as JSON.
pub fn data<T: Serialize>(v: &T) -> String {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Why a producer stopped.
pub enum End {
    /// The browser left (its channel closed).
    Gone,
}

/// Sends one event; `Err` when the browser has gone.
pub async fn send(tx: &mpsc::Sender<Ev>, e: Ev) -> Result<(), End> {
    tx.send(e).await.map_err(|_| End::Gone)
}

/// Tells the page its token expired or was revoked; the stream then ends.
async fn end_for_auth(tx: &mpsc::Sender<Ev>) -> Result<(), End> {
    let e = Ev::new("auth", "{\"error\":\"token expired or revoked\"}");
    send(tx, e).await
}

/// Waits for a wake-up, the timeout, the browser leaving or shutdown. Returns false when the
/// stream should end.
async fn wait(st: &WebState, tx: &mpsc::Sender<Ev>, mailbox: &Mailbox, timeout: Duration) -> bool {
    let mut stop = st.stop.clone();
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::timeout(timeout, mailbox.notify.notified()) => true,
        _ = tx.closed() => false,
        _ = stop.changed() => false,
    }
}

/// An event's name and data (`event:` and `data:`).
pub type Named = (&'static str, String);

/// What a stream does once its state is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Sleep until woken (or a second has passed).
    Wait,
    /// Look again at once (more may have changed while the state was sent).
    Again,
}

/// What one audience's stream follows and sends; `run` (below) is the loop around it.
pub trait Audience: Send + 'static {
    /// The hub keys whose changes wake the stream.
    fn keys(&self) -> Vec<FeedKey>;
    /// What the lag tracker calls this stream.
    fn lag_target(&self) -> LagTarget;
    /// The newest offset of the followed feed.
    fn last(&self, shared: &Shared) -> u64;
    /// Up to `max` events after `cursor`, or `TooOld` when the feed no longer holds them.
    fn read(&self, shared: &Shared, cursor: u64, max: usize) -> Result<Vec<(u64, Update)>, TooOld>;
    /// Where to go on when the browser's cursor is unknown (absent, past `last`, or too old),
    /// and the event that tells the page so, if any.
    fn start_over(&mut self, last: u64) -> (u64, Option<Ev>);
    /// What to send once the cursor is set, at every (re)connection (nothing by default).
    fn first(&mut self, _shared: &Shared, _mailbox: &Mailbox) -> Option<Ev> {
        None
    }
    /// The name and data of the event for the update at `offset`, if the page wants it (its id
    /// is the offset).
    fn event(&mut self, shared: &Shared, offset: u64, u: &Update) -> Option<Named>;
    /// Sends the state that changed (after every read that reached the end of the feed).
    fn state(
        &mut self,
        shared: &Shared,
        tx: &mpsc::Sender<Ev>,
        mailbox: &Arc<Mailbox>,
    ) -> impl Future<Output = Result<Next, End>> + Send;
}

/// A request's WebSocket handshake, if it is one (else the stream is server-sent events).
pub type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

/// Opens a live stream for `audience`, starting after `after`: reserves a stream slot and
/// spawns the producer task; the events go out over the WebSocket of `up` when the request
/// is a handshake (from this listener's own pages), else as server-sent events.
pub fn open<A: Audience>(
    st: Arc<WebState>,
    claims: Claims,
    token: String,
    after: Option<u64>,
    audience: A,
    up: Upgrade,
    headers: &HeaderMap,
) -> Result<Response, WebError> {
    if up.is_ok() {
        crate::web::ws::check_origin(headers, st.cfg().public_url.as_deref())?;
    }
    let guard = reserve(&st)?;
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        let _ = run(st, claims, token, after, audience, tx).await;
    });
    Ok(match up {
        Ok(up) => crate::web::ws::respond(up, rx, guard),
        Err(_) => respond(rx, guard),
    })
}

/// The producer loop of every stream: check the token, send what is after the cursor, send
/// the audience's state, wait for a wake-up.
async fn run<A: Audience>(
    st: Arc<WebState>,
    claims: Claims,
    token: String,
    after: Option<u64>,
    mut aud: A,
    tx: mpsc::Sender<Ev>,
) -> Result<(), End> {
    let shared = &st.shared;
    let mailbox = Arc::new(Mailbox::default());
    for key in aud.keys() {
        shared.hub.register(key, &mailbox);
    }
    let last = aud.last(shared);
    // A cursor past the end (the browser saw a store that has since been reset) starts over.
    let mut cursor = match after.filter(|a| *a <= last) {
        Some(a) => a,
        None => start_over(&mut aud, &tx, last).await?,
    };
    let lag = shared.lag.track(FeedClass::Sse, aud.lag_target(), cursor);
    if let Some(e) = aud.first(shared, &mailbox) {
        send(&tx, e).await?;
    }
    loop {
        if !still_valid(shared, &claims, &token) {
            return end_for_auth(&tx).await;
        }
        // Its depot's partition passed to another gateway: the stream ends, and the browser's
        // reconnection is told which gateway holds it (421).
        if shared.serves(&claims.depot).is_err() {
            return Ok(());
        }
        match aud.read(shared, cursor, READ_BATCH) {
            Ok(events) => {
                let full = events.len() == READ_BATCH;
                for (offset, u) in events {
                    if let Some((name, data)) = aud.event(shared, offset, &u) {
                        send(&tx, Ev::new(name, data).id(offset)).await?;
                    }
                    cursor = offset;
                    lag.set(cursor);
                }
                if full {
                    continue;
                }
            }
            Err(TooOld(_)) => {
                // Away longer than the feed keeps: start over from its end.
                let last = aud.last(shared);
                cursor = start_over(&mut aud, &tx, last).await?;
                lag.set(cursor);
            }
        }
        if aud.state(shared, &tx, &mailbox).await? == Next::Again {
            continue;
        }
        if !wait(&st, &tx, &mailbox, IDLE_WAKE).await {
            return Ok(());
        }
    }
}

/// The audience's new cursor, after sending the event that tells the page, if any.
async fn start_over<A: Audience>(
    aud: &mut A,
    tx: &mpsc::Sender<Ev>,
    last: u64,
) -> Result<u64, End> {
    let (cursor, e) = aud.start_over(last);
    if let Some(e) = e {
        send(tx, e).await?;
    }
    Ok(cursor)
}
