//! The ETA window, calibrated from the fleet's own errors: every published estimate of a stop
//! is kept until the stop's arrival is observed, and its error (arrival minus estimate), scaled
//! by the time it had to go, goes into a decaying histogram per horizon (how far ahead the
//! estimate was). The window published with an estimate spans the histogram's central
//! quantiles for `eta.window_coverage` at that horizon, so that it holds about that share of
//! arrivals, and is no wider than it needs to be. Until a horizon has `eta.calibration_samples`
//! errors the fixed formula (`eta.window_min_s`, `eta.window_rel`) blends in.
//!
//! Off by default (`eta.calibrate`): on the shared C53 bus day the errors the core measures
//! against its own arrival detection have heavier tails than those against the observed
//! arrivals, and the calibrated windows came out wider than the tuned formula's for less
//! coverage (docs/ROUTES.md has the figures). Drivers who dwell at every stop make the core's
//! arrivals the truth; that is where it is meant to be turned on. It learns only while on.
//!
//! Sans-IO and deterministic: the histograms are fed by the fold (arrivals), so every gateway and
//! every replay calibrates the same; they are in the snapshot.

use serde::{Deserialize, Serialize};

/// Upper bounds of the horizon buckets, seconds to go (a sixth takes the rest).
pub const HORIZONS_S: [f64; 5] = [120.0, 300.0, 600.0, 1_200.0, 2_400.0];
/// Number of horizon buckets.
pub const N: usize = HORIZONS_S.len() + 1;
/// Seconds added to the time to go when scaling an error (an error near the stop is seconds,
/// not a fraction of nothing).
pub const SCALE_PAD_S: f64 = 120.0;
/// Histogram range of scaled errors, both ways, and its resolution.
const RANGE: f64 = 2.0;
const STEP: f64 = 0.01;
const BINS: usize = (2.0 * RANGE / STEP) as usize + 1;
/// Published estimates kept per stop, waiting for its arrival (the newest).
pub const KEPT_PER_STOP: usize = 12;

/// The horizon bucket of an estimate `to_go_s` ahead.
pub fn bucket(to_go_s: f64) -> usize {
    HORIZONS_S.iter().take_while(|&&h| to_go_s >= h).count()
}

/// An estimate's error, scaled: (arrival - estimate) / (time to go + pad).
pub fn scaled_error(arrival_ms: i64, eta_ms: i64, to_go_s: f64) -> f64 {
    (arrival_ms.saturating_sub(eta_ms)) as f64 / 1000.0 / (to_go_s.max(0.0) + SCALE_PAD_S)
}

/// Decaying histograms of scaled errors, one per horizon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    hist: Vec<Vec<f32>>,
    weight: Vec<f64>,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            hist: vec![vec![0.0; BINS]; N],
            weight: vec![0.0; N],
        }
    }
}

/// What the windows are made from now: per horizon, the scaled error quantiles and how much
/// they weigh. Small and `Copy`, so each route keeps the fleet's current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    lo: [f64; N],
    hi: [f64; N],
    weight: [f64; N],
}

impl Calibration {
    /// Adds one scaled error at horizon bucket `b`; older ones decay so that `half_life`
    /// newer samples halve their weight.
    pub fn add(&mut self, b: usize, scaled: f64, half_life: f64) {
        if b >= N || !scaled.is_finite() || self.hist.len() != N {
            return;
        }
        let keep = if half_life > 0.0 {
            0.5f64.powf(1.0 / half_life)
        } else {
            1.0
        };
        let h = &mut self.hist[b];
        if keep < 1.0 {
            for v in h.iter_mut() {
                *v *= keep as f32;
            }
        }
        let bin = ((scaled.clamp(-RANGE, RANGE) + RANGE) / STEP).round() as usize;
        h[bin.min(BINS - 1)] += 1.0;
        self.weight[b] = self.weight[b] * keep + 1.0;
    }

    /// The windows for `coverage` (e.g. 0.9: the 5th to the 95th percentile).
    pub fn windows(&self, coverage: f64) -> Windows {
        let tail = ((1.0 - coverage) / 2.0).clamp(0.0, 0.5);
        let mut w = Windows::default();
        for b in 0..N.min(self.hist.len()) {
            let h = &self.hist[b];
            let total: f64 = h.iter().map(|&v| f64::from(v)).sum();
            if total <= 0.0 {
                continue;
            }
            w.lo[b] = quantile(h, total, tail);
            w.hi[b] = quantile(h, total, 1.0 - tail);
            w.weight[b] = self.weight[b];
        }
        w
    }
}

/// The scaled error at cumulative share `q` of histogram `h` (of total weight `total`).
fn quantile(h: &[f32], total: f64, q: f64) -> f64 {
    let target = q * total;
    let mut acc = 0.0;
    for (i, &v) in h.iter().enumerate() {
        acc += f64::from(v);
        if acc >= target {
            return i as f64 * STEP - RANGE;
        }
    }
    RANGE
}

impl Windows {
    /// The window around `eta_ms`, `to_go_s` ahead of `t_ms`: the calibrated quantiles,
    /// blended with the fixed formula's `(early_s, late_s)` until `full_weight` errors were
    /// seen at this horizon; at least `floor_s` wide; never before `t_ms`; holding the ETA.
    pub fn around(
        &self,
        eta_ms: i64,
        to_go_s: f64,
        t_ms: i64,
        formula: (f64, f64),
        full_weight: f64,
        floor_s: f64,
    ) -> (i64, i64) {
        let b = bucket(to_go_s);
        let a = if full_weight > 0.0 {
            (self.weight[b] / full_weight).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let scale = to_go_s.max(0.0) + SCALE_PAD_S;
        let early = a * (-self.lo[b] * scale).max(0.0) + (1.0 - a) * formula.0;
        let late = a * (self.hi[b] * scale).max(0.0) + (1.0 - a) * formula.1;
        // The floor is shared out in proportion, so a lopsided window stays lopsided.
        let width = early + late;
        let (early, late) = if width < floor_s {
            let k = if width > 0.0 { floor_s / width } else { 0.0 };
            match k > 0.0 {
                true => (early * k, late * k),
                false => (floor_s / 2.0, floor_s / 2.0),
            }
        } else {
            (early, late)
        };
        (
            eta_ms.saturating_sub((early * 1000.0) as i64).max(t_ms),
            eta_ms.saturating_add((late * 1000.0) as i64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_scaling() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(119.0), 0);
        assert_eq!(bucket(120.0), 1);
        assert_eq!(bucket(5_000.0), 5);
        assert!((scaled_error(1_060_000, 1_000_000, 0.0) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_window_covers_what_it_says_and_no_more() {
        // Errors uniform over -60..+120 s at 10 minutes to go: a 90 % window is about
        // -51..+111 s, much narrower than the formula's.
        let mut c = Calibration::default();
        let scale = 600.0 + SCALE_PAD_S;
        for i in 0..1_000 {
            let err_s = -60.0 + 180.0 * (i as f64 / 999.0);
            c.add(bucket(600.0), err_s / scale, 0.0);
        }
        let w = c.windows(0.9);
        let formula = (300.0 + 45.0, 300.0 + 90.0);
        let (lo, hi) = w.around(1_000_000_000, 600.0, 999_400_000, formula, 50.0, 60.0);
        let (early, late) = (
            (1_000_000_000 - lo) as f64 / 1000.0,
            (hi - 1_000_000_000) as f64 / 1000.0,
        );
        assert!((early - 51.0).abs() < 8.0, "{early}");
        assert!((late - 111.0).abs() < 8.0, "{late}");
        // Another horizon has seen nothing: the formula.
        let (lo, hi) = w.around(1_000_000_000, 60.0, 999_940_000, (100.0, 200.0), 50.0, 60.0);
        assert_eq!(hi - 1_000_000_000, 200_000);
        assert_eq!(1_000_000_000 - lo, 60_000, "never before now");
    }

    #[test]
    fn the_floor_and_the_blend() {
        let mut c = Calibration::default();
        for _ in 0..25 {
            c.add(0, 0.0, 0.0);
        }
        let w = c.windows(0.9);
        // Half-way to full weight: half the formula, half the (zero-width) calibration; the
        // floor then widens it to 120 s, keeping the proportions.
        let (lo, hi) = w.around(10_000_000, 60.0, 0, (100.0, 100.0), 50.0, 120.0);
        assert_eq!((10_000_000 - lo, hi - 10_000_000), (60_000, 60_000));
        let (lo, hi) = w.around(10_000_000, 60.0, 0, (200.0, 200.0), 50.0, 120.0);
        assert_eq!((10_000_000 - lo, hi - 10_000_000), (100_000, 100_000));
    }

    #[test]
    fn decay_forgets_old_errors() {
        let mut c = Calibration::default();
        for _ in 0..200 {
            c.add(2, 1.0, 20.0);
        }
        for _ in 0..200 {
            c.add(2, -1.0, 20.0);
        }
        let w = c.windows(0.9);
        assert!(
            w.hi[2] < 0.0,
            "the old late errors are forgotten: {}",
            w.hi[2]
        );
        assert!(c.windows(0.9).weight[2] < 30.0);
    }
}
