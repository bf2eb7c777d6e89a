//! JSON views and commands for the pages. Views are read from the same state the QUIC path
//! reads (the fleet core, the feed store, the live positions), each under its own short lock,
//! and every answer is bounded (a parcel's newest milestones, a depot's newest alerts).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use milepost_proto::route::{
    DepotId, DispatchEvent, DispatchUpdate, ParcelEvent, ParcelState, ParcelStatus, ParcelUpdate,
    Point, ProofSummary, RouteId, TimeWindow, TrackingNumber, Update,
};
use milepost_proto::{Command, CommandKind, DriverId, DriverPosition, ServerMsg};
use serde::{Deserialize, Serialize};

use crate::server::Shared;
use crate::state::lock;
use crate::web::{
    authorize_dispatcher, authorize_parcel, no_store, valid_tracking, WebError, WebState,
};
use milepost_core::fleet::engine::FleetCore;
use milepost_core::fleet::progress::StopPhase;
use milepost_core::fleet::run::RouteRun;
use milepost_core::fleet::view::RouteView;
use milepost_core::present::{event_text, reason_text, status_line};

/// Milestones shown in a parcel's timeline (the newest ones).
const TIMELINE_MAX: usize = 40;
/// Milestones scanned for the timeline (ETA updates are skipped, so scan more than shown).
const TIMELINE_SCAN: u64 = 400;
/// Route events scanned for a dispatcher's alert list.
const ALERTS_SCAN: u64 = 500;
/// Alerts listed.
const ALERTS_MAX: usize = 100;

/// Formats a UTC ms timestamp as `HH:MM` (UTC), like the status line.
pub fn hhmm(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// A position as the pages get it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PositionView {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Time of the fix, UTC ms.
    pub t_ms: i64,
    /// Accuracy radius, metres.
    pub accuracy_m: f32,
    /// Course, degrees, if measured.
    pub heading_deg: Option<f32>,
}

impl PositionView {
    /// The view of a live position.
    pub fn of(p: &DriverPosition) -> PositionView {
        PositionView {
            lat: p.fix.lat(),
            lon: p.fix.lon(),
            t_ms: p.fix.t_ms,
            accuracy_m: p.fix.accuracy_m,
            heading_deg: p.fix.heading_deg,
        }
    }
}

/// One entry of a parcel's timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MilestoneView {
    /// Its feed offset (the SSE event id).
    pub offset: u64,
    /// The event's kind, e.g. `StopsAway` (for icons and styling).
    pub kind: &'static str,
    /// In words.
    pub text: String,
    /// When, UTC ms.
    pub at_ms: i64,
    /// When, `HH:MM` UTC.
    pub time: String,
    /// Shown in the timeline (ETA updates only refresh the status).
    pub milestone: bool,
}

impl MilestoneView {
    /// The view of milestone `offset`.
    pub fn of(offset: u64, p: &ParcelUpdate) -> MilestoneView {
        let at_ms = match &p.kind {
            ParcelEvent::Delivered { at_ms, .. } => *at_ms,
            _ => p.fix_t_ms,
        };
        let text = match &p.kind {
            // Said the way the status line says it ("1 stop away", "Next stop").
            ParcelEvent::StopsAway { n: 0 } => "Next stop".to_owned(),
            ParcelEvent::StopsAway { n: 1 } => "1 stop away".to_owned(),
            // The time is shown beside it.
            ParcelEvent::Delivered { .. } => "Delivered".to_owned(),
            other => event_text(other).trim().to_owned(),
        };
        MilestoneView {
            offset,
            kind: parcel_kind(&p.kind),
            text,
            at_ms,
            time: hhmm(at_ms),
            milestone: !matches!(p.kind, ParcelEvent::EtaChanged { .. }),
        }
    }
}

fn parcel_kind(e: &ParcelEvent) -> &'static str {
    match e {
        ParcelEvent::OutForDelivery => "OutForDelivery",
        ParcelEvent::StopsAway { .. } => "StopsAway",
        ParcelEvent::EtaChanged { .. } => "EtaChanged",
        ParcelEvent::ArrivingSoon => "ArrivingSoon",
        ParcelEvent::Arrived => "Arrived",
        ParcelEvent::Delivered { .. } => "Delivered",
        ParcelEvent::Failed { .. } => "Failed",
        ParcelEvent::Delayed { .. } => "Delayed",
    }
}

/// What a recipient is told about the driver (from `web.drivers`; nothing when not configured).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriverCard {
    /// First name.
    pub first_name: String,
    /// Vehicle.
    pub vehicle: Option<String>,
}

/// The parcel's current state, without the timeline (sent on every change).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusView {
    /// The parcel.
    pub tracking: String,
    /// Where it is.
    pub state: ParcelState,
    /// The one-line status, e.g. `3 stops away - arriving 14:05-14:15`.
    pub status_line: String,
    /// Stops before this one.
    pub stops_away: Option<u32>,
    /// Best estimate, UTC ms.
    pub eta_ms: Option<i64>,
    /// Earliest likely arrival, UTC ms.
    pub earliest_ms: Option<i64>,
    /// Latest likely arrival, UTC ms.
    pub latest_ms: Option<i64>,
    /// The promised window.
    pub window: Option<TimeWindow>,
    /// The promised window as `HH:MM-HH:MM` UTC.
    pub window_text: Option<String>,
    /// Proof of delivery, once delivered.
    pub proof: Option<ProofSummary>,
    /// Why the attempt failed, once failed.
    pub failure: Option<String>,
    /// The driver, when configured and the route has started.
    pub driver: Option<DriverCard>,
}

/// Everything the tracking page shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParcelView {
    /// The offset of the newest milestone: the page's event stream starts after it.
    pub offset: u64,
    /// The current state.
    pub status: StatusView,
    /// The newest milestones, oldest first.
    pub timeline: Vec<MilestoneView>,
    /// The delivery address (the recipient's own stop), for the map.
    pub destination: Option<Point>,
    /// The driver's position, only when the privacy rule allows it.
    pub position: Option<PositionView>,
    /// Instructions this recipient left, if any.
    pub instructions: Option<String>,
}

/// The route run a route id names (the core has no lookup by id that returns the plan).
fn run_of<'a>(core: &'a FleetCore, route: &RouteId) -> Option<&'a RouteRun> {
    core.snapshot()
        .routes
        .into_iter()
        .find(|r| &r.plan.id == route)
}

/// The current status of a parcel, in words.
pub fn status_view(shared: &Shared, s: &ParcelStatus) -> StatusView {
    let (proof, failure) = match s.last_event.as_ref().map(|u| &u.kind) {
        Some(ParcelEvent::Delivered { proof, .. }) if s.state == ParcelState::Delivered => {
            (Some(proof.clone()), None)
        }
        Some(ParcelEvent::Failed { reason, note }) if s.state == ParcelState::Failed => {
            let note = note.trim();
            let text = if note.is_empty() {
                reason_text(*reason).to_owned()
            } else {
                format!("{}: {note}", reason_text(*reason))
            };
            (None, Some(text))
        }
        _ => (None, None),
    };
    let driver = if s.state == ParcelState::Planned {
        None
    } else {
        lock(&shared.state.core)
            .route_view(&s.route_id)
            .and_then(|v| driver_card(shared, &v.driver))
    };
    StatusView {
        tracking: s.tracking.0.clone(),
        state: s.state,
        status_line: status_line(s),
        stops_away: s.stops_away,
        eta_ms: s.eta_ms,
        earliest_ms: s.earliest_ms,
        latest_ms: s.latest_ms,
        window: s.window,
        window_text: s
            .window
            .map(|w| format!("{}-{}", hhmm(w.start_ms), hhmm(w.end_ms))),
        proof,
        failure,
        driver,
    }
}

/// The configured presentation of a driver.
pub fn driver_card(shared: &Shared, d: &DriverId) -> Option<DriverCard> {
    shared.cfg.web.drivers.get(&d.0).map(|c| DriverCard {
        first_name: c.first_name.clone(),
        vehicle: c.vehicle.clone(),
    })
}

/// The position a recipient may see now (the shared privacy rule), if any.
pub fn visible_position(shared: &Shared, s: &ParcelStatus) -> Option<(DriverId, PositionView)> {
    let driver = crate::server::feed::visible_driver(shared, s)?;
    let p = lock(&shared.state.positions)
        .position_of(&driver)
        .map(|(_, p)| PositionView::of(&p))?;
    Some((driver, p))
}

/// The whole tracking-page view of parcel `t`, or `None` if it is unknown.
pub fn parcel_view(shared: &Shared, t: &TrackingNumber) -> Option<ParcelView> {
    // Offset first: a milestone racing with this read is then sent again by the event stream
    // rather than lost.
    let (offset, tail) = {
        let feed = lock(&shared.state.feed);
        let last = feed.parcel_last(t);
        let from = last.saturating_sub(TIMELINE_SCAN);
        (last, feed.parcel_after(t, from, TIMELINE_SCAN as usize))
    };
    let (status, destination, instructions) = {
        let core = lock(&shared.state.core);
        let status = core.parcel_status(t)?;
        let run = run_of(&core, &status.route_id);
        let destination = run
            .and_then(|r| r.plan.stops.iter().find(|s| s.id == status.stop))
            .map(|s| Point {
                lat: s.lat,
                lon: s.lon,
            });
        let instructions = run
            .and_then(|r| r.parcel(t))
            .and_then(|p| p.instructions.clone());
        (status, destination, instructions)
    };
    let mut timeline: Vec<MilestoneView> = tail
        .iter()
        .filter_map(|(o, u)| match u {
            Update::Parcel(p) => Some(MilestoneView::of(*o, p)),
            _ => None,
        })
        .filter(|m| m.milestone)
        .collect();
    if timeline.len() > TIMELINE_MAX {
        timeline.drain(..timeline.len() - TIMELINE_MAX);
    }
    let position = visible_position(shared, &status).map(|(_, p)| p);
    Some(ParcelView {
        offset,
        status: status_view(shared, &status),
        timeline,
        destination,
        position,
        instructions,
    })
}

/// `GET /t/{tracking}/status`: the parcel view.
pub async fn parcel_status(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if !valid_tracking(&tracking) {
        return Err(WebError::NotFound("no such parcel".into()));
    }
    authorize_parcel(&st.shared, &headers, &tracking)?;
    let view = parcel_view(&st.shared, &TrackingNumber(tracking.clone()))
        .ok_or_else(|| WebError::NotFound(format!("no parcel {tracking}")))?;
    Ok(json(view))
}

/// A JSON answer that must not be cached.
pub fn json<T: Serialize>(v: T) -> Response {
    let mut r = Json(v).into_response();
    no_store(r.headers_mut());
    r
}

/// The body of `POST /t/{tracking}/instructions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionsBody {
    /// The text for the driver (at most 1,000 bytes; empty clears).
    pub text: String,
}

/// `POST /t/{tracking}/instructions`: leaves instructions for the driver. Logged and applied
/// through the same command path as over QUIC; answered once applied.
pub async fn instructions(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
    body: Result<Json<InstructionsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, WebError> {
    if !valid_tracking(&tracking) {
        return Err(WebError::NotFound("no such parcel".into()));
    }
    let (claims, _) = authorize_parcel(&st.shared, &headers, &tracking)?;
    // Authorization before the body: an outsider learns nothing from the body's errors.
    let Json(body) = body.map_err(|e| WebError::BadRequest(e.body_text()))?;
    // Control characters (other than line breaks) have no place in a note for a driver.
    let text: String = body
        .text
        .trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    let cmd = Command {
        id: 0,
        kind: CommandKind::SetInstructions {
            tracking: TrackingNumber(tracking),
            text: text.clone(),
        },
    };
    match crate::server::commands::handle(&claims, &st.shared, cmd).await {
        ServerMsg::Done { .. } => Ok(json(serde_json::json!({ "instructions": text }))),
        ServerMsg::Error(e) => Err(WebError::from_code(e.code, e.message)),
        other => Err(WebError::Internal(format!("unexpected answer {other:?}"))),
    }
}

/// One route event as a dispatcher sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DispatchItem {
    /// Its feed offset (the SSE event id).
    pub offset: u64,
    /// The route.
    pub route_id: String,
    /// The driver.
    pub driver: String,
    /// The driver's display name (first name, else the id).
    pub driver_name: String,
    /// When, UTC ms.
    pub at_ms: i64,
    /// When, `HH:MM` UTC.
    pub time: String,
    /// The event's kind, e.g. `RunningLate`.
    pub kind: &'static str,
    /// In words.
    pub text: String,
    /// Worth a dispatcher's attention (stalled, late, failed attempt, off route).
    pub alert: bool,
}

/// A route event in words.
pub fn dispatch_text(e: &DispatchEvent) -> (&'static str, String, bool) {
    match e {
        DispatchEvent::RouteStarted => ("RouteStarted", "Route started".into(), false),
        DispatchEvent::RouteFinished { delivered, failed } => (
            "RouteFinished",
            format!("Route finished: {delivered} delivered, {failed} not delivered"),
            false,
        ),
        DispatchEvent::DriverStalled { idle_s, no_fix } => {
            let why = if *no_fix { "no GPS fix" } else { "not moving" };
            (
                "DriverStalled",
                format!("Stalled: {why} for {} min", idle_s / 60),
                true,
            )
        }
        DispatchEvent::RunningLate { stop, minutes } => (
            "RunningLate",
            format!("Running {minutes} min late for {stop}"),
            true,
        ),
        DispatchEvent::AttemptFailed { stop, reason } => (
            "AttemptFailed",
            format!("Failed attempt at {stop}: {}", reason_text(*reason)),
            true,
        ),
        DispatchEvent::OffRoute { distance_m } => (
            "OffRoute",
            format!("Off route by {} m", distance_m.round() as i64),
            true,
        ),
        DispatchEvent::BackOnRoute => ("BackOnRoute", "Back on route".into(), false),
        DispatchEvent::StopArrived { stop, .. } => {
            ("StopArrived", format!("Arrived at {stop}"), false)
        }
        DispatchEvent::StopDeparted { stop, dwell_s } => (
            "StopDeparted",
            format!("Left {stop} after {} min", dwell_s / 60),
            false,
        ),
        DispatchEvent::StopPassed { stop } => (
            "StopPassed",
            format!("Passed {stop} without stopping"),
            true,
        ),
        DispatchEvent::DriverMoving => ("DriverMoving", "Moving again".into(), false),
    }
}

impl DispatchItem {
    /// The view of route event `offset`.
    pub fn of(shared: &Shared, offset: u64, d: &DispatchUpdate) -> DispatchItem {
        let (kind, text, alert) = dispatch_text(&d.kind);
        DispatchItem {
            offset,
            route_id: d.route_id.0.clone(),
            driver: d.driver.0.clone(),
            driver_name: driver_name(shared, &d.driver),
            at_ms: d.fix_t_ms,
            time: hhmm(d.fix_t_ms),
            kind,
            text,
            alert,
        }
    }
}

/// A driver's display name for dispatchers: the configured first name, else the id.
pub fn driver_name(shared: &Shared, d: &DriverId) -> String {
    shared
        .cfg
        .web
        .drivers
        .get(&d.0)
        .map(|c| c.first_name.clone())
        .unwrap_or_else(|| d.0.clone())
}

/// A driver on the dispatcher map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriverDot {
    /// Driver id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Vehicle, if configured.
    pub vehicle: Option<String>,
    /// The live position.
    pub position: PositionView,
    /// Ground speed, m/s.
    pub speed_mps: Option<f32>,
    /// Distance from a query point, metres (nearby answers only).
    pub distance_m: Option<f32>,
}

impl DriverDot {
    /// The dot of a live position.
    pub fn of(shared: &Shared, p: &DriverPosition, with_distance: bool) -> DriverDot {
        let cfg = shared.cfg.web.drivers.get(&p.driver.0);
        DriverDot {
            id: p.driver.0.clone(),
            name: cfg.map_or_else(|| p.driver.0.clone(), |c| c.first_name.clone()),
            vehicle: cfg.and_then(|c| c.vehicle.clone()),
            position: PositionView::of(p),
            speed_mps: p.fix.speed_mps,
            distance_m: with_distance.then_some(p.distance_m),
        }
    }
}

/// One stop on the dispatcher map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StopDot {
    /// Stop id.
    pub id: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// `pending`, `next`, `arrived`, `departed`, `delivered`, `failed` or `passed`.
    pub state: &'static str,
    /// Not-served stops before it.
    pub stops_away: Option<u32>,
    /// The estimate, UTC ms, for stops ahead.
    pub eta_ms: Option<i64>,
    /// Earliest likely arrival.
    pub earliest_ms: Option<i64>,
    /// Latest likely arrival.
    pub latest_ms: Option<i64>,
    /// The estimate as `HH:MM-HH:MM` UTC.
    pub eta_text: Option<String>,
    /// Arrival detected, UTC ms.
    pub arrived_ms: Option<i64>,
    /// Planned arrival, UTC ms.
    pub planned_arrival_ms: Option<i64>,
    /// Parcels on the stop.
    pub parcels: usize,
}

/// A route on the dispatcher map, with its progress.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteSummary {
    /// Route id.
    pub route_id: String,
    /// Driver id.
    pub driver: String,
    /// Driver display name.
    pub driver_name: String,
    /// Started, UTC ms.
    pub started_ms: Option<i64>,
    /// Finished, UTC ms.
    pub finished_ms: Option<i64>,
    /// Newest fix, UTC ms.
    pub last_fix_t_ms: Option<i64>,
    /// Distance along the route, metres.
    pub progress_m: Option<f64>,
    /// Learned pace (actual / planned time).
    pub pace: f64,
    /// Off route now.
    pub off_route: bool,
    /// Stalled now.
    pub stalled: bool,
    /// Stops served (every parcel has an outcome).
    pub done: usize,
    /// Where the route starts.
    pub start: Option<Point>,
    /// The planned path, `[lat, lon]` pairs, start to last stop (straight legs where unknown).
    pub path: Vec<[f64; 2]>,
    /// The stops in the current order.
    pub stops: Vec<StopDot>,
}

fn stop_state(s: &milepost_core::fleet::view::StopView) -> &'static str {
    match s.phase {
        StopPhase::Done if s.parcels.iter().any(|(_, st)| *st == ParcelState::Failed) => "failed",
        StopPhase::Done => "delivered",
        StopPhase::Arrived => "arrived",
        StopPhase::Departed => "departed",
        StopPhase::Pending if s.passed => "passed",
        StopPhase::Pending if s.stops_away == Some(0) => "next",
        StopPhase::Pending => "pending",
    }
}

/// The summary of route `view` with the coordinates from its plan.
pub fn route_summary(shared: &Shared, run: &RouteRun, view: &RouteView) -> RouteSummary {
    let coords: HashMap<&str, (f64, f64)> = run
        .plan
        .stops
        .iter()
        .map(|s| (s.id.0.as_str(), (s.lat, s.lon)))
        .collect();
    let stops: Vec<StopDot> = view
        .stops
        .iter()
        .map(|s| {
            let (lat, lon) = coords.get(s.id.0.as_str()).copied().unwrap_or((0.0, 0.0));
            StopDot {
                id: s.id.0.clone(),
                lat,
                lon,
                state: stop_state(s),
                stops_away: s.stops_away,
                eta_ms: s.eta.map(|e| e.eta_ms),
                earliest_ms: s.eta.map(|e| e.earliest_ms),
                latest_ms: s.eta.map(|e| e.latest_ms),
                eta_text: s
                    .eta
                    .map(|e| format!("{}-{}", hhmm(e.earliest_ms), hhmm(e.latest_ms))),
                arrived_ms: s.arrived_ms,
                planned_arrival_ms: s.planned_arrival_ms,
                parcels: s.parcels.len(),
            }
        })
        .collect();
    // The planned path in plan order (the order the driver was given the legs in).
    let mut path: Vec<[f64; 2]> = Vec::new();
    if let Some(p) = run.plan.start {
        path.push([p.lat, p.lon]);
    }
    for s in &run.plan.stops {
        path.extend(s.path.iter().map(|p| [p.lat, p.lon]));
        path.push([s.lat, s.lon]);
    }
    RouteSummary {
        route_id: view.route_id.0.clone(),
        driver: view.driver.0.clone(),
        driver_name: driver_name(shared, &view.driver),
        started_ms: view.started_ms,
        finished_ms: view.finished_ms,
        last_fix_t_ms: view.last_fix_t_ms,
        progress_m: view.progress_m,
        pace: view.pace,
        off_route: view.off_route,
        stalled: view.stalled,
        done: stops
            .iter()
            .filter(|s| matches!(s.state, "delivered" | "failed"))
            .count(),
        start: run.plan.start,
        path,
        stops,
    }
}

/// Summaries of every route of `depot` (one core lock).
pub fn depot_routes(shared: &Shared, depot: &DepotId) -> Vec<RouteSummary> {
    let core = lock(&shared.state.core);
    let ids = core.routes_of_depot(depot);
    let runs: HashMap<&RouteId, &RouteRun> = core
        .snapshot()
        .routes
        .into_iter()
        .filter(|r| &r.plan.depot == depot)
        .map(|r| (&r.plan.id, r))
        .collect();
    ids.iter()
        .filter_map(|id| {
            let run = runs.get(id)?;
            let view = core.route_view(id)?;
            Some(route_summary(shared, run, &view))
        })
        .collect()
}

/// One route's summary if it belongs to `depot`.
pub fn depot_route(
    shared: &Shared,
    depot: &DepotId,
    id: &RouteId,
) -> Result<RouteSummary, WebError> {
    let core = lock(&shared.state.core);
    let run = run_of(&core, id).ok_or_else(|| WebError::NotFound(format!("no route {id}")))?;
    if &run.plan.depot != depot {
        return Err(WebError::OutOfScope(
            "the route belongs to another depot".into(),
        ));
    }
    let view = core
        .route_view(id)
        .ok_or_else(|| WebError::NotFound(format!("no route {id}")))?;
    Ok(route_summary(shared, run, &view))
}

/// The newest alerts of a depot, newest first.
pub fn recent_alerts(shared: &Shared, depot: &DepotId) -> Vec<DispatchItem> {
    let events = {
        let feed = lock(&shared.state.feed);
        let last = feed.depot_last(depot);
        // The ring keeps the newest `depot_events_kept`: never ask for older ones.
        let kept = shared.cfg.feed.depot_events_kept.max(1) as u64;
        let from = last.saturating_sub(ALERTS_SCAN.min(kept));
        feed.depot_after(depot, from, ALERTS_SCAN as usize)
            .unwrap_or_default()
    };
    let mut v: Vec<DispatchItem> = events
        .iter()
        .rev()
        .filter_map(|(o, u)| match u {
            Update::Dispatch(d) => Some(DispatchItem::of(shared, *o, d)),
            _ => None,
        })
        .filter(|i| i.alert)
        .collect();
    v.truncate(ALERTS_MAX);
    v
}

/// Everything the dispatcher map starts from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DepotState {
    /// The depot.
    pub depot: String,
    /// The offset of the newest route event: the event stream starts after it.
    pub offset: u64,
    /// Server time, UTC ms (for "last seen" ages).
    pub now_ms: i64,
    /// The depot's drivers with a live position.
    pub drivers: Vec<DriverDot>,
    /// The depot's routes.
    pub routes: Vec<RouteSummary>,
    /// The newest alerts, newest first.
    pub alerts: Vec<DispatchItem>,
}

/// The state of a depot's map.
pub fn depot_state_of(shared: &Shared, depot: &DepotId) -> DepotState {
    // Offset first (see `parcel_view`).
    let offset = lock(&shared.state.feed).depot_last(depot);
    let positions = lock(&shared.state.positions).of_depot(&depot.0);
    DepotState {
        depot: depot.0.clone(),
        offset,
        now_ms: shared.now_ms(),
        drivers: positions
            .iter()
            .map(|p| DriverDot::of(shared, p, false))
            .collect(),
        routes: depot_routes(shared, depot),
        alerts: recent_alerts(shared, depot),
    }
}

/// `GET /dispatch/state`.
pub async fn depot_state(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    Ok(json(depot_state_of(&st.shared, &DepotId(claims.depot))))
}

/// `GET /dispatch/routes/{route}`: one route's progress and ETAs.
pub async fn route_detail(
    State(st): State<Arc<WebState>>,
    Path(route): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    if route.len() > 200 {
        return Err(WebError::NotFound("no such route".into()));
    }
    Ok(json(depot_route(
        &st.shared,
        &DepotId(claims.depot),
        &RouteId(route),
    )?))
}

/// The query of `GET /dispatch/nearby`.
#[derive(Debug, Deserialize)]
pub struct NearbyQuery {
    /// Latitude of the point, degrees.
    pub lat: f64,
    /// Longitude of the point, degrees.
    pub lon: f64,
    /// Radius, metres.
    pub radius_m: f64,
}

/// The answer of `GET /dispatch/nearby`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NearbyAnswer {
    /// Drivers nearest first, with their distance.
    pub drivers: Vec<DriverDot>,
    /// More drivers matched than the limit allowed.
    pub truncated: bool,
}

/// `GET /dispatch/nearby?lat=&lon=&radius_m=`: the depot's drivers near a point.
pub async fn nearby(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<NearbyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    let Query(q) = q.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let max_r = st.cfg().max_nearby_radius_m;
    if !(q.lat.is_finite()
        && (-90.0..=90.0).contains(&q.lat)
        && q.lon.is_finite()
        && (-180.0..=180.0).contains(&q.lon))
    {
        return Err(WebError::BadRequest(
            "lat must be -90..90 and lon -180..180".into(),
        ));
    }
    if !(q.radius_m.is_finite() && q.radius_m > 0.0 && q.radius_m <= max_r) {
        return Err(WebError::BadRequest(format!(
            "radius_m must be in (0, {max_r}]"
        )));
    }
    let limit = st.shared.cfg.limits.max_query_results as usize;
    let answer =
        lock(&st.shared.state.positions).nearby(&claims.depot, q.lat, q.lon, q.radius_m, limit);
    Ok(json(NearbyAnswer {
        drivers: answer
            .drivers
            .iter()
            .map(|p| DriverDot::of(&st.shared, p, true))
            .collect(),
        truncated: answer.truncated,
    }))
}

/// An empty 204 answer.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
