//! The API's answers: a route with its stops ([`RouteDetail`]), a parcel's status with its
//! history ([`ParcelDetail`]), a driver ([`DriverDetail`]), and a page of a list
//! ([`Page`]); built from the live state or, once a route has left it, from the history
//! database. Texts come from [`milepost_core::present`], as on every other surface.

use milepost_core::fleet::progress::StopPhase;
use milepost_core::fleet::view::{RouteView, StopView};
use milepost_core::history::{Closed, ParcelHistory, RouteHistory};
use milepost_core::present::{
    event_kind, event_text, event_time, reason_text, shown_outcome, status_line_at, Moment,
};
use milepost_proto::route::{
    FailureReason, ParcelEvent, ParcelState, ParcelStatus, ParcelUpdate, Point, ProofSummary,
    Route, TimeWindow, TrackingNumber,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::api::error::ApiError;
use crate::web::views::common::moment;

/// Where a route is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// Assigned, not started.
    Planned,
    /// Under way.
    Active,
    /// Every stop served.
    Finished,
    /// Finished and moved to the history.
    Archived,
    /// Cancelled by the back office.
    Cancelled,
}

/// One parcel of a stop.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ParcelBrief {
    /// Tracking number.
    pub tracking: String,
    /// Its state.
    pub state: ParcelState,
}

/// One stop of a route, in the route's current order.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StopDetail {
    /// Stop id.
    pub id: String,
    /// Where it is (live routes).
    pub location: Option<Point>,
    /// `pending`, `next`, `arrived`, `departed`, `done` or `passed` (went by without an
    /// arrival and no outcome yet).
    pub state: String,
    /// Stops before it the driver has still to reach (not the one the driver is at).
    pub stops_away: Option<u32>,
    /// Best estimate of the arrival, UTC ms.
    pub eta_ms: Option<i64>,
    /// Earliest likely arrival, UTC ms.
    pub earliest_ms: Option<i64>,
    /// Latest likely arrival, UTC ms.
    pub latest_ms: Option<i64>,
    /// Arrival detected, UTC ms.
    pub arrived_ms: Option<i64>,
    /// Departure detected, UTC ms.
    pub departed_ms: Option<i64>,
    /// The promised window.
    pub window: Option<TimeWindow>,
    /// The parcels.
    pub parcels: Vec<ParcelBrief>,
}

/// A route with its progress.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RouteDetail {
    /// Route id.
    pub route_id: String,
    /// Depot.
    pub depot: String,
    /// Driver id.
    pub driver: String,
    /// Where it is in its life.
    pub state: RouteState,
    /// Planned start, UTC ms.
    pub planned_start_ms: Option<i64>,
    /// Started, UTC ms.
    pub started_ms: Option<i64>,
    /// Finished, UTC ms.
    pub finished_ms: Option<i64>,
    /// Archived or cancelled, UTC ms.
    pub closed_ms: Option<i64>,
    /// Newest fix, UTC ms.
    pub last_fix_t_ms: Option<i64>,
    /// Off route now.
    pub off_route: bool,
    /// Stalled now.
    pub stalled: bool,
    /// Stops served (every parcel has an outcome).
    pub done: u32,
    /// The stops in the current order.
    pub stops: Vec<StopDetail>,
}

fn stop_state(s: &StopView) -> &'static str {
    match s.phase {
        StopPhase::Done => "done",
        StopPhase::Arrived => "arrived",
        StopPhase::Departed => "departed",
        StopPhase::Pending if s.passed => "passed",
        StopPhase::Pending if s.stops_away == Some(0) => "next",
        StopPhase::Pending => "pending",
    }
}

impl RouteDetail {
    /// The detail of a route's view; `plan` (live routes) gives the stops' locations.
    pub fn of(v: &RouteView, plan: Option<&Route>, closed: Option<(Closed, i64)>) -> Self {
        let location = |id: &str| {
            plan.and_then(|p| p.stops.iter().find(|s| s.id.0 == id))
                .map(|s| Point {
                    lat: s.lat,
                    lon: s.lon,
                })
        };
        let state = match (closed, v.started_ms, v.finished_ms) {
            (Some((Closed::Cancelled, _)), ..) => RouteState::Cancelled,
            (Some((Closed::Archived, _)), ..) => RouteState::Archived,
            (None, _, Some(_)) => RouteState::Finished,
            (None, Some(_), None) => RouteState::Active,
            (None, None, None) => RouteState::Planned,
        };
        RouteDetail {
            route_id: v.route_id.0.clone(),
            depot: v.depot.0.clone(),
            driver: v.driver.0.clone(),
            state,
            planned_start_ms: plan.map(|p| p.planned_start_ms),
            started_ms: v.started_ms,
            finished_ms: v.finished_ms,
            closed_ms: closed.map(|(_, at)| at),
            last_fix_t_ms: v.last_fix_t_ms,
            off_route: v.off_route,
            stalled: v.stalled,
            done: v
                .stops
                .iter()
                .filter(|s| s.phase == StopPhase::Done)
                .count() as u32,
            stops: v
                .stops
                .iter()
                .map(|s| StopDetail {
                    id: s.id.0.clone(),
                    location: location(&s.id.0),
                    state: stop_state(s).to_owned(),
                    stops_away: s.stops_away,
                    eta_ms: s.eta.map(|e| e.eta_ms),
                    earliest_ms: s.eta.map(|e| e.earliest_ms),
                    latest_ms: s.eta.map(|e| e.latest_ms),
                    arrived_ms: s.arrived_ms,
                    departed_ms: s.departed_ms,
                    window: s.window,
                    parcels: s
                        .parcels
                        .iter()
                        .map(|(t, st)| ParcelBrief {
                            tracking: t.0.clone(),
                            state: *st,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The detail of a closed route from its history.
    pub fn of_history(h: &RouteHistory) -> Self {
        let mut d = RouteDetail::of(&h.view, None, Some((h.closed, h.closed_ms)));
        d.planned_start_ms = Some(h.planned_start_ms);
        d
    }
}

/// A route, live or from the history, with its depot; `Ok(None)` if unknown.
pub fn route_detail(
    shared: &Shared,
    id: &milepost_proto::route::RouteId,
) -> Result<Option<RouteDetail>, ApiError> {
    {
        let core = lock(&shared.state.core);
        if let (Some(run), Some(view)) = (core.run(id), core.route_view(id)) {
            return Ok(Some(RouteDetail::of(&view, Some(&run.plan), None)));
        }
    }
    match &shared.state.history {
        Some(h) => Ok(h
            .route(id)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map(|r| RouteDetail::of_history(&r))),
        None => Ok(None),
    }
}

/// A failure reason code of the documented list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// Nobody there to receive it.
    RecipientAbsent,
    /// The address could not be found.
    AddressNotFound,
    /// No access (gate, building, dog).
    AccessProblem,
    /// The recipient refused it.
    Refused,
    /// Damaged.
    Damaged,
    /// Anything else (say what in `note`).
    Other,
}

impl From<ReasonCode> for FailureReason {
    fn from(r: ReasonCode) -> FailureReason {
        match r {
            ReasonCode::RecipientAbsent => FailureReason::RecipientAbsent,
            ReasonCode::AddressNotFound => FailureReason::AddressNotFound,
            ReasonCode::AccessProblem => FailureReason::AccessProblem,
            ReasonCode::Refused => FailureReason::Refused,
            ReasonCode::Damaged => FailureReason::Damaged,
            ReasonCode::Other => FailureReason::Other,
        }
    }
}

impl From<FailureReason> for ReasonCode {
    fn from(r: FailureReason) -> ReasonCode {
        match r {
            FailureReason::RecipientAbsent => ReasonCode::RecipientAbsent,
            FailureReason::AddressNotFound => ReasonCode::AddressNotFound,
            FailureReason::AccessProblem => ReasonCode::AccessProblem,
            FailureReason::Refused => ReasonCode::Refused,
            FailureReason::Damaged => ReasonCode::Damaged,
            FailureReason::Other => ReasonCode::Other,
        }
    }
}

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FailureView {
    /// The reason code.
    pub reason: ReasonCode,
    /// In words.
    pub text: String,
    /// The driver's or dispatcher's note.
    pub note: String,
}

/// One milestone of a parcel.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Milestone {
    /// `OutForDelivery`, `StopsAway`, `ArrivingSoon`, `Arrived`, `Delivered`, `Failed`,
    /// `NextStep` (after a failed attempt: what happens now), `Delayed`, `Returned`.
    pub kind: String,
    /// In words.
    pub text: String,
    /// When, UTC ms.
    pub at_ms: i64,
}

impl Milestone {
    fn of(p: &ParcelUpdate) -> Milestone {
        Milestone {
            kind: event_kind(&p.kind).to_owned(),
            text: event_text(&p.kind).trim().to_owned(),
            at_ms: event_time(p),
        }
    }
}

/// A parcel's status and history.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ParcelDetail {
    /// Tracking number.
    pub tracking: String,
    /// The depot of its newest route.
    pub depot: String,
    /// Its newest route.
    pub route_id: String,
    /// Every route it was on, oldest first.
    pub routes: Vec<String>,
    /// Its stop on the newest route.
    pub stop: String,
    /// On a live route (false: from the history).
    pub live: bool,
    /// Its state.
    pub state: ParcelState,
    /// The recipient's one-line status.
    pub status_line: String,
    /// Stops before its own the driver has still to reach (not the one the driver is at).
    pub stops_away: Option<u32>,
    /// Best estimate, UTC ms.
    pub eta_ms: Option<i64>,
    /// Earliest likely arrival, UTC ms.
    pub earliest_ms: Option<i64>,
    /// Latest likely arrival, UTC ms.
    pub latest_ms: Option<i64>,
    /// The promised window.
    pub window: Option<TimeWindow>,
    /// Proof of delivery, once delivered.
    pub proof: Option<ProofSummary>,
    /// Who took the parcel, when the driver took a name.
    pub received_by: Option<String>,
    /// Why the last attempt failed, once failed.
    pub failure: Option<FailureView>,
    /// Its milestones, oldest first (ETA refreshes left out).
    pub milestones: Vec<Milestone>,
}

fn detail(
    s: &ParcelStatus,
    depot: String,
    routes: Vec<String>,
    live: bool,
    at: &Moment,
    ms: &[ParcelUpdate],
) -> ParcelDetail {
    let (proof, failure) = shown_outcome(s);
    let received_by = proof.and_then(|d| d.received_by).map(str::to_owned);
    let proof = proof.map(|d| d.proof.clone());
    let failure = failure.map(|(reason, note)| FailureView {
        reason: reason.into(),
        text: reason_text(reason).to_owned(),
        note: note.to_owned(),
    });
    ParcelDetail {
        tracking: s.tracking.0.clone(),
        depot,
        route_id: s.route_id.0.clone(),
        routes,
        stop: s.stop.0.clone(),
        live,
        state: s.state,
        status_line: status_line_at(s, at),
        stops_away: s.stops_away,
        eta_ms: s.eta_ms,
        earliest_ms: s.earliest_ms,
        latest_ms: s.latest_ms,
        window: s.window,
        proof,
        received_by,
        failure,
        milestones: ms
            .iter()
            .filter(|m| !matches!(m.kind, ParcelEvent::EtaChanged { .. }))
            .map(Milestone::of)
            .collect(),
    }
}

/// A parcel's status, live or from the history; `Ok(None)` if unknown. A live parcel that was
/// on earlier routes lists them too.
pub fn parcel_detail(
    shared: &Shared,
    t: &TrackingNumber,
) -> Result<Option<ParcelDetail>, ApiError> {
    let live = {
        let core = lock(&shared.state.core);
        core.parcel_status(t).and_then(|s| {
            let depot = core.run(&s.route_id)?.plan.depot.0.clone();
            let at = moment(shared, &core, &s.route_id);
            Some((s, depot, at))
        })
    };
    let history = |t: &TrackingNumber| -> Result<Option<ParcelHistory>, ApiError> {
        match &shared.state.history {
            Some(h) => h.parcel(t).map_err(|e| ApiError::internal(e.to_string())),
            None => Ok(None),
        }
    };
    match live {
        Some((s, depot, at)) => {
            let ms = milepost_core::history::milestones(&lock(&shared.state.feed), t);
            let mut routes: Vec<String> = history(t)?
                .map(|h| h.routes.into_iter().map(|r| r.0).collect())
                .unwrap_or_default();
            if !routes.contains(&s.route_id.0) {
                routes.push(s.route_id.0.clone());
            }
            Ok(Some(detail(&s, depot, routes, true, &at, &ms)))
        }
        None => Ok(history(t)?.map(|h| {
            let routes = h.routes.iter().map(|r| r.0.clone()).collect();
            let at = Moment {
                now_ms: shared.now_ms(),
                last_fix_ms: None,
                stale_after_ms: i64::MAX,
                zone: shared.cfg.carriers.clock_of_depot(&h.depot.0),
            };
            detail(
                &h.status,
                h.depot.0.clone(),
                routes,
                false,
                &at,
                &h.milestones,
            )
        })),
    }
}

/// A driver's live position and current route.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DriverDetail {
    /// Driver id.
    pub driver: String,
    /// Depot (from the driver's token).
    pub depot: String,
    /// Newest position.
    pub position: Option<PositionDetail>,
    /// Current route, if any.
    pub route_id: Option<String>,
}

/// A live position.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PositionDetail {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Time of the fix, UTC ms.
    pub t_ms: i64,
    /// Accuracy radius, metres.
    pub accuracy_m: f32,
    /// Speed, m/s, if measured.
    pub speed_mps: Option<f32>,
    /// Course, degrees, if measured.
    pub heading_deg: Option<f32>,
}

impl PositionDetail {
    /// From a live position's fix.
    pub fn of(f: &milepost_proto::Fix) -> PositionDetail {
        PositionDetail {
            lat: f.lat(),
            lon: f.lon(),
            t_ms: f.t_ms,
            accuracy_m: f.accuracy_m,
            speed_mps: f.speed_mps,
            heading_deg: f.heading_deg,
        }
    }
}

/// One page of a list. `next_cursor` is absent on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Routes of a page.
pub type RoutePage = Page<RouteDetail>;
/// Drivers of a page.
pub type DriverPage = Page<DriverDetail>;

/// A list's `limit`: 100 when not given, else 1-1000 (400 naming the field).
pub fn page_limit(limit: Option<u32>) -> Result<usize, ApiError> {
    match limit.unwrap_or(100) {
        n @ 1..=1000 => Ok(n as usize),
        _ => Err(ApiError::bad_request("limit must be 1-1000").field("limit")),
    }
}

/// Cursors are the last item's id, base64url: opaque to callers, stable across restarts.
pub fn cursor_of(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// The id a cursor stands for; 400 if it is not one of ours.
pub fn cursor_id(c: &str) -> Result<String, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_request("not a cursor of this list").field("cursor"))
}
