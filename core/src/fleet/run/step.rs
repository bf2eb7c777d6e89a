//! The per-fix pipeline of a [`RouteRun`](super::RouteRun), in the order it runs: locate the
//! fix on the route, learn from the movement, check off-route, run the stop fences, move the
//! "first stop ahead" pointer, check movement (stalls), re-estimate and emit ETAs.
//!
//! A child module of `run` so it can use the run's private state without widening it.

use milepost_proto::route::{DispatchEvent, ParcelEvent, ParcelState, Update};
use milepost_proto::Fix;

use super::{Loc, RouteRun};
use crate::fleet::calibrate;
use crate::fleet::config::CoreConfig;
use crate::fleet::eta::{EtaNow, EtaWindow, Remaining};
use crate::fleet::path::{dist, Located, RouteGeom};
use crate::fleet::progress::{FenceEvent, StopPhase};

impl RouteRun {
    /// The per-fix step.
    pub(super) fn step(
        &mut self,
        cfg: &CoreConfig,
        geom: &RouteGeom,
        fix: &Fix,
        out: &mut Vec<Update>,
    ) {
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

        // A vehicle before its origin's planned departure is holding (a bus on layover): it
        // will not leave early, and waiting teaches nothing about speed or pace.
        let held = self.hold_until_ms.is_some();
        self.hold_until_ms = self.origin_departure(cfg, geom, loc.along_m, xy, t);
        let holding = self.hold_until_ms.is_some();
        if holding != held {
            self.refresh_stops_away(cfg, t, out);
        }
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
        if !holding && self.advance_pointer(cfg, geom, loc.along_m, jumped, t, out) {
            self.refresh_service(cfg);
            self.refresh_stops_away(cfg, t, out);
        }
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

    /// The planned departure from the route's origin while the trip has not begun: the first
    /// stop of a route without a start point (a bus terminal), before its planned departure or
    /// after it while the vehicle has not moved since, as long as no outcome says the work has
    /// begun. At or before the origin, as any such route; and, on a timetabled route (planned
    /// times in order) whose vehicle has reached its origin, wherever the vehicle is: a bus
    /// waiting for its departure often lays over a few hundred metres into its route, or
    /// loops round the block back to the terminal, and neither is the trip. Routes with a start
    /// point start only when the driver leaves it, so they never hold.
    fn origin_departure(
        &self,
        cfg: &CoreConfig,
        geom: &RouteGeom,
        along_m: f64,
        xy: [f64; 2],
        t: i64,
    ) -> Option<i64> {
        if self.plan.start.is_some() {
            return None;
        }
        let &first = self.order.first()?;
        let origin = &self.stops[first].progress;
        let exit = self.stops[first].radius_m * cfg.exit_factor;
        let at_or_before = along_m <= geom.stop_pos_m[first] + exit;
        let laid_over = self.schedule_ok && origin.phase != StopPhase::Pending;
        if !origin.open() || !(at_or_before || laid_over) {
            return None;
        }
        let stop = &self.plan.stops[first];
        let svc_ms = i64::from(stop.service_s.unwrap_or(0)) * 1000;
        let departure = stop.planned_arrival_ms?.saturating_add(svc_ms);
        // A late departure: still where it waited when the departure time came.
        let still = || {
            self.move_anchor.is_some_and(|a| dist(a, xy) < cfg.move_m)
                && self.last_moved_ms <= departure
        };
        let begun = || self.order.iter().any(|&i| !self.stops[i].progress.open());
        ((departure > t || still()) && !begun()).then_some(departure)
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
    pub(super) fn remaining(
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
                .map_or(0.0, |a| t.saturating_sub(a) as f64 / 1000.0);
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
                .map_or(0.0, |h| h.saturating_sub(t).max(0) as f64 / 1000.0),
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
            // Before the trip begins, only its origin is served.
            if self.hold_until_ms.is_some() && self.order.first() != Some(&i) {
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
        self.score_published(i, at_ms);
        self.stops[i].progress.passed = false;
        out.push(self.dispatch(
            t,
            DispatchEvent::StopArrived {
                stop: self.plan.stops[i].id.clone(),
                at_ms,
            },
        ));
        for k in self.parcel_range(i) {
            if !self.parcels[k].closed() {
                self.parcels[k].state = ParcelState::Arrived;
            }
        }
        self.emit_stop(i, t, &ParcelEvent::Arrived, out);
        self.refresh_service(cfg);
        self.refresh_stops_away(cfg, t, out);
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
        let dwell_s = (at_ms.saturating_sub(arrived_ms).max(0) / 1000) as f64;
        self.learner.observe_dwell(&cfg.eta, dwell_s);
        out.push(self.dispatch(
            t,
            DispatchEvent::StopDeparted {
                stop: self.plan.stops[i].id.clone(),
                dwell_s: dwell_s as u32,
            },
        ));
        // Left without an outcome: the driver is no longer at the recipient's door (nor is
        // the position theirs to see); the parcel is still out for delivery, and the
        // dispatcher hears that the stop was left open.
        if self.parcel_range(i).any(|k| !self.parcels[k].closed()) {
            self.left_open(i, t, out);
        }
        self.refresh_service(cfg);
        self.refresh_stops_away(cfg, t, out);
    }

    /// Moves the "first stop not behind the driver" pointer; stops skipped by continuous
    /// movement without an arrival are marked passed: their recipients are told the parcel is
    /// still out for delivery (no longer "arriving soon"), and they stop counting as stops
    /// away for the stops after them. True if a stop became passed or ahead again.
    fn advance_pointer(
        &mut self,
        cfg: &CoreConfig,
        geom: &RouteGeom,
        along: f64,
        jumped: bool,
        t: i64,
        out: &mut Vec<Update>,
    ) -> bool {
        if jumped {
            self.eta_dirty = true;
            let exit = cfg.default_radius_m * cfg.exit_factor;
            self.next_seq = self
                .order
                .partition_point(|&i| geom.stop_pos_m[i] + exit < along);
            // Stops ahead of the new position are ahead again, even if passed before (the
            // driver turned back for them).
            let mut changed = false;
            for q in self.next_seq..self.order.len() {
                let p = &mut self.stops[self.order[q]].progress;
                changed |= p.passed;
                p.passed = false;
            }
            return changed;
        }
        let mut changed = false;
        while let Some(&i) = self.order.get(self.next_seq) {
            let exit = self.stops[i].radius_m * cfg.exit_factor;
            if geom.stop_pos_m[i] + exit >= along {
                break;
            }
            let p = &self.stops[i].progress;
            if p.ahead() && p.inside_since_ms.is_none() {
                // Driven past: it was reached about when the driver was level with it.
                let speed = self.learner.speed_mps(&cfg.eta).max(1.0);
                let behind_s = (along - geom.stop_pos_m[i]).max(0.0) / speed;
                self.score_published(i, t.saturating_sub((behind_s * 1000.0) as i64));
                self.stops[i].progress.passed = true;
                changed = true;
                self.left_open(i, t, out);
            }
            self.next_seq += 1;
        }
        changed
    }

    /// Scores every estimate published for stop `i` against its arrival at `at_ms` (reached, or
    /// driven past): the samples of the fleet's window calibration.
    fn score_published(&mut self, i: usize, at_ms: i64) {
        for (b, eta_ms, to_go_s) in std::mem::take(&mut self.stops[i].published) {
            self.errors
                .push((b, calibrate::scaled_error(at_ms, eta_ms, to_go_s)));
        }
    }

    /// The driver left or drove past stop `i` without an outcome: the dispatcher hears it
    /// (`StopPassed`), and its parcels shown as arriving or at the door are out for delivery
    /// again, their recipients told.
    fn left_open(&mut self, i: usize, t: i64, out: &mut Vec<Update>) {
        out.push(self.dispatch(
            t,
            DispatchEvent::StopPassed {
                stop: self.plan.stops[i].id.clone(),
            },
        ));
        // A later approach is announced again.
        self.stops[i].soon_sent = false;
        let changed: Vec<usize> = self
            .parcel_range(i)
            .filter(|&k| {
                matches!(
                    self.parcels[k].state,
                    ParcelState::ArrivingSoon | ParcelState::Arrived
                )
            })
            .collect();
        for k in changed {
            self.parcels[k].state = ParcelState::OutForDelivery;
            self.emit_parcel(k, t, ParcelEvent::OutForDelivery, out);
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
        if self.stalled && (moved || t.saturating_sub(self.last_moved_ms) <= cfg.stall_no_move_ms) {
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
            let w = now.estimate(&cfg.eta, &rem, t, &self.windows);
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
        let to_go_s = w.eta_ms.saturating_sub(t) as f64 / 1000.0;
        // Off route, recipients are told nothing new (reads show no estimate): an estimate
        // along a path the driver is not on is no promise. The dispatcher's lateness check
        // below still runs; the first fix back on the route publishes again.
        if self.off_route {
            self.eta_dirty = true;
            self.late_check(cfg, i, w, first, t, out);
            return;
        }
        let threshold_ms =
            (cfg.eta_threshold_s.max(cfg.eta_threshold_rel * to_go_s) * 1000.0) as i64;
        if self.stops[i]
            .eta_sent_ms
            .is_none_or(|e| e.saturating_sub(w.eta_ms).saturating_abs() > threshold_ms)
        {
            self.stops[i].eta_sent_ms = Some(w.eta_ms);
            // Kept to be scored once the arrival is seen: the calibration's sample. Not while
            // the driver has not left (waiting at the depot is another kind of error).
            if cfg.eta.calibrate && self.started_ms.is_some() && self.hold_until_ms.is_none() {
                let published = &mut self.stops[i].published;
                if published.len() >= calibrate::KEPT_PER_STOP {
                    published.remove(0);
                }
                published.push((calibrate::bucket(to_go_s), w.eta_ms, to_go_s));
            }
            let kind = ParcelEvent::EtaChanged {
                eta_ms: w.eta_ms,
                earliest_ms: w.earliest_ms,
                latest_ms: w.latest_ms,
            };
            self.emit_stop(i, t, &kind, out);
        }
        let near_in_stops = self.stops[i]
            .stops_away
            .is_none_or(|n| n <= cfg.arriving_soon_stops);
        // Close by but holding for a departure minutes away is not "arriving soon": the time
        // decides then.
        let close = rem.path_m <= cfg.arriving_soon_m && self.hold_until_ms.is_none();
        if !self.stops[i].soon_sent && near_in_stops && (to_go_s <= cfg.arriving_soon_s || close) {
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
            } else if self.stops[i].delayed_sent
                && w.eta_ms.saturating_add(cfg.delayed_rearm_ms) < win.end_ms
            {
                self.stops[i].delayed_sent = false;
            }
        }
        self.late_check(cfg, i, w, first, t, out);
    }

    /// `RunningLate` for the next stop when its estimate is far past its plan.
    fn late_check(
        &mut self,
        cfg: &CoreConfig,
        i: usize,
        w: &EtaWindow,
        first: bool,
        t: i64,
        out: &mut Vec<Update>,
    ) {
        if first {
            let stop = &self.plan.stops[i];
            let reference = stop.planned_arrival_ms.or(stop.window.map(|w| w.end_ms));
            if let Some(r) = reference {
                let minutes =
                    (w.eta_ms.saturating_sub(r) / 60_000).clamp(0, i64::from(u32::MAX)) as u32;
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
