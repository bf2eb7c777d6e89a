//! The core's analytics: each route's tally ([`crate::analytics::RouteTally`], kept in its
//! [`RouteRun`](crate::fleet::run::RouteRun)) fed by the fold's updates, read as
//! [`RouteFacts`], and carried by the snapshot as a section of its own.

use milepost_proto::route::{DepotId, RouteId, TrackingNumber, Update};

use super::FleetCore;
use crate::analytics::{RouteFacts, RouteTally, Tally};
use crate::fleet::view::RouteView;

impl FleetCore {
    /// Observes one update the fold produced (before the feeds record it); `feed_failures`
    /// counts a parcel's failed attempts in its feed (the core's book counts them too, for
    /// parcels whose feed is gone).
    pub fn observe(&mut self, u: &Update, feed_failures: impl FnOnce(&TrackingNumber) -> u32) {
        if !self.cfg.analytics {
            return;
        }
        match u {
            Update::Parcel(p) => {
                let Some(id) = self.by_tracking.get(&p.tracking) else {
                    return;
                };
                let Some(run) = self.routes.get_mut(id) else {
                    return;
                };
                let book = &self.service;
                run.tally
                    .observe_parcel(p, |t| feed_failures(t).max(book.failed_attempts(t)));
            }
            Update::Dispatch(d) => {
                if let Some(run) = self.routes.get_mut(&d.route_id) {
                    run.tally.observe_dispatch(d);
                }
            }
            Update::Driver(_) => {}
        }
    }

    /// The facts of a live route so far (or of a route about to close).
    pub fn route_facts(&self, id: &RouteId) -> Option<RouteFacts> {
        self.route_facts_of(id, &self.route_view(id)?)
    }

    /// [`FleetCore::route_facts`] with the route's view already at hand.
    pub fn route_facts_of(&self, id: &RouteId, view: &RouteView) -> Option<RouteFacts> {
        let run = self.routes.get(id)?;
        // This route's own flags: a parcel taken off it may be on another route by now.
        let withdrawn: std::collections::BTreeSet<&TrackingNumber> = run
            .parcels
            .iter()
            .filter(|p| p.withdrawn)
            .map(|p| &p.tracking)
            .collect();
        Some(RouteFacts::of(
            view,
            run.plan.planned_start_ms,
            Some(&run.tally),
            |t| withdrawn.contains(t),
        ))
    }

    /// The live routes' tallies, for a snapshot (in route id order).
    pub fn tally(&self) -> Vec<(&RouteId, &RouteTally)> {
        let mut v: Vec<(&RouteId, &RouteTally)> =
            self.routes.iter().map(|(id, r)| (id, &r.tally)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Puts back a snapshot's tallies (of routes still live).
    pub fn restore_tally(&mut self, t: Tally) {
        for (id, tally) in t {
            if let Some(run) = self.routes.get_mut(&id) {
                run.tally = tally;
            }
        }
    }

    /// The depots of the live routes.
    pub fn depots(&self) -> std::collections::BTreeSet<DepotId> {
        self.routes.values().map(|r| r.plan.depot.clone()).collect()
    }
}
