//! The core's analytics tally ([`crate::analytics::Tally`]): fed by every fix of a route under
//! way and every update the fold produces, read as [`RouteFacts`], and a snapshot section of
//! its own.

use milepost_proto::route::{RouteId, TrackingNumber, Update};

use super::FleetCore;
use crate::analytics::{RouteFacts, Tally};

impl FleetCore {
    /// Observes one update the fold produced (before the feeds record it); `feed_failures`
    /// counts a parcel's failed attempts in its feed (the core's book counts them too, for
    /// parcels whose feed is gone).
    pub fn observe(&mut self, u: &Update, feed_failures: impl FnOnce(&TrackingNumber) -> u32) {
        let route = match u {
            Update::Parcel(p) => self.by_tracking.get(&p.tracking),
            _ => None,
        };
        let (service, tally) = (&self.service, &mut self.tally);
        tally.observe(u, route, |t| {
            feed_failures(t).max(service.attempts.get(t).map_or(0, |a| a.0))
        });
    }

    /// The facts of a live route so far (or of a route about to close).
    pub fn route_facts(&self, id: &RouteId) -> Option<RouteFacts> {
        let run = self.routes.get(id)?;
        let view = self.route_view(id)?;
        Some(RouteFacts::of(
            &view,
            run.plan.planned_start_ms,
            self.tally.route(id),
            |t| self.is_withdrawn(t),
        ))
    }

    /// The tally, for a snapshot.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Puts back a snapshot's tally.
    pub fn restore_tally(&mut self, t: Tally) {
        self.tally = t;
    }
}

impl FleetCore {
    /// The depots of the live routes.
    pub fn depots(&self) -> std::collections::BTreeSet<milepost_proto::route::DepotId> {
        self.routes.values().map(|r| r.plan.depot.clone()).collect()
    }
}
