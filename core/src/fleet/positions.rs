//! Live positions: the newest fix of every driver (by measurement time) and one R-tree per
//! depot for spatial queries.
//!
//! Each depot's tree holds points in a local equirectangular projection around the latitude of
//! the depot's first driver. That projection is linear in (lon, lat), so a latitude/longitude
//! box maps to an exact box in the tree; for radius and nearest queries the tree gives
//! candidates in projected distance and the answer is decided by great-circle distance, with a
//! lower bound on the projection's distortion to know when to stop looking.
//!
//! The trees are loose: a driver's point in its tree moves only once the driver is more than
//! [`SLACK`] projected metres away from it, and every query widens its search by `SLACK` and
//! decides on the exact position. A driver at 1 Hz moves a few metres per fix, and a parked one
//! jitters by as much, so most fixes then cost no tree update (a remove and an insert, the most
//! expensive step of folding a fix) at the price of a 30 m wider search.

use crate::hash::FastMap;

use milepost_proto::{DriverId, DriverPosition, Fix, Seq};
use rstar::primitives::GeomWithData;
use rstar::{RTree, AABB};

use crate::fleet::geo_util::{haversine_m, LocalProjection};

/// A point in a depot's tree: projected metres, tagged with the driver's slot.
type TreePoint = GeomWithData<[f64; 2], u32>;

/// How far (projected metres) a driver may be from its point in the tree before the tree is
/// updated: queries search this much wider.
pub const SLACK: f64 = 30.0;

/// What [`Positions::update`] did with a fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// First fix of this driver.
    Inserted,
    /// The fix is newer than the live one and replaced it.
    Moved,
    /// The fix is older than (or as old as) the live one: the live position is unchanged.
    Stale,
}

/// The result of a spatial query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryAnswer {
    /// Matching drivers (nearest first for distance queries).
    pub drivers: Vec<DriverPosition>,
    /// More drivers matched than the limit allowed.
    pub truncated: bool,
}

/// One driver's live state.
#[derive(Clone, Debug)]
struct Slot {
    driver: DriverId,
    depot: u32,
    seq: Seq,
    fix: Fix,
    /// Where the driver is (projected).
    point: [f64; 2],
    /// Where the tree has it: within [`SLACK`] of `point`.
    indexed: [f64; 2],
}

/// One depot's R-tree and its projection.
struct DepotTree {
    name: String,
    proj: LocalProjection,
    tree: RTree<TreePoint>,
    /// Largest |latitude| seen: bounds the projection's distortion (never decreases).
    max_abs_lat: f64,
}

/// Newest fix per driver plus a per-depot R-tree. Plain data: the caller owns locking.
#[derive(Default)]
pub struct Positions {
    slots: Vec<Slot>,
    by_driver: FastMap<DriverId, u32>,
    depot_ids: FastMap<String, u32>,
    depots: Vec<DepotTree>,
}

impl Positions {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of drivers with a live position.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no driver has a position.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Offers a fix. It becomes the live position only if it was measured after the current
    /// one: a late fix never moves a driver backwards. A driver stays in the depot of its first
    /// fix (depots are fixed by the driver's token).
    pub fn update(&mut self, driver: &DriverId, depot: &str, seq: Seq, fix: &Fix) -> UpdateOutcome {
        let Some(&slot_id) = self.by_driver.get(driver) else {
            self.insert(driver, depot, seq, fix);
            return UpdateOutcome::Inserted;
        };
        let slot = &mut self.slots[slot_id as usize];
        if fix.t_ms <= slot.fix.t_ms {
            return UpdateOutcome::Stale;
        }
        let t = &mut self.depots[slot.depot as usize];
        let point = t.proj.project(fix.lat(), fix.lon());
        if point != slot.point {
            if dist2(point, slot.indexed) > SLACK * SLACK {
                t.tree.remove(&TreePoint::new(slot.indexed, slot_id));
                t.tree.insert(TreePoint::new(point, slot_id));
                slot.indexed = point;
            }
            t.max_abs_lat = t.max_abs_lat.max(fix.lat().abs());
            slot.point = point;
        }
        slot.seq = seq;
        slot.fix = *fix;
        UpdateOutcome::Moved
    }

    /// Keeps only the drivers whose depot `keep` selects; returns the drivers removed. The
    /// store is rebuilt (a rare operation: a cluster gateway handing a partition over).
    pub fn retain_depots(&mut self, keep: impl Fn(&str) -> bool) -> Vec<DriverId> {
        let mut removed = Vec::new();
        let mut kept = Positions::new();
        for s in std::mem::take(&mut self.slots) {
            let depot = &self.depots[s.depot as usize].name;
            if keep(depot) {
                kept.insert(&s.driver, depot, s.seq, &s.fix);
            } else {
                removed.push(s.driver);
            }
        }
        *self = kept;
        removed
    }

    /// Every driver's live position: (driver, depot, seq, fix).
    pub fn entries(&self) -> impl Iterator<Item = (&DriverId, &str, Seq, &Fix)> {
        self.slots.iter().map(|s| {
            (
                &s.driver,
                self.depots[s.depot as usize].name.as_str(),
                s.seq,
                &s.fix,
            )
        })
    }

    /// Every live position of a depot's drivers.
    pub fn of_depot(&self, depot: &str) -> Vec<DriverPosition> {
        let Some(&id) = self.depot_ids.get(depot) else {
            return Vec::new();
        };
        (0..self.slots.len() as u32)
            .filter(|&s| self.slots[s as usize].depot == id)
            .map(|s| self.position(s, 0.0))
            .collect()
    }

    /// A driver's live position with its depot.
    pub fn position_of(&self, driver: &DriverId) -> Option<(&str, DriverPosition)> {
        let slot = *self.by_driver.get(driver)?;
        let depot = self.depots[self.slots[slot as usize].depot as usize]
            .name
            .as_str();
        Some((depot, self.position(slot, 0.0)))
    }

    /// The live position of one driver.
    pub fn get(&self, driver: &DriverId) -> Option<(Seq, Fix)> {
        let slot = &self.slots[*self.by_driver.get(driver)? as usize];
        Some((slot.seq, slot.fix))
    }

    /// Drivers of `depot` inside the box (degrees, inclusive), at most `limit`.
    pub fn within(
        &self,
        depot: &str,
        (min_lat, min_lon): (f64, f64),
        (max_lat, max_lon): (f64, f64),
        limit: usize,
    ) -> QueryAnswer {
        let Some(t) = self.depot(depot) else {
            return QueryAnswer::default();
        };
        let env = AABB::from_corners(
            t.proj.project(min_lat, min_lon),
            t.proj.project(max_lat, max_lon),
        );
        let (lo, hi) = (env.lower(), env.upper());
        let loose = AABB::from_corners(
            [lo[0] - SLACK, lo[1] - SLACK],
            [hi[0] + SLACK, hi[1] + SLACK],
        );
        let mut answer = QueryAnswer::default();
        let inside = |p: &&TreePoint| {
            let at = self.slots[p.data as usize].point;
            (lo[0]..=hi[0]).contains(&at[0]) && (lo[1]..=hi[1]).contains(&at[1])
        };
        for p in t.tree.locate_in_envelope(&loose).filter(inside) {
            if answer.drivers.len() == limit {
                answer.truncated = true;
                break;
            }
            answer.drivers.push(self.position(p.data, 0.0));
        }
        answer
    }

    /// Drivers of `depot` within `radius_m` great-circle metres of a point, nearest first, at
    /// most `limit`.
    pub fn nearby(
        &self,
        depot: &str,
        lat: f64,
        lon: f64,
        radius_m: f64,
        limit: usize,
    ) -> QueryAnswer {
        let Some(t) = self.depot(depot) else {
            return QueryAnswer::default();
        };
        let centre = t.proj.project(lat, lon);
        // A true distance d has a projected distance of at most d / min_scale.
        let scale = t.proj.min_scale(t.max_abs_lat.max(lat.abs()));
        let r_proj = radius_m / scale + SLACK;
        let mut hits: Vec<(f64, u32)> = t
            .tree
            .locate_within_distance(centre, r_proj * r_proj)
            .filter_map(|p| {
                let s = &self.slots[p.data as usize];
                let d = haversine_m(lat, lon, s.fix.lat(), s.fix.lon());
                (d <= radius_m).then_some((d, p.data))
            })
            .collect();
        hits.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truncated = hits.len() > limit;
        hits.truncate(limit);
        QueryAnswer {
            drivers: hits.into_iter().map(|(d, s)| self.position(s, d)).collect(),
            truncated,
        }
    }

    /// The `k` drivers of `depot` nearest to a point (great-circle), nearest first.
    pub fn nearest(&self, depot: &str, lat: f64, lon: f64, k: usize) -> QueryAnswer {
        let Some(t) = self.depot(depot) else {
            return QueryAnswer::default();
        };
        if k == 0 {
            return QueryAnswer::default();
        }
        let centre = t.proj.project(lat, lon);
        let scale = t.proj.min_scale(t.max_abs_lat.max(lat.abs()));
        // Candidates come in order of their tree point's projected distance; a driver is at
        // most `SLACK` nearer than its tree point. Keep the k best by true distance and stop
        // once a candidate's lower-bound true distance exceeds the k-th best.
        let mut best: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
        for (p, d2) in t.tree.nearest_neighbor_iter_with_distance_2(&centre) {
            if best.len() == k && (d2.sqrt() - SLACK) * scale > best[k - 1].0 {
                break;
            }
            let s = &self.slots[p.data as usize];
            let d = haversine_m(lat, lon, s.fix.lat(), s.fix.lon());
            let at = best.partition_point(|b| b.0 <= d);
            if at < k {
                best.insert(at, (d, p.data));
                best.truncate(k);
            }
        }
        QueryAnswer {
            drivers: best.into_iter().map(|(d, s)| self.position(s, d)).collect(),
            truncated: false,
        }
    }

    fn insert(&mut self, driver: &DriverId, depot: &str, seq: Seq, fix: &Fix) {
        let depot_id = match self.depot_ids.get(depot) {
            Some(&id) => id,
            None => {
                let id = self.depots.len() as u32;
                self.depots.push(DepotTree {
                    name: depot.to_owned(),
                    proj: LocalProjection::new(fix.lat()),
                    tree: RTree::new(),
                    max_abs_lat: fix.lat().abs(),
                });
                self.depot_ids.insert(depot.to_owned(), id);
                id
            }
        };
        let t = &mut self.depots[depot_id as usize];
        let point = t.proj.project(fix.lat(), fix.lon());
        let slot_id = self.slots.len() as u32;
        t.tree.insert(TreePoint::new(point, slot_id));
        t.max_abs_lat = t.max_abs_lat.max(fix.lat().abs());
        self.slots.push(Slot {
            driver: driver.clone(),
            depot: depot_id,
            seq,
            fix: *fix,
            point,
            indexed: point,
        });
        self.by_driver.insert(driver.clone(), slot_id);
    }

    fn depot(&self, depot: &str) -> Option<&DepotTree> {
        Some(&self.depots[*self.depot_ids.get(depot)? as usize])
    }

    fn position(&self, slot: u32, distance_m: f64) -> DriverPosition {
        let s = &self.slots[slot as usize];
        DriverPosition {
            driver: s.driver.clone(),
            seq: s.seq,
            fix: s.fix,
            distance_m: distance_m as f32,
        }
    }
}

/// Squared distance between two projected points.
fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fix(t: i64, lat: f64, lon: f64) -> Fix {
        Fix::from_degrees(t, lat, lon, 5.0)
    }

    fn d(s: &str) -> DriverId {
        DriverId::from(s)
    }

    #[test]
    fn late_fix_never_moves_backwards() {
        let mut p = Positions::new();
        assert_eq!(
            p.update(&d("a"), "x", Seq(1), &fix(2_000, 10.0, 10.0)),
            UpdateOutcome::Inserted
        );
        assert_eq!(
            p.update(&d("a"), "x", Seq(2), &fix(1_000, 11.0, 11.0)),
            UpdateOutcome::Stale
        );
        assert_eq!(p.get(&d("a")).unwrap().0, Seq(1));
        assert_eq!(
            p.update(&d("a"), "x", Seq(3), &fix(3_000, 10.001, 10.0)),
            UpdateOutcome::Moved
        );
        let got = p.nearest("x", 10.0, 10.0, 5);
        assert_eq!(got.drivers.len(), 1);
        assert_eq!(got.drivers[0].seq, Seq(3));
    }

    #[test]
    fn queries_are_scoped_to_the_depot() {
        let mut p = Positions::new();
        p.update(&d("a"), "north", Seq(1), &fix(1, 38.90, -77.03));
        p.update(&d("b"), "south", Seq(1), &fix(1, 38.90, -77.03));
        let ids = |a: QueryAnswer| {
            a.drivers
                .into_iter()
                .map(|x| x.driver.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(p.nearby("north", 38.90, -77.03, 100.0, 10)), vec!["a"]);
        assert_eq!(
            ids(p.within("south", (38.0, -78.0), (39.0, -77.0), 10)),
            vec!["b"]
        );
        assert!(p.nearest("east", 38.9, -77.03, 3).drivers.is_empty());
    }

    #[test]
    fn within_truncates_at_the_limit() {
        let mut p = Positions::new();
        for i in 0..10 {
            p.update(
                &d(&format!("d{i}")),
                "x",
                Seq(1),
                &fix(1, 38.9 + i as f64 * 1e-4, -77.0),
            );
        }
        let a = p.within("x", (38.0, -78.0), (39.0, -76.0), 4);
        assert_eq!(a.drivers.len(), 4);
        assert!(a.truncated);
    }

    /// Brute-force reference for the distance queries.
    fn brute(points: &[(f64, f64)], lat: f64, lon: f64) -> Vec<(f64, usize)> {
        let mut v: Vec<(f64, usize)> = points
            .iter()
            .enumerate()
            .map(|(i, &(a, o))| (haversine_m(lat, lon, a, o), i))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    proptest! {
        #[test]
        fn distance_queries_match_brute_force(
            pts in proptest::collection::vec((59.0f64..61.0, 10.0f64..12.0), 1..60),
            (qlat, qlon) in (59.0f64..61.0, 10.0f64..12.0),
            k in 1usize..10,
            r in 100.0f64..50_000.0,
        ) {
            // High latitude, 2 degrees tall: the projection distorts noticeably here.
            let mut p = Positions::new();
            for (i, &(lat, lon)) in pts.iter().enumerate() {
                p.update(&d(&i.to_string()), "x", Seq(1), &fix(1, lat, lon));
            }
            // Compare against the stored (rounded to 1e-7 degree) coordinates.
            let stored: Vec<(f64, f64)> = (0..pts.len())
                .map(|i| { let f = p.get(&d(&i.to_string())).unwrap().1; (f.lat(), f.lon()) })
                .collect();
            let want = brute(&stored, qlat, qlon);
            let got = p.nearest("x", qlat, qlon, k);
            let want_k: Vec<f64> = want.iter().take(k).map(|w| w.0).collect();
            let got_k: Vec<f64> = got.drivers.iter().map(|g| g.distance_m as f64).collect();
            prop_assert_eq!(got_k.len(), want_k.len());
            for (g, w) in got_k.iter().zip(&want_k) {
                prop_assert!((g - w).abs() < 0.01, "{} vs {}", g, w);
            }
            let got_r = p.nearby("x", qlat, qlon, r, usize::MAX);
            let want_r = want.iter().filter(|w| w.0 <= r).count();
            prop_assert_eq!(got_r.drivers.len(), want_r);
        }

        /// Drivers that move by small steps (so their tree points lag their positions by up
        /// to `SLACK`) are found by every query exactly where they are.
        #[test]
        fn loose_tree_answers_from_exact_positions(
            start in proptest::collection::vec((38.90f64..38.91, -77.01f64..-77.0), 1..40),
            moves in proptest::collection::vec((0usize..40, -0.0004f64..0.0004, -0.0004f64..0.0004), 0..200),
            (qlat, qlon) in (38.90f64..38.91, -77.01f64..-77.0),
            k in 1usize..8,
            r in 5.0f64..800.0,
            (h_lat, h_lon) in (0.0f64..0.004, 0.0f64..0.004),
        ) {
            let mut p = Positions::new();
            let mut at = start.clone();
            for (i, &(lat, lon)) in start.iter().enumerate() {
                p.update(&d(&i.to_string()), "x", Seq(1), &fix(1, lat, lon));
            }
            for (n, &(i, dlat, dlon)) in moves.iter().enumerate() {
                let i = i % at.len();
                at[i] = (at[i].0 + dlat, at[i].1 + dlon);
                p.update(&d(&i.to_string()), "x", Seq(2 + n as u64), &fix(2 + n as i64, at[i].0, at[i].1));
            }
            let stored: Vec<(f64, f64)> = (0..at.len())
                .map(|i| { let f = p.get(&d(&i.to_string())).unwrap().1; (f.lat(), f.lon()) })
                .collect();
            let want = brute(&stored, qlat, qlon);
            let got: Vec<f64> = p.nearest("x", qlat, qlon, k).drivers.iter().map(|g| g.distance_m as f64).collect();
            let want_k: Vec<f64> = want.iter().take(k).map(|w| w.0).collect();
            prop_assert_eq!(got.len(), want_k.len());
            for (g, w) in got.iter().zip(&want_k) {
                prop_assert!((g - w).abs() < 0.01, "{} vs {}", g, w);
            }
            let got_r = p.nearby("x", qlat, qlon, r, usize::MAX);
            prop_assert_eq!(got_r.drivers.len(), want.iter().filter(|w| w.0 <= r).count());
            let (lo, hi) = ((qlat - h_lat, qlon - h_lon), (qlat + h_lat, qlon + h_lon));
            let mut got_box: Vec<String> = p.within("x", lo, hi, usize::MAX).drivers.into_iter().map(|x| x.driver.0).collect();
            got_box.sort();
            let mut want_box: Vec<String> = stored.iter().enumerate()
                .filter(|(_, &(a, o))| (lo.0..=hi.0).contains(&a) && (lo.1..=hi.1).contains(&o))
                .map(|(i, _)| i.to_string()).collect();
            want_box.sort();
            prop_assert_eq!(got_box, want_box);
        }
    }
}
