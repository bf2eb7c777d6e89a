//! [`FleetCore`]: the routes of the fleet, fed with fixes, reports and ticks, returning the
//! updates each audience must hear. Sans-IO: the caller passes every time (`fix.t_ms`,
//! `now_ms`) and moves the returned [`Update`]s to the feed.
//!
//! The core indexes routes by id, driver and tracking number; everything per route lives in
//! [`RouteRun`]. A fix costs two hash lookups plus the route's per-fix step (a window of the
//! polyline, the stops near the fix, and the ETAs of the next few stops).

use crate::hash::FastMap;

use milepost_proto::route::{
    DepotId, DriverEvent, Outcome, ParcelStatus, Route, RouteId, StopId, TrackingNumber, Update,
};
use milepost_proto::{DriverId, Fix};
use serde::{Deserialize, Serialize};

use crate::fleet::calibrate::{Calibration, Windows};
use crate::fleet::config::CoreConfig;
use crate::fleet::outcome::{OutcomeError, OutcomeTarget};
use crate::fleet::route::{validate, RouteError};
use crate::fleet::run::RouteRun;
use crate::fleet::view::RouteView;

pub use part::{AttemptEntry, CorePart, CorePartRef};
pub use service::{MessageLimits, ParcelService, ServiceBook, ServiceError};

mod part;
mod service;
mod tally;

/// The calibration group of a depot's routes (see [`CoreConfig::calibration_groups`]).
fn calibration_group(cfg: &CoreConfig, depot: &DepotId) -> u32 {
    if cfg.calibration_groups > 1 {
        crate::store::record::partition_of_depot(&depot.0, cfg.calibration_groups)
    } else {
        0
    }
}

/// The fleet core.
#[derive(Debug, Default)]
pub struct FleetCore {
    cfg: CoreConfig,
    routes: FastMap<RouteId, RouteRun>,
    by_driver: FastMap<DriverId, RouteId>,
    by_tracking: FastMap<TrackingNumber, RouteId>,
    service: ServiceBook,
    /// The fleet's ETA errors, by horizon, and the windows made from them: one fleet-wide, or
    /// one per partition of depots ([`CoreConfig::calibration_groups`]), by group.
    calibration: FastMap<u32, (Calibration, Windows)>,
}

/// The serializing side of [`CoreSnapshot`]: borrows the routes, clones nothing.
#[derive(Debug, Serialize)]
pub struct CoreSnapshotRef<'a> {
    /// Every route, finished or not.
    pub routes: Vec<&'a RouteRun>,
}

/// Everything needed to rebuild a [`FleetCore`] (serde; geometry is rebuilt on restore).
#[derive(Debug, Serialize, Deserialize)]
pub struct CoreSnapshot {
    /// Every route, finished or not.
    pub routes: Vec<RouteRun>,
}

impl FleetCore {
    /// An empty core.
    pub fn new(cfg: CoreConfig) -> FleetCore {
        FleetCore {
            cfg,
            ..FleetCore::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Assigns a route to its driver, or replaces the route with the same id (keeping the
    /// outcomes of parcels still on it, the start and what was learned).
    ///
    /// # Errors
    /// Validation errors; [`RouteError::DriverBusy`] if the driver has another unfinished route;
    /// [`RouteError::TrackingOnOtherRoute`] if a parcel is on another unfinished route.
    pub fn assign_route(&mut self, route: Route, now_ms: i64) -> Result<Vec<Update>, RouteError> {
        validate(&route)?;
        if let Some(other) = self.by_driver.get(&route.driver) {
            if *other != route.id
                && self
                    .routes
                    .get(other)
                    .is_some_and(|r| r.finished_ms.is_none())
            {
                return Err(RouteError::DriverBusy(route.driver.clone(), other.clone()));
            }
        }
        for p in route.stops.iter().flat_map(|s| &s.parcels) {
            if let Some(other) = self.by_tracking.get(&p.tracking) {
                // A parcel its recipient took off its route may go on another.
                let held = self.routes.get(other).is_some_and(|r| {
                    r.finished_ms.is_none()
                        && !r
                            .parcels
                            .iter()
                            .any(|q| q.tracking == p.tracking && q.withdrawn)
                });
                if *other != route.id && held {
                    return Err(RouteError::TrackingOnOtherRoute(
                        p.tracking.clone(),
                        other.clone(),
                    ));
                }
            }
        }
        let mut out = Vec::new();
        let mut run = RouteRun::new(&self.cfg, route);
        if let Some(old) = self.routes.remove(&run.plan.id) {
            for p in old.plan.stops.iter().flat_map(|s| &s.parcels) {
                self.by_tracking.remove(&p.tracking);
            }
            if old.plan.driver != run.plan.driver {
                self.by_driver.remove(&old.plan.driver);
            }
            run.carry_over(old);
            run.rebuild(&self.cfg);
            let t = run.last_fix_t_ms.unwrap_or(now_ms).max(now_ms);
            run.refresh_stops_away(&self.cfg, t, &mut out);
        }
        for p in run.plan.stops.iter().flat_map(|s| &s.parcels) {
            self.by_tracking
                .insert(p.tracking.clone(), run.plan.id.clone());
        }
        self.by_driver
            .insert(run.plan.driver.clone(), run.plan.id.clone());
        out.insert(0, run.driver_update(DriverEvent::RouteAssigned));
        self.routes.insert(run.plan.id.clone(), run);
        Ok(out)
    }

    /// Removes a route (cancelled); returns its plan.
    pub fn remove_route(&mut self, id: &RouteId) -> Option<Route> {
        let run = self.routes.remove(id)?;
        for p in run.plan.stops.iter().flat_map(|s| &s.parcels) {
            if self.by_tracking.get(&p.tracking) == Some(id) {
                self.by_tracking.remove(&p.tracking);
            }
        }
        if self.by_driver.get(&run.plan.driver) == Some(id) {
            self.by_driver.remove(&run.plan.driver);
        }
        let failed: Vec<TrackingNumber> = run
            .parcels
            .iter()
            .filter(|p| p.state == milepost_proto::route::ParcelState::Failed && !p.withdrawn)
            .map(|p| p.tracking.clone())
            .collect();
        self.forget_service(&run.plan, &failed);
        Some(run.plan)
    }

    /// Removes every route whose depot `gone` selects, finished or not, with what the core
    /// keeps of their parcels: a cluster gateway hands the depots' partition to another gateway,
    /// which folds it from the stream. Returns the plans removed, in route id order.
    pub fn release_depots(&mut self, gone: impl Fn(&DepotId) -> bool) -> Vec<Route> {
        let mut ids: Vec<RouteId> = self
            .routes
            .iter()
            .filter(|(_, r)| gone(&r.plan.depot))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        let plans: Vec<Route> = ids.iter().filter_map(|id| self.remove_route(id)).collect();
        for plan in &plans {
            self.drop_service(plan);
        }
        self.forget_attempts(&gone);
        plans
    }

    /// The depot of a route the core holds.
    pub fn depot_of_route(&self, id: &RouteId) -> Option<&DepotId> {
        self.routes.get(id).map(|r| &r.plan.depot)
    }

    /// The depot of the route holding a parcel.
    pub fn depot_of_parcel(&self, tracking: &TrackingNumber) -> Option<&DepotId> {
        self.depot_of_route(self.by_tracking.get(tracking)?)
    }

    /// The depot of a driver's current route.
    pub fn depot_of_driver(&self, driver: &DriverId) -> Option<&DepotId> {
        self.depot_of_route(self.by_driver.get(driver)?)
    }

    /// A route's plan with its stops in the current order, as it was assigned otherwise (the
    /// recipients' instructions are not folded in): what an edit of the route starts from.
    pub fn plan_in_order(&self, id: &RouteId) -> Option<Route> {
        let run = self.routes.get(id)?;
        let mut route = run.plan.clone();
        route.stops = run
            .order
            .iter()
            .filter_map(|&i| run.plan.stops.get(i).cloned())
            .collect();
        Some(route)
    }

    /// A route as the driver should now drive it: the plan with its stops in the current order
    /// and each parcel's latest instructions (the recipient's, if any, replace the stop's),
    /// followed by what the recipients changed (a safe place, another slot...).
    pub fn route_in_order(&self, id: &RouteId) -> Option<Route> {
        let run = self.routes.get(id)?;
        let mut route = self.plan_in_order(id)?;
        for stop in &mut route.stops {
            let extra: Vec<String> = stop
                .parcels
                .iter()
                .filter_map(|p| {
                    let k = run.parcels.iter().position(|q| q.tracking == p.tracking)?;
                    run.parcels[k].instructions.clone()
                })
                .collect();
            if !extra.is_empty() {
                stop.instructions = extra.join("\n");
            }
            for note in stop
                .parcels
                .iter()
                .filter_map(|p| self.driver_note(id, &p.tracking))
            {
                if !stop.instructions.is_empty() {
                    stop.instructions.push('\n');
                }
                stop.instructions.push_str(&note);
            }
        }
        Some(route)
    }

    /// True when no route is under way (every route finished, or none): ticks find nothing.
    pub fn is_idle(&self) -> bool {
        self.routes.values().all(|r| r.finished_ms.is_some())
    }

    /// Routes that finished before `t_ms` (candidates for archiving).
    pub fn finished_before(&self, t_ms: i64) -> Vec<RouteId> {
        let mut ids: Vec<RouteId> = self
            .routes
            .iter()
            .filter(|(_, r)| r.finished_ms.is_some_and(|f| f < t_ms))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Gives route `id` a new stop order (the same stops, each once).
    ///
    /// # Errors
    /// [`RouteError::UnknownRoute`], [`RouteError::BadSequence`].
    pub fn resequence(
        &mut self,
        id: &RouteId,
        order: &[StopId],
        now_ms: i64,
    ) -> Result<Vec<Update>, RouteError> {
        let run = self
            .routes
            .get_mut(id)
            .ok_or_else(|| RouteError::UnknownRoute(id.clone()))?;
        let n = run.plan.stops.len();
        let mut seen = vec![false; n];
        let mut idx = Vec::with_capacity(n);
        for s in order {
            match run.plan.stops.iter().position(|p| &p.id == s) {
                Some(i) if !seen[i] => {
                    seen[i] = true;
                    idx.push(i);
                }
                _ => return Err(RouteError::BadSequence(id.clone())),
            }
        }
        if idx.len() != n {
            return Err(RouteError::BadSequence(id.clone()));
        }
        let mut out = Vec::new();
        run.resequence(&self.cfg, idx, now_ms, &mut out);
        Ok(out)
    }

    /// Starts a route explicitly (otherwise it starts when its driver leaves the start point).
    ///
    /// # Errors
    /// [`RouteError::UnknownRoute`].
    pub fn start_route(&mut self, id: &RouteId, now_ms: i64) -> Result<Vec<Update>, RouteError> {
        let run = self
            .routes
            .get_mut(id)
            .ok_or_else(|| RouteError::UnknownRoute(id.clone()))?;
        let mut out = Vec::new();
        run.start(&self.cfg, now_ms, &mut out);
        Ok(out)
    }

    /// Feeds one (validated) fix of `driver`; updates are pushed to `out`. Fixes of drivers
    /// without a route, and fixes older than the driver's newest, change nothing.
    pub fn on_fix(&mut self, driver: &DriverId, fix: &Fix, out: &mut Vec<Update>) {
        let Some(id) = self.by_driver.get(driver) else {
            return;
        };
        if let Some(run) = self.routes.get_mut(id) {
            let group = calibration_group(&self.cfg, &run.plan.depot);
            if self.cfg.eta.calibrate {
                run.windows = self
                    .calibration
                    .get(&group)
                    .map(|c| c.1)
                    .unwrap_or_default();
            }
            let before = run.last_fix_t_ms;
            run.on_fix(&self.cfg, fix, out);
            // Counted once it was taken (a fix no newer than the last one is not), while the
            // route is under way.
            if self.cfg.analytics
                && run.last_fix_t_ms != before
                && run.started_ms.is_some_and(|s| s <= fix.t_ms)
                && run.finished_ms.is_none_or(|f| fix.t_ms <= f)
            {
                run.tally.on_fix(fix);
            }
            // Arrivals scored the estimates published for them: the fleet's calibration.
            if !run.errors.is_empty() {
                let eta = &self.cfg.eta;
                let (calibration, windows) = self.calibration.entry(group).or_default();
                for (b, e) in run.errors.drain(..) {
                    calibration.add(b, e, eta.calibration_half_life);
                }
                *windows = calibration.windows(eta.window_coverage);
                run.windows = *windows;
            }
        }
    }

    /// A delivery outcome reported by `driver` at `now_ms`.
    ///
    /// # Errors
    /// See [`OutcomeError`]; nothing changes on error.
    pub fn report_outcome(
        &mut self,
        driver: &DriverId,
        target: &OutcomeTarget,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<Vec<Update>, OutcomeError> {
        let id = self
            .by_driver
            .get(driver)
            .ok_or_else(|| OutcomeError::NoRoute(driver.clone()))?;
        let run = self
            .routes
            .get_mut(id)
            .ok_or_else(|| OutcomeError::NoRoute(driver.clone()))?;
        let mut out = Vec::new();
        run.report(&self.cfg, target, outcome, now_ms, &mut out)?;
        Ok(out)
    }

    /// Delivery instructions from a parcel's recipient; returns the update for the driver.
    ///
    /// # Errors
    /// [`OutcomeError::UnknownParcel`]; [`OutcomeError::AlreadyReported`] once it has an outcome.
    pub fn set_instructions(
        &mut self,
        tracking: &TrackingNumber,
        text: &str,
    ) -> Result<Update, OutcomeError> {
        let (id, k) = self
            .locate(tracking)
            .ok_or_else(|| OutcomeError::UnknownParcel(tracking.clone()))?;
        let Some(run) = self.routes.get_mut(&id) else {
            return Err(OutcomeError::UnknownParcel(tracking.clone()));
        };
        if run.parcels[k].closed() {
            return Err(OutcomeError::AlreadyReported(tracking.clone()));
        }
        run.parcels[k].instructions = Some(text.to_owned());
        let stop = run.plan.stops[run.parcels[k].stop].id.clone();
        Ok(run.driver_update(DriverEvent::Instructions {
            stop,
            tracking: tracking.clone(),
            text: text.to_owned(),
        }))
    }

    /// The live route a parcel is on, and its index among the route's parcels.
    fn locate(&self, tracking: &TrackingNumber) -> Option<(RouteId, usize)> {
        let id = self.by_tracking.get(tracking)?;
        let k = self
            .routes
            .get(id)?
            .parcels
            .iter()
            .position(|p| &p.tracking == tracking)?;
        Some((id.clone(), k))
    }

    /// Time-driven checks (stalled drivers); call every few seconds.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Update>) {
        self.tick_where(now_ms, out, |_, _| true);
    }

    /// Like [`FleetCore::tick`], for the routes `owned` selects by driver and depot (a cluster
    /// ticks each partition from the gateway that owns it).
    pub fn tick_where(
        &mut self,
        now_ms: i64,
        out: &mut Vec<Update>,
        owned: impl Fn(&DriverId, &DepotId) -> bool,
    ) {
        // In route id order: the events' order must not depend on the map's (a cluster's
        // gateways must all fold them into the same feed offsets).
        let mut ids: Vec<&RouteId> = self
            .routes
            .iter()
            .filter(|(_, r)| r.finished_ms.is_none() && owned(&r.plan.driver, &r.plan.depot))
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        let ids: Vec<RouteId> = ids.into_iter().cloned().collect();
        for id in ids {
            if let Some(run) = self.routes.get_mut(&id) {
                run.tick(&self.cfg, now_ms, out);
            }
        }
    }

    /// The dispatcher's view of a route, ETAs computed from the newest fix.
    pub fn route_view(&self, id: &RouteId) -> Option<RouteView> {
        self.routes.get(id).map(|r| RouteView::of(&self.cfg, r))
    }

    /// A recipient's current view of a parcel.
    pub fn parcel_status(&self, tracking: &TrackingNumber) -> Option<ParcelStatus> {
        let run = self.routes.get(self.by_tracking.get(tracking)?)?;
        crate::fleet::view::parcel_status(&self.cfg, run, tracking)
    }

    /// The status of parcel `tracking` as route `route` sees it (the parcel may have moved to a
    /// newer route since, which [`FleetCore::parcel_status`] would answer for).
    pub fn parcel_status_on(
        &self,
        route: &RouteId,
        tracking: &TrackingNumber,
    ) -> Option<ParcelStatus> {
        let run = self.routes.get(route)?;
        crate::fleet::view::parcel_status(&self.cfg, run, tracking)
    }

    /// Ids of the routes of a depot, sorted.
    pub fn routes_of_depot(&self, depot: &DepotId) -> Vec<RouteId> {
        let mut v: Vec<RouteId> = self
            .routes
            .values()
            .filter(|r| &r.plan.depot == depot)
            .map(|r| r.plan.id.clone())
            .collect();
        v.sort();
        v
    }

    /// The route a driver currently drives (or last drove).
    pub fn route_of_driver(&self, driver: &DriverId) -> Option<&RouteId> {
        self.by_driver.get(driver)
    }

    /// The instructions the driver should see for a parcel: the recipient's if set, else the
    /// plan's for its stop.
    pub fn instructions(&self, tracking: &TrackingNumber) -> Option<&str> {
        let run = self.routes.get(self.by_tracking.get(tracking)?)?;
        let p = run.parcels.iter().find(|p| &p.tracking == tracking)?;
        Some(
            p.instructions
                .as_deref()
                .unwrap_or(&run.plan.stops[p.stop].instructions),
        )
    }

    /// The run of route `id`, if live.
    pub fn run(&self, id: &RouteId) -> Option<&RouteRun> {
        self.routes.get(id)
    }

    /// A borrowed snapshot of every route, to serialize (serde: JSON or bincode) and later
    /// read back as a [`CoreSnapshot`] for [`FleetCore::restore`].
    pub fn snapshot(&self) -> CoreSnapshotRef<'_> {
        CoreSnapshotRef {
            routes: self.routes.values().collect(),
        }
    }

    /// The fleet's ETA calibration, for a snapshot (the fleet-wide one; per-partition
    /// calibrations are not in local snapshots: a cluster gateway that keeps them rebuilds
    /// them from the stream).
    pub fn calibration(&self) -> &Calibration {
        static NONE: std::sync::LazyLock<Calibration> =
            std::sync::LazyLock::new(Calibration::default);
        self.calibration.get(&0).map_or(&*NONE, |c| &c.0)
    }

    /// Puts back a snapshot's ETA calibration.
    pub fn restore_calibration(&mut self, c: Calibration) {
        let windows = c.windows(self.cfg.eta.window_coverage);
        self.calibration.insert(0, (c, windows));
        for run in self.routes.values_mut() {
            run.windows = windows;
        }
    }

    /// Forgets the calibrations of the partitions `gone` selects (their partition passed to
    /// another gateway).
    pub fn forget_calibration(&mut self, gone: impl Fn(u32) -> bool) {
        if self.cfg.calibration_groups > 1 {
            self.calibration.retain(|g, _| !gone(*g));
        }
    }

    /// Rebuilds a core from a snapshot. A parcel on several routes (a failed attempt and its
    /// re-attempt) follows the one it followed live, whatever the snapshot's order
    /// ([`holds_rank`]): gateways restored from snapshots of one fold agree.
    pub fn restore(cfg: CoreConfig, snap: CoreSnapshot) -> FleetCore {
        let mut core = FleetCore::new(cfg);
        let mut best: FastMap<TrackingNumber, HoldsRank> = FastMap::default();
        for run in &snap.routes {
            for p in run.plan.stops.iter().flat_map(|s| &s.parcels) {
                let rank = holds_rank(run, &p.tracking);
                if best.get(&p.tracking).is_none_or(|b| rank > *b) {
                    best.insert(p.tracking.clone(), rank);
                }
            }
        }
        // The rank ends with the route's id.
        core.by_tracking = best.into_iter().map(|(t, rank)| (t, rank.3)).collect();
        for mut run in snap.routes {
            run.rebuild(&core.cfg);
            let unfinished = run.finished_ms.is_none();
            let driver_free = !core.by_driver.contains_key(&run.plan.driver);
            if unfinished || driver_free {
                core.by_driver
                    .insert(run.plan.driver.clone(), run.plan.id.clone());
            }
            core.routes.insert(run.plan.id.clone(), run);
        }
        core
    }
}

/// See [`holds_rank`]: higher holds the parcel.
type HoldsRank = (bool, bool, i64, RouteId);

/// How strongly `run` holds `tracking`, as live assignment left it (the newest route to take a
/// parcel is the one it follows, and a newer route can only take it from a finished route or
/// one it was withdrawn from): an unfinished route it is not withdrawn from, then any
/// unfinished one, then the one finished last; the route id breaks a tie, so that the answer
/// does not depend on the snapshot's order.
fn holds_rank(run: &RouteRun, tracking: &TrackingNumber) -> HoldsRank {
    let unfinished = run.finished_ms.is_none();
    let withdrawn = run
        .parcels
        .iter()
        .any(|q| &q.tracking == tracking && q.withdrawn);
    (
        unfinished && !withdrawn,
        unfinished,
        run.finished_ms.unwrap_or(i64::MAX),
        run.plan.id.clone(),
    )
}

#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod tests;
