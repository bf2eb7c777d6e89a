//! One route on the dispatcher map ([`RouteSummary`]): its progress, its stops in the current
//! order with their state and ETAs ([`StopDot`]), and its planned path; for one route of a
//! depot ([`depot_route`]) or all of them ([`depot_routes`]).

use std::collections::HashMap;

use milepost_core::fleet::progress::StopPhase;
use milepost_core::fleet::run::RouteRun;
use milepost_core::fleet::view::{RouteView, StopView};
use milepost_proto::route::{DepotId, ParcelState, Point, RouteId};
use serde::Serialize;

use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::error::WebError;
use crate::web::views::common::{driver_name, run_of};
use milepost_core::present::hhmm_in;

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
    /// Stops before it the driver has still to reach (not the one the driver is at).
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
    /// Its street address, when the back office gave one.
    pub address: Option<String>,
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

fn stop_state(s: &StopView) -> &'static str {
    match s.phase {
        StopPhase::Done
            if s.parcels
                .iter()
                .any(|(_, st)| matches!(st, ParcelState::Failed | ParcelState::Returned)) =>
        {
            "failed"
        }
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
    let zone = shared.cfg.carriers.clock_of_depot(&run.plan.depot.0);
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
                eta_text: s.eta.map(|e| {
                    format!(
                        "{}-{}",
                        hhmm_in(e.earliest_ms, zone),
                        hhmm_in(e.latest_ms, zone)
                    )
                }),
                arrived_ms: s.arrived_ms,
                planned_arrival_ms: s.planned_arrival_ms,
                parcels: s.parcels.len(),
                address: None,
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
    let mut all: Vec<RouteSummary> = ids
        .iter()
        .filter_map(|id| {
            let run = runs.get(id)?;
            let view = core.route_view(id)?;
            Some(route_summary(shared, run, &view))
        })
        .collect();
    drop(runs);
    drop(core);
    for r in &mut all {
        add_addresses(shared, r);
    }
    all
}

/// Fills in the stops' addresses (read from the history, outside the core's lock).
fn add_addresses(shared: &Shared, r: &mut RouteSummary) {
    let Some(h) = &shared.state.history else {
        return;
    };
    let Ok(found) = h.addresses(&RouteId(r.route_id.clone())) else {
        return;
    };
    if found.is_empty() {
        return;
    }
    for s in &mut r.stops {
        s.address = found.get(&s.id).cloned();
    }
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
    let mut r = route_summary(shared, run, &view);
    drop(core);
    add_addresses(shared, &mut r);
    Ok(r)
}
