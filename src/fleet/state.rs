//! The fold of the log: everything derived from durable records, in log order. Recovery
//! (snapshot + log tail) and the live applier use this same function, so the state after a
//! restart is exactly the state before it.

use std::sync::{Arc, Mutex, MutexGuard};

use milepost_proto::route::{DepotId, Update};
use milepost_proto::{DriverId, Fix, Seq};

use crate::config::FeedConfig;
use crate::feed::{FeedKey, FeedStore};

use crate::fleet::engine::{CoreConfig, FleetCore};
use crate::fleet::outcome::OutcomeTarget;
use crate::fleet::positions::{Positions, UpdateOutcome};
use crate::store::snapshot::{PositionEntry, Snapshot, SnapshotRef};
use crate::store::{BatchEntry, Ledger, LogRecord, SeqState};

/// The answer to a command record (route assignment, outcome...): what the issuer is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandResult {
    /// Applied.
    Applied,
    /// Refused by the core, with the reason (the record stays in the log as an attempt).
    Refused(String),
}

/// Durable state: dedupe ledger, live positions, and the fleet core.
pub struct FleetState {
    /// Durable dedupe state (the admission ledger runs ahead of it by the batches in flight).
    pub ledger: Ledger,
    /// Live positions, shared with query handlers.
    pub positions: Arc<Mutex<Positions>>,
    /// Routes, progress and ETAs, shared with command and status handlers.
    pub core: Arc<Mutex<FleetCore>>,
    /// Every feed's events, shared with subscriptions.
    pub feed: Arc<Mutex<FeedStore>>,
}

/// What an applied record changed, for waking subscribers: a feed key and, for positions, the
/// driver that moved.
pub type Touched = Vec<(FeedKey, Option<DriverId>)>;

/// Locks a mutex, recovering from poisoning (the state is plain data; a panic elsewhere does
/// not make it unusable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FleetState {
    /// Empty state.
    pub fn new(cfg: CoreConfig, feed: &FeedConfig) -> FleetState {
        FleetState {
            ledger: Ledger::new(),
            positions: Arc::new(Mutex::new(Positions::new())),
            core: Arc::new(Mutex::new(FleetCore::new(cfg))),
            feed: Arc::new(Mutex::new(FeedStore::new(
                feed.depot_events_kept,
                feed.milestones_kept,
            ))),
        }
    }

    /// State rebuilt from a snapshot.
    pub fn restore(cfg: CoreConfig, snap: Snapshot) -> FleetState {
        let mut positions = Positions::new();
        for p in &snap.positions {
            positions.update(&p.driver, &p.depot, p.seq, &p.fix);
        }
        FleetState {
            ledger: Ledger::import(snap.ledger),
            positions: Arc::new(Mutex::new(positions)),
            core: Arc::new(Mutex::new(FleetCore::restore(cfg, snap.core))),
            feed: Arc::new(Mutex::new(snap.feed)),
        }
    }

    /// Folds one record in: updates go to `out` (and into the feeds), what changed to
    /// `touched`. Returns the result of a command record.
    pub fn apply(
        &self,
        rec: &LogRecord,
        out: &mut Vec<Update>,
        touched: &mut Touched,
    ) -> Option<CommandResult> {
        let start = out.len();
        let result = self.fold(rec, out, touched);
        let mut feed = lock(&self.feed);
        if let LogRecord::RouteAssigned { route, .. } = rec {
            feed.route_assigned(&route.id, &route.depot);
        }
        let mut keys = Vec::new();
        for u in &out[start..] {
            feed.record(u, &mut keys);
        }
        touched.extend(keys.into_iter().map(|k| (k, None)));
        result
    }

    fn fold(
        &self,
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
                let mut pos = lock(&self.positions);
                let mut core = lock(&self.core);
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
                match lock(&self.core).assign_route(route.clone(), *at_ms) {
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
            } => match lock(&self.core).resequence(route_id, order, *at_ms) {
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
                match lock(&self.core).report_outcome(driver, &target, outcome, *at_ms) {
                    Ok(u) => {
                        out.extend(u);
                        Some(CommandResult::Applied)
                    }
                    Err(e) => refused(&e),
                }
            }
            LogRecord::RoutesArchived { routes, .. } => {
                let mut core = lock(&self.core);
                let mut feed = lock(&self.feed);
                for id in routes {
                    if let Some(plan) = core.remove_route(id) {
                        feed.forget_route(&plan);
                    }
                }
                None
            }
            LogRecord::Tick {
                owned,
                partitions,
                now_ms,
            } => {
                lock(&self.core).tick_where(*now_ms, out, |d| {
                    owned
                        .binary_search(&crate::store::record::partition_of(d, *partitions))
                        .is_ok()
                });
                None
            }
            LogRecord::InstructionsSet { tracking, text, .. } => {
                match lock(&self.core).set_instructions(tracking, text) {
                    Ok(u) => {
                        out.push(u);
                        Some(CommandResult::Applied)
                    }
                    Err(e) => refused(&e),
                }
            }
        }
    }

    /// Writes a snapshot of the state after records `..lsn_next` into `dir`.
    pub fn snapshot(
        &self,
        dir: &std::path::Path,
        lsn_next: u64,
        now_ms: i64,
    ) -> Result<(std::path::PathBuf, u64), crate::store::LogError> {
        let payload = self.encode_snapshot(dir, lsn_next, now_ms)?;
        crate::store::snapshot::persist(dir, lsn_next, &payload)
    }

    /// Encodes a snapshot of the state after records `..lsn_next`, for
    /// [`crate::store::snapshot::persist`] (`dir` only names an error). Holds the state's
    /// locks while it encodes; writing it out needs none.
    pub fn encode_snapshot(
        &self,
        dir: &std::path::Path,
        lsn_next: u64,
        now_ms: i64,
    ) -> Result<Vec<u8>, crate::store::LogError> {
        let positions: Vec<PositionEntry> = lock(&self.positions)
            .entries()
            .map(|(driver, depot, seq, fix)| PositionEntry {
                driver: driver.clone(),
                depot: depot.to_owned(),
                seq,
                fix: *fix,
            })
            .collect();
        let ledger = self.ledger.export();
        let core = lock(&self.core);
        let feed = lock(&self.feed);
        crate::store::snapshot::encode(
            dir,
            &SnapshotRef {
                lsn_next,
                taken_ms: now_ms,
                ledger,
                positions,
                core: core.snapshot(),
                feed: &feed,
            },
        )
    }
}
