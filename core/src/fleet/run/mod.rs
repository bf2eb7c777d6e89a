//! One route under way: the plan, its current stop order, the progress of every stop and
//! parcel, the ETA learners, and the per-fix step that turns a fix into updates.
//!
//! [`RouteRun`] is (de)serializable for snapshots; its geometry ([`RouteGeom`]) is derived from
//! the plan and rebuilt on restore. All methods take the time from their arguments (fix time or
//! the caller's `now_ms`) and never read a clock.
//!
//! Rules decided here (see `docs/ROUTES.md`):
//! - a stop is **served** when every parcel has an outcome, or when the driver has departed it
//!   (the outcome may come later); "N stops away" counts the stops before a parcel's stop, in the
//!   current order, that are not served;
//! - a stop the driver goes past along the route without an arrival (sparse pings) is marked
//!   `passed`: it stays pending and keeps counting as a stop away until an outcome comes, but no
//!   longer blocks the ETA of the stops after it;
//! - a fix older than the newest processed one is ignored (it is history, not news).
//!
//! The per-fix pipeline itself is in `run_step.rs` (child module `step`).

use milepost_proto::route::{
    DispatchEvent, DispatchUpdate, DriverEvent, DriverUpdate, ParcelEvent, ParcelState,
    ParcelUpdate, Route, TrackingNumber, Update,
};
use milepost_proto::Fix;
use serde::{Deserialize, Serialize};

use crate::analytics::RouteTally;
use crate::fleet::calibrate::Windows;
use crate::fleet::config::CoreConfig;
use crate::fleet::eta::{EtaLearner, EtaWindow};
use crate::fleet::path::RouteGeom;
use crate::fleet::progress::{Fence, StopPhase, StopProgress};

mod step;

/// Dynamic state of one stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopRun {
    /// Arrival/departure state machine.
    pub progress: StopProgress,
    /// Enter radius of the geofence, metres (the plan's or the configured default).
    pub radius_m: f64,
    /// Stops before this one in the current order the driver has still to reach (None once
    /// served; the stop the driver is at does not count for the ones after it).
    pub stops_away: Option<u32>,
    /// Last `StopsAway` sent.
    stops_away_sent: Option<u32>,
    /// Latest estimate computed.
    pub eta: Option<EtaWindow>,
    /// ETA last sent in an `EtaChanged`.
    eta_sent_ms: Option<i64>,
    /// The estimates published for it, waiting for its arrival to be scored (horizon bucket,
    /// ETA, seconds to go): the calibration's samples. Not in snapshots (a restart loses a few).
    #[serde(skip)]
    pub(crate) published: Vec<(usize, i64, f64)>,
    /// `ArrivingSoon` was sent.
    soon_sent: bool,
    /// `Delayed` was sent (re-armed when the estimate comes back inside the window).
    delayed_sent: bool,
    /// Fix counter of the last fence check, so a stop is checked once per fix.
    stamp: u64,
}

/// Dynamic state of one parcel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParcelRun {
    /// Tracking number.
    pub tracking: TrackingNumber,
    /// Index of its stop in `plan.stops`.
    pub stop: usize,
    /// Where it is.
    pub state: ParcelState,
    /// Instructions set by the recipient (overrides the plan's for the driver).
    pub instructions: Option<String>,
    /// The last update emitted for it.
    pub last_event: Option<ParcelUpdate>,
    /// Taken off the route by its recipient (another slot, a pickup point): the driver does
    /// not deliver it here. Not in the snapshot's route image: the core's service book (its
    /// own snapshot section) holds the change, and sets this again on restore.
    #[serde(skip)]
    pub withdrawn: bool,
}

impl ParcelRun {
    /// No fix or outcome changes it any more: it has an outcome, or it was taken off the route.
    pub fn closed(&self) -> bool {
        is_final(self.state) || self.withdrawn
    }
}

/// Where the driver is on the polyline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Loc {
    /// Segment index.
    pub seg: usize,
    /// Distance along the polyline, metres.
    pub along_m: f64,
    /// Straight-leg part of `along_m`.
    pub straight_m: f64,
}

/// A route under way.
#[derive(Debug, Serialize, Deserialize)]
pub struct RouteRun {
    /// The plan as assigned (stops in planned order).
    pub plan: Route,
    /// Current visiting order: indices into `plan.stops`.
    pub(crate) order: Vec<usize>,
    /// Per stop (index in `plan.stops`).
    pub(crate) stops: Vec<StopRun>,
    /// Every parcel, grouped by stop in plan order.
    pub(crate) parcels: Vec<ParcelRun>,
    /// `parcels[first_parcel[i]..first_parcel[i + 1]]` are stop i's.
    first_parcel: Vec<usize>,
    /// When the route started (driver left the depot, or first report).
    pub started_ms: Option<i64>,
    /// When every parcel got an outcome.
    pub finished_ms: Option<i64>,
    /// Time of the newest processed fix.
    pub last_fix_t_ms: Option<i64>,
    /// Where the newest fix lies on the route.
    pub(crate) loc: Option<Loc>,
    /// Next fix must be located on the whole route (after a re-sequencing or a restore).
    relocate: bool,
    /// First position in `order` not behind the driver.
    pub(crate) next_seq: usize,
    /// Speed, detour, pace and service learners.
    pub(crate) learner: EtaLearner,
    /// Every stop has a planned arrival, non-decreasing in the current order.
    schedule_ok: bool,
    /// Driver's planned time at the current position, ms (if `schedule_ok`).
    sched_pos_ms: Option<f64>,
    /// Planned departure from the origin while the driver is still holding there.
    hold_until_ms: Option<i64>,
    /// Prefix sums over `order` of the service time of stops still ahead, seconds.
    svc_prefix: Vec<f64>,
    /// The stop the driver is at, if any.
    pub(crate) at_stop: Option<usize>,
    /// Stops whose fence state needs every fix (dwell clock running, or arrived).
    active: Vec<usize>,
    /// The fleet's calibrated windows, as of this route's latest fix (the core's, copied).
    #[serde(skip)]
    pub(crate) windows: Windows,
    /// Scaled errors of published estimates whose arrival was just observed (horizon bucket,
    /// error), for the core's calibration to take.
    #[serde(skip)]
    pub(crate) errors: Vec<(usize, f64)>,
    /// What analytics need of this route (distance, alerts, the ETAs shown): not in the
    /// route's image; the core's snapshot carries it as a section of its own.
    #[serde(skip)]
    pub tally: RouteTally,
    /// `OffRoute` was sent and not cleared.
    pub off_route: bool,
    /// Consecutive off-route fixes.
    off_run: u8,
    /// `DriverStalled` was sent and not cleared.
    pub stalled: bool,
    /// Last time the driver moved `move_m` from the anchor.
    last_moved_ms: i64,
    /// Position of the last movement.
    move_anchor: Option<[f64; 2]>,
    /// Stop and minutes of the last `RunningLate`.
    late_sent: Option<(usize, u32)>,
    /// Last time the near stops' ETAs were checked.
    near_checked_ms: i64,
    /// A stop event happened since: check the ETAs on the next fix whatever the interval.
    eta_dirty: bool,
    /// Last time every stop's ETA was checked (not just the near ones).
    far_checked_ms: i64,
    /// Fixes processed.
    fix_count: u64,
    /// Largest enter radius of the route's stops, metres.
    max_radius_m: f64,
    /// Derived from `plan` and `order`; rebuilt after a restore.
    #[serde(skip)]
    geom: Option<Box<RouteGeom>>,
}

impl RouteRun {
    /// A new, not yet started run of a validated `route`.
    pub fn new(cfg: &CoreConfig, route: Route) -> RouteRun {
        let n = route.stops.len();
        let mut parcels = Vec::new();
        let mut first_parcel = Vec::with_capacity(n + 1);
        let mut stops = Vec::with_capacity(n);
        for (i, s) in route.stops.iter().enumerate() {
            first_parcel.push(parcels.len());
            parcels.extend(s.parcels.iter().map(|p| ParcelRun {
                tracking: p.tracking.clone(),
                stop: i,
                state: ParcelState::Planned,
                instructions: None,
                withdrawn: false,
                last_event: None,
            }));
            stops.push(StopRun {
                progress: StopProgress::default(),
                radius_m: s.radius_m.unwrap_or(cfg.default_radius_m),
                stops_away: None,
                stops_away_sent: None,
                eta: None,
                eta_sent_ms: None,
                published: Vec::new(),
                soon_sent: false,
                delayed_sent: false,
                stamp: 0,
            });
        }
        first_parcel.push(parcels.len());
        let mut run = RouteRun {
            order: (0..n).collect(),
            stops,
            parcels,
            first_parcel,
            started_ms: None,
            finished_ms: None,
            last_fix_t_ms: None,
            loc: None,
            relocate: true,
            next_seq: 0,
            learner: EtaLearner::default(),
            schedule_ok: false,
            sched_pos_ms: None,
            hold_until_ms: None,
            svc_prefix: Vec::new(),
            at_stop: None,
            active: Vec::new(),
            windows: Windows::default(),
            errors: Vec::new(),
            tally: RouteTally::default(),
            off_route: false,
            off_run: 0,
            stalled: false,
            last_moved_ms: route.planned_start_ms,
            move_anchor: None,
            late_sent: None,
            near_checked_ms: i64::MIN,
            eta_dirty: true,
            far_checked_ms: i64::MIN,
            fix_count: 0,
            max_radius_m: 0.0,
            geom: None,
            plan: route,
        };
        run.rebuild(cfg);
        run
    }

    /// Takes over what a replaced run of the same route had learned and reported: start,
    /// newest fix, learners, and the progress of stops and parcels that are still in the plan.
    pub fn carry_over(&mut self, old: RouteRun) {
        self.started_ms = old.started_ms;
        self.last_fix_t_ms = old.last_fix_t_ms;
        self.learner = old.learner;
        self.tally = old.tally;
        self.last_moved_ms = old.last_moved_ms;
        self.move_anchor = old.move_anchor;
        for (i, s) in self.plan.stops.iter().enumerate() {
            if let Some(j) = old.plan.stops.iter().position(|o| o.id == s.id) {
                let o = &old.stops[j];
                let st = &mut self.stops[i];
                st.progress = o.progress.clone();
                st.stops_away_sent = o.stops_away_sent;
                st.eta_sent_ms = o.eta_sent_ms;
                st.soon_sent = o.soon_sent;
                st.delayed_sent = o.delayed_sent;
            }
        }
        for p in &mut self.parcels {
            if let Some(o) = old.parcels.iter().find(|o| o.tracking == p.tracking) {
                p.state = o.state;
                p.instructions = o.instructions.clone();
                p.withdrawn = o.withdrawn;
                p.last_event = o.last_event.clone();
            }
        }
        // A stop whose parcels all have outcomes is done, whatever the old stop said.
        for i in 0..self.stops.len() {
            if self.stop_parcels(i).iter().all(|p| p.closed()) {
                self.stops[i].progress.phase = StopPhase::Done;
            }
        }
    }

    /// Rebuilds everything derived from the plan and the order (after assignment, re-sequencing
    /// or a restore from a snapshot).
    pub fn rebuild(&mut self, cfg: &CoreConfig) {
        self.geom = Some(Box::new(RouteGeom::build(&self.plan, &self.order)));
        self.max_radius_m = self.stops.iter().map(|s| s.radius_m).fold(0.0, f64::max);
        self.relocate = true;
        let planned: Vec<Option<i64>> = self
            .order
            .iter()
            .map(|&i| self.plan.stops[i].planned_arrival_ms)
            .collect();
        self.schedule_ok =
            planned.iter().all(Option::is_some) && planned.windows(2).all(|w| w[0] <= w[1]);
        self.active = (0..self.stops.len())
            .filter(|&i| {
                let p = &self.stops[i].progress;
                p.inside_since_ms.is_some() || p.phase == StopPhase::Arrived
            })
            .collect();
        self.refresh_service(cfg);
    }

    /// For a route moved whole from another core (a partition's image), whose every other
    /// field is as it was there: only the geometry, which is not serialized, is built again
    /// (not [`RouteRun::rebuild`], which also asks for a new estimate and a new location).
    pub(crate) fn rebuild_moved(&mut self) {
        self.geom = Some(Box::new(RouteGeom::build(&self.plan, &self.order)));
    }

    /// Sets a new visiting order (a permutation of stop indices, checked by the caller).
    pub fn resequence(
        &mut self,
        cfg: &CoreConfig,
        order: Vec<usize>,
        t_ms: i64,
        out: &mut Vec<Update>,
    ) {
        self.order = order;
        self.loc = None;
        self.next_seq = 0;
        self.late_sent = None;
        self.rebuild(cfg);
        out.push(
            self.driver_update(DriverEvent::Resequenced {
                order: self
                    .order
                    .iter()
                    .map(|&i| self.plan.stops[i].id.clone())
                    .collect(),
            }),
        );
        self.refresh_stops_away(cfg, t_ms, out);
    }

    /// Processes one fix (see the module rules).
    pub fn on_fix(&mut self, cfg: &CoreConfig, fix: &Fix, out: &mut Vec<Update>) {
        if self.finished_ms.is_some() || self.last_fix_t_ms.is_some_and(|last| fix.t_ms <= last) {
            return;
        }
        let geom = match self.geom.take() {
            Some(g) => g,
            None => Box::new(RouteGeom::build(&self.plan, &self.order)),
        };
        self.step(cfg, &geom, fix, out);
        self.geom = Some(geom);
    }

    /// Marks the route started at `t_ms` (idempotent).
    pub fn start(&mut self, cfg: &CoreConfig, t_ms: i64, out: &mut Vec<Update>) {
        if self.started_ms.is_some() {
            return;
        }
        self.started_ms = Some(t_ms);
        self.last_moved_ms = t_ms;
        out.push(self.dispatch(t_ms, DispatchEvent::RouteStarted));
        for k in 0..self.parcels.len() {
            if self.parcels[k].state == ParcelState::Planned {
                self.parcels[k].state = ParcelState::OutForDelivery;
                self.emit_parcel(k, t_ms, ParcelEvent::OutForDelivery, out);
            }
        }
        self.refresh_stops_away(cfg, t_ms, out);
    }

    /// Stall detection, driven by the caller's clock.
    pub fn tick(&mut self, cfg: &CoreConfig, now_ms: i64, out: &mut Vec<Update>) {
        let Some(started) = self.started_ms else {
            return;
        };
        if self.finished_ms.is_some() || self.stalled {
            return;
        }
        let last_fix = self.last_fix_t_ms.unwrap_or(started);
        let no_fix = now_ms.saturating_sub(last_fix) > cfg.stall_no_fix_ms;
        let still = self.at_stop.is_none()
            && now_ms.saturating_sub(self.last_moved_ms) > cfg.stall_no_move_ms;
        if no_fix || still {
            self.stalled = true;
            let since = if no_fix { last_fix } else { self.last_moved_ms };
            let idle_s = (now_ms.saturating_sub(since).max(0) / 1000).min(u32::MAX as i64) as u32;
            out.push(self.dispatch(last_fix, DispatchEvent::DriverStalled { idle_s, no_fix }));
        }
    }

    /// The parcel with tracking number `t`, if it is on this route.
    pub fn parcel(&self, t: &TrackingNumber) -> Option<&ParcelRun> {
        self.parcels.iter().find(|p| &p.tracking == t)
    }

    /// The parcels of stop `i`.
    pub(crate) fn stop_parcels(&self, i: usize) -> &[ParcelRun] {
        &self.parcels[self.first_parcel[i]..self.first_parcel[i + 1]]
    }

    /// Range of parcel indices of stop `i`.
    pub(crate) fn parcel_range(&self, i: usize) -> std::ops::Range<usize> {
        self.first_parcel[i]..self.first_parcel[i + 1]
    }

    /// Fresh estimate for stop `i` from the newest fix, if it lies ahead of the driver.
    pub(crate) fn fresh_eta(&self, cfg: &CoreConfig, i: usize) -> Option<EtaWindow> {
        let (geom, loc, t) = (self.geom.as_ref()?, self.loc?, self.last_fix_t_ms?);
        if self.finished_ms.is_some() || !self.stops[i].progress.ahead() {
            return None;
        }
        let q = self.order.iter().position(|&j| j == i)?;
        if q < self.next_seq {
            return None;
        }
        let now = self.learner.current(&cfg.eta);
        let rem = self.remaining(cfg, geom, &loc, q, t);
        Some(now.estimate(&cfg.eta, &rem, t, &self.windows))
    }

    /// Recomputes the service prefix sums (after a stop is served, arrived at, or a dwell is
    /// learned): O(stops), on events, never per fix.
    pub(crate) fn refresh_service(&mut self, cfg: &CoreConfig) {
        self.eta_dirty = true;
        let learned = self.learner.service_s(&cfg.eta);
        self.svc_prefix.clear();
        self.svc_prefix.push(0.0);
        let mut acc = 0.0;
        for &i in &self.order {
            if self.stops[i].progress.ahead() {
                acc += self.plan.stops[i].service_s.map_or(learned, f64::from);
            }
            self.svc_prefix.push(acc);
        }
    }

    /// Recomputes "N stops away" for every stop and emits the changes within the horizon.
    pub(crate) fn refresh_stops_away(
        &mut self,
        cfg: &CoreConfig,
        t_ms: i64,
        out: &mut Vec<Update>,
    ) {
        if self.started_ms.is_none() {
            return;
        }
        let mut before = 0u32;
        // Before the trip's departure every stop is still to be served, wherever the vehicle
        // waits (a bus laid over by its third stop will first go round to its terminal).
        let holding = self.hold_until_ms.is_some();
        for q in 0..self.order.len() {
            let i = self.order[q];
            // Served, left, or driven past without stopping: not a stop the driver will serve
            // before the ones after it (a passed stop counts again if the driver turns back).
            let p = &self.stops[i].progress;
            let served =
                !holding && (p.passed || matches!(p.phase, StopPhase::Done | StopPhase::Departed));
            // While holding, an origin the vehicle has reached is where the trip begins: not a
            // stop before the others.
            let here = match holding {
                true => q == 0 && p.phase != StopPhase::Pending,
                false => p.phase == StopPhase::Arrived,
            };
            if served {
                self.stops[i].stops_away = None;
                continue;
            }
            self.stops[i].stops_away = Some(before);
            // The stop the driver is at is not ahead of the ones after it: theirs is the next
            // stop ("0 stops away") while the driver serves it.
            if here {
                continue;
            }
            if before <= cfg.stops_away_horizon && self.stops[i].stops_away_sent != Some(before) {
                self.stops[i].stops_away_sent = Some(before);
                for k in self.parcel_range(i) {
                    if !self.parcels[k].closed() {
                        self.emit_parcel(k, t_ms, ParcelEvent::StopsAway { n: before }, out);
                    }
                }
            }
            before += 1;
        }
    }

    /// Emits a parcel update and remembers it as the parcel's last event.
    pub(crate) fn emit_parcel(
        &mut self,
        k: usize,
        t_ms: i64,
        kind: ParcelEvent,
        out: &mut Vec<Update>,
    ) {
        let u = ParcelUpdate {
            tracking: self.parcels[k].tracking.clone(),
            fix_t_ms: t_ms,
            kind,
        };
        self.parcels[k].last_event = Some(u.clone());
        out.push(Update::Parcel(u));
    }

    /// Emits `kind` for every parcel of stop `i` without an outcome.
    fn emit_stop(&mut self, i: usize, t_ms: i64, kind: &ParcelEvent, out: &mut Vec<Update>) {
        for k in self.parcel_range(i) {
            if !self.parcels[k].closed() {
                self.emit_parcel(k, t_ms, kind.clone(), out);
            }
        }
    }

    /// A dispatcher update about this route.
    pub(crate) fn dispatch(&self, t_ms: i64, kind: DispatchEvent) -> Update {
        Update::Dispatch(DispatchUpdate {
            route_id: self.plan.id.clone(),
            driver: self.plan.driver.clone(),
            fix_t_ms: t_ms,
            kind,
        })
    }

    /// An update for this route's driver.
    pub(crate) fn driver_update(&self, kind: DriverEvent) -> Update {
        Update::Driver(DriverUpdate {
            driver: self.plan.driver.clone(),
            route_id: self.plan.id.clone(),
            kind,
        })
    }

    /// The fence of stop `i`.
    fn fence(&self, cfg: &CoreConfig, i: usize) -> Fence {
        let r = self.stops[i].radius_m;
        Fence {
            enter_m: r,
            exit_m: r * cfg.exit_factor,
            dwell_ms: cfg.dwell_ms,
            accuracy_factor: cfg.accuracy_factor,
        }
    }
}

/// A parcel state that no fix can change.
pub(crate) fn is_final(s: ParcelState) -> bool {
    matches!(
        s,
        ParcelState::Delivered | ParcelState::Failed | ParcelState::Returned
    )
}
