//! The feed's event store. Offsets start at 1 in every feed and increase by one per event; a
//! subscriber's cursor is the offset of the last event it processed (0 = none).

use std::collections::{HashMap, VecDeque};

use milepost_proto::route::{
    DepotId, DispatchUpdate, ParcelUpdate, RouteId, TrackingNumber, Update,
};
use serde::{Deserialize, Serialize};

use crate::feed::FeedKey;

/// The cursor is older than the oldest event kept: the subscriber must resync from a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("events after offset {0} are no longer kept")]
pub struct TooOld(pub u64);

/// A bounded, offset-addressed event ring.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ring<T> {
    /// Offset of `events[0]`.
    first: u64,
    events: VecDeque<T>,
    cap: usize,
}

impl<T: Clone> Ring<T> {
    /// An empty ring keeping the last `cap` events.
    pub fn new(cap: usize) -> Self {
        Ring {
            first: 1,
            events: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Appends an event; returns its offset.
    pub fn push(&mut self, e: T) -> u64 {
        if self.events.len() == self.cap {
            self.events.pop_front();
            self.first += 1;
        }
        self.events.push_back(e);
        self.last()
    }

    /// Offset of the oldest event kept (the next offset when empty).
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Offset of the newest event (0 if none ever).
    pub fn last(&self) -> u64 {
        self.first + self.events.len() as u64 - 1
    }

    /// Visits the events after `after`, at most `max`, without copying them; returns the
    /// offset of the last one visited (`after` if none).
    pub fn visit_after(
        &self,
        after: u64,
        max: usize,
        mut f: impl FnMut(u64, &T),
    ) -> Result<u64, TooOld> {
        if after + 1 < self.first {
            return Err(TooOld(after));
        }
        let skip = (after + 1 - self.first) as usize;
        let mut last = after;
        for (i, e) in self.events.iter().enumerate().skip(skip).take(max) {
            last = self.first + i as u64;
            f(last, e);
        }
        Ok(last)
    }

    /// Up to `max` events after offset `after`, with their offsets.
    pub fn after(&self, after: u64, max: usize) -> Result<Vec<(u64, T)>, TooOld> {
        if after + 1 < self.first {
            return Err(TooOld(after));
        }
        let skip = (after + 1 - self.first) as usize;
        Ok(self
            .events
            .iter()
            .enumerate()
            .skip(skip)
            .take(max)
            .map(|(i, e)| (self.first + i as u64, e.clone()))
            .collect())
    }
}

/// Every feed's events.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeedStore {
    /// Every milestone of every parcel (offset = index + 1).
    parcels: HashMap<TrackingNumber, Vec<ParcelUpdate>>,
    /// Route events per depot.
    depots: HashMap<DepotId, Ring<DispatchUpdate>>,
    /// Every parcel milestone in log order, for webhooks.
    milestones: Ring<ParcelUpdate>,
    /// The depot of every route ever assigned.
    route_depot: HashMap<RouteId, DepotId>,
    depot_cap: usize,
}

impl FeedStore {
    /// An empty store keeping `depot_cap` route events per depot and `milestone_cap` milestones
    /// for webhooks.
    pub fn new(depot_cap: usize, milestone_cap: usize) -> Self {
        FeedStore {
            parcels: HashMap::new(),
            depots: HashMap::new(),
            milestones: Ring::new(milestone_cap),
            route_depot: HashMap::new(),
            depot_cap,
        }
    }

    /// Notes which depot a route belongs to (from its assignment).
    pub fn route_assigned(&mut self, route: &RouteId, depot: &DepotId) {
        self.route_depot.insert(route.clone(), depot.clone());
    }

    /// Drops an archived route's parcel feeds (their history is in the archive).
    ///
    /// A parcel for which `still_live` is true (it moved to a newer route that is still live)
    /// keeps its feed: its recipient goes on following it there.
    pub fn forget_route(
        &mut self,
        route: &milepost_proto::route::Route,
        still_live: impl Fn(&TrackingNumber) -> bool,
    ) {
        for p in route.stops.iter().flat_map(|s| &s.parcels) {
            if !still_live(&p.tracking) {
                self.parcels.remove(&p.tracking);
            }
        }
        self.route_depot.remove(&route.id);
    }

    /// Drops the feeds of the depots `gone` selects: their route events, their routes' depot
    /// entries and the feeds of `parcels` (a cluster gateway handing the depots' partition
    /// over). The milestones for webhooks are left as they are (they are a log of what this
    /// gateway folded).
    pub fn release_depots<'a>(
        &mut self,
        gone: impl Fn(&DepotId) -> bool,
        parcels: impl IntoIterator<Item = &'a TrackingNumber>,
    ) {
        self.depots.retain(|d, _| !gone(d));
        self.route_depot.retain(|_, d| !gone(d));
        for t in parcels {
            self.parcels.remove(t);
        }
    }

    /// A copy of the feeds of depots `keep` selects and of `parcels` (a partition's image;
    /// the milestones for webhooks are not in it).
    pub fn part<'a>(
        &self,
        keep: impl Fn(&DepotId) -> bool,
        parcels: impl IntoIterator<Item = &'a TrackingNumber>,
    ) -> FeedStore {
        let mut part = FeedStore::new(self.depot_cap, self.milestones.cap);
        part.depots = self
            .depots
            .iter()
            .filter(|(d, _)| keep(d))
            .map(|(d, r)| (d.clone(), r.clone()))
            .collect();
        part.route_depot = self
            .route_depot
            .iter()
            .filter(|(_, d)| keep(d))
            .map(|(r, d)| (r.clone(), d.clone()))
            .collect();
        for t in parcels {
            if let Some(v) = self.parcels.get(t) {
                part.parcels.insert(t.clone(), v.clone());
            }
        }
        part
    }

    /// Takes in the feeds of a partition's image ([`FeedStore::part`]).
    pub fn absorb(&mut self, part: FeedStore) {
        self.depots.extend(part.depots);
        self.route_depot.extend(part.route_depot);
        self.parcels.extend(part.parcels);
    }

    /// The depot of a route.
    pub fn depot_of(&self, route: &RouteId) -> Option<&DepotId> {
        self.route_depot.get(route)
    }

    /// Records an update; pushes the feeds it touched onto `touched`.
    pub fn record(&mut self, u: &Update, touched: &mut Vec<FeedKey>) {
        match u {
            Update::Parcel(p) => {
                self.parcels
                    .entry(p.tracking.clone())
                    .or_default()
                    .push(p.clone());
                self.milestones.push(p.clone());
                touched.push(FeedKey::Parcel(p.tracking.clone()));
                touched.push(FeedKey::Milestones);
            }
            Update::Dispatch(d) => {
                let Some(depot) = self.route_depot.get(&d.route_id).cloned() else {
                    return;
                };
                let cap = self.depot_cap;
                self.depots
                    .entry(depot.clone())
                    .or_insert_with(|| Ring::new(cap))
                    .push(d.clone());
                touched.push(FeedKey::Depot(depot));
            }
            // Driver updates go to the driver's push stream, not to a feed.
            Update::Driver(_) => {}
        }
    }

    /// A parcel's milestones after `after`, at most `max`.
    pub fn parcel_after(&self, t: &TrackingNumber, after: u64, max: usize) -> Vec<(u64, Update)> {
        self.parcels
            .get(t)
            .map(|v| {
                v.iter()
                    .enumerate()
                    .skip(after as usize)
                    .take(max)
                    .map(|(i, p)| (i as u64 + 1, Update::Parcel(p.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many failed attempts a parcel's feed holds.
    pub fn parcel_failures(&self, t: &TrackingNumber) -> u32 {
        self.parcels.get(t).map_or(0, |v| {
            v.iter()
                .filter(|u| matches!(u.kind, milepost_proto::route::ParcelEvent::Failed { .. }))
                .count() as u32
        })
    }

    /// The offset of a parcel's newest milestone (0 if none).
    pub fn parcel_last(&self, t: &TrackingNumber) -> u64 {
        self.parcels.get(t).map_or(0, |v| v.len() as u64)
    }

    /// A depot's route events after `after`, at most `max`.
    pub fn depot_after(
        &self,
        d: &DepotId,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, Update)>, TooOld> {
        match self.depots.get(d) {
            Some(r) => Ok(r
                .after(after, max)?
                .into_iter()
                .map(|(o, e)| (o, Update::Dispatch(e)))
                .collect()),
            None if after == 0 => Ok(Vec::new()),
            None => Err(TooOld(after)),
        }
    }

    /// The offset of a depot's newest route event (0 if none).
    pub fn depot_last(&self, d: &DepotId) -> u64 {
        self.depots.get(d).map_or(0, |r| r.last())
    }

    /// Milestones of all parcels after `after`, at most `max` (webhooks).
    pub fn milestones_after(
        &self,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, ParcelUpdate)>, TooOld> {
        self.milestones.after(after, max)
    }

    /// Visits the milestones of all parcels after `after`, at most `max`, without copying
    /// them (a reader that wants few of them, like the notification outbox); returns the
    /// offset of the last one visited.
    pub fn visit_milestones_after(
        &self,
        after: u64,
        max: usize,
        f: impl FnMut(u64, &ParcelUpdate),
    ) -> Result<u64, TooOld> {
        self.milestones.visit_after(after, max, f)
    }

    /// The offset of the oldest milestone of all parcels still kept.
    pub fn milestones_first(&self) -> u64 {
        self.milestones.first()
    }

    /// The offset of the newest milestone of all parcels.
    pub fn milestones_last(&self) -> u64 {
        self.milestones.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::route::ParcelEvent;

    #[test]
    fn ring_offsets_and_resync() {
        let mut r = Ring::new(3);
        assert_eq!(r.last(), 0);
        for i in 1..=5 {
            assert_eq!(r.push(i), i);
        }
        assert_eq!(r.after(2, 10).unwrap(), vec![(3, 3), (4, 4), (5, 5)]);
        assert_eq!(r.after(4, 1).unwrap(), vec![(5, 5)]);
        assert_eq!(r.after(5, 10).unwrap(), vec![]);
        assert_eq!(r.after(1, 10), Err(TooOld(1)));
    }

    #[test]
    fn parcel_feed_keeps_everything_in_order() {
        let mut s = FeedStore::new(10, 10);
        let mut touched = Vec::new();
        for kind in [
            ParcelEvent::OutForDelivery,
            ParcelEvent::ArrivingSoon,
            ParcelEvent::Arrived,
        ] {
            let u = Update::Parcel(ParcelUpdate {
                tracking: "T".into(),
                fix_t_ms: 1,
                kind,
            });
            s.record(&u, &mut touched);
        }
        assert_eq!(s.parcel_last(&"T".into()), 3);
        let after1: Vec<u64> = s
            .parcel_after(&"T".into(), 1, 10)
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(after1, vec![2, 3]);
        assert!(touched.contains(&FeedKey::Parcel("T".into())));
        assert_eq!(s.milestones_last(), 3);
    }
}
