//! The fold of the log: everything derived from durable records, in log order. Recovery
//! (snapshot + log tail), the live applier, a cluster's follower and the once-a-second tick all
//! use this one function, so the state after a restart is exactly the state before it.
//!
//! Pure: [`Parts::apply`] takes a record and the state and returns what it changed (updates
//! for the feeds, the feed keys touched, the answer to a command). Locks, waking subscribers and
//! snapshot files are the shell's.

use milepost_proto::route::{DepotId, Update};
use milepost_proto::{DriverId, Fix, Seq};

use crate::feed::{FeedConfig, FeedKey, FeedStore};
use crate::fleet::config::CoreConfig;
use crate::fleet::engine::FleetCore;
use crate::fleet::outcome::OutcomeTarget;
use crate::fleet::positions::{Positions, UpdateOutcome};
use crate::store::image::{PositionEntry, Snapshot, SnapshotRef};
use crate::store::record::{partition_of, partition_of_depot};
use crate::store::{BatchEntry, Ledger, LogRecord, SeqState};

/// The answer to a command record (route assignment, outcome...): what the issuer is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandResult {
    /// Applied.
    Applied,
    /// Refused by the core, with the reason (the record stays in the log as an attempt).
    Refused(String),
}

/// What an applied record changed, for waking subscribers: a feed key and, for positions, the
/// driver that moved.
pub type Touched = Vec<(FeedKey, Option<DriverId>)>;

/// The whole fleet state, owned: what recovery builds and the shell then shares.
pub struct Fleet {
    /// Durable dedupe state (the admission ledger runs ahead of it by the batches in flight).
    pub ledger: Ledger,
    /// Live positions and the per-depot R-trees.
    pub positions: Positions,
    /// Routes, progress and ETAs.
    pub core: FleetCore,
    /// Every feed's events.
    pub feed: FeedStore,
}

impl Fleet {
    /// Empty state.
    pub fn new(cfg: CoreConfig, feed: &FeedConfig) -> Fleet {
        Fleet {
            ledger: Ledger::new(),
            positions: Positions::new(),
            core: FleetCore::new(cfg),
            feed: FeedStore::new(feed.depot_events_kept, feed.milestones_kept),
        }
    }

    /// State rebuilt from a snapshot.
    pub fn restore(cfg: CoreConfig, snap: Snapshot) -> Fleet {
        let mut positions = Positions::new();
        for p in &snap.positions {
            positions.update(&p.driver, &p.depot, p.seq, &p.fix);
        }
        let mut core = FleetCore::restore(cfg, snap.core);
        core.restore_service(snap.service);
        core.restore_calibration(snap.calibration);
        core.restore_tally(snap.tally);
        Fleet {
            ledger: Ledger::import(snap.ledger),
            positions,
            core,
            feed: snap.feed,
        }
    }

    /// The state as [`Parts`], to fold records into.
    pub fn parts(&mut self) -> Parts<'_> {
        Parts {
            ledger: &self.ledger,
            positions: &mut self.positions,
            core: &mut self.core,
            feed: &mut self.feed,
        }
    }
}

/// The fleet state borrowed part by part (the shell keeps each part behind its own lock, so
/// that queries read positions while the core is busy).
pub struct Parts<'a> {
    /// Durable dedupe state (concurrent inside).
    pub ledger: &'a Ledger,
    /// Live positions.
    pub positions: &'a mut Positions,
    /// Routes, progress and ETAs.
    pub core: &'a mut FleetCore,
    /// Every feed's events.
    pub feed: &'a mut FeedStore,
}

impl Parts<'_> {
    /// Folds one record in: updates go to `out` (and into the feeds), what changed to
    /// `touched`. Returns the result of a command record.
    pub fn apply(
        &mut self,
        rec: &LogRecord,
        out: &mut Vec<Update>,
        touched: &mut Touched,
    ) -> Option<CommandResult> {
        let start = out.len();
        let result = self.fold(rec, out, touched);
        // Only an assignment the core took tells the feeds where the route's events go (a
        // refused one must not point another depot's route at this one).
        if let (LogRecord::RouteAssigned { route, .. }, Some(CommandResult::Applied)) =
            (rec, &result)
        {
            self.feed.route_assigned(&route.id, &route.depot);
        }
        let mut keys = Vec::new();
        let mut i = start;
        while i < out.len() {
            let feed = &*self.feed;
            self.core.observe(&out[i], |t| feed.parcel_failures(t));
            // A failed attempt is followed by its next step (the NDR policy), decided from the
            // parcel's earlier updates before this one is recorded.
            if let Update::Parcel(p) = &out[i] {
                if matches!(p.kind, milepost_proto::route::ParcelEvent::Failed { .. }) {
                    // Counted in the parcel's feed, and in the core's book, which outlives
                    // the feed of an archived or cancelled route.
                    let before = self
                        .feed
                        .parcel_failures(&p.tracking)
                        .max(self.core.failed_attempts(&p.tracking));
                    if let Some(next) = self.core.config().ndr.after(p, before) {
                        self.core.count_failure(&p.tracking, before + 1, p.fix_t_ms);
                        out.insert(i + 1, Update::Parcel(next));
                    }
                }
            }
            self.feed.record(&out[i], &mut keys);
            i += 1;
        }
        touched.extend(keys.into_iter().map(|k| (k, None)));
        result
    }

    /// The snapshot image of the state after records `..lsn_next`, taken at `taken_ms`.
    pub fn image(&self, lsn_next: u64, taken_ms: i64) -> SnapshotRef<'_> {
        SnapshotRef {
            lsn_next,
            taken_ms,
            ledger: self.ledger.export(),
            positions: self
                .positions
                .entries()
                .map(|(driver, depot, seq, fix)| PositionEntry {
                    driver: driver.clone(),
                    depot: depot.to_owned(),
                    seq,
                    fix: *fix,
                })
                .collect(),
            core: self.core.snapshot(),
            feed: self.feed,
            service: Some(self.core.service_book()),
            calibration: Some(self.core.calibration()),
            tally: Some(self.core.tally()),
        }
    }

    fn fold(
        &mut self,
        rec: &LogRecord,
        out: &mut Vec<Update>,
        touched: &mut Touched,
    ) -> Option<CommandResult> {
        let refused = |e: &dyn std::fmt::Display| Some(CommandResult::Refused(e.to_string()));
        match rec {
            LogRecord::Batch {
                driver,
                depot,
                entries,
                ..
            } => {
                // A seq already folded in is skipped: in a cluster two gateways may both log a
                // resend (the phone moved before the first one's ack), and the fold keeps the
                // first. On one box admission never logs a seq twice, so this skips nothing.
                let fresh: Vec<bool> = self.ledger.with(driver, |l| {
                    entries
                        .iter()
                        .map(|e| {
                            let new = l.state(e.seq(), u64::MAX) == SeqState::New;
                            if new {
                                l.settle(e.seq());
                                if let BatchEntry::Accepted { fix, .. } = e {
                                    l.accepted(fix);
                                }
                            }
                            new
                        })
                        .collect()
                });
                let (pos, core) = (&mut *self.positions, &mut *self.core);
                // Only the batch's newest fix can become the live position: one R-tree move
                // per batch, not per fix (this matters most when recovery replays a backlog).
                let mut newest: Option<(Seq, &Fix)> = None;
                for (e, _) in entries.iter().zip(&fresh).filter(|(_, f)| **f) {
                    if let BatchEntry::Accepted { seq, fix } = e {
                        if newest.is_none_or(|(_, n)| fix.t_ms > n.t_ms) {
                            newest = Some((*seq, fix));
                        }
                        core.on_fix(driver, fix, out);
                    }
                }
                let moved = newest.is_some_and(|(seq, fix)| {
                    pos.update(driver, depot, seq, fix) != UpdateOutcome::Stale
                });
                if moved {
                    touched.push((FeedKey::Driver(driver.clone()), None));
                    touched.push((
                        FeedKey::DepotPositions(DepotId(depot.clone())),
                        Some(driver.clone()),
                    ));
                }
                None
            }
            LogRecord::RouteAssigned { route, at_ms } => {
                match self.core.assign_route(route.clone(), *at_ms) {
                    Ok(u) => {
                        out.extend(u);
                        Some(CommandResult::Applied)
                    }
                    Err(e) => refused(&e),
                }
            }
            LogRecord::RouteResequenced {
                route_id,
                order,
                at_ms,
            } => match self.core.resequence(route_id, order, *at_ms) {
                Ok(u) => {
                    out.extend(u);
                    Some(CommandResult::Applied)
                }
                Err(e) => refused(&e),
            },
            LogRecord::OutcomeReported {
                driver,
                stop,
                tracking,
                outcome,
                at_ms,
            } => {
                let target = match tracking {
                    Some(t) => OutcomeTarget::Parcel(t.clone()),
                    None => OutcomeTarget::Stop(stop.clone()),
                };
                match self.core.report_outcome(driver, &target, outcome, *at_ms) {
                    Ok(u) => {
                        out.extend(u);
                        Some(CommandResult::Applied)
                    }
                    Err(e) => refused(&e),
                }
            }
            LogRecord::RoutesArchived { routes, .. } => {
                for id in routes {
                    self.close_route(id);
                }
                None
            }
            LogRecord::RouteCancelled { route_id, .. } => {
                if self.close_route(route_id) {
                    Some(CommandResult::Applied)
                } else {
                    refused(&format!("no live route {route_id}"))
                }
            }
            LogRecord::Tick {
                owned,
                partitions,
                now_ms,
            } => {
                self.core.tick_where(*now_ms, out, |d, _| {
                    owned.binary_search(&partition_of(d, *partitions)).is_ok()
                });
                None
            }
            LogRecord::DepotTick {
                partition,
                partitions,
                now_ms,
            } => {
                self.core.tick_where(*now_ms, out, |_, depot| {
                    partition_of_depot(&depot.0, *partitions) == *partition
                });
                None
            }
            // Kept by the shell beside the history (what was done about an alert is not part of
            // the live fleet state); the fold has nothing to change.
            LogRecord::AlertHandled { .. } | LogRecord::StopAddresses { .. } => {
                Some(CommandResult::Applied)
            }
            LogRecord::DeliveryChanged {
                tracking,
                change,
                at_ms,
                ..
            } => match self.core.change_delivery(tracking, change, *at_ms) {
                Ok(u) => {
                    out.extend(u);
                    Some(CommandResult::Applied)
                }
                Err(e) => refused(&e),
            },
            LogRecord::MessagePosted {
                tracking,
                from,
                text,
                at_ms,
            } => match self.core.post_message(tracking, *from, text, *at_ms) {
                Ok(u) => {
                    out.extend(u);
                    Some(CommandResult::Applied)
                }
                Err(e) => refused(&e),
            },
            LogRecord::InstructionsSet { tracking, text, .. } => {
                match self.core.set_instructions(tracking, text) {
                    Ok(u) => {
                        out.push(u);
                        Some(CommandResult::Applied)
                    }
                    Err(e) => refused(&e),
                }
            }
        }
    }
}

impl Parts<'_> {
    /// Forgets everything of the partitions of depots `released` (of `partitions`,
    /// [`partition_of_depot`]): their routes and what the core keeps
    /// of their parcels, their feeds, their drivers' live positions and dedupe ledgers. A
    /// cluster gateway that folds only the partitions it owns does this when a partition
    /// passes to another gateway; if it takes the partition back later, it folds it again from
    /// the stream. Returns how many routes and drivers were dropped.
    pub fn release(&mut self, released: &[u32], partitions: u32) -> (usize, usize) {
        let gone = |d: &str| released.contains(&partition_of_depot(d, partitions));
        self.core.forget_calibration(|g| released.contains(&g));
        let plans = self.core.release_depots(|d| gone(&d.0));
        let parcels: Vec<_> = plans
            .iter()
            .flat_map(|r| r.stops.iter().flat_map(|s| &s.parcels))
            .map(|p| p.tracking.clone())
            .collect();
        self.feed.release_depots(|d| gone(&d.0), &parcels);
        let mut drivers: std::collections::HashSet<DriverId> = self
            .positions
            .retain_depots(|d| !gone(d))
            .into_iter()
            .collect();
        drivers.extend(plans.iter().map(|r| r.driver.clone()));
        self.ledger.forget(|d| drivers.contains(d));
        (plans.len(), drivers.len())
    }

    /// Removes a route from the live state with its parcels' feeds, except the feeds of parcels
    /// that moved to a newer route that is still live. False if the route is unknown.
    fn close_route(&mut self, id: &milepost_proto::route::RouteId) -> bool {
        let Some(plan) = self.core.remove_route(id) else {
            return false;
        };
        let core = &*self.core;
        self.feed
            .forget_route(&plan, |t| core.parcel_status(t).is_some());
        true
    }
}

/// The record of a once-a-second tick on a single box: every route is its own (one partition,
/// owned). A cluster logs its ticks with the partitions each gateway owns instead.
pub fn local_tick(now_ms: i64) -> LogRecord {
    LogRecord::Tick {
        owned: vec![0],
        partitions: 1,
        now_ms,
    }
}

#[path = "fold_part.rs"]
mod part;

#[cfg(test)]
#[path = "fold_tests.rs"]
mod tests;
