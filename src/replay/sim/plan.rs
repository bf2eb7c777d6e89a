//! What is fixed before the run: which traces can be replayed at the configured pace, and each
//! driver's [`DriverPlan`] (its id, trace, phase and offset along it, start time, offline
//! period, network switch and random stream), drawn from the seed alone.

use std::sync::Arc;

use super::config::{Pace, ReplayConfig, ReplayError};
use super::net::Schedule;
use super::rng::{between, mix, unit};
use super::run::Timeline;
use crate::replay::trace::Trace;

/// What differs between drivers, fixed before the run.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct DriverPlan {
    /// Driver id (the token's subject): `{driver_prefix}{n:05}`.
    pub id: String,
    /// Index of the trace it replays.
    pub trace: usize,
    /// Where in the trace's back-and-forth cycle it starts, ms of trace time.
    pub phase_ms: i64,
    /// Offset added to every position, degrees.
    pub dlat: f64,
    /// Offset added to every position, degrees.
    pub dlon: f64,
    /// When it starts, us since the run's start.
    pub start_us: u64,
    /// Its offline period, us since the run's start: (from, until).
    pub offline: Option<(u64, u64)>,
    /// When it switches networks (rebinds its own socket); `Some` for migrating drivers only.
    pub migrate_at: Option<u64>,
    /// Its random stream (back-off and schedule jitter).
    pub rng: u64,
    /// Its network's planned events (empty without a network model).
    pub schedule: Arc<Schedule>,
    /// Its network's random stream (a stream of its own, so that a network model leaves every
    /// other choice of the seed as it was).
    pub net_seed: u64,
}

/// The traces a driver can replay at `cfg.pace`: recorded pace needs two distinct times, a
/// rate needs one point.
pub(super) fn usable_traces(
    cfg: &ReplayConfig,
    traces: Vec<Trace>,
) -> Result<Vec<Trace>, ReplayError> {
    let traces: Vec<Trace> = traces
        .into_iter()
        .filter(|t| match cfg.pace {
            Pace::Recorded { .. } => t.duration_ms() > 0,
            Pace::Rate { .. } => !t.is_empty(),
        })
        .collect();
    if traces.is_empty() {
        return Err(ReplayError::NoTraces(match cfg.pace {
            Pace::Recorded { .. } => {
                "replay at the recorded pace needs traces with two distinct times (or use a rate)"
                    .into()
            }
            Pace::Rate { .. } => "every trace is empty".into(),
        }));
    }
    Ok(traces)
}

/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;

/// Every driver's plan, in driver order. `traces` must not be empty.
pub(super) fn plan_drivers(cfg: &ReplayConfig, traces: &[Trace], tl: &Timeline) -> Vec<DriverPlan> {
    let n = cfg.drivers as u64;
    let mut rng = cfg.seed ^ 0x5EED;
    let migrating: Vec<bool> = (0..n).map(|_| unit(&mut rng) < cfg.migrate_prob).collect();
    let mut plans = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut r = cfg.seed.wrapping_mul(0x1000_0000_01B3) ^ (i + 1);
        mix(&mut r);
        let trace = (i % traces.len() as u64) as usize;
        let round = i / traces.len() as u64;
        // Drivers sharing a trace start at golden-ratio phases of its back-and-forth cycle.
        let cycle = 2 * traces[trace].duration_ms();
        // With a route, every driver drives the trace from its start (the route's time base).
        let phase_ms = if round == 0 || cycle == 0 || cfg.route.is_some() {
            0
        } else {
            ((round as f64 * 0.618_033_988_749_895).fract() * cycle as f64) as i64
        };
        let (dlat, dlon) = if cfg.spread_m > 0.0 {
            let lat0 = traces[trace].points.first().map_or(0.0, |p| p.lat);
            let d = cfg.spread_m * unit(&mut r).sqrt();
            let a = unit(&mut r) * std::f64::consts::TAU;
            (
                d * a.sin() / M_PER_DEG,
                d * a.cos() / (M_PER_DEG * lat0.to_radians().cos().max(0.01)),
            )
        } else {
            (0.0, 0.0)
        };
        let end_us = tl.end_us;
        let start_us = tl.ramp_us * i / n.max(1);
        let span = end_us.saturating_sub(start_us);
        let offline = (unit(&mut r) < cfg.offline_prob).then(|| {
            let len = cfg.offline.as_micros() as u64;
            let at = between(
                &mut r,
                start_us + span / 10,
                end_us.saturating_sub(len + span / 10),
            );
            (at, at + len)
        });
        let migrate_at = migrating[i as usize]
            .then(|| between(&mut r, start_us + span / 5, end_us.saturating_sub(span / 5)));
        let mut net_seed = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i + 1) ^ 0x4E_4554;
        mix(&mut net_seed);
        let schedule = Arc::new(cfg.net.as_ref().map_or_else(Schedule::default, |p| {
            Schedule::plan(p, &mut net_seed, start_us, end_us)
        }));
        plans.push(DriverPlan {
            id: format!("{}{:05}", cfg.driver_prefix, cfg.first_driver as u64 + i),
            trace,
            phase_ms,
            dlat,
            dlon,
            start_us,
            offline,
            migrate_at,
            rng: r,
            schedule,
            net_seed,
        });
    }
    plans
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::replay::sim::config::test_config;
    use crate::replay::trace::TracePoint;

    /// A trace of `n` points a second apart going north from 45 degrees.
    fn line(id: &str, n: i64) -> Trace {
        let points = (0..n)
            .map(|i| TracePoint::new(1_000 * i, 45.0 + i as f64 * 1e-4, 7.0))
            .collect();
        Trace::new(id, points)
    }

    #[test]
    fn traces_must_fit_the_pace() {
        let mut cfg = test_config();
        let traces = || vec![line("one point", 1), line("empty", 0), line("moving", 5)];
        let kept = usable_traces(&cfg, traces()).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "moving");
        let err = usable_traces(&cfg, vec![line("one point", 1)]).unwrap_err();
        assert!(err.to_string().contains("two distinct times"), "{err}");
        cfg.pace = Pace::Rate {
            per_s: 1.0,
            speedup: 1.0,
        };
        assert_eq!(usable_traces(&cfg, traces()).unwrap().len(), 2);
        let err = usable_traces(&cfg, vec![line("empty", 0)]).unwrap_err();
        assert_eq!(err.to_string(), "no usable trace: every trace is empty");
    }

    #[test]
    fn plans_are_drawn_from_the_seed() {
        let mut cfg = test_config();
        cfg.drivers = 50;
        cfg.offline_prob = 0.5;
        cfg.migrate_prob = 0.5;
        let traces = [line("a", 100), line("b", 100)];
        let tl = Timeline::new(&cfg);
        let plans = plan_drivers(&cfg, &traces, &tl);
        assert_eq!(plans, plan_drivers(&cfg, &traces, &tl));
        cfg.seed = 2;
        let other = plan_drivers(&cfg, &traces, &tl);
        assert_ne!(plans, other);
        // The same drivers and traces whatever the seed.
        for (a, b) in plans.iter().zip(&other) {
            assert_eq!(
                (&a.id, a.trace, a.phase_ms, a.start_us),
                (&b.id, b.trace, b.phase_ms, b.start_us)
            );
        }
    }

    #[test]
    fn drivers_share_traces_round_robin_at_golden_ratio_phases() {
        let mut cfg = test_config();
        cfg.drivers = 6;
        cfg.first_driver = 41;
        cfg.driver_prefix = "van-".into();
        let traces = [line("a", 101), line("b", 11)];
        let plans = plan_drivers(&cfg, &traces, &Timeline::new(&cfg));
        let ids: Vec<&str> = plans.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "van-00041",
                "van-00042",
                "van-00043",
                "van-00044",
                "van-00045",
                "van-00046"
            ]
        );
        let on: Vec<usize> = plans.iter().map(|p| p.trace).collect();
        assert_eq!(on, [0, 1, 0, 1, 0, 1]);
        // Trace a's cycle is 200 s there and back: phases 0, 0.618 and 0.236 of it.
        let phases: Vec<i64> = plans.iter().step_by(2).map(|p| p.phase_ms).collect();
        assert_eq!(phases, [0, 123_606, 47_213]);
        // Starts spread evenly over the 1 s ramp.
        let starts: Vec<u64> = plans.iter().map(|p| p.start_us).collect();
        assert_eq!(starts, [0, 166_666, 333_333, 500_000, 666_666, 833_333]);
    }

    #[test]
    fn offsets_offline_periods_and_switches_stay_in_their_bounds() {
        let mut cfg = test_config();
        cfg.drivers = 200;
        cfg.offline_prob = 1.0;
        cfg.migrate_prob = 1.0;
        cfg.offline = Duration::from_secs(10);
        let traces = [line("a", 100)];
        let tl = Timeline::new(&cfg);
        for p in plan_drivers(&cfg, &traces, &tl) {
            let north = p.dlat * M_PER_DEG;
            let east = p.dlon * M_PER_DEG * 45f64.to_radians().cos();
            let d = north.hypot(east);
            assert!(d <= cfg.spread_m + 1e-6, "{} is {d} m off", p.id);
            let span = tl.end_us - p.start_us;
            let (from, until) = p.offline.expect("offline_prob is 1");
            assert_eq!(until - from, 10_000_000);
            assert!(
                from >= p.start_us + span / 10 && until <= tl.end_us - span / 10,
                "{p:?}"
            );
            let at = p.migrate_at.expect("migrate_prob is 1");
            assert!(
                at >= p.start_us + span / 5 && at <= tl.end_us - span / 5,
                "{p:?}"
            );
        }
        cfg.offline_prob = 0.0;
        cfg.migrate_prob = 0.0;
        cfg.spread_m = 0.0;
        for p in plan_drivers(&cfg, &traces, &tl) {
            assert_eq!(
                (p.offline, p.migrate_at, p.dlat, p.dlon),
                (None, None, 0.0, 0.0)
            );
        }
    }
}
