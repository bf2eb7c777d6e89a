//! The demo's delivery day, made from a recorded trace with no I/O: stops placed on the trace
//! itself (so the driver really passes each one), a route that starts now with planned
//! arrivals and windows taken from the trace's own timing at the demo's speed, and what
//! happens at each stop (delivered with a photo, with a code, to a named person; one attempt
//! fails). [`super`] drives it.

use milepost_core::fleet::geo_util::haversine_m;
use milepost_proto::route::{FailureReason, Parcel, Point, Route, Stop, TimeWindow};

use crate::replay::trace::TracePoint;

/// The demo's depot, driver and route names.
pub const DEPOT: &str = "DEMO";
/// The demo driver.
pub const DRIVER: &str = "demo-driver";
/// The one-time code of the stop that asks for one.
pub const OTP: &str = "4821";

/// What the driver does at a stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Delivered, a doorstep photo as proof.
    Photo,
    /// Delivered against the stop's one-time code.
    Code,
    /// Handed to a named person, with a photo.
    HandedTo(&'static str),
    /// Nobody there: the attempt fails.
    Fail(FailureReason),
}

/// One stop of the plan: where on the trace it is and what happens there.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedStop {
    /// Index of the trace point the stop sits on.
    pub at: usize,
    /// What the driver does there.
    pub action: Action,
}

/// The demo's day: the route to assign and what happens at each stop.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The route, starting at `start_ms`.
    pub route: Route,
    /// Its stops, in order, as trace indices and actions.
    pub stops: Vec<PlannedStop>,
    /// When each trace point is driven, ms after the start, leaving out the stops' dwell
    /// ([`timeline`]).
    pub timeline: Vec<i64>,
}

/// How the plan is laid out.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Stops wanted (fewer when the trace is short).
    pub stops: usize,
    /// Replay speed: the trace's time divided by this is the demo's.
    pub speedup: f64,
    /// How long the driver stays at each stop, ms of demo time.
    pub dwell_ms: i64,
    /// When the route starts (now), UTC ms.
    pub start_ms: i64,
    /// The route's id.
    pub route_id: String,
    /// The fastest the driver is shown moving, m/s ([`MAX_SHOWN_MPS`] by default).
    pub max_shown_mps: f64,
}

/// The stops' least spacing along the trace, metres: two geofences must not overlap.
const MIN_SPACING_M: f64 = 120.0;

/// The fastest the demo driver is shown moving by default, m/s (126 km/h): a sped-up trace is
/// slowed where it would go faster, so that no fix is refused as an implausible jump (the
/// gateway's limit is 80 m/s).
pub const MAX_SHOWN_MPS: f64 = 35.0;

/// When each point is driven, ms after the first: the recorded gaps divided by `speedup`,
/// stretched where the driver would be shown faster than `max_mps`.
pub fn timeline(points: &[TracePoint], speedup: f64, max_mps: f64) -> Vec<i64> {
    let speedup = speedup.max(0.1);
    let mut out = Vec::with_capacity(points.len());
    let mut t = 0.0;
    for (k, p) in points.iter().enumerate() {
        if k > 0 {
            let q = points[k - 1];
            let recorded = (p.t_ms - q.t_ms).max(0) as f64 / speedup;
            let fastest = haversine_m(q.lat, q.lon, p.lat, p.lon) / max_mps.max(1.0) * 1000.0;
            t += recorded.max(fastest);
        }
        out.push(t as i64);
    }
    out
}

/// The trace's length, metres.
pub fn length_m(points: &[TracePoint]) -> f64 {
    cumulative_m(points).last().copied().unwrap_or(0.0)
}

/// Lays out the demo day on `points` (sorted by time).
///
/// # Errors
/// The trace is too short for two stops.
pub fn plan(points: &[TracePoint], o: &PlanOptions) -> Result<Plan, String> {
    let along = cumulative_m(points);
    let total = along.last().copied().unwrap_or(0.0);
    let mut at: Vec<usize> = Vec::new();
    let n = o.stops.clamp(2, 30);
    for k in 0..n {
        let target = total * (k + 1) as f64 / (n + 1) as f64;
        let Some(i) = along.iter().position(|&d| d >= target) else {
            break;
        };
        let far_enough = at
            .last()
            .is_none_or(|&j| along[i] - along[j] >= MIN_SPACING_M);
        if far_enough && i + 1 < points.len() {
            at.push(i);
        }
    }
    if at.len() < 2 {
        return Err(format!(
            "the trace is too short for a demo: {:.0} m and {} points (two stops {MIN_SPACING_M} m apart are needed)",
            total,
            points.len()
        ));
    }
    let times = timeline(points, o.speedup, o.max_shown_mps);
    let stops: Vec<PlannedStop> = at
        .iter()
        .enumerate()
        .map(|(k, &i)| PlannedStop {
            at: i,
            action: action(k, at.len()),
        })
        .collect();
    let route_stops = stops
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let p = points[s.at];
            let planned = o.start_ms + times[s.at] + k as i64 * o.dwell_ms;
            // A 30-minute window around the plan, on quarter hours, as carriers promise.
            let quarter = 15 * 60_000;
            let start_ms = (planned - 10 * 60_000).div_euclid(quarter) * quarter;
            Stop {
                id: format!("S{}", k + 1).as_str().into(),
                lat: p.lat,
                lon: p.lon,
                radius_m: Some(40.0),
                parcels: vec![Parcel {
                    tracking: tracking(k).as_str().into(),
                    otp: (s.action == Action::Code).then(|| OTP.to_owned()),
                }],
                window: Some(TimeWindow {
                    start_ms,
                    end_ms: start_ms + 2 * quarter,
                }),
                service_s: Some((o.dwell_ms / 1000).max(1) as u32),
                planned_arrival_ms: Some(planned),
                path: vec![],
                instructions: String::new(),
                otp_required: s.action == Action::Code,
            }
        })
        .collect();
    let first = points[0];
    Ok(Plan {
        route: Route {
            id: o.route_id.as_str().into(),
            depot: DEPOT.into(),
            driver: DRIVER.into(),
            planned_start_ms: o.start_ms,
            start: Some(Point {
                lat: first.lat,
                lon: first.lon,
            }),
            stops: route_stops,
        },
        stops,
        timeline: times,
    })
}

/// The tracking number of stop `k` (0-based).
pub fn tracking(k: usize) -> String {
    format!("MP-DEMO-{:02}", k + 1)
}

/// What happens at stop `k` of `n`: mostly photos, the second to a named person, the fourth
/// with a code, and from three stops on one attempt fails, in the second half of the day.
fn action(k: usize, n: usize) -> Action {
    let fails = (n / 2..n).find(|&i| i != 1 && i != 3);
    match k {
        1 => Action::HandedTo("Ana Novak"),
        3 => Action::Code,
        _ if Some(k) == fails => Action::Fail(FailureReason::RecipientAbsent),
        _ => Action::Photo,
    }
}

/// Metres along the trace at each point.
fn cumulative_m(points: &[TracePoint]) -> Vec<f64> {
    let mut out = Vec::with_capacity(points.len());
    let mut d = 0.0;
    for (k, p) in points.iter().enumerate() {
        if k > 0 {
            let q = points[k - 1];
            d += haversine_m(q.lat, q.lon, p.lat, p.lon);
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A straight drive north, one point every 10 s, 50 m apart.
    fn line(n: usize) -> Vec<TracePoint> {
        (0..n)
            .map(|i| TracePoint::new(i as i64 * 10_000, 45.0 + i as f64 * 0.00045, 13.7))
            .collect()
    }

    fn opts(stops: usize) -> PlanOptions {
        PlanOptions {
            stops,
            speedup: 2.0,
            dwell_ms: 20_000,
            start_ms: 1_000_000_000_000,
            route_id: "DEMO-1".into(),
            max_shown_mps: MAX_SHOWN_MPS,
        }
    }

    #[test]
    fn stops_lie_on_the_trace_in_order_with_a_plan_that_starts_now() {
        let pts = line(200);
        let p = plan(&pts, &opts(10)).unwrap();
        assert_eq!(p.stops.len(), 10);
        assert!(p.stops.windows(2).all(|w| w[0].at < w[1].at));
        let r = &p.route;
        milepost_core::fleet::route::validate(r).unwrap();
        assert_eq!(r.planned_start_ms, 1_000_000_000_000);
        for (s, ps) in r.stops.iter().zip(&p.stops) {
            assert_eq!((s.lat, s.lon), (pts[ps.at].lat, pts[ps.at].lon));
            let planned = s.planned_arrival_ms.unwrap();
            let w = s.window.unwrap();
            assert!(w.start_ms <= planned && planned <= w.end_ms, "{s:?}");
        }
        // Planned arrivals follow the trace at the demo's speed, plus the dwell of each
        // earlier stop.
        let s2 = &r.stops[1];
        let drive = p.timeline[p.stops[1].at];
        assert_eq!(drive, (pts[p.stops[1].at].t_ms - pts[0].t_ms) / 2);
        assert_eq!(
            s2.planned_arrival_ms.unwrap(),
            1_000_000_000_000 + drive + 20_000
        );
        // One failure, one code (and its parcel carries the code), one named receiver.
        let acts: Vec<&Action> = p.stops.iter().map(|s| &s.action).collect();
        assert_eq!(
            acts.iter().filter(|a| matches!(a, Action::Fail(_))).count(),
            1
        );
        assert_eq!(acts[3], &Action::Code);
        assert!(r.stops[3].otp_required);
        assert_eq!(r.stops[3].parcels[0].otp.as_deref(), Some(OTP));
        assert!(matches!(acts[1], Action::HandedTo(_)));
    }

    #[test]
    fn a_fast_replay_is_slowed_where_it_would_look_implausible() {
        // 50 m every 10 s is 5 m/s; at 20x it would be 100 m/s, shown at 35 m/s instead.
        let pts = line(3);
        let t = timeline(&pts, 20.0, MAX_SHOWN_MPS);
        let gap = (t[1] - t[0]) as f64;
        let shown = haversine_m(pts[0].lat, pts[0].lon, pts[1].lat, pts[1].lon) / gap * 1000.0;
        assert!((shown - MAX_SHOWN_MPS).abs() < 0.5, "{shown}");
        assert_eq!(timeline(&pts, 2.0, MAX_SHOWN_MPS), vec![0, 5_000, 10_000]);
    }

    #[test]
    fn every_day_of_three_stops_or_more_has_one_failed_attempt() {
        for n in 3..=30 {
            let fails = (0..n)
                .filter(|&k| matches!(action(k, n), Action::Fail(_)))
                .count();
            assert_eq!(fails, 1, "{n} stops");
        }
    }

    #[test]
    fn a_short_trace_gets_fewer_stops_or_a_clear_refusal() {
        // 10 points, 450 m: stops at least 120 m apart leave room for 2 or 3.
        let p = plan(&line(10), &opts(10)).unwrap();
        assert!((2..=3).contains(&p.stops.len()), "{}", p.stops.len());
        let e = plan(&line(3), &opts(10)).unwrap_err();
        assert!(e.contains("too short"), "{e}");
        assert!(plan(&[], &opts(10)).is_err());
    }
}
