//! The dispatcher's views: a route event in words ([`DispatchItem`]), a
//! driver on the map ([`DriverDot`]), a depot's newest alerts, everything the map starts from
//! ([`DepotState`]) and the answer of "who is near here" ([`NearbyAnswer`]).

use milepost_core::present::dispatch_text;
use milepost_proto::route::{DepotId, DispatchUpdate, Update};
use milepost_proto::DriverPosition;
use serde::Serialize;

use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::views::common::{driver_name, PositionView};
use crate::web::views::route::{depot_routes, RouteSummary};

/// Route events scanned for a dispatcher's alert list.
const ALERTS_SCAN: u64 = 500;
/// Alerts listed.
const ALERTS_MAX: usize = 100;

/// One route event as a dispatcher sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DispatchItem {
    /// Its feed offset (the SSE event id).
    pub offset: u64,
    /// The route.
    pub route_id: String,
    /// The driver.
    pub driver: String,
    /// The driver's display name (first name, else the id).
    pub driver_name: String,
    /// When, UTC ms.
    pub at_ms: i64,
    /// When, `HH:MM` UTC.
    pub time: String,
    /// The event's kind, e.g. `RunningLate`.
    pub kind: &'static str,
    /// In words.
    pub text: String,
    /// Worth a dispatcher's attention (stalled, late, failed attempt, off route).
    pub alert: bool,
}

impl DispatchItem {
    /// The view of route event `offset`, its time in `zone` (the depot's carrier's).
    pub fn of(
        shared: &Shared,
        offset: u64,
        d: &DispatchUpdate,
        zone: milepost_core::present::LocalClock,
    ) -> DispatchItem {
        let (kind, text, alert) = dispatch_text(&d.kind);
        DispatchItem {
            offset,
            route_id: d.route_id.0.clone(),
            driver: d.driver.0.clone(),
            driver_name: driver_name(shared, &d.driver),
            at_ms: d.fix_t_ms,
            time: milepost_core::present::hhmm_in(d.fix_t_ms, zone),
            kind,
            text,
            alert,
        }
    }
}

/// A driver on the dispatcher map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriverDot {
    /// Driver id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Vehicle, if configured.
    pub vehicle: Option<String>,
    /// The live position.
    pub position: PositionView,
    /// Ground speed, m/s.
    pub speed_mps: Option<f32>,
    /// Distance from a query point, metres (nearby answers only).
    pub distance_m: Option<f32>,
}

impl DriverDot {
    /// The dot of a live position.
    pub fn of(shared: &Shared, p: &DriverPosition, with_distance: bool) -> DriverDot {
        DriverDot {
            id: p.driver.0.clone(),
            name: driver_name(shared, &p.driver),
            vehicle: shared
                .cfg
                .web
                .drivers
                .get(&p.driver.0)
                .and_then(|c| c.vehicle.clone()),
            position: PositionView::of(p),
            speed_mps: p.fix.speed_mps,
            distance_m: with_distance.then_some(p.distance_m),
        }
    }
}

/// The newest alerts of a depot, newest first.
pub fn recent_alerts(shared: &Shared, depot: &DepotId) -> Vec<DispatchItem> {
    let zone = shared.cfg.carriers.clock_of_depot(&depot.0);
    let events = {
        let feed = lock(&shared.state.feed);
        let last = feed.depot_last(depot);
        // The ring keeps the newest `depot_events_kept`: never ask for older ones.
        let kept = shared.cfg.feed.depot_events_kept.max(1) as u64;
        let from = last.saturating_sub(ALERTS_SCAN.min(kept));
        feed.depot_after(depot, from, ALERTS_SCAN as usize)
            .unwrap_or_default()
    };
    let mut v: Vec<DispatchItem> = events
        .iter()
        .rev()
        .filter_map(|(o, u)| match u {
            Update::Dispatch(d) => Some(DispatchItem::of(shared, *o, d, zone)),
            _ => None,
        })
        .filter(|i| i.alert)
        .collect();
    v.truncate(ALERTS_MAX);
    v
}

/// Everything the dispatcher map starts from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DepotState {
    /// The depot.
    pub depot: String,
    /// The offset of the newest route event: the event stream starts after it.
    pub offset: u64,
    /// Server time, UTC ms (for "last seen" ages).
    pub now_ms: i64,
    /// The depot's time zone (its carrier's, IANA name): the page's times are in it.
    pub time_zone: String,
    /// Its carrier's locale writes times on a 12-hour clock.
    pub hour12: bool,
    /// The depot's drivers with a live position.
    pub drivers: Vec<DriverDot>,
    /// The depot's routes.
    pub routes: Vec<RouteSummary>,
    /// The newest alerts, newest first.
    pub alerts: Vec<DispatchItem>,
    /// Messages to recipients or the depot that no provider took (dead letters), oldest
    /// first; addresses masked.
    pub undelivered: Vec<Undelivered>,
}

/// A message no provider took, as the dispatcher's page lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Undelivered {
    /// Its id (retry or dismiss it through the API).
    pub id: u64,
    /// What it was about: the parcel and milestone, or the alert.
    pub about: String,
    /// The channel.
    pub channel: &'static str,
    /// The address, masked.
    pub to: String,
    /// The provider's last answer.
    pub error: String,
    /// When it was given up, UTC ms.
    pub at_ms: i64,
}

/// Most dead letters the page shows.
const UNDELIVERED_MAX: usize = 50;

fn undelivered(shared: &Shared, depot: &DepotId) -> Vec<Undelivered> {
    let dead = shared.notify.store.dead().unwrap_or_else(|e| {
        tracing::error!(error = %e, "dead letters not read");
        Vec::new()
    });
    dead.into_iter()
        .filter(|d| d.message.depot == depot.0)
        .take(UNDELIVERED_MAX)
        .map(|d| {
            let m = d.message;
            let about = match (&m.tracking, m.milestone, &m.alert) {
                (Some(t), Some(ms), _) => format!("{t}: {}", ms.name().replace('_', " ")),
                (_, _, Some(a)) => format!("{}: {}", m.route, a.replace('_', " ")),
                _ => m.route.clone(),
            };
            Undelivered {
                id: m.id,
                about,
                channel: m.channel.name(),
                to: d.to_masked,
                error: m.last_error.unwrap_or_default(),
                at_ms: d.at_ms,
            }
        })
        .collect()
}

/// The state of a depot's map.
pub fn depot_state_of(shared: &Shared, depot: &DepotId) -> DepotState {
    // Offset first (see `parcel_view`).
    let offset = lock(&shared.state.feed).depot_last(depot);
    let positions = lock(&shared.state.positions).of_depot(&depot.0);
    let clock = shared.cfg.carriers.clock_of_depot(&depot.0);
    DepotState {
        depot: depot.0.clone(),
        offset,
        now_ms: shared.now_ms(),
        time_zone: clock.zone.name().to_owned(),
        hour12: clock.hour12,
        drivers: positions
            .iter()
            .map(|p| DriverDot::of(shared, p, false))
            .collect(),
        routes: depot_routes(shared, depot),
        alerts: recent_alerts(shared, depot),
        undelivered: undelivered(shared, depot),
    }
}

/// The answer of `GET /dispatch/nearby`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NearbyAnswer {
    /// Drivers nearest first, with their distance.
    pub drivers: Vec<DriverDot>,
    /// More drivers matched than the limit allowed.
    pub truncated: bool,
}
