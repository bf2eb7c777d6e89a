//! Fix validation: is a fix plausible? Two checks, both pure: [`check_fix`] looks at the fix
//! alone (ranges, accuracy, clock), [`check_jump`] compares it with its neighbour in time (the
//! implied speed). The rules and defaults are documented in `proto/PROTOCOL.md`.

use milepost_proto::{Fix, RejectReason};
use serde::{Deserialize, Serialize};

use crate::fleet::geo_util::haversine_m;

/// Fix validation rules (see `proto/PROTOCOL.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Fixes whose accuracy radius exceeds this many metres are refused.
    pub max_accuracy_m: f32,
    /// Fixes more than this many ms ahead of the server clock are refused.
    pub max_future_ms: i64,
    /// Fixes older than this many ms are refused (backlog bound).
    pub max_age_ms: i64,
    /// Implied speed between neighbouring fixes above this is a jump.
    pub max_speed_mps: f32,
    /// Refuse mock-location fixes (otherwise they are stored, flagged).
    pub reject_mock: bool,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            max_accuracy_m: 500.0,
            max_future_ms: 60_000,
            max_age_ms: 7 * 24 * 3600 * 1000,
            max_speed_mps: 80.0,
            reject_mock: false,
        }
    }
}

/// Fastest plausible ground speed a phone may report, m/s (540 km/h).
const MAX_REPORTED_SPEED_MPS: f32 = 150.0;

/// Checks the fix on its own, at server time `now_ms`.
pub fn check_fix(fix: &Fix, now_ms: i64, rules: &ValidationConfig) -> Result<(), RejectReason> {
    if !(-900_000_000..=900_000_000).contains(&fix.lat_e7) {
        return Err(RejectReason::LatitudeOutOfRange);
    }
    if !(-1_800_000_000..=1_800_000_000).contains(&fix.lon_e7) {
        return Err(RejectReason::LongitudeOutOfRange);
    }
    if fix.lat_e7 == 0 && fix.lon_e7 == 0 {
        return Err(RejectReason::NullIsland);
    }
    // NaN is neither above nor below zero: refuse it here too.
    if fix.accuracy_m.is_nan() || fix.accuracy_m <= 0.0 {
        return Err(RejectReason::AccuracyInvalid);
    }
    if fix.accuracy_m > rules.max_accuracy_m {
        return Err(RejectReason::AccuracyTooPoor);
    }
    if fix.t_ms > now_ms.saturating_add(rules.max_future_ms) {
        return Err(RejectReason::FutureTimestamp);
    }
    if fix.t_ms < now_ms.saturating_sub(rules.max_age_ms) {
        return Err(RejectReason::TooOld);
    }
    let in_range = |v: Option<f32>, lo: f32, hi: f32| v.is_none_or(|v| v >= lo && v <= hi);
    if !in_range(fix.speed_mps, 0.0, MAX_REPORTED_SPEED_MPS)
        || !fix.heading_deg.is_none_or(|h| (0.0..360.0).contains(&h))
        || !in_range(fix.altitude_m, -1_000.0, 20_000.0)
        || fix.battery_pct.is_some_and(|b| b > 100)
    {
        return Err(RejectReason::FieldOutOfRange);
    }
    if fix.mock && rules.reject_mock {
        return Err(RejectReason::MockLocation);
    }
    Ok(())
}

/// Checks the speed implied by moving from `neighbour` to `fix` (in either time order). The
/// distance is reduced by both accuracy radii, so two noisy fixes a second apart are not a jump;
/// fixes with the same timestamp count as one second apart.
pub fn check_jump(
    neighbour: &Fix,
    fix: &Fix,
    rules: &ValidationConfig,
) -> Result<(), RejectReason> {
    let d = haversine_m(neighbour.lat(), neighbour.lon(), fix.lat(), fix.lon());
    let slack = (neighbour.accuracy_m + fix.accuracy_m) as f64;
    let dt_s = ((fix.t_ms - neighbour.t_ms).unsigned_abs() as f64 / 1000.0).max(1.0);
    if (d - slack).max(0.0) / dt_s > rules.max_speed_mps as f64 {
        return Err(RejectReason::ImplausibleJump);
    }
    Ok(())
}

/// Of the candidate earlier fixes, the one nearest in time to `fix`: the best neighbour to
/// judge a jump against.
pub fn nearest_in_time<'a>(fix: &Fix, candidates: &[Option<&'a Fix>]) -> Option<&'a Fix> {
    candidates
        .iter()
        .flatten()
        .min_by_key(|c| (c.t_ms - fix.t_ms).unsigned_abs())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_764_000_000_000;

    fn ok_fix() -> Fix {
        Fix::from_degrees(NOW - 1_000, 38.9, -77.03, 8.0)
    }

    #[test]
    fn table_of_refusals() {
        let rules = ValidationConfig::default();
        type Mutation = Box<dyn Fn(&mut Fix)>;
        let cases: Vec<(Mutation, RejectReason)> = vec![
            (
                Box::new(|f| f.lat_e7 = 900_000_001),
                RejectReason::LatitudeOutOfRange,
            ),
            (
                Box::new(|f| f.lon_e7 = -1_800_000_001),
                RejectReason::LongitudeOutOfRange,
            ),
            (
                Box::new(|f| {
                    f.lat_e7 = 0;
                    f.lon_e7 = 0
                }),
                RejectReason::NullIsland,
            ),
            (
                Box::new(|f| f.accuracy_m = 0.0),
                RejectReason::AccuracyInvalid,
            ),
            (
                Box::new(|f| f.accuracy_m = -1.0),
                RejectReason::AccuracyInvalid,
            ),
            (
                Box::new(|f| f.accuracy_m = f32::NAN),
                RejectReason::AccuracyInvalid,
            ),
            (
                Box::new(|f| f.accuracy_m = 501.0),
                RejectReason::AccuracyTooPoor,
            ),
            (
                Box::new(|f| f.t_ms = NOW + 61_000),
                RejectReason::FutureTimestamp,
            ),
            (
                Box::new(|f| f.t_ms = NOW - 8 * 86_400_000),
                RejectReason::TooOld,
            ),
            (
                Box::new(|f| f.speed_mps = Some(-1.0)),
                RejectReason::FieldOutOfRange,
            ),
            (
                Box::new(|f| f.heading_deg = Some(f32::NAN)),
                RejectReason::FieldOutOfRange,
            ),
            (
                Box::new(|f| f.heading_deg = Some(360.0)),
                RejectReason::FieldOutOfRange,
            ),
            (
                Box::new(|f| f.accuracy_m = f32::INFINITY),
                RejectReason::AccuracyTooPoor,
            ),
            (
                Box::new(|f| f.battery_pct = Some(101)),
                RejectReason::FieldOutOfRange,
            ),
        ];
        for (i, (mutate, want)) in cases.iter().enumerate() {
            let mut f = ok_fix();
            mutate(&mut f);
            assert_eq!(check_fix(&f, NOW, &rules), Err(*want), "case {i}");
        }
        assert_eq!(check_fix(&ok_fix(), NOW, &rules), Ok(()));
    }

    #[test]
    fn mock_is_flagged_or_refused_by_rule() {
        let mut f = ok_fix();
        f.mock = true;
        let mut rules = ValidationConfig::default();
        assert_eq!(check_fix(&f, NOW, &rules), Ok(()));
        rules.reject_mock = true;
        assert_eq!(check_fix(&f, NOW, &rules), Err(RejectReason::MockLocation));
    }

    #[test]
    fn jumps() {
        let rules = ValidationConfig::default();
        let a = ok_fix();
        // 1 km in 10 s = 100 m/s: a jump.
        let far = Fix::from_degrees(a.t_ms + 10_000, 38.909, -77.03, 8.0);
        assert_eq!(
            check_jump(&a, &far, &rules),
            Err(RejectReason::ImplausibleJump)
        );
        // 1 km in 60 s: a car.
        let car = Fix::from_degrees(a.t_ms + 60_000, 38.909, -77.03, 8.0);
        assert_eq!(check_jump(&a, &car, &rules), Ok(()));
        // Jitter within the accuracy circles, same timestamp.
        let jitter = Fix::from_degrees(a.t_ms, 38.90005, -77.03, 8.0);
        assert_eq!(check_jump(&a, &jitter, &rules), Ok(()));
    }

    proptest! {
        #[test]
        fn never_panics(t in any::<i64>(), lat in any::<i32>(), lon in any::<i32>(),
                        acc in any::<f32>(), spd in proptest::option::of(any::<f32>())) {
            let mut f = Fix::new(t, lat, lon, acc);
            f.speed_mps = spd;
            let rules = ValidationConfig::default();
            let r = check_fix(&f, NOW, &rules);
            if r.is_ok() {
                prop_assert!(f.accuracy_m > 0.0 && f.lat_e7.abs() <= 900_000_000);
            }
            let _ = check_jump(&ok_fix(), &f, &rules);
        }
    }
}
