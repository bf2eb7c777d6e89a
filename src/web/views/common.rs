//! What the recipient's and the dispatcher's views share: a live position as
//! the pages get it, a driver's display name, the route run a route id names, and the moment a
//! status is read at.

use milepost_core::fleet::engine::FleetCore;
use milepost_core::fleet::run::RouteRun;
use milepost_proto::route::RouteId;
use milepost_proto::{DriverId, DriverPosition};
use serde::Serialize;

use crate::server::shared::Shared;

/// The moment a parcel of `route` is shown: now, the route's newest fix (none for a route no
/// longer live), the feed's staleness age, and the zone of the route's depot's carrier.
pub fn moment(
    shared: &Shared,
    core: &FleetCore,
    route: &RouteId,
) -> milepost_core::present::Moment {
    let run = core.run(route);
    milepost_core::present::Moment {
        now_ms: shared.now_ms(),
        last_fix_ms: run.and_then(|r| r.last_fix_t_ms),
        stale_after_ms: shared.cfg.feed.stale_after_s as i64 * 1000,
        zone: run.map_or(chrono_tz::UTC.into(), |r| {
            shared.cfg.carriers.clock_of_depot(&r.plan.depot.0)
        }),
    }
}

/// A position as the pages get it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PositionView {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Time of the fix, UTC ms.
    pub t_ms: i64,
    /// Accuracy radius, metres.
    pub accuracy_m: f32,
    /// Course, degrees, if measured.
    pub heading_deg: Option<f32>,
}

impl PositionView {
    /// The view of a live position.
    pub fn of(p: &DriverPosition) -> PositionView {
        PositionView {
            lat: p.fix.lat(),
            lon: p.fix.lon(),
            t_ms: p.fix.t_ms,
            accuracy_m: p.fix.accuracy_m,
            heading_deg: p.fix.heading_deg,
        }
    }
}

/// A driver's display name for dispatchers: the profile's first name, else the configured
/// one, else the id.
pub fn driver_name(shared: &Shared, d: &DriverId) -> String {
    if let Some(p) = shared.drivers.get(&d.0) {
        return p.first_name;
    }
    shared
        .cfg
        .web
        .drivers
        .get(&d.0)
        .map(|c| c.first_name.clone())
        .unwrap_or_else(|| d.0.clone())
}

/// The route run a route id names.
pub fn run_of<'a>(core: &'a FleetCore, route: &RouteId) -> Option<&'a RouteRun> {
    core.run(route)
}
