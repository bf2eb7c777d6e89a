//! A parcel's and a route's history once the route leaves the live state (archived after it
//! finished, or cancelled): what the records are, how they are read off the state at that
//! moment ([`closing`]), and how a parcel's history on an earlier route and on a newer one
//! become one ([`ParcelHistory::merge`]).
//!
//! Pure, like the rest of the core: the shell keeps these records in its embedded database
//! (`src/history/`), writing them as it folds the record that closes the route, so that every
//! gateway of a cluster, and a gateway replaying its log after a crash, keeps the same
//! history.

use milepost_proto::route::{
    DepotId, ParcelEvent, ParcelStatus, ParcelUpdate, RouteId, TrackingNumber, Update,
};
use serde::{Deserialize, Serialize};

use crate::analytics::RouteFacts;
use crate::feed::FeedStore;
use crate::fleet::engine::FleetCore;
use crate::fleet::view::RouteView;
use crate::store::LogRecord;

/// Most milestones kept per parcel (ETA refreshes are not milestones and are not kept).
pub const MILESTONES_KEPT: usize = 200;

/// How a route left the live state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closed {
    /// Finished, then archived after `log.archive_routes_after_s`.
    Archived,
    /// Cancelled by the back office.
    Cancelled,
}

/// A route's final view, kept after it left the live state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteHistory {
    /// The final view (stops, outcomes, times).
    pub view: RouteView,
    /// The route's planned start, UTC ms (its day, for listings).
    pub planned_start_ms: i64,
    /// How it left.
    pub closed: Closed,
    /// When, UTC ms (server time of the closing record).
    pub closed_ms: i64,
}

/// One parcel's history across every route it was on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParcelHistory {
    /// The parcel.
    pub tracking: TrackingNumber,
    /// The depot of its newest route.
    pub depot: DepotId,
    /// The routes it was on, oldest first.
    pub routes: Vec<RouteId>,
    /// Its status on its newest closed route.
    pub status: ParcelStatus,
    /// Its milestones, oldest first (at most [`MILESTONES_KEPT`], the newest).
    pub milestones: Vec<ParcelUpdate>,
    /// How its newest route left.
    pub closed: Closed,
    /// When, UTC ms.
    pub closed_ms: i64,
}

impl ParcelHistory {
    /// One history from an older one and a newer one: the routes of both, the newer status,
    /// the milestones of both once each (a parcel's feed spans its routes, so the newer record
    /// usually repeats the older one's milestones).
    pub fn merge(older: ParcelHistory, newer: ParcelHistory) -> ParcelHistory {
        let mut routes = older.routes;
        for r in newer.routes.iter() {
            if !routes.contains(r) {
                routes.push(r.clone());
            }
        }
        let mut milestones = older.milestones;
        for m in newer.milestones {
            if !milestones.contains(&m) {
                milestones.push(m);
            }
        }
        milestones.sort_by_key(|m| m.fix_t_ms);
        keep_newest(&mut milestones);
        ParcelHistory {
            routes,
            milestones,
            ..newer
        }
    }
}

/// What closing one route leaves behind: its history and its parcels'.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Closing {
    /// The route.
    pub route: RouteHistory,
    /// Its parcels.
    pub parcels: Vec<ParcelHistory>,
    /// Its numbers, for analytics.
    pub facts: RouteFacts,
}

/// The histories `rec` leaves behind, read off the state *before* `rec` is folded in (after
/// it, the routes are gone). Empty for records that close no route, and for routes the core
/// does not know (a cancel of an unknown route is refused by the fold).
pub fn closing(core: &FleetCore, feed: &FeedStore, rec: &LogRecord) -> Vec<Closing> {
    let (ids, closed, at_ms): (Vec<&RouteId>, Closed, i64) = match rec {
        LogRecord::RoutesArchived { routes, at_ms } => {
            (routes.iter().collect(), Closed::Archived, *at_ms)
        }
        LogRecord::RouteCancelled {
            route_id, at_ms, ..
        } => (vec![route_id], Closed::Cancelled, *at_ms),
        _ => return Vec::new(),
    };
    ids.into_iter()
        .filter_map(|id| {
            let view = core.route_view(id)?;
            let plan = core.route_in_order(id)?;
            let facts = core.route_facts_of(id, &view)?;
            let parcels = plan
                .stops
                .iter()
                .flat_map(|s| &s.parcels)
                .filter_map(|p| {
                    let status = core.parcel_status_on(id, &p.tracking)?;
                    Some(ParcelHistory {
                        tracking: p.tracking.clone(),
                        depot: plan.depot.clone(),
                        routes: vec![id.clone()],
                        status,
                        milestones: milestones(feed, &p.tracking),
                        closed,
                        closed_ms: at_ms,
                    })
                })
                .collect();
            Some(Closing {
                route: RouteHistory {
                    view,
                    planned_start_ms: plan.planned_start_ms,
                    closed,
                    closed_ms: at_ms,
                },
                parcels,
                facts,
            })
        })
        .collect()
}

/// A parcel's milestones in its feed (ETA refreshes left out), oldest first.
pub fn milestones(feed: &FeedStore, t: &TrackingNumber) -> Vec<ParcelUpdate> {
    let mut out: Vec<ParcelUpdate> = feed
        .parcel_after(t, 0, usize::MAX)
        .into_iter()
        .filter_map(|(_, u)| match u {
            Update::Parcel(p) if !matches!(p.kind, ParcelEvent::EtaChanged { .. }) => Some(p),
            _ => None,
        })
        .collect();
    keep_newest(&mut out);
    out
}

fn keep_newest(m: &mut Vec<ParcelUpdate>) {
    if m.len() > MILESTONES_KEPT {
        m.drain(..m.len() - MILESTONES_KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::route::ParcelState;

    fn status(route: &str, state: ParcelState) -> ParcelStatus {
        ParcelStatus {
            tracking: "T1".into(),
            route_id: route.into(),
            stop: "S1".into(),
            state,
            stops_away: None,
            eta_ms: None,
            earliest_ms: None,
            latest_ms: None,
            window: None,
            last_event: None,
        }
    }

    fn event(t: i64, kind: ParcelEvent) -> ParcelUpdate {
        ParcelUpdate {
            tracking: "T1".into(),
            fix_t_ms: t,
            kind,
        }
    }

    fn history(route: &str, state: ParcelState, ms: Vec<ParcelUpdate>) -> ParcelHistory {
        ParcelHistory {
            tracking: "T1".into(),
            depot: "north".into(),
            routes: vec![route.into()],
            status: status(route, state),
            milestones: ms,
            closed: Closed::Archived,
            closed_ms: 9,
        }
    }

    #[test]
    fn merge_keeps_both_routes_and_each_milestone_once() {
        let a = event(1, ParcelEvent::OutForDelivery);
        let b = event(
            2,
            ParcelEvent::Failed {
                reason: milepost_proto::route::FailureReason::RecipientAbsent,
                note: String::new(),
            },
        );
        let c = event(5, ParcelEvent::OutForDelivery);
        let older = history("R1", ParcelState::Failed, vec![a.clone(), b.clone()]);
        // The newer route's capture repeats the feed's older milestones.
        let newer = history(
            "R2",
            ParcelState::Delivered,
            vec![a.clone(), b.clone(), c.clone()],
        );
        let m = ParcelHistory::merge(older, newer);
        assert_eq!(m.routes, vec![RouteId::from("R1"), RouteId::from("R2")]);
        assert_eq!(m.milestones, vec![a, b, c]);
        assert_eq!(m.status.state, ParcelState::Delivered);
        assert_eq!(m.status.route_id, RouteId::from("R2"));
    }

    #[test]
    fn merge_bounds_the_milestones() {
        let many: Vec<_> = (0..MILESTONES_KEPT as i64 + 10)
            .map(|t| event(t, ParcelEvent::StopsAway { n: t as u32 }))
            .collect();
        let m = ParcelHistory::merge(
            history("R1", ParcelState::Failed, many[..50].to_vec()),
            history("R2", ParcelState::Failed, many[50..].to_vec()),
        );
        assert_eq!(m.milestones.len(), MILESTONES_KEPT);
        assert_eq!(m.milestones.last(), many.last());
    }
}
