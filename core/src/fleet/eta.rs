//! The ETA model: a few numbers learned online from the driver's progress, and the formula
//! that turns them into an arrival estimate and window for any stop ahead.
//!
//! Per fix the core updates the learners (O(1)); a stop's ETA is then its cumulative offset
//! (distance along the route, planned time, service time of the stops before it) combined with
//! the current estimates, so computing one stop's ETA is a handful of flops and nothing is
//! rebuilt per fix.
//!
//! Two estimates are blended:
//!
//! - **distance**: remaining effective distance / learned speed + service time of the stops in
//!   between. Effective distance is the distance along the planned path, with straight legs
//!   (no planned path) stretched by a learned *detour factor*. Speed is an exponentially
//!   forgotten ratio of effective progress to time, excluding time spent at stops (service time
//!   is counted separately), seeded with a prior so the first minutes are sane.
//! - **schedule** (only when every stop has a planned arrival and the order is the planned one):
//!   remaining planned time from the driver's planned position (interpolated between stops)
//!   times a learned *pace* (actual over planned time, forgotten over planned time). The pace
//!   regresses towards 1 for far stops, because today's congestion says little about the
//!   afternoon.

use serde::{Deserialize, Serialize};

use crate::fleet::calibrate::Windows;

/// Knobs of the ETA model (defaults suit a delivery van in a city).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EtaConfig {
    /// Speed assumed before anything is learned, m/s (effective, stops at lights included).
    pub prior_speed_mps: f64,
    /// Weight of the prior speed, in seconds of pseudo-observation.
    pub speed_prior_s: f64,
    /// Time constant of the speed learner, seconds.
    pub speed_tau_s: f64,
    /// Learned speed is clamped to this range, m/s.
    pub min_speed_mps: f64,
    /// Upper clamp of the learned speed, m/s.
    pub max_speed_mps: f64,
    /// Detour factor of straight legs assumed before anything is learned.
    pub prior_detour: f64,
    /// Weight of the prior detour, metres of pseudo-observation.
    pub detour_prior_m: f64,
    /// Driven distance is measured in chunks of at least this many metres (GPS jitter between
    /// close fixes would otherwise add up to phantom distance).
    pub detour_chunk_m: f64,
    /// Upper clamp of the detour factor.
    pub max_detour: f64,
    /// Weight of the schedule estimate when the route has planned arrival times, 0..=1.
    pub schedule_weight: f64,
    /// Weight of the prior pace (1.0), planned seconds of pseudo-observation.
    pub pace_prior_s: f64,
    /// Time constant of the pace learner, planned seconds.
    pub pace_tau_s: f64,
    /// Pace is clamped to `1/max_pace ..= max_pace`.
    pub max_pace: f64,
    /// The learned pace applies fully to the next minutes and regresses to 1 over this many
    /// seconds of remaining planned time.
    pub pace_horizon_s: f64,
    /// Delay recovery: the current delay is expected to shrink by a factor e every this many
    /// seconds of remaining planned time (slack in the plan is used up). 0 = no recovery.
    pub delay_recovery_s: f64,
    /// Service time of a stop without a planned one, before any is observed, seconds.
    pub default_service_s: f64,
    /// Weight of each observed dwell in the learned service time (EWMA alpha).
    pub service_alpha: f64,
    /// Width of the window around the ETA at zero horizon, seconds (with `window_rel`, tuned
    /// on the shared C53 day for 90 % coverage: docs/ROUTES.md).
    pub window_min_s: f64,
    /// Growth of the window on each side of the ETA with the time to go (fraction of it).
    pub window_rel: f64,
    /// Calibrate windows from the fleet's own errors ([`crate::fleet::calibrate`]); the two
    /// knobs above are then the prior. Off by default: see that module for why.
    pub calibrate: bool,
    /// Share of arrivals a calibrated window should hold.
    pub window_coverage: f64,
    /// Errors at a horizon before its calibration fully replaces the formula.
    pub calibration_samples: f64,
    /// Errors after which an older one weighs half.
    pub calibration_half_life: f64,
    /// Narrowest window published, seconds.
    pub window_floor_s: f64,
    /// Samples over gaps longer than this are not learned from, ms (the phone was off).
    pub gap_ms: i64,
}

impl Default for EtaConfig {
    fn default() -> Self {
        EtaConfig {
            prior_speed_mps: 7.0,
            speed_prior_s: 60.0,
            speed_tau_s: 300.0,
            min_speed_mps: 1.0,
            max_speed_mps: 35.0,
            prior_detour: 1.35,
            detour_prior_m: 500.0,
            detour_chunk_m: 50.0,
            max_detour: 3.0,
            schedule_weight: 0.7,
            pace_prior_s: 120.0,
            pace_tau_s: 600.0,
            max_pace: 2.5,
            pace_horizon_s: 1800.0,
            delay_recovery_s: 0.0,
            default_service_s: 120.0,
            service_alpha: 0.2,
            window_min_s: 330.0,
            window_rel: 0.11,
            calibrate: false,
            window_coverage: 0.9,
            calibration_samples: 50.0,
            calibration_half_life: 2_000.0,
            window_floor_s: 120.0,
            gap_ms: 180_000,
        }
    }
}

/// An arrival estimate with its window, UTC ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtaWindow {
    /// Best estimate.
    pub eta_ms: i64,
    /// Earliest likely arrival.
    pub earliest_ms: i64,
    /// Latest likely arrival.
    pub latest_ms: i64,
}

/// The online learners of one route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EtaLearner {
    /// Forgotten sum of effective progress, metres.
    dist_m: f64,
    /// Forgotten sum of moving time, seconds.
    time_s: f64,
    /// Sum of driven distance on straight legs, metres.
    driven_m: f64,
    /// Sum of straight-line progress on straight legs, metres.
    straight_m: f64,
    /// Where the current detour chunk started: projected point and straight progress.
    anchor: Option<([f64; 2], f64)>,
    /// Forgotten sum of actual time while following the schedule, seconds.
    actual_s: f64,
    /// Forgotten sum of planned time over the same progress, seconds.
    planned_s: f64,
    /// Learned service time, seconds (None until a dwell is observed).
    service_s: Option<f64>,
}

/// What one stop's ETA is computed from (its cumulative offsets seen from the driver).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Remaining {
    /// Distance along the route to the stop, metres.
    pub path_m: f64,
    /// Part of `path_m` on straight legs.
    pub straight_m: f64,
    /// Service time of the stops before it (and what is left of the current one), seconds.
    pub service_s: f64,
    /// Planned time from the driver's planned position to the stop, seconds, if scheduled.
    pub planned_s: Option<f64>,
    /// The driver's current delay against the plan (actual - planned time at the driver's
    /// position), seconds; 0 without a plan.
    pub delay_s: f64,
    /// Time the driver will still wait before setting off (holding at the origin until the
    /// planned departure), seconds.
    pub wait_s: f64,
}

impl Default for EtaLearner {
    fn default() -> Self {
        EtaLearner {
            dist_m: 0.0,
            time_s: 0.0,
            driven_m: 0.0,
            straight_m: 0.0,
            anchor: None,
            actual_s: 0.0,
            planned_s: 0.0,
            service_s: None,
        }
    }
}

impl EtaLearner {
    /// Current effective speed, m/s.
    pub fn speed_mps(&self, cfg: &EtaConfig) -> f64 {
        let v = (self.dist_m + cfg.prior_speed_mps * cfg.speed_prior_s)
            / (self.time_s + cfg.speed_prior_s).max(1e-6);
        v.clamp(cfg.min_speed_mps, cfg.max_speed_mps)
    }

    /// Current detour factor of straight legs.
    pub fn detour(&self, cfg: &EtaConfig) -> f64 {
        let f = (self.driven_m + cfg.prior_detour * cfg.detour_prior_m)
            / (self.straight_m + cfg.detour_prior_m).max(1e-6);
        f.clamp(1.0, cfg.max_detour)
    }

    /// Current pace: actual time per planned time.
    pub fn pace(&self, cfg: &EtaConfig) -> f64 {
        let p = (self.actual_s + cfg.pace_prior_s) / (self.planned_s + cfg.pace_prior_s).max(1e-6);
        p.clamp(1.0 / cfg.max_pace, cfg.max_pace)
    }

    /// Service time to assume for a stop with none planned, seconds.
    pub fn service_s(&self, cfg: &EtaConfig) -> f64 {
        self.service_s.unwrap_or(cfg.default_service_s)
    }

    /// Learns from `dt_s` seconds of travel that made `eff_m` metres of effective progress.
    /// Time spent at a stop is not travel: the caller passes `at_stop` and it is skipped.
    pub fn observe_travel(&mut self, cfg: &EtaConfig, dt_s: f64, eff_m: f64, at_stop: bool) {
        if at_stop || dt_s <= 0.0 || dt_s * 1000.0 > cfg.gap_ms as f64 {
            return;
        }
        // Clamp what one sample can claim: a GPS jump must not teach 200 km/h.
        let eff_m = eff_m.clamp(0.0, cfg.max_speed_mps * dt_s);
        let decay = (-dt_s / cfg.speed_tau_s).exp();
        self.dist_m = self.dist_m * decay + eff_m;
        self.time_s = self.time_s * decay + dt_s;
    }

    /// Learns the pace from `dt_s` actual seconds that covered `planned_dt_s` planned seconds.
    pub fn observe_schedule(&mut self, cfg: &EtaConfig, dt_s: f64, planned_dt_s: f64) {
        if dt_s <= 0.0 || dt_s * 1000.0 > cfg.gap_ms as f64 || planned_dt_s < 0.0 {
            return;
        }
        // Forgetting runs on the larger of the two clocks, so a long wait also ages old pace.
        let decay = (-(planned_dt_s.max(dt_s)) / cfg.pace_tau_s).exp();
        self.actual_s = self.actual_s * decay + dt_s;
        self.planned_s = self.planned_s * decay + planned_dt_s;
    }

    /// Learns the detour factor from a fix at `xy` with straight-leg progress `straight_m`.
    /// `on_straight` says whether the fix is on a straight leg; on planned paths the chunk is
    /// dropped (the path already has the road's length).
    pub fn observe_position(
        &mut self,
        cfg: &EtaConfig,
        xy: [f64; 2],
        straight_m: f64,
        on_straight: bool,
    ) {
        if !on_straight {
            self.anchor = None;
            return;
        }
        match self.anchor {
            None => self.anchor = Some((xy, straight_m)),
            Some((a, s0)) => {
                let driven = ((xy[0] - a[0]).powi(2) + (xy[1] - a[1]).powi(2)).sqrt();
                if driven >= cfg.detour_chunk_m {
                    let progress = straight_m - s0;
                    // Only forward chunks teach anything; a chunk going backwards is a
                    // wrong turn or a re-localisation.
                    if progress > 0.0 {
                        self.driven_m += driven;
                        self.straight_m += progress;
                    }
                    self.anchor = Some((xy, straight_m));
                }
            }
        }
    }

    /// Learns the service time from an observed dwell, seconds.
    pub fn observe_dwell(&mut self, cfg: &EtaConfig, dwell_s: f64) {
        let d = dwell_s.clamp(0.0, 3600.0);
        self.service_s = Some(match self.service_s {
            None => d,
            Some(s) => s + cfg.service_alpha * (d - s),
        });
    }

    /// The learners' current values, to apply to many stops at once.
    pub fn current(&self, cfg: &EtaConfig) -> EtaNow {
        EtaNow {
            speed_mps: self.speed_mps(cfg),
            detour: self.detour(cfg),
            pace: self.pace(cfg),
        }
    }

    /// The estimate for a stop at `rem` from a driver seen at `t_ms`.
    pub fn estimate(
        &self,
        cfg: &EtaConfig,
        rem: &Remaining,
        t_ms: i64,
        windows: &Windows,
    ) -> EtaWindow {
        self.current(cfg).estimate(cfg, rem, t_ms, windows)
    }
}

/// The learners' values at one fix: read once, applied to every stop ahead.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EtaNow {
    /// Effective speed, m/s.
    pub speed_mps: f64,
    /// Detour factor of straight legs.
    pub detour: f64,
    /// Actual over planned time.
    pub pace: f64,
}

impl EtaNow {
    /// The estimate for a stop at `rem` from a driver seen at `t_ms`.
    pub fn estimate(
        &self,
        cfg: &EtaConfig,
        rem: &Remaining,
        t_ms: i64,
        windows: &Windows,
    ) -> EtaWindow {
        let eff_m = rem.path_m.max(0.0) + (self.detour - 1.0) * rem.straight_m.max(0.0);
        let by_distance = eff_m / self.speed_mps + rem.service_s.max(0.0);
        let to_go_s = match rem.planned_s {
            Some(planned) if cfg.schedule_weight > 0.0 => {
                let planned = planned.max(0.0);
                let fade = (-planned / cfg.pace_horizon_s.max(1.0)).exp();
                let pace = 1.0 + (self.pace - 1.0) * fade;
                let w = cfg.schedule_weight.clamp(0.0, 1.0);
                let recovered = if cfg.delay_recovery_s > 0.0 {
                    rem.delay_s * (1.0 - (-planned / cfg.delay_recovery_s).exp())
                } else {
                    0.0
                };
                w * (planned * pace - recovered).max(0.0) + (1.0 - w) * by_distance
            }
            _ => by_distance,
        } + rem.wait_s.max(0.0);
        // `as` saturates a float; the sums saturate too: no input can overflow here.
        let eta_ms = t_ms.saturating_add((to_go_s * 1000.0) as i64);
        // The fixed formula: the prior of a calibrated window, or the window itself.
        // Symmetric: on the C53 day early and late misses were about as many (an earlier
        // shape with half the growth on the early side missed early as often as late).
        let side = cfg.window_min_s / 2.0 + cfg.window_rel * to_go_s;
        let formula = (side, side);
        let (earliest_ms, latest_ms) = if cfg.calibrate {
            windows.around(
                eta_ms,
                to_go_s,
                t_ms,
                formula,
                cfg.calibration_samples,
                cfg.window_floor_s,
            )
        } else {
            (
                eta_ms.saturating_sub((formula.0 * 1000.0) as i64).max(t_ms),
                eta_ms.saturating_add((formula.1 * 1000.0) as i64),
            )
        };
        EtaWindow {
            eta_ms,
            earliest_ms,
            latest_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_learns_and_ignores_stops() {
        let cfg = EtaConfig::default();
        let mut l = EtaLearner::default();
        assert!((l.speed_mps(&cfg) - cfg.prior_speed_mps).abs() < 1e-9);
        for _ in 0..600 {
            l.observe_travel(&cfg, 1.0, 12.0, false);
        }
        // The prior keeps a small say (60 pseudo-seconds against ~300 s of memory).
        let v = l.speed_mps(&cfg);
        assert!((10.5..12.0).contains(&v), "{v}");
        for _ in 0..600 {
            l.observe_travel(&cfg, 1.0, 0.0, true);
        }
        assert_eq!(l.speed_mps(&cfg), v);
        // A GPS jump is clamped.
        l.observe_travel(&cfg, 1.0, 5_000.0, false);
        assert!(l.speed_mps(&cfg) < 13.0);
    }

    #[test]
    fn detour_is_driven_over_straight() {
        let cfg = EtaConfig::default();
        let mut l = EtaLearner::default();
        // Drive an L, 100 m east then 100 m north, while straight progress is 141 m; 20 times.
        for _ in 0..20 {
            l.anchor = None;
            let mut s = 0.0;
            for i in 0..=200 {
                let xy = if i <= 100 {
                    [i as f64, 0.0]
                } else {
                    [100.0, (i - 100) as f64]
                };
                s += 141.4 / 200.0;
                l.observe_position(&cfg, xy, s, true);
            }
        }
        let f = l.detour(&cfg);
        assert!((f - 1.414).abs() < 0.1, "{f}");
    }

    #[test]
    fn pace_scales_schedule_and_fades() {
        let cfg = EtaConfig {
            schedule_weight: 1.0,
            ..EtaConfig::default()
        };
        let mut l = EtaLearner::default();
        for _ in 0..100 {
            l.observe_schedule(&cfg, 15.0, 10.0);
        }
        let pace = l.pace(&cfg);
        assert!((1.3..1.5).contains(&pace), "{pace}");
        let rem = |planned| Remaining {
            path_m: 0.0,
            straight_m: 0.0,
            service_s: 0.0,
            planned_s: Some(planned),
            delay_s: 0.0,
            wait_s: 0.0,
        };
        let near = l.estimate(&cfg, &rem(60.0), 0, &Windows::default());
        assert!(
            (near.eta_ms as f64 - 60_000.0 * pace).abs() < 3_000.0,
            "{near:?}"
        );
        let far = l.estimate(&cfg, &rem(20_000.0), 0, &Windows::default());
        assert!((far.eta_ms as f64 / 20_000_000.0) < 1.1);
        assert!(near.earliest_ms <= near.eta_ms && near.eta_ms <= near.latest_ms);
    }

    #[test]
    fn dwell_learning() {
        let cfg = EtaConfig::default();
        let mut l = EtaLearner::default();
        assert_eq!(l.service_s(&cfg), cfg.default_service_s);
        l.observe_dwell(&cfg, 60.0);
        assert_eq!(l.service_s(&cfg), 60.0);
        l.observe_dwell(&cfg, 160.0);
        assert!((l.service_s(&cfg) - 80.0).abs() < 1e-9);
    }
}
