//! Stop progress: the per-stop state machine that infers arrival and departure from fixes.
//!
//! One noisy point never makes an arrival. The rules (documented in `docs/ROUTES.md`):
//!
//! - **Inside** the geofence: the fix's accuracy circle lies within the enter radius,
//!   `distance + accuracy <= radius`. Only such a fix starts the dwell clock.
//! - The clock keeps running while fixes stay within the **exit radius**
//!   (`radius * exit_factor`, centre distance): jitter at the fence edge neither restarts nor
//!   stops it (hysteresis).
//! - **Arrived** once a fix inside the exit radius comes `dwell` after the first inside fix;
//!   the arrival time is that first inside fix.
//! - **Departed** once a fix is certainly outside the exit radius
//!   (`distance - accuracy > exit radius`), or two fixes in a row have their centre outside it.
//! - A stop with an outcome is **done**: fixes no longer change it. A departed stop without an
//!   outcome can be arrived at again (the driver came back).

use serde::{Deserialize, Serialize};

/// Where a stop is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopPhase {
    /// Not reached yet (or reached and left without being detected: see `passed`).
    Pending,
    /// The driver is at the stop.
    Arrived,
    /// The driver was at the stop and left, and no outcome is reported yet.
    Departed,
    /// Every parcel of the stop has an outcome.
    Done,
}

/// The geofence of one stop, in metres and milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fence {
    /// Enter radius: the accuracy circle must be within it to start the dwell clock.
    pub enter_m: f64,
    /// Exit radius (>= enter): leaving it ends a visit or resets the dwell clock.
    pub exit_m: f64,
    /// How long the driver must stay before an arrival is declared.
    pub dwell_ms: i64,
    /// Weight of the fix's accuracy in the inside test (1 = the whole accuracy circle).
    pub accuracy_factor: f64,
}

/// What one fix did to a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceEvent {
    /// Nothing that anyone needs to hear about.
    None,
    /// Arrival confirmed; the driver was first inside at `at_ms`.
    Arrived {
        /// Time of the first inside fix.
        at_ms: i64,
    },
    /// Departure detected at `at_ms`, after arriving at `arrived_ms`.
    Departed {
        /// Arrival time.
        arrived_ms: i64,
        /// Time of the fix that showed the driver gone.
        at_ms: i64,
    },
}

/// Progress of one stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopProgress {
    /// Current phase.
    pub phase: StopPhase,
    /// First fix of the current uninterrupted stay near the stop.
    pub inside_since_ms: Option<i64>,
    /// Consecutive fixes whose centre is outside the exit radius while arrived.
    pub outside_run: u8,
    /// Arrival time of the latest visit.
    pub arrived_ms: Option<i64>,
    /// Departure time of the latest visit.
    pub departed_ms: Option<i64>,
    /// The driver went past the stop along the route without an arrival being detected. The
    /// stop stays pending (and counts as a stop away) until an outcome is reported.
    pub passed: bool,
}

impl Default for StopProgress {
    fn default() -> Self {
        StopProgress {
            phase: StopPhase::Pending,
            inside_since_ms: None,
            outside_run: 0,
            arrived_ms: None,
            departed_ms: None,
            passed: false,
        }
    }
}

impl StopProgress {
    /// Feeds one fix at distance `d_m` from the stop with accuracy `acc_m`, taken at `t_ms`.
    /// Fixes must come in time order (the core drops late ones before this).
    pub fn on_fix(&mut self, fence: &Fence, d_m: f64, acc_m: f64, t_ms: i64) -> FenceEvent {
        match self.phase {
            StopPhase::Done => FenceEvent::None,
            StopPhase::Pending | StopPhase::Departed => {
                let inside = d_m + fence.accuracy_factor * acc_m <= fence.enter_m;
                if d_m > fence.exit_m {
                    self.inside_since_ms = None;
                    return FenceEvent::None;
                }
                let since = match self.inside_since_ms {
                    Some(s) => s,
                    None if inside => {
                        self.inside_since_ms = Some(t_ms);
                        t_ms
                    }
                    None => return FenceEvent::None,
                };
                if t_ms.saturating_sub(since) >= fence.dwell_ms {
                    self.phase = StopPhase::Arrived;
                    self.arrived_ms = Some(since);
                    self.departed_ms = None;
                    self.outside_run = 0;
                    FenceEvent::Arrived { at_ms: since }
                } else {
                    FenceEvent::None
                }
            }
            StopPhase::Arrived => {
                if d_m <= fence.exit_m {
                    self.outside_run = 0;
                    return FenceEvent::None;
                }
                self.outside_run = self.outside_run.saturating_add(1);
                if d_m - acc_m > fence.exit_m || self.outside_run >= 2 {
                    self.phase = StopPhase::Departed;
                    self.inside_since_ms = None;
                    self.departed_ms = Some(t_ms);
                    let arrived_ms = self.arrived_ms.unwrap_or(t_ms);
                    FenceEvent::Departed {
                        arrived_ms,
                        at_ms: t_ms,
                    }
                } else {
                    FenceEvent::None
                }
            }
        }
    }

    /// True if the stop still has to be served (no outcome yet).
    pub fn open(&self) -> bool {
        self.phase != StopPhase::Done
    }

    /// True if the stop still lies ahead for ETA purposes: not done, not visited.
    pub fn ahead(&self) -> bool {
        matches!(self.phase, StopPhase::Pending) && !self.passed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FENCE: Fence = Fence {
        enter_m: 30.0,
        exit_m: 45.0,
        dwell_ms: 20_000,
        accuracy_factor: 1.0,
    };

    fn run(fixes: &[(f64, f64, i64)]) -> (StopProgress, Vec<FenceEvent>) {
        let mut s = StopProgress::default();
        let ev = fixes
            .iter()
            .map(|&(d, a, t)| s.on_fix(&FENCE, d, a, t))
            .filter(|e| *e != FenceEvent::None)
            .collect();
        (s, ev)
    }

    #[test]
    fn one_point_is_not_an_arrival() {
        let (s, ev) = run(&[(100.0, 5.0, 0), (5.0, 5.0, 1_000), (100.0, 5.0, 2_000)]);
        assert!(ev.is_empty());
        assert_eq!(s.phase, StopPhase::Pending);
    }

    #[test]
    fn dwell_then_arrive_then_depart() {
        let fixes: Vec<_> = (0..30).map(|i| (10.0, 5.0, i * 1_000)).collect();
        let (mut s, ev) = run(&fixes);
        assert_eq!(ev, vec![FenceEvent::Arrived { at_ms: 0 }]);
        let e = s.on_fix(&FENCE, 80.0, 5.0, 40_000);
        assert_eq!(
            e,
            FenceEvent::Departed {
                arrived_ms: 0,
                at_ms: 40_000
            }
        );
    }

    #[test]
    fn poor_accuracy_never_starts_the_clock() {
        let fixes: Vec<_> = (0..60).map(|i| (10.0, 25.0, i * 1_000)).collect();
        let (s, ev) = run(&fixes);
        assert!(ev.is_empty() && s.inside_since_ms.is_none());
    }

    #[test]
    fn edge_jitter_does_not_reset_or_depart() {
        // Enter once, then jitter between 28 and 42 m (inside the exit radius).
        let mut fixes = vec![(10.0, 5.0, 0)];
        fixes.extend((1..40).map(|i| (if i % 2 == 0 { 28.0 } else { 42.0 }, 5.0, i * 1_000)));
        let (s, ev) = run(&fixes);
        assert_eq!(ev, vec![FenceEvent::Arrived { at_ms: 0 }]);
        assert_eq!(s.phase, StopPhase::Arrived);
    }

    #[test]
    fn single_outlier_does_not_depart() {
        let fixes: Vec<_> = (0..25).map(|i| (10.0, 5.0, i * 1_000)).collect();
        let (mut s, _) = run(&fixes);
        // Centre just outside the exit radius, but the accuracy circle overlaps it: one such fix
        // is jitter, two in a row are a departure.
        assert_eq!(s.on_fix(&FENCE, 48.0, 10.0, 30_000), FenceEvent::None);
        assert_eq!(s.on_fix(&FENCE, 10.0, 5.0, 31_000), FenceEvent::None);
        assert_eq!(s.on_fix(&FENCE, 48.0, 10.0, 32_000), FenceEvent::None);
        assert!(matches!(
            s.on_fix(&FENCE, 48.0, 10.0, 33_000),
            FenceEvent::Departed { .. }
        ));
    }

    #[test]
    fn leaving_before_dwell_resets_the_clock() {
        let (s, ev) = run(&[
            (5.0, 5.0, 0),
            (5.0, 5.0, 10_000),
            (90.0, 5.0, 15_000),
            (5.0, 5.0, 16_000),
        ]);
        assert!(ev.is_empty());
        assert_eq!(s.inside_since_ms, Some(16_000));
    }

    proptest! {
        /// Whatever the fixes, an arrival is only ever declared after `dwell` of fixes all within
        /// the exit radius, started by an inside fix.
        #[test]
        fn arrival_needs_dwell(ds in proptest::collection::vec((0.0f64..100.0, 1.0f64..30.0), 1..80)) {
            let mut s = StopProgress::default();
            let mut t = 0;
            for (d, a) in ds {
                t += 1_000;
                if let FenceEvent::Arrived { at_ms } = s.on_fix(&FENCE, d, a, t) {
                    prop_assert!(t - at_ms >= FENCE.dwell_ms);
                    prop_assert!(d <= FENCE.exit_m);
                }
            }
        }
    }
}
