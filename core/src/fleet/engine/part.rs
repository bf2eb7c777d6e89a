//! One partition of depots taken out of the core as an image ([`CorePartRef`]) and put into
//! another core ([`FleetCore::install_part`]): what a cluster gateway that folds only the
//! partitions it owns keeps per partition, so that the gateway taking a partition over starts
//! from the image and folds only the records after it. The whole state of a partition is in
//! the image, so the core it is installed into goes on exactly as the one it came from.

use std::collections::BTreeSet;

use milepost_proto::route::{DepotId, RouteId, TrackingNumber};
use milepost_proto::DriverId;
use serde::{Deserialize, Serialize};

use super::{FleetCore, ParcelService};
use crate::analytics::RouteTally;
use crate::fleet::calibrate::{Calibration, Windows};
use crate::fleet::run::RouteRun;

/// A failed attempt remembered for a parcel: tracking number, attempts so far, time of the
/// newest, and the depot it was made for.
pub type AttemptEntry = (TrackingNumber, u32, i64, Option<DepotId>);

/// A stop's published estimates waiting for its arrival (horizon bucket, ETA, seconds to go).
pub type Published = Vec<(usize, i64, f64)>;

/// What the core keeps of one partition, borrowed where it can be, to encode.
#[derive(Debug, Serialize)]
pub struct CorePartRef<'a> {
    /// The partition's routes, finished or not, in route id order.
    pub routes: Vec<&'a RouteRun>,
    /// Each route's windows as of its newest fix (same order).
    pub windows: Vec<Windows>,
    /// Each route's analytics tally (same order).
    pub tally: Vec<&'a RouteTally>,
    /// Each route's estimates published and waiting for their stop's arrival to be scored,
    /// per stop (same order): the calibration's next samples.
    pub published: Vec<Vec<Published>>,
    /// Each route's parcels taken off it by their recipients (same order).
    pub withdrawn: Vec<Vec<&'a TrackingNumber>>,
    /// The route each of the partition's parcels is on now (when it is one of the partition's).
    pub by_tracking: Vec<(&'a TrackingNumber, &'a RouteId)>,
    /// The route each of the partition's drivers is on now (likewise).
    pub by_driver: Vec<(&'a DriverId, &'a RouteId)>,
    /// The recipients' changes and threads of the partition's parcels.
    pub service: Vec<(&'a TrackingNumber, &'a ParcelService)>,
    /// The failed attempts of the partition's parcels, also of parcels whose route is gone.
    pub attempts: Vec<AttemptEntry>,
    /// The partition's ETA calibration, when calibrated per partition.
    pub calibration: Option<&'a Calibration>,
}

/// [`CorePartRef`] read back.
#[derive(Debug, Deserialize)]
pub struct CorePart {
    /// See [`CorePartRef::routes`].
    pub routes: Vec<RouteRun>,
    /// See [`CorePartRef::windows`].
    pub windows: Vec<Windows>,
    /// See [`CorePartRef::tally`].
    pub tally: Vec<RouteTally>,
    /// See [`CorePartRef::published`].
    pub published: Vec<Vec<Published>>,
    /// See [`CorePartRef::withdrawn`].
    pub withdrawn: Vec<Vec<TrackingNumber>>,
    /// See [`CorePartRef::by_tracking`].
    pub by_tracking: Vec<(TrackingNumber, RouteId)>,
    /// See [`CorePartRef::by_driver`].
    pub by_driver: Vec<(DriverId, RouteId)>,
    /// See [`CorePartRef::service`].
    pub service: Vec<(TrackingNumber, ParcelService)>,
    /// See [`CorePartRef::attempts`].
    pub attempts: Vec<AttemptEntry>,
    /// See [`CorePartRef::calibration`].
    pub calibration: Option<Calibration>,
}

impl FleetCore {
    /// The image of the routes of depots `keep` selects (calibration group `group`, when
    /// calibrated per partition), and what the core keeps of their parcels.
    pub fn part(&self, keep: impl Fn(&DepotId) -> bool, group: u32) -> CorePartRef<'_> {
        let mut runs: Vec<(&RouteId, &RouteRun)> = self
            .routes
            .iter()
            .filter(|(_, r)| keep(&r.plan.depot))
            .collect();
        runs.sort_by(|a, b| a.0.cmp(b.0));
        let parcels: BTreeSet<&TrackingNumber> = runs
            .iter()
            .flat_map(|(_, r)| r.plan.stops.iter().flat_map(|s| &s.parcels))
            .map(|p| &p.tracking)
            .collect();
        let ours_route = |id: &RouteId| self.routes.get(id).is_some_and(|r| keep(&r.plan.depot));
        let book = &self.service;
        let ours =
            |t: &TrackingNumber| parcels.contains(t) || book.depots.get(t).is_some_and(&keep);
        CorePartRef {
            routes: runs.iter().map(|(_, r)| *r).collect(),
            windows: runs.iter().map(|(_, r)| r.windows).collect(),
            tally: runs.iter().map(|(_, r)| &r.tally).collect(),
            published: runs
                .iter()
                .map(|(_, r)| r.stops.iter().map(|s| s.published.clone()).collect())
                .collect(),
            withdrawn: runs
                .iter()
                .map(|(_, r)| {
                    let gone = r.parcels.iter().filter(|p| p.withdrawn);
                    gone.map(|p| &p.tracking).collect()
                })
                .collect(),
            // Only lookups that lead to the partition's own routes.
            by_tracking: parcels
                .iter()
                .filter_map(|t| Some((*t, self.by_tracking.get(*t)?)))
                .filter(|(_, r)| ours_route(r))
                .collect(),
            by_driver: runs
                .iter()
                .map(|(_, r)| &r.plan.driver)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter_map(|d| Some((d, self.by_driver.get(d)?)))
                .filter(|(_, r)| ours_route(r))
                .collect(),
            service: book.parcels.iter().filter(|(t, _)| ours(t)).collect(),
            attempts: book
                .attempts
                .iter()
                .filter(|(t, _)| ours(t))
                .map(|(t, (n, at))| (t.clone(), *n, *at, book.depots.get(t).cloned()))
                .collect(),
            calibration: (self.cfg.calibration_groups > 1)
                .then(|| self.calibration.get(&group).map(|c| &c.0))
                .flatten(),
        }
    }

    /// Installs a partition's image (of calibration group `group`): its routes, their parcels'
    /// entries, failed attempts and calibration, as they were where the image was taken. The
    /// core must hold nothing of the partition. Returns the routes installed.
    pub fn install_part(&mut self, part: CorePart, group: u32) -> usize {
        if let Some(c) = part.calibration {
            let windows = c.windows(self.cfg.eta.window_coverage);
            self.calibration.insert(group, (c, windows));
        }
        let n = part.routes.len();
        let runs = part.routes.into_iter().zip(part.windows).zip(part.tally);
        let runs = runs.zip(part.published).zip(part.withdrawn);
        for ((((mut run, windows), tally), published), withdrawn) in runs {
            run.rebuild_moved();
            run.windows = windows;
            run.tally = tally;
            for (stop, p) in run.stops.iter_mut().zip(published) {
                stop.published = p;
            }
            for p in run.parcels.iter_mut() {
                p.withdrawn = withdrawn.contains(&p.tracking);
            }
            self.routes.insert(run.plan.id.clone(), run);
        }
        // The lookups as they were where the image was taken (which route a parcel or a
        // driver is on is history, not a function of the routes).
        self.by_tracking.extend(part.by_tracking);
        self.by_driver.extend(part.by_driver);
        let book = &mut self.service;
        for (t, n, at, depot) in part.attempts {
            if let Some(d) = depot {
                book.depots.insert(t.clone(), d);
            }
            book.attempts.insert(t, (n, at));
        }
        book.parcels.extend(part.service);
        n
    }

    /// Forgets the failed attempts made for depots `gone` selects (their partition passed to
    /// another gateway), also of parcels whose route is gone.
    pub(super) fn forget_attempts(&mut self, gone: impl Fn(&DepotId) -> bool) {
        let book = &mut self.service;
        let dropped: Vec<TrackingNumber> = book
            .depots
            .iter()
            .filter(|(_, d)| gone(d))
            .map(|(t, _)| t.clone())
            .collect();
        for t in dropped {
            book.depots.remove(&t);
            book.attempts.remove(&t);
            book.parcels.remove(&t);
        }
    }
}
