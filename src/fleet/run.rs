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

use milepost_proto::route::{
    DispatchEvent, DispatchUpdate, DriverEvent, DriverUpdate, ParcelEvent, ParcelState,
    ParcelUpdate, Route, TrackingNumber, Update,
};
use milepost_proto::Fix;
use serde::{Deserialize, Serialize};

use crate::fleet::engine::CoreConfig;
use crate::fleet::eta::{EtaLearner, EtaNow, EtaWindow, Remaining};
use crate::fleet::path::{dist, Located, RouteGeom};
use crate::fleet::progress::{Fence, FenceEvent, StopPhase, StopProgress};

/// Dynamic state of one stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopRun {
    /// Arrival/departure state machine.
    pub progress: StopProgress,
    /// Enter radius of the geofence, metres (the plan's or the configured default).
    pub radius_m: f64,
    /// Not-served stops before this one in the current order (None once served).
    pub stops_away: Option<u32>,
    /// Last `StopsAway` sent.
    stops_away_sent: Option<u32>,
    /// Latest estimate computed.
    pub eta: Option<EtaWindow>,
    /// ETA last sent in an `EtaChanged`.
    eta_sent_ms: Option<i64>,
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
                last_event: None,
            }));
            stops.push(StopRun {
                progress: StopProgress::default(),
                radius_m: s.radius_m.unwrap_or(cfg.default_radius_m),
                stops_away: None,
                stops_away_sent: None,
                eta: None,
                eta_sent_ms: None,
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
                p.last_event = o.last_event.clone();
            }
        }
        // A stop whose parcels all have outcomes is done, whatever the old stop said.
        for i in 0..self.stops.len() {
            if self.stop_parcels(i).iter().all(|p| is_final(p.state)) {
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
        let no_fix = now_ms - last_fix > cfg.stall_no_fix_ms;
        let still = self.at_stop.is_none() && now_ms - self.last_moved_ms > cfg.stall_no_move_ms;
        if no_fix || still {
            self.stalled = true;
            let since = if no_fix { last_fix } else { self.last_moved_ms };
            let idle_s = ((now_ms - since).max(0) / 1000).min(u32::MAX as i64) as u32;
            out.push(self.dispatch(last_fix, DispatchEvent::DriverStalled { idle_s, no_fix }));
        }
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
        Some(now.estimate(&cfg.eta, &self.remaining(cfg, geom, &loc, q, t), t))
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
        for q in 0..self.order.len() {
            let i = self.order[q];
            let served = matches!(
                self.stops[i].progress.phase,
                StopPhase::Done | StopPhase::Departed
            );
            if served {
                self.stops[i].stops_away = None;
                continue;
            }
            self.stops[i].stops_away = Some(before);
            if before <= cfg.stops_away_horizon && self.stops[i].stops_away_sent != Some(before) {
                self.stops[i].stops_away_sent = Some(before);
                for k in self.parcel_range(i) {
                    if !is_final(self.parcels[k].state) {
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
            if !is_final(self.parcels[k].state) {
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

    /// The per-fix step.
    fn step(&mut self, cfg: &CoreConfig, geom: &RouteGeom, fix: &Fix, out: &mut Vec<Update>) {
        let t = fix.t_ms;
        let xy = geom.project(fix.lat(), fix.lon());
        let acc = f64::from(fix.accuracy_m).clamp(1.0, 1_000.0);
        let dt_s = self
            .last_fix_t_ms
            .map_or(0.0, |l| t.saturating_sub(l) as f64 / 1000.0);
        self.last_fix_t_ms = Some(t);
        self.fix_count += 1;

        if self.started_ms.is_none() {
            let at_depot = self
                .plan
                .start
                .is_some_and(|p| dist(xy, geom.project(p.lat, p.lon)) <= cfg.depot_radius_m);
            if at_depot {
                return;
            }
            self.start(cfg, t, out);
        }

        let (located, jumped) = self.locate(cfg, geom, xy, acc, dt_s);
        let old = self.loc;
        let loc = Loc {
            seg: located.seg,
            along_m: located.along_m,
            straight_m: located.straight_m,
        };
        self.loc = Some(loc);

        // A vehicle at its origin before the planned departure is holding (a bus on layover):
        // it will not leave early, and waiting there teaches nothing about speed or pace.
        self.hold_until_ms = self
            .origin_departure(cfg, geom, loc.along_m)
            .filter(|&d| d > t);
        let holding = self.hold_until_ms.is_some();
        // Learning: only from continuous movement along the route.
        let sched_old = self.sched_pos_ms;
        self.sched_pos_ms = self.sched_at(geom, loc.along_m);
        if let (Some(o), false, false) = (old, jumped, holding) {
            let d_path = (loc.along_m - o.along_m).max(0.0);
            let d_straight = (loc.straight_m - o.straight_m).max(0.0);
            let detour = self.learner.detour(&cfg.eta);
            let eff = d_path + (detour - 1.0) * d_straight;
            self.learner
                .observe_travel(&cfg.eta, dt_s, eff, self.at_stop.is_some());
            if let (Some(a), Some(b)) = (sched_old, self.sched_pos_ms) {
                self.learner
                    .observe_schedule(&cfg.eta, dt_s, ((b - a) / 1000.0).max(0.0));
            }
        }
        self.learner
            .observe_position(&cfg.eta, xy, loc.straight_m, located.straight);

        self.check_off_route(cfg, &located, acc, t, out);
        self.check_fences(cfg, geom, xy, acc, t, out);
        self.advance_pointer(cfg, geom, loc.along_m, jumped, t, out);
        self.check_movement(cfg, xy, t, out);
        self.update_etas(cfg, geom, &loc, t, out);
    }

    /// Locates the fix on the polyline: a small window around the previous position, the whole
    /// route if that fails. Returns the location and whether it is a jump (not continuous).
    fn locate(
        &mut self,
        cfg: &CoreConfig,
        geom: &RouteGeom,
        xy: [f64; 2],
        acc: f64,
        dt_s: f64,
    ) -> (Located, bool) {
        let hint = if self.relocate {
            None
        } else {
            self.loc.map(|l| (l.seg, l.along_m))
        };
        self.relocate = false;
        let Some((_, prev_along)) = hint else {
            return (geom.locate(xy, None, 0.0, 0.0), true);
        };
        let ahead = cfg
            .window_ahead_m
            .max(cfg.eta.max_speed_mps * dt_s.min(120.0));
        let mut found = geom.locate(xy, hint, cfg.window_back_m, ahead);
        let mut jumped = false;
        if found.off_m > cfg.relocate_m + acc {
            let global = geom.locate(xy, None, 0.0, 0.0);
            if global.off_m + cfg.relocate_m * 0.5 < found.off_m {
                found = global;
                jumped = true;
            }
        }
        if !jumped && found.along_m < prev_along {
            if prev_along - found.along_m <= cfg.backtrack_m {
                // GPS noise: do not move backwards.
                if let Some(l) = self.loc {
                    found.along_m = l.along_m;
                    found.straight_m = l.straight_m;
                    found.seg = l.seg;
                }
            } else {
                jumped = true;
            }
        }
        (found, jumped)
    }

    /// The planned departure from the route's origin if the driver is still there: the first
    /// stop of a route without a start point (a bus terminal). Routes with a start point
    /// start only when the driver leaves it, so they never hold here.
    fn origin_departure(&self, cfg: &CoreConfig, geom: &RouteGeom, along_m: f64) -> Option<i64> {
        if self.plan.start.is_some() {
            return None;
        }
        let &first = self.order.first()?;
        let exit = self.stops[first].radius_m * cfg.exit_factor;
        if along_m > geom.stop_pos_m[first] + exit || !self.stops[first].progress.open() {
            return None;
        }
        let stop = &self.plan.stops[first];
        let svc_ms = i64::from(stop.service_s.unwrap_or(0)) * 1000;
        stop.planned_arrival_ms.map(|a| a + svc_ms)
    }

    /// The driver's planned time at `along_m`, interpolated between the stops around it.
    fn sched_at(&self, geom: &RouteGeom, along_m: f64) -> Option<f64> {
        if !self.schedule_ok {
            return None;
        }
        let planned = |i: usize| self.plan.stops[i].planned_arrival_ms.unwrap_or(0) as f64;
        let q = self
            .order
            .partition_point(|&i| geom.stop_pos_m[i] <= along_m);
        let (p0, t0) = if q == 0 {
            (0.0, self.plan.planned_start_ms as f64)
        } else {
            let i = self.order[q - 1];
            let svc = self.plan.stops[i]
                .service_s
                .map_or(0.0, |s| f64::from(s) * 1000.0);
            (geom.stop_pos_m[i], planned(i) + svc)
        };
        let Some(&j) = self.order.get(q) else {
            return Some(t0);
        };
        let (p1, t1) = (geom.stop_pos_m[j], planned(j));
        let f = if p1 - p0 > 1e-6 {
            ((along_m - p0) / (p1 - p0)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        Some(t0 + f * (t1 - t0).max(0.0))
    }

    /// What lies between the driver at `loc` and the stop at order position `q`.
    fn remaining(
        &self,
        cfg: &CoreConfig,
        geom: &RouteGeom,
        loc: &Loc,
        q: usize,
        t: i64,
    ) -> Remaining {
        let i = self.order[q];
        let mut service_s = self.svc_prefix[q] - self.svc_prefix[self.next_seq.min(q)];
        if let Some(cur) = self.at_stop {
            let svc = self.plan.stops[cur]
                .service_s
                .map_or_else(|| self.learner.service_s(&cfg.eta), f64::from);
            let spent = self.stops[cur]
                .progress
                .arrived_ms
                .map_or(0.0, |a| (t - a) as f64 / 1000.0);
            service_s += (svc - spent).max(0.0);
        }
        Remaining {
            path_m: geom.stop_pos_m[i] - loc.along_m,
            straight_m: geom.stop_straight_m[i] - loc.straight_m,
            service_s,
            planned_s: match (self.sched_pos_ms, self.plan.stops[i].planned_arrival_ms) {
                (Some(pos), Some(p)) => Some((p as f64 - pos) / 1000.0),
                _ => None,
            },
            delay_s: self
                .sched_pos_ms
                .map_or(0.0, |pos| (t as f64 - pos) / 1000.0),
            wait_s: self
                .hold_until_ms
                .map_or(0.0, |h| (h - t).max(0) as f64 / 1000.0),
        }
    }

    /// Off-route detection with a two-fix confirmation and a lower threshold to clear.
    fn check_off_route(
        &mut self,
        cfg: &CoreConfig,
        located: &Located,
        acc: f64,
        t: i64,
        out: &mut Vec<Update>,
    ) {
        // Straight legs are not roads: allow a share of the leg's length.
        let allow = cfg.off_route_m
            + acc
            + if located.straight {
                cfg.straight_leg_allowance * located.leg_m
            } else {
                0.0
            };
        if located.off_m > allow {
            self.off_run = self.off_run.saturating_add(1);
            if self.off_run >= 2 && !self.off_route {
                self.off_route = true;
                out.push(self.dispatch(
                    t,
                    DispatchEvent::OffRoute {
                        distance_m: located.off_m as f32,
                    },
                ));
            }
        } else {
            self.off_run = 0;
            if self.off_route && located.off_m < 0.7 * allow {
                self.off_route = false;
                out.push(self.dispatch(t, DispatchEvent::BackOnRoute));
            }
        }
    }

    /// Runs the fence state machine of every stop near the fix, and of the stops whose dwell
    /// clock is running, whatever the planned order (out-of-order service is detected).
    fn check_fences(
        &mut self,
        cfg: &CoreConfig,
        geom: &RouteGeom,
        xy: [f64; 2],
        acc: f64,
        t: i64,
        out: &mut Vec<Update>,
    ) {
        if acc > cfg.max_arrival_accuracy_m {
            return;
        }
        let stamp = self.fix_count;
        let reach = self.max_radius_m * cfg.exit_factor + acc;
        let mut near: [usize; 16] = [0; 16];
        let mut n_near = 0;
        geom.stops_within(xy, reach, |i| {
            if n_near < near.len() {
                near[n_near] = i;
                n_near += 1;
            }
        });
        let n_active = self.active.len();
        for k in 0..n_near + n_active {
            let i = match near[..n_near].get(k) {
                Some(&i) => i,
                None => self.active[k - n_near],
            };
            if self.stops[i].stamp == stamp || !self.stops[i].progress.open() {
                continue;
            }
            self.stops[i].stamp = stamp;
            let fence = self.fence(cfg, i);
            let d = dist(xy, geom.stop_xy[i]);
            match self.stops[i].progress.on_fix(&fence, d, acc, t) {
                FenceEvent::None => {}
                FenceEvent::Arrived { at_ms } => self.on_arrived(cfg, i, at_ms, t, out),
                FenceEvent::Departed { arrived_ms, at_ms } => {
                    self.on_departed(cfg, i, arrived_ms, at_ms, t, out)
                }
            }
        }
        let stops = &self.stops;
        self.active.retain(|&i| {
            let p = &stops[i].progress;
            p.open() && (p.inside_since_ms.is_some() || p.phase == StopPhase::Arrived)
        });
        for &i in &near[..n_near] {
            let p = &self.stops[i].progress;
            if p.open()
                && (p.inside_since_ms.is_some() || p.phase == StopPhase::Arrived)
                && !self.active.contains(&i)
            {
                self.active.push(i);
            }
        }
    }

    fn on_arrived(
        &mut self,
        cfg: &CoreConfig,
        i: usize,
        at_ms: i64,
        t: i64,
        out: &mut Vec<Update>,
    ) {
        self.at_stop = Some(i);
        self.stops[i].progress.passed = false;
        out.push(self.dispatch(
            t,
            DispatchEvent::StopArrived {
                stop: self.plan.stops[i].id.clone(),
                at_ms,
            },
        ));
        for k in self.parcel_range(i) {
            if !is_final(self.parcels[k].state) {
                self.parcels[k].state = ParcelState::Arrived;
            }
        }
        self.emit_stop(i, t, &ParcelEvent::Arrived, out);
        self.refresh_service(cfg);
    }

    fn on_departed(
        &mut self,
        cfg: &CoreConfig,
        i: usize,
        arrived_ms: i64,
        at_ms: i64,
        t: i64,
        out: &mut Vec<Update>,
    ) {
        if self.at_stop == Some(i) {
            self.at_stop = None;
        }
        let dwell_s = ((at_ms - arrived_ms).max(0) / 1000) as f64;
        self.learner.observe_dwell(&cfg.eta, dwell_s);
        out.push(self.dispatch(
            t,
            DispatchEvent::StopDeparted {
                stop: self.plan.stops[i].id.clone(),
                dwell_s: dwell_s as u32,
            },
        ));
        self.refresh_service(cfg);
        self.refresh_stops_away(cfg, t, out);
    }

    /// Moves the "first stop not behind the driver" pointer; stops skipped by continuous
    /// movement without an arrival are marked passed.
    fn advance_pointer(
        &mut self,
        cfg: &CoreConfig,
        geom: &RouteGeom,
        along: f64,
        jumped: bool,
        t: i64,
        out: &mut Vec<Update>,
    ) {
        if jumped {
            self.eta_dirty = true;
            let exit = cfg.default_radius_m * cfg.exit_factor;
            self.next_seq = self
                .order
                .partition_point(|&i| geom.stop_pos_m[i] + exit < along);
            // Stops ahead of the new position are ahead again, even if passed before (the
            // driver turned back for them).
            for q in self.next_seq..self.order.len() {
                self.stops[self.order[q]].progress.passed = false;
            }
            return;
        }
        while let Some(&i) = self.order.get(self.next_seq) {
            let exit = self.stops[i].radius_m * cfg.exit_factor;
            if geom.stop_pos_m[i] + exit >= along {
                break;
            }
            let p = &self.stops[i].progress;
            if p.ahead() && p.inside_since_ms.is_none() {
                self.stops[i].progress.passed = true;
                out.push(self.dispatch(
                    t,
                    DispatchEvent::StopPassed {
                        stop: self.plan.stops[i].id.clone(),
                    },
                ));
            }
            self.next_seq += 1;
        }
    }

    fn check_movement(&mut self, cfg: &CoreConfig, xy: [f64; 2], t: i64, out: &mut Vec<Update>) {
        let moved = match self.move_anchor {
            None => true,
            Some(a) => dist(a, xy) >= cfg.move_m,
        };
        if moved {
            self.move_anchor = Some(xy);
            self.last_moved_ms = t;
        }
        if self.stalled && (moved || t - self.last_moved_ms <= cfg.stall_no_move_ms) {
            self.stalled = false;
            out.push(self.dispatch(t, DispatchEvent::DriverMoving));
        }
    }

    /// Re-estimates the stops ahead: the near ones on every fix, all of them every
    /// `eta_far_interval_ms`; emits what moved more than the threshold.
    fn update_etas(
        &mut self,
        cfg: &CoreConfig,
        geom: &RouteGeom,
        loc: &Loc,
        t: i64,
        out: &mut Vec<Update>,
    ) {
        // The emission threshold is minutes, so re-estimating on every 1 Hz fix is wasted work:
        // near stops every `eta_near_interval_ms` (and at once after a stop event), all stops
        // every `eta_far_interval_ms`. Reads always compute fresh estimates.
        if !self.eta_dirty && t.saturating_sub(self.near_checked_ms) < cfg.eta_near_interval_ms {
            return;
        }
        self.eta_dirty = false;
        self.near_checked_ms = t;
        let full = t.saturating_sub(self.far_checked_ms) >= cfg.eta_far_interval_ms;
        if full {
            self.far_checked_ms = t;
        }
        let now: EtaNow = self.learner.current(&cfg.eta);
        let mut rank = 0;
        for q in self.next_seq..self.order.len() {
            let i = self.order[q];
            if !self.stops[i].progress.ahead() {
                continue;
            }
            rank += 1;
            if rank > cfg.eta_near_stops && !full {
                break;
            }
            let rem = self.remaining(cfg, geom, loc, q, t);
            let w = now.estimate(&cfg.eta, &rem, t);
            self.stops[i].eta = Some(w);
            self.emit_eta_events(cfg, i, &rem, &w, rank == 1, t, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_eta_events(
        &mut self,
        cfg: &CoreConfig,
        i: usize,
        rem: &Remaining,
        w: &EtaWindow,
        first: bool,
        t: i64,
        out: &mut Vec<Update>,
    ) {
        let to_go_s = (w.eta_ms - t) as f64 / 1000.0;
        let threshold_ms =
            (cfg.eta_threshold_s.max(cfg.eta_threshold_rel * to_go_s) * 1000.0) as i64;
        if self.stops[i]
            .eta_sent_ms
            .is_none_or(|e| (e - w.eta_ms).abs() > threshold_ms)
        {
            self.stops[i].eta_sent_ms = Some(w.eta_ms);
            let kind = ParcelEvent::EtaChanged {
                eta_ms: w.eta_ms,
                earliest_ms: w.earliest_ms,
                latest_ms: w.latest_ms,
            };
            self.emit_stop(i, t, &kind, out);
        }
        if !self.stops[i].soon_sent
            && (to_go_s <= cfg.arriving_soon_s || rem.path_m <= cfg.arriving_soon_m)
        {
            self.stops[i].soon_sent = true;
            for k in self.parcel_range(i) {
                if self.parcels[k].state == ParcelState::OutForDelivery {
                    self.parcels[k].state = ParcelState::ArrivingSoon;
                }
            }
            self.emit_stop(i, t, &ParcelEvent::ArrivingSoon, out);
        }
        if let Some(win) = self.plan.stops[i].window {
            if !self.stops[i].delayed_sent && w.eta_ms > win.end_ms {
                self.stops[i].delayed_sent = true;
                let kind = ParcelEvent::Delayed {
                    eta_ms: w.eta_ms,
                    window_end_ms: win.end_ms,
                };
                self.emit_stop(i, t, &kind, out);
            } else if self.stops[i].delayed_sent && w.eta_ms + cfg.delayed_rearm_ms < win.end_ms {
                self.stops[i].delayed_sent = false;
            }
        }
        if first {
            let stop = &self.plan.stops[i];
            let reference = stop.planned_arrival_ms.or(stop.window.map(|w| w.end_ms));
            if let Some(r) = reference {
                let minutes = ((w.eta_ms - r) / 60_000).max(0) as u32;
                let due = match self.late_sent {
                    Some((s, m)) if s == i => minutes >= m + cfg.late_step_min,
                    _ => true,
                };
                if minutes >= cfg.late_threshold_min && due {
                    self.late_sent = Some((i, minutes));
                    out.push(self.dispatch(
                        t,
                        DispatchEvent::RunningLate {
                            stop: stop.id.clone(),
                            minutes,
                        },
                    ));
                }
            }
        }
    }
}

/// A parcel state that no fix can change.
pub(crate) fn is_final(s: ParcelState) -> bool {
    matches!(s, ParcelState::Delivered | ParcelState::Failed)
}
