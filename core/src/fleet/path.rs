//! A route's geometry in the current stop order: one polyline from the start through every
//! stop, its cumulative distances, each stop's position along it, and a spatial index of the
//! stops. Built once per assignment or re-sequencing; per fix the core only *locates* the fix on
//! the polyline, scanning a small window around the previous position.
//!
//! Legs with a planned path (from the route file) follow it; legs without one are straight lines
//! between stops, marked "straight" so that the ETA can stretch them by a learned detour factor
//! (roads are longer than the great circle). A planned path only applies while its stop follows
//! its planned predecessor: after a re-sequencing the new legs are straight.

use milepost_proto::route::Route;

use crate::fleet::geo_util::{project_on_segment, LocalProjection};

/// The polyline and stop positions of a route in one stop order.
#[derive(Debug)]
pub struct RouteGeom {
    /// Projection used for every point of this route.
    pub proj: LocalProjection,
    /// Polyline vertices, projected metres.
    pts: Vec<[f64; 2]>,
    /// Distance along the polyline at each vertex, metres.
    cum_m: Vec<f64>,
    /// Part of `cum_m` that lies on straight (no planned path) legs.
    cum_straight_m: Vec<f64>,
    /// Per segment (vertex i to i+1): is it a straight leg?
    seg_straight: Vec<bool>,
    /// Per segment: length of the leg it belongs to (for the off-route allowance of straight legs).
    seg_leg_m: Vec<f64>,
    /// Per stop (index in `route.stops`): distance along the polyline where the stop is reached.
    pub stop_pos_m: Vec<f64>,
    /// Per stop: straight-leg part of `stop_pos_m`.
    pub stop_straight_m: Vec<f64>,
    /// Per stop: projected position.
    pub stop_xy: Vec<[f64; 2]>,
    /// Axis (0 = x, 1 = y) along which the stops spread most.
    axis: usize,
    /// Stops sorted by their coordinate on `axis`: (coordinate, stop index). A range query on
    /// it finds the stops near a fix whatever the planned order; for one route's few hundred
    /// stops it is several times cheaper than an R-tree query.
    by_axis: Vec<(f64, u32)>,
}

/// Where a fix lies on the route's polyline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Located {
    /// Segment index (vertex `seg` to `seg + 1`).
    pub seg: usize,
    /// Distance along the polyline, metres.
    pub along_m: f64,
    /// Straight-leg part of `along_m`.
    pub straight_m: f64,
    /// Distance from the fix to the polyline, metres.
    pub off_m: f64,
    /// The segment is a straight leg.
    pub straight: bool,
    /// Length of the leg the segment belongs to, metres.
    pub leg_m: f64,
}

impl RouteGeom {
    /// Builds the geometry of `route` visited in `order` (indices into `route.stops`).
    /// `order` must be a permutation of the stop indices (the caller checks).
    pub fn build(route: &Route, order: &[usize]) -> RouteGeom {
        let ref_lat = route.stops.first().map_or(0.0, |s| s.lat);
        let proj = LocalProjection::new(ref_lat);
        let n = route.stops.len();
        let stop_xy: Vec<[f64; 2]> = route
            .stops
            .iter()
            .map(|s| proj.project(s.lat, s.lon))
            .collect();
        let mut g = RouteGeom {
            proj,
            pts: Vec::new(),
            cum_m: Vec::new(),
            cum_straight_m: Vec::new(),
            seg_straight: Vec::new(),
            seg_leg_m: Vec::new(),
            stop_pos_m: vec![0.0; n],
            stop_straight_m: vec![0.0; n],
            stop_xy: stop_xy.clone(),
            axis: 0,
            by_axis: Vec::new(),
        };
        let spread = |a: usize| {
            let (lo, hi) = stop_xy
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                    (lo.min(p[a]), hi.max(p[a]))
                });
            hi - lo
        };
        g.axis = usize::from(spread(1) > spread(0));
        g.by_axis = stop_xy
            .iter()
            .enumerate()
            .map(|(i, p)| (p[g.axis], i as u32))
            .collect();
        g.by_axis.sort_by(|a, b| a.0.total_cmp(&b.0));
        let first = match (route.start, order.first()) {
            (Some(p), _) => proj.project(p.lat, p.lon),
            (None, Some(&i)) => stop_xy[i],
            (None, None) => [0.0, 0.0],
        };
        g.push_vertex(first, false, 0.0);
        for (p, &i) in order.iter().enumerate() {
            let stop = &route.stops[i];
            // A planned path is drawn from the planned predecessor: valid only if it still is.
            let follows_plan = if p == 0 {
                i == 0
            } else {
                order[p - 1] + 1 == i
            };
            if follows_plan && stop.path.len() >= 2 {
                let leg: Vec<[f64; 2]> = stop
                    .path
                    .iter()
                    .map(|q| proj.project(q.lat, q.lon))
                    .collect();
                let leg_m: f64 = leg.windows(2).map(|w| dist(w[0], w[1])).sum();
                for xy in leg {
                    g.push_vertex(xy, false, leg_m);
                }
            } else {
                let from = g.pts.last().copied().unwrap_or(first);
                g.push_vertex(stop_xy[i], true, dist(from, stop_xy[i]));
            }
            g.stop_pos_m[i] = g.cum_m.last().copied().unwrap_or(0.0);
            g.stop_straight_m[i] = g.cum_straight_m.last().copied().unwrap_or(0.0);
        }
        g
    }

    /// Calls `f` with the index of every stop within `r_m` of `p` (projected metres).
    pub fn stops_within(&self, p: [f64; 2], r_m: f64, mut f: impl FnMut(usize)) {
        let c = p[self.axis];
        let lo = self.by_axis.partition_point(|e| e.0 < c - r_m);
        for &(v, i) in &self.by_axis[lo..] {
            if v > c + r_m {
                break;
            }
            let q = self.stop_xy[i as usize];
            if (q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2) <= r_m * r_m {
                f(i as usize);
            }
        }
    }

    /// Projects (lat, lon) degrees to the route's metres.
    pub fn project(&self, lat: f64, lon: f64) -> [f64; 2] {
        self.proj.project(lat, lon)
    }

    /// Total polyline length, metres.
    pub fn length_m(&self) -> f64 {
        self.cum_m.last().copied().unwrap_or(0.0)
    }

    /// Locates `p` on the polyline. With `hint` (the previous segment and distance along),
    /// only segments from `back_m` behind to `ahead_m` ahead of the hint are scanned: a handful
    /// per fix. Without a hint the whole polyline is scanned (first fix, re-localisation).
    pub fn locate(
        &self,
        p: [f64; 2],
        hint: Option<(usize, f64)>,
        back_m: f64,
        ahead_m: f64,
    ) -> Located {
        let nseg = self.pts.len().saturating_sub(1);
        if nseg == 0 {
            let q = self.pts.first().copied().unwrap_or(p);
            return Located {
                seg: 0,
                along_m: 0.0,
                straight_m: 0.0,
                off_m: dist(p, q),
                straight: true,
                leg_m: 0.0,
            };
        }
        let (lo, hi) = match hint {
            None => (0, nseg),
            Some((seg, along)) => {
                let seg = seg.min(nseg - 1);
                let mut lo = seg;
                while lo > 0 && self.cum_m[lo] > along - back_m {
                    lo -= 1;
                }
                let mut hi = seg + 1;
                while hi < nseg && self.cum_m[hi] < along + ahead_m {
                    hi += 1;
                }
                (lo, hi)
            }
        };
        let mut best = (f64::INFINITY, lo, 0.0);
        for s in lo..hi {
            let (t, d) = project_on_segment(p, self.pts[s], self.pts[s + 1]);
            // Strictly better only: on a polyline that folds back on itself, the earlier
            // (nearer to the hint when scanning forward) segment wins ties.
            if d < best.0 - 1e-9 {
                best = (d, s, t);
            }
        }
        let (off_m, s, t) = best;
        let seg_len = self.cum_m[s + 1] - self.cum_m[s];
        let straight = self.seg_straight[s];
        Located {
            seg: s,
            along_m: self.cum_m[s] + t * seg_len,
            straight_m: self.cum_straight_m[s] + if straight { t * seg_len } else { 0.0 },
            off_m,
            straight,
            leg_m: self.seg_leg_m[s],
        }
    }

    /// Appends a vertex; the segment ending at it is `straight` and belongs to a leg of `leg_m`.
    fn push_vertex(&mut self, xy: [f64; 2], straight: bool, leg_m: f64) {
        match self.pts.last() {
            None => {
                self.pts.push(xy);
                self.cum_m.push(0.0);
                self.cum_straight_m.push(0.0);
            }
            Some(&last) => {
                let d = dist(last, xy);
                if d < 0.01 {
                    return;
                }
                let (cum, cum_s) = (
                    self.cum_m.last().copied().unwrap_or(0.0),
                    self.cum_straight_m.last().copied().unwrap_or(0.0),
                );
                self.pts.push(xy);
                self.cum_m.push(cum + d);
                self.cum_straight_m
                    .push(cum_s + if straight { d } else { 0.0 });
                self.seg_straight.push(straight);
                self.seg_leg_m.push(leg_m);
            }
        }
    }
}

/// Euclidean distance between projected points, metres.
pub fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::route::{Parcel, Point, Stop};

    pub(crate) fn stop(id: &str, lat: f64, lon: f64, path: Vec<Point>) -> Stop {
        Stop {
            id: id.into(),
            lat,
            lon,
            radius_m: None,
            parcels: vec![Parcel {
                tracking: format!("T-{id}").as_str().into(),
                otp: None,
            }],
            window: None,
            service_s: None,
            planned_arrival_ms: None,
            path,
            instructions: String::new(),
            otp_required: false,
        }
    }

    fn route() -> Route {
        // Three stops 0.01 deg (~1.1 km) apart going north; stop B has a dog-leg path.
        Route {
            id: "R".into(),
            depot: "D".into(),
            driver: "d".into(),
            planned_start_ms: 0,
            start: Some(Point { lat: 0.0, lon: 0.0 }),
            stops: vec![
                stop("A", 0.01, 0.0, vec![]),
                stop(
                    "B",
                    0.02,
                    0.0,
                    vec![
                        Point {
                            lat: 0.01,
                            lon: 0.0,
                        },
                        Point {
                            lat: 0.01,
                            lon: 0.005,
                        },
                        Point {
                            lat: 0.02,
                            lon: 0.005,
                        },
                        Point {
                            lat: 0.02,
                            lon: 0.0,
                        },
                    ],
                ),
                stop("C", 0.03, 0.0, vec![]),
            ],
        }
    }

    #[test]
    fn cumulative_positions_follow_paths() {
        let g = RouteGeom::build(&route(), &[0, 1, 2]);
        let km = 0.01 * crate::fleet::geo_util::M_PER_DEG;
        assert!((g.stop_pos_m[0] - km).abs() < 1.0);
        // The dog-leg adds two half-kilometre sides.
        assert!(
            (g.stop_pos_m[1] - 3.0 * km).abs() < 2.0,
            "{}",
            g.stop_pos_m[1]
        );
        assert!((g.stop_straight_m[1] - km).abs() < 1.0);
        assert!((g.stop_pos_m[2] - 4.0 * km).abs() < 2.0);
    }

    #[test]
    fn resequenced_legs_are_straight() {
        let g = RouteGeom::build(&route(), &[0, 2, 1]);
        let km = 0.01 * crate::fleet::geo_util::M_PER_DEG;
        // B now follows C: its planned path no longer applies.
        assert!((g.stop_pos_m[1] - 4.0 * km).abs() < 2.0);
        assert!((g.stop_straight_m[1] - 4.0 * km).abs() < 2.0);
    }

    #[test]
    fn stops_within_radius() {
        let g = RouteGeom::build(&route(), &[0, 1, 2]);
        let mut found = Vec::new();
        g.stops_within(g.project(0.0201, 0.0), 50.0, |i| found.push(i));
        assert_eq!(found, vec![1]);
        found.clear();
        g.stops_within(g.project(0.02, 0.0), 1200.0, |i| found.push(i));
        found.sort();
        assert_eq!(found, vec![0, 1, 2]);
    }

    #[test]
    fn locate_windowed_and_global() {
        let g = RouteGeom::build(&route(), &[0, 1, 2]);
        let p = g.project(0.015, 0.0051);
        let global = g.locate(p, None, 0.0, 0.0);
        assert!(!global.straight && global.off_m < 15.0);
        let windowed = g.locate(p, Some((global.seg, global.along_m)), 50.0, 150.0);
        assert_eq!(windowed.seg, global.seg);
        assert!((windowed.along_m - global.along_m).abs() < 1e-6);
    }
}
