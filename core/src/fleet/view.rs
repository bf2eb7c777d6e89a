//! Read-only views of a route for dispatchers, and of a parcel for its recipient. ETAs are
//! computed on read from the newest fix (cumulative offset + current estimate), so reading
//! costs O(stops) and the per-fix step never has to keep every stop's ETA fresh.

use milepost_proto::route::{
    DepotId, ParcelState, ParcelStatus, RouteId, StopId, TimeWindow, TrackingNumber,
};
use milepost_proto::DriverId;
use serde::{Deserialize, Serialize};

use crate::fleet::config::CoreConfig;
use crate::fleet::eta::EtaWindow;
use crate::fleet::progress::StopPhase;
use crate::fleet::run::RouteRun;

/// A route as a dispatcher sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    /// The route.
    pub route_id: RouteId,
    /// Its depot.
    pub depot: DepotId,
    /// Its driver.
    pub driver: DriverId,
    /// When it started.
    pub started_ms: Option<i64>,
    /// When it finished.
    pub finished_ms: Option<i64>,
    /// Time of the newest fix.
    pub last_fix_t_ms: Option<i64>,
    /// Distance along the route's polyline, metres.
    pub progress_m: Option<f64>,
    /// Learned effective speed, m/s.
    pub speed_mps: f64,
    /// Learned detour factor of straight legs.
    pub detour: f64,
    /// Learned pace (actual / planned time).
    pub pace: f64,
    /// The driver is off route.
    pub off_route: bool,
    /// The driver is stalled.
    pub stalled: bool,
    /// The stops in the current order.
    pub stops: Vec<StopView>,
}

/// One stop in a [`RouteView`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopView {
    /// The stop.
    pub id: StopId,
    /// Its phase.
    pub phase: StopPhase,
    /// Went past without an arrival; pending until an outcome.
    pub passed: bool,
    /// Pending but behind the driver's position on the route (served out of order): no fresh
    /// ETA until the driver heads back or the route is re-sequenced.
    pub behind: bool,
    /// Stops before it the driver has still to reach (not served, left or passed, and not
    /// the one the driver is at).
    pub stops_away: Option<u32>,
    /// Latest arrival time detected.
    pub arrived_ms: Option<i64>,
    /// Latest departure time detected.
    pub departed_ms: Option<i64>,
    /// The estimate, for stops ahead.
    pub eta: Option<EtaWindow>,
    /// The promised window.
    pub window: Option<TimeWindow>,
    /// Planned arrival.
    pub planned_arrival_ms: Option<i64>,
    /// Its parcels and their states.
    pub parcels: Vec<(TrackingNumber, ParcelState)>,
}

impl RouteView {
    /// The view of `run`.
    pub fn of(cfg: &CoreConfig, run: &RouteRun) -> RouteView {
        let now = run.learner.current(&cfg.eta);
        let stops = run
            .order
            .iter()
            .enumerate()
            .map(|(q, &i)| {
                let st = &run.stops[i];
                let plan = &run.plan.stops[i];
                StopView {
                    id: plan.id.clone(),
                    phase: st.progress.phase,
                    passed: st.progress.passed,
                    behind: st.progress.ahead() && q < run.next_seq && run.loc.is_some(),
                    stops_away: st.stops_away,
                    arrived_ms: st.progress.arrived_ms,
                    departed_ms: st.progress.departed_ms,
                    eta: run.fresh_eta(cfg, i),
                    window: plan.window,
                    planned_arrival_ms: plan.planned_arrival_ms,
                    parcels: run
                        .stop_parcels(i)
                        .iter()
                        .map(|p| (p.tracking.clone(), p.state))
                        .collect(),
                }
            })
            .collect();
        RouteView {
            route_id: run.plan.id.clone(),
            depot: run.plan.depot.clone(),
            driver: run.plan.driver.clone(),
            started_ms: run.started_ms,
            finished_ms: run.finished_ms,
            last_fix_t_ms: run.last_fix_t_ms,
            progress_m: run.loc.map(|l| l.along_m),
            speed_mps: now.speed_mps,
            detour: now.detour,
            pace: now.pace,
            off_route: run.off_route,
            stalled: run.stalled,
            stops,
        }
    }
}

/// The status of parcel `tracking` on `run`.
pub fn parcel_status(
    cfg: &CoreConfig,
    run: &RouteRun,
    tracking: &TrackingNumber,
) -> Option<ParcelStatus> {
    let p = run.parcels.iter().find(|p| &p.tracking == tracking)?;
    let st = &run.stops[p.stop];
    // A stop the driver left, or drove past, without an outcome has no ETA and no place in the
    // count: the driver is not coming there next (or may come back: then it is ahead again).
    let left =
        st.progress.passed || st.progress.phase == crate::fleet::progress::StopPhase::Departed;
    let open = !p.closed() && !left;
    // Far off the planned path the estimate along it means little: none is shown rather than
    // a confident window (it is back once the driver is).
    let eta = if open && !run.off_route {
        run.fresh_eta(cfg, p.stop).or(st.eta)
    } else {
        None
    };
    Some(ParcelStatus {
        tracking: p.tracking.clone(),
        route_id: run.plan.id.clone(),
        stop: run.plan.stops[p.stop].id.clone(),
        state: p.state,
        stops_away: if open { st.stops_away } else { None },
        eta_ms: eta.map(|w| w.eta_ms),
        earliest_ms: eta.map(|w| w.earliest_ms),
        latest_ms: eta.map(|w| w.latest_ms),
        window: run.plan.stops[p.stop].window,
        last_event: p.last_event.clone(),
    })
}
