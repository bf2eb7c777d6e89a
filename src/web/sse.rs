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

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use milepost_proto::route::{DepotId, RouteId, TrackingNumber, Update};
use milepost_proto::{DriverId, Seq};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::auth::Claims;
use crate::feed::{FeedClass, LagTarget, Mailbox};
use crate::state::lock;
use crate::web::api::{self, DispatchItem, DriverDot, MilestoneView};
use crate::web::{
    authorize_dispatcher, authorize_parcel, still_valid, valid_tracking, WebError, WebState,
};
use milepost_core::feed::{FeedKey, TooOld};

/// Events read from the store per batch (bounds the work between two sends).
const READ_BATCH: usize = 256;
/// Events buffered per stream before its task waits for the browser.
const CHANNEL: usize = 32;
/// Longest sleep without looking: the privacy rule depends on time, tokens expire.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// How often a dispatcher stream re-reads the depot's routes to catch changes that emit no
/// route event (a delivery, an ETA moving).
const ROUTE_REFRESH: Duration = Duration::from_secs(3);
/// What a browser waits before reconnecting, ms.
const RETRY_MS: u64 = 1_000;

/// A stream of events fed by a producer task through a bounded channel.
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
    _guard: StreamGuard,
}

impl futures_core::Stream for EventStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|e| e.map(Ok))
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
fn start_cursor(
    headers: &HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
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

fn respond(rx: mpsc::Receiver<Event>, guard: StreamGuard) -> Response {
    let mut r = Sse::new(EventStream { rx, _guard: guard })
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tell buffering reverse proxies (nginx) to pass events through at once.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

fn data<T: Serialize>(v: &T) -> String {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Why a producer stopped.
enum End {
    /// The browser left (its channel closed).
    Gone,
}

/// Sends one event; `Err` when the browser has gone.
async fn send(tx: &mpsc::Sender<Event>, e: Event) -> Result<(), End> {
    tx.send(e).await.map_err(|_| End::Gone)
}

/// Tells the page its token expired or was revoked; the stream then ends.
async fn end_for_auth(tx: &mpsc::Sender<Event>) -> Result<(), End> {
    let e = Event::default()
        .event("auth")
        .data("{\"error\":\"token expired or revoked\"}");
    send(tx, e).await
}

/// Waits for a wake-up, the timeout, the browser leaving or shutdown. Returns false when the
/// stream should end.
async fn wait(
    st: &WebState,
    tx: &mpsc::Sender<Event>,
    mailbox: &Mailbox,
    timeout: Duration,
) -> bool {
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

/// `GET /t/{tracking}/events`: a parcel's milestones, status and (when the privacy rule allows)
/// the driver's position.
pub async fn parcel_events(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    if !valid_tracking(&tracking) {
        return Err(WebError::NotFound("no such parcel".into()));
    }
    let (claims, token) = authorize_parcel(&st.shared, &headers, &tracking)?;
    let t = TrackingNumber(tracking);
    let after = start_cursor(&headers, q)?;
    if lock(&st.shared.state.core).parcel_status(&t).is_none() {
        return Err(WebError::NotFound(format!("no parcel {t}")));
    }
    let guard = reserve(&st)?;
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        let _ = parcel_producer(st, claims, token, t, after, tx).await;
    });
    Ok(respond(rx, guard))
}

/// What a parcel stream last told the browser about the driver's position.
#[derive(PartialEq)]
enum Shown {
    Nothing,
    Hidden,
    At(Seq),
}

async fn parcel_producer(
    st: Arc<WebState>,
    claims: Claims,
    token: String,
    t: TrackingNumber,
    after: Option<u64>,
    tx: mpsc::Sender<Event>,
) -> Result<(), End> {
    let shared = &st.shared;
    let mailbox = Arc::new(Mailbox::default());
    shared.hub.register(FeedKey::Parcel(t.clone()), &mailbox);
    let mut driver_key: Option<DriverId> = None;
    let mut shown = Shown::Nothing;
    let last = lock(&shared.state.feed).parcel_last(&t);
    // A cursor past the end (the browser saw a store that has since been reset) starts over.
    let mut cursor = after.filter(|a| *a <= last).unwrap_or(0);
    let lag = shared
        .lag
        .track(FeedClass::Sse, LagTarget::Parcel(t.clone()), cursor);
    send(
        &tx,
        Event::default()
            .retry(Duration::from_millis(RETRY_MS))
            .comment("milepost"),
    )
    .await?;
    let mut status_due = true;
    loop {
        if !still_valid(shared, &claims, &token) {
            return end_for_auth(&tx).await;
        }
        let events = lock(&shared.state.feed).parcel_after(&t, cursor, READ_BATCH);
        let full = events.len() == READ_BATCH;
        for (offset, u) in events {
            if let Update::Parcel(p) = u {
                let m = MilestoneView::of(offset, &p);
                send(
                    &tx,
                    Event::default()
                        .id(offset.to_string())
                        .event("milestone")
                        .data(data(&m)),
                )
                .await?;
                status_due = true;
            }
            cursor = offset;
            lag.set(cursor);
        }
        if full {
            continue;
        }
        let status = lock(&shared.state.core).parcel_status(&t);
        if status_due {
            if let Some(s) = &status {
                let v = api::status_view(shared, s);
                send(&tx, Event::default().event("status").data(data(&v))).await?;
            }
            status_due = false;
        }
        // The driver's position, under the same privacy rule as the QUIC feed.
        let visible = status
            .as_ref()
            .and_then(|s| api::visible_position(shared, s));
        match visible {
            Some((driver, pos)) => {
                if driver_key.as_ref() != Some(&driver) {
                    shared
                        .hub
                        .register(FeedKey::Driver(driver.clone()), &mailbox);
                    driver_key = Some(driver.clone());
                }
                let seq = lock(&shared.state.positions).get(&driver).map(|(s, _)| s);
                let now = seq.map_or(Shown::Hidden, Shown::At);
                if now != shown {
                    send(&tx, Event::default().event("position").data(data(&pos))).await?;
                    shown = now;
                }
            }
            None if shown != Shown::Hidden => {
                send(&tx, Event::default().event("position").data("null")).await?;
                shown = Shown::Hidden;
            }
            None => {}
        }
        if !wait(&st, &tx, &mailbox, IDLE_WAKE).await {
            return Ok(());
        }
    }
}

/// `GET /dispatch/events`: a depot's route events, route summaries and coalesced positions.
pub async fn depot_events(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let (claims, token) = authorize_dispatcher(&st.shared, &headers)?;
    let after = start_cursor(&headers, q)?;
    let guard = reserve(&st)?;
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        let _ = depot_producer(st, claims, token, after, tx).await;
    });
    Ok(respond(rx, guard))
}

/// A stable digest of a route summary, to send only the ones that changed.
fn digest(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

async fn depot_producer(
    st: Arc<WebState>,
    claims: Claims,
    token: String,
    after: Option<u64>,
    tx: mpsc::Sender<Event>,
) -> Result<(), End> {
    let shared = &st.shared;
    let depot = DepotId(claims.depot.clone());
    let mailbox = Arc::new(Mailbox::default());
    shared.hub.register(FeedKey::Depot(depot.clone()), &mailbox);
    shared
        .hub
        .register(FeedKey::DepotPositions(depot.clone()), &mailbox);
    let flush = Duration::from_millis(shared.cfg.feed.position_flush_ms.max(50));
    send(
        &tx,
        Event::default()
            .retry(Duration::from_millis(RETRY_MS))
            .comment("milepost"),
    )
    .await?;

    let last = lock(&shared.state.feed).depot_last(&depot);
    let mut cursor = match after {
        Some(a) if a <= last => a,
        // No cursor, or one from a store that has since been reset: start from now and tell
        // the page to reload its state.
        _ => {
            send(
                &tx,
                Event::default()
                    .id(last.to_string())
                    .event("resync")
                    .data("{}"),
            )
            .await?;
            last
        }
    };
    let lag = shared
        .lag
        .track(FeedClass::Sse, LagTarget::Depot(depot.clone()), cursor);
    // Every driver and route once at (re)connection: they are state, not events.
    lock(&mailbox.moved).clear();
    let all = lock(&shared.state.positions).of_depot(&depot.0);
    let dots: Vec<DriverDot> = all
        .iter()
        .map(|p| DriverDot::of(shared, p, false))
        .collect();
    send(&tx, Event::default().event("positions").data(data(&dots))).await?;
    let mut sent_routes: HashMap<String, u64> = HashMap::new();
    let mut last_refresh = Instant::now() - ROUTE_REFRESH;
    let mut last_flush = Instant::now();
    loop {
        if !still_valid(shared, &claims, &token) {
            return end_for_auth(&tx).await;
        }
        // Route events, in order.
        let mut touched: HashSet<RouteId> = HashSet::new();
        loop {
            let read = lock(&shared.state.feed).depot_after(&depot, cursor, READ_BATCH);
            match read {
                Ok(events) => {
                    let full = events.len() == READ_BATCH;
                    for (offset, u) in events {
                        if let Update::Dispatch(d) = &u {
                            let item = DispatchItem::of(shared, offset, d);
                            send(
                                &tx,
                                Event::default()
                                    .id(offset.to_string())
                                    .event("dispatch")
                                    .data(data(&item)),
                            )
                            .await?;
                            touched.insert(d.route_id.clone());
                        }
                        cursor = offset;
                        lag.set(cursor);
                    }
                    if !full {
                        break;
                    }
                }
                Err(TooOld(_)) => {
                    // Away longer than the depot's ring: the page reloads its state.
                    let last = lock(&shared.state.feed).depot_last(&depot);
                    send(
                        &tx,
                        Event::default()
                            .id(last.to_string())
                            .event("resync")
                            .data("{}"),
                    )
                    .await?;
                    cursor = last;
                    lag.set(cursor);
                    sent_routes.clear();
                    break;
                }
            }
        }
        // Route summaries: the ones events touched now, all of them now and then.
        let refresh_all = last_refresh.elapsed() >= ROUTE_REFRESH;
        if refresh_all || !touched.is_empty() {
            let routes = if refresh_all {
                last_refresh = Instant::now();
                api::depot_routes(shared, &depot)
            } else {
                touched
                    .iter()
                    .filter_map(|r| api::depot_route(shared, &depot, r).ok())
                    .collect()
            };
            for r in routes {
                let json = data(&r);
                let h = digest(&json);
                if sent_routes.get(&r.route_id) != Some(&h) {
                    sent_routes.insert(r.route_id.clone(), h);
                    send(&tx, Event::default().event("route").data(json)).await?;
                }
            }
        }
        // Positions, coalesced: a few flushes a second at most, newest position per driver.
        let pending = !lock(&mailbox.moved).is_empty();
        if pending {
            let since = last_flush.elapsed();
            if since < flush {
                tokio::time::sleep(flush - since).await;
            }
            last_flush = Instant::now();
            let moved: Vec<DriverId> = lock(&mailbox.moved).drain().collect();
            let dots: Vec<DriverDot> = {
                let pos = lock(&shared.state.positions);
                moved
                    .iter()
                    .filter_map(|d| pos.position_of(d))
                    .map(|(_, p)| DriverDot::of(shared, &p, false))
                    .collect()
            };
            if !dots.is_empty() {
                send(&tx, Event::default().event("positions").data(data(&dots))).await?;
            }
            // More may have moved while we slept: look again before sleeping.
            continue;
        }
        if !wait(&st, &tx, &mailbox, IDLE_WAKE).await {
            return Ok(());
        }
    }
}
