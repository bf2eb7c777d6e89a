//! Playing a recorded trace back as an endless route, for the load generator.
//!
//! A simulated driver needs positions for as long as a run lasts, which is usually longer than
//! its recording and starts at an arbitrary point of it. Wrapping around from the last point to
//! the first would teleport the driver (and the gateway would rightly refuse the fix as an
//! `ImplausibleJump`), so a trace is played *ping-pong*: forward to its end, then backward to
//! its start, and so on. The playback position is a "virtual trace time" `tau` in ms that only
//! ever grows; [`sample`] interpolates the position at any `tau`, [`next_recorded`] finds the
//! next recorded point after it (for replay at the recorded pace).
//!
//! [`split_at_gaps`] cuts long recordings (GeoLife logs span weeks) into trips, so a driver is
//! not silent for hours in the middle of its run.

use milepost_proto::Fix;

use crate::replay::trace::{Trace, TracePoint};

/// Accuracy used when the recording has none, metres (a typical phone fix outdoors).
const DEFAULT_ACCURACY_M: f32 = 10.0;

/// A position sampled from a trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Horizontal accuracy, metres, if recorded.
    pub accuracy_m: Option<f32>,
    /// Ground speed, m/s, if recorded.
    pub speed_mps: Option<f32>,
    /// Course over ground, degrees, if recorded (turned round on the way back).
    pub heading_deg: Option<f32>,
    /// Altitude, metres, if recorded.
    pub altitude_m: Option<f32>,
}

impl Sample {
    fn of(p: &TracePoint) -> Sample {
        Sample {
            lat: p.lat,
            lon: p.lon,
            accuracy_m: p.accuracy_m,
            speed_mps: p.speed_mps,
            heading_deg: p.heading_deg,
            altitude_m: p.altitude_m,
        }
    }

    /// The fix a phone would report at `t_ms` for this sample moved by `dlat`/`dlon` degrees.
    ///
    /// Optional fields outside the protocol's ranges (recorders write sentinels such as GeoLife's
    /// -777 ft altitude) are left out, as a phone's location API would not report them; the
    /// accuracy is kept as recorded, so a bad recorded accuracy is refused by the gateway and
    /// counted, not hidden.
    pub fn to_fix(&self, t_ms: i64, dlat: f64, dlon: f64) -> Fix {
        let lat = (self.lat + dlat).clamp(-90.0, 90.0);
        let mut lon = self.lon + dlon;
        if !(-180.0..=180.0).contains(&lon) {
            lon = (lon + 180.0).rem_euclid(360.0) - 180.0;
        }
        let mut f = Fix::from_degrees(
            t_ms,
            lat,
            lon,
            self.accuracy_m.unwrap_or(DEFAULT_ACCURACY_M),
        );
        f.speed_mps = self.speed_mps.filter(|s| (0.0..=150.0).contains(s));
        f.heading_deg = self.heading_deg.filter(|h| (0.0..360.0).contains(h));
        f.altitude_m = self.altitude_m.filter(|a| (-1000.0..=20000.0).contains(a));
        f
    }
}

/// The trace's span in ms, or `None` when it has fewer than two distinct times (nothing to
/// play back and forth).
fn span_ms(trace: &Trace) -> Option<i64> {
    let d = trace.duration_ms();
    (d > 0).then_some(d)
}

/// Where `tau` falls: the offset from the first point in ms and whether the leg runs backward.
fn leg(span: i64, tau_ms: i64) -> (i64, bool) {
    let m = tau_ms.rem_euclid(2 * span);
    if m < span {
        (m, false)
    } else {
        (2 * span - m, true)
    }
}

/// The position at virtual time `tau_ms` (ms since the first point, growing without bound),
/// linearly interpolated between the recorded points around it.
pub fn sample(trace: &Trace, tau_ms: i64) -> Option<Sample> {
    let first = trace.points.first()?;
    let Some(span) = span_ms(trace) else {
        return Some(Sample::of(first));
    };
    let (off, backward) = leg(span, tau_ms);
    let t = first.t_ms + off;
    let i = trace.points.partition_point(|p| p.t_ms <= t);
    let mut s = match (
        i.checked_sub(1).and_then(|j| trace.points.get(j)),
        trace.points.get(i),
    ) {
        (Some(a), Some(b)) if b.t_ms > a.t_ms => {
            let f = (t - a.t_ms) as f64 / (b.t_ms - a.t_ms) as f64;
            Sample {
                lat: a.lat + (b.lat - a.lat) * f,
                lon: a.lon + (b.lon - a.lon) * f,
                ..Sample::of(a)
            }
        }
        (Some(a), _) => Sample::of(a),
        (None, _) => Sample::of(first),
    };
    if backward {
        s.heading_deg = s.heading_deg.map(|h| (h + 180.0).rem_euclid(360.0));
    }
    Some(s)
}

/// The virtual time of the first recorded point strictly after `tau_ms`, or `None` when the
/// trace has fewer than two distinct times.
pub fn next_recorded(trace: &Trace, tau_ms: i64) -> Option<i64> {
    let span = span_ms(trace)?;
    let t0 = trace.points.first()?.t_ms;
    let (off, backward) = leg(span, tau_ms);
    if backward {
        // The latest point before `off`: the first point (offset 0) always qualifies.
        let i = trace.points.partition_point(|p| p.t_ms - t0 < off);
        let prev = trace.points.get(i.checked_sub(1)?)?;
        Some(tau_ms + (off - (prev.t_ms - t0)))
    } else {
        // The earliest point after `off`: the last point (offset `span`) always qualifies.
        let i = trace.points.partition_point(|p| p.t_ms - t0 <= off);
        let next = trace.points.get(i)?;
        Some(tau_ms + (next.t_ms - t0 - off))
    }
}

/// Splits every trace where two consecutive points are more than `gap_ms` apart, keeping the
/// pieces with at least `min_points` points. Pieces are named `{id}#{n}` (1-based) when a trace
/// is split, and keep their id otherwise.
pub fn split_at_gaps(traces: Vec<Trace>, gap_ms: i64, min_points: usize) -> Vec<Trace> {
    let mut out = Vec::new();
    for t in traces {
        let mut pieces: Vec<Vec<TracePoint>> = vec![Vec::new()];
        for p in &t.points {
            let split = pieces
                .last()
                .and_then(|cur| cur.last())
                .is_some_and(|last| p.t_ms - last.t_ms > gap_ms);
            if split {
                pieces.push(Vec::new());
            }
            if let Some(cur) = pieces.last_mut() {
                cur.push(*p);
            }
        }
        let keep: Vec<Vec<TracePoint>> = pieces
            .into_iter()
            .filter(|p| p.len() >= min_points.max(1))
            .collect();
        if keep.len() == 1 {
            out.extend(
                keep.into_iter()
                    .map(|points| Trace::new(t.id.clone(), points)),
            );
        } else {
            for (n, points) in keep.into_iter().enumerate() {
                out.push(Trace::new(format!("{}#{}", t.id, n + 1), points));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> Trace {
        // Three points 10 s apart going north.
        Trace::new(
            "l",
            vec![
                TracePoint::new(1_000, 10.0, 20.0),
                TracePoint::new(11_000, 10.001, 20.0),
                TracePoint::new(21_000, 10.002, 20.0),
            ],
        )
    }

    #[test]
    fn samples_interpolate_and_bounce() {
        let t = line();
        let at = |tau| sample(&t, tau).map(|s| (s.lat * 1e6).round() as i64);
        assert_eq!(at(0), Some(10_000_000));
        assert_eq!(at(5_000), Some(10_000_500));
        assert_eq!(at(20_000), Some(10_002_000));
        // Back again: 25 s in is 15 s from the start, on the way back.
        assert_eq!(at(25_000), Some(10_001_500));
        assert_eq!(at(40_000), Some(10_000_000));
    }

    #[test]
    fn next_recorded_walks_forward_then_back() {
        let t = line();
        let mut tau = 0;
        let mut seen = vec![];
        for _ in 0..5 {
            tau = next_recorded(&t, tau).unwrap();
            seen.push(tau);
        }
        assert_eq!(seen, vec![10_000, 20_000, 30_000, 40_000, 50_000]);
        assert_eq!(next_recorded(&t, 5_000), Some(10_000));
        assert_eq!(next_recorded(&t, 35_000), Some(40_000));
    }

    #[test]
    fn single_time_traces_do_not_move() {
        let t = Trace::new("p", vec![TracePoint::new(5, 1.0, 2.0)]);
        assert_eq!(next_recorded(&t, 0), None);
        assert_eq!(sample(&t, 12_345).map(|s| s.lat), Some(1.0));
    }

    #[test]
    fn gaps_split_traces() {
        let mut pts: Vec<TracePoint> = (0..5)
            .map(|i| TracePoint::new(i * 1000, 1.0, 1.0))
            .collect();
        pts.extend((0..3).map(|i| TracePoint::new(1_000_000 + i * 1000, 1.0, 1.0)));
        pts.push(TracePoint::new(9_000_000, 1.0, 1.0));
        let out = split_at_gaps(vec![Trace::new("g", pts)], 60_000, 2);
        let ids: Vec<(&str, usize)> = out.iter().map(|t| (t.id.as_str(), t.len())).collect();
        assert_eq!(ids, vec![("g#1", 5), ("g#2", 3)]);
    }

    #[test]
    fn fixes_drop_out_of_range_fields() {
        let s = Sample {
            lat: 1.0,
            lon: 179.9995,
            accuracy_m: None,
            speed_mps: Some(-1.0),
            heading_deg: Some(360.0),
            altitude_m: Some(-236.0),
        };
        let f = s.to_fix(7, 0.0, 0.001);
        assert_eq!(
            (f.speed_mps, f.heading_deg, f.altitude_m),
            (None, None, Some(-236.0))
        );
        assert!(f.lon() < -179.0);
        assert_eq!(f.accuracy_m, DEFAULT_ACCURACY_M);
    }
}
