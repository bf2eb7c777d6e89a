//! The fleet state as the shell shares it: each part of [`milepost_core::fold::Fleet`] behind
//! its own lock, so that queries read positions while the applier folds a route command. The
//! fold itself is the core's; this file only locks, and writes snapshots through
//! [`crate::store::snapshot`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use milepost_core::feed::{FeedConfig, FeedStore};
use milepost_core::fleet::config::CoreConfig;
use milepost_core::fleet::engine::FleetCore;
use milepost_core::fleet::positions::Positions;
use milepost_core::fold::{CommandResult, Fleet, Parts, Touched};
use milepost_core::store::image::Snapshot;
use milepost_core::store::{BatchEntry, Ledger, LogRecord};
use milepost_proto::route::{RouteId, Update};
use milepost_proto::DriverId;

use crate::history::{AlertHandling, History, HistoryWrite};
use crate::store::LogError;

/// Locks a mutex, recovering from poisoning (the state is plain data; a panic elsewhere does
/// not make it unusable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The route whose trail a fix of `driver` extends: its route, once started and until
/// finished.
fn trail_route(core: &FleetCore, driver: &DriverId) -> Option<RouteId> {
    let id = core.route_of_driver(driver)?;
    let run = core.run(id)?;
    (run.started_ms.is_some() && run.finished_ms.is_none()).then(|| id.clone())
}

/// Durable state: dedupe ledger, live positions, the fleet core and the feeds, each shared.
pub struct FleetState {
    /// Durable dedupe state (the admission ledger runs ahead of it by the batches in flight).
    pub ledger: Ledger,
    /// Live positions, shared with query handlers.
    pub positions: Arc<Mutex<Positions>>,
    /// Routes, progress and ETAs, shared with command and status handlers.
    pub core: Arc<Mutex<FleetCore>>,
    /// Every feed's events, shared with subscriptions.
    pub feed: Arc<Mutex<FeedStore>>,
    /// Where closed routes and their parcels' history go (none in tools that only fold).
    pub history: Option<Arc<History>>,
}

impl From<Fleet> for FleetState {
    fn from(f: Fleet) -> FleetState {
        FleetState {
            ledger: f.ledger,
            positions: Arc::new(Mutex::new(f.positions)),
            core: Arc::new(Mutex::new(f.core)),
            feed: Arc::new(Mutex::new(f.feed)),
            history: None,
        }
    }
}

impl FleetState {
    /// Empty state.
    pub fn new(cfg: CoreConfig, feed: &FeedConfig) -> FleetState {
        Fleet::new(cfg, feed).into()
    }

    /// State rebuilt from a snapshot.
    pub fn restore(cfg: CoreConfig, snap: Snapshot) -> FleetState {
        Fleet::restore(cfg, snap).into()
    }

    /// The depot of parcel `tracking`: its live route's, else its history's (an error: the
    /// history could not be read).
    pub fn depot_of_parcel(
        &self,
        tracking: &milepost_proto::route::TrackingNumber,
    ) -> Result<Option<milepost_proto::route::DepotId>, crate::history::HistoryError> {
        if let Some(d) = lock(&self.core).depot_of_parcel(tracking) {
            return Ok(Some(d.clone()));
        }
        match &self.history {
            Some(h) => Ok(h.parcel(tracking)?.map(|p| p.depot)),
            None => Ok(None),
        }
    }

    /// Forgets the state of the partitions of depots `released` (of `partitions`): a cluster
    /// gateway that folds only what it owns lost their leases. Returns how many routes and
    /// drivers went.
    pub fn release(&self, released: &[u32], partitions: u32) -> (usize, usize) {
        self.with_parts(|p| p.release(released, partitions))
    }

    /// The encoded image of partition `partition` (of `partitions`) after records
    /// `..lsn_next` (see [`Parts::part_image`]): what a cluster gateway that folds only what it
    /// owns keeps in the cluster, so that a takeover starts from it.
    pub fn part_image(
        &self,
        partition: u32,
        partitions: u32,
        lsn_next: u64,
        taken_ms: i64,
    ) -> Result<Vec<u8>, milepost_proto::CodecError> {
        self.with_parts(|p| {
            milepost_proto::encode(&p.part_image(partition, partitions, lsn_next, taken_ms))
        })
    }

    /// Installs a partition's image (see [`Parts::install`]); returns how many routes and
    /// drivers it brought.
    pub fn install(&self, image: milepost_core::store::image::PartImage) -> (usize, usize) {
        self.with_parts(|p| p.install(image))
    }

    /// Runs `f` on the parts, holding their locks in the fold's order.
    fn with_parts<R>(&self, f: impl FnOnce(&mut Parts<'_>) -> R) -> R {
        let mut positions = lock(&self.positions);
        let mut core = lock(&self.core);
        let mut feed = lock(&self.feed);
        f(&mut Parts {
            ledger: &self.ledger,
            positions: &mut positions,
            core: &mut core,
            feed: &mut feed,
        })
    }

    /// The same state, writing closed routes' history to `history`.
    pub fn with_history(mut self, history: Arc<History>) -> FleetState {
        self.history = Some(history);
        self
    }

    /// Folds one record in (see [`Parts::apply`]), holding the parts' locks in one order:
    /// positions, core, feed. A record that closes routes leaves their history in the history
    /// database (read off the state before the fold removes them, written after the locks are
    /// released), and a handled alert is written there too; a write that fails waits in the
    /// history's backlog and the fold goes on, since the log is the truth and the live state
    /// must not stop.
    pub fn apply(
        &self,
        rec: &LogRecord,
        out: &mut Vec<Update>,
        touched: &mut Touched,
    ) -> Option<CommandResult> {
        let (closings, result, trail) = {
            let mut positions = lock(&self.positions);
            let mut core = lock(&self.core);
            let mut feed = lock(&self.feed);
            let closings = match &self.history {
                Some(_) => milepost_core::history::closing(&core, &feed, rec),
                None => Vec::new(),
            };
            let result = Parts {
                ledger: &self.ledger,
                positions: &mut positions,
                core: &mut core,
                feed: &mut feed,
            }
            .apply(rec, out, touched);
            let trail = match (&self.history, rec) {
                (Some(_), LogRecord::Batch { driver, .. }) => trail_route(&core, driver),
                _ => None,
            };
            (closings, result, trail)
        };
        // Written once the locks are released (a commit is an fsync), before the record counts
        // as applied: a reader told "applied" finds the history there (unless the write
        // failed: then it waits in the backlog and is retried).
        if let Some(h) = &self.history {
            if let (Some(route), LogRecord::Batch { entries, .. }) = (&trail, rec) {
                let fixes = entries.iter().filter_map(|e| match e {
                    BatchEntry::Accepted { fix, .. } => Some(fix),
                    BatchEntry::Rejected { .. } => None,
                });
                h.trail_fixes(route, fixes);
            }
            if !closings.is_empty() {
                // A closing route's trail is written with it.
                h.submit_trail();
            }
            h.submit(HistoryWrite::Closings(closings));
            match rec {
                LogRecord::StopAddresses {
                    route_id,
                    addresses,
                    at_ms,
                    ..
                } => h.submit(HistoryWrite::Addresses {
                    route: route_id.clone(),
                    set: addresses.clone(),
                    at_ms: *at_ms,
                }),
                LogRecord::RouteAssigned { route, .. } => h.submit(HistoryWrite::KeepAddresses {
                    route: route.id.clone(),
                    stops: route.stops.iter().map(|s| s.id.clone()).collect(),
                }),
                _ => {}
            }
            if let LogRecord::AlertHandled {
                depot,
                offset,
                action,
                by,
                note,
                at_ms,
            } = rec
            {
                h.submit(HistoryWrite::Alert {
                    depot: depot.clone(),
                    offset: *offset,
                    handling: AlertHandling {
                        action: *action,
                        by: by.clone(),
                        note: note.clone(),
                        at_ms: *at_ms,
                    },
                });
            }
        }
        result
    }

    /// Writes a snapshot of the state after records `..lsn_next` into `dir`.
    pub fn snapshot(
        &self,
        dir: &Path,
        lsn_next: u64,
        now_ms: i64,
    ) -> Result<(PathBuf, u64), LogError> {
        let payload = self.encode_snapshot(dir, lsn_next, now_ms)?;
        crate::store::snapshot::persist(dir, lsn_next, &payload)
    }

    /// Encodes a snapshot of the state after records `..lsn_next`, for
    /// [`crate::store::snapshot::persist`] (`dir` only names an error). Holds the state's
    /// locks while it encodes; writing it out needs none.
    ///
    /// # Errors
    /// History writes still fail (the backlog is not empty): a snapshot now would let the log
    /// be cut past records whose history is not written.
    pub fn encode_snapshot(
        &self,
        dir: &Path,
        lsn_next: u64,
        now_ms: i64,
    ) -> Result<Vec<u8>, LogError> {
        if let Some(h) = &self.history {
            h.flush().map_err(|e| LogError::Io {
                path: dir.to_owned(),
                source: std::io::Error::other(format!("history writes waiting: {e}")),
            })?;
        }
        let mut positions = lock(&self.positions);
        let mut core = lock(&self.core);
        let mut feed = lock(&self.feed);
        let parts = Parts {
            ledger: &self.ledger,
            positions: &mut positions,
            core: &mut core,
            feed: &mut feed,
        };
        crate::store::snapshot::encode(dir, &parts.image(lsn_next, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::snapshot::{newest, read};
    use milepost_core::store::BatchEntry;
    use milepost_proto::{DriverId, Fix, Seq};

    #[test]
    fn failed_history_writes_wait_in_order_and_hold_back_snapshots() {
        use crate::history::{History, HistoryConfig};
        let dir = tempfile::tempdir().unwrap();
        let h = Arc::new(
            History::open(&dir.path().join("history.redb"), &HistoryConfig::default()).unwrap(),
        );
        let state =
            FleetState::new(CoreConfig::default(), &FeedConfig::default()).with_history(h.clone());
        let apply = |rec: LogRecord| state.apply(&rec, &mut Vec::new(), &mut Vec::new());
        let t0 = 1_771_243_200_000;
        for (id, driver) in [("R1", "d1"), ("R2", "d2")] {
            let route = crate::history::tests::route(id, driver, &[&format!("T-{id}")]);
            apply(LogRecord::RouteAssigned { route, at_ms: t0 });
        }
        // The disk fails: cancelling R1 folds, but its history waits, and no snapshot is
        // taken (the log must keep the record).
        h.fail_writes(true);
        let cancel = |id: &str, at_ms| LogRecord::RouteCancelled {
            route_id: id.into(),
            by: "test".into(),
            at_ms,
        };
        apply(cancel("R1", t0 + 1_000));
        assert!(lock(&state.core).route_view(&"R1".into()).is_none());
        assert_eq!(h.backlog(), 1);
        assert!(h.route(&"R1".into()).unwrap().is_none());
        let snaps = tempfile::tempdir().unwrap();
        assert!(state.snapshot(snaps.path(), 3, t0).is_err());
        apply(cancel("R2", t0 + 2_000));
        assert_eq!(h.backlog(), 2);
        // The disk is back: the next write goes after the waiting ones, in order.
        h.fail_writes(false);
        apply(LogRecord::RoutesArchived {
            routes: vec![],
            at_ms: t0 + 3_000,
        });
        assert_eq!(h.backlog(), 0);
        assert!(h.route(&"R1".into()).unwrap().is_some());
        assert!(h.route(&"R2".into()).unwrap().is_some());
        assert!(state.snapshot(snaps.path(), 5, t0).is_ok());
    }

    #[test]
    fn a_snapshot_reads_back_what_was_written() {
        let state = FleetState::new(CoreConfig::default(), &FeedConfig::default());
        let rec = LogRecord::Batch {
            driver: DriverId::from("d1"),
            depot: "x".into(),
            received_ms: 1,
            entries: vec![BatchEntry::Accepted {
                seq: Seq(1),
                fix: Fix::from_degrees(5, 38.9, -77.0, 5.0),
            }],
        };
        state.apply(&rec, &mut Vec::new(), &mut Vec::new());
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = state.snapshot(dir.path(), 1, 7).unwrap();
        let snap = read(&path).unwrap();
        assert_eq!(
            (
                snap.lsn_next,
                snap.taken_ms,
                snap.ledger.len(),
                snap.positions.len()
            ),
            (1, 7, 1, 1)
        );
        // A flipped byte is caught by the CRC, and `newest` then finds nothing usable.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(read(&path).is_err());
        assert!(newest(dir.path()).unwrap().is_none());
    }

    /// A state with route R1 (driver d1, parcel T-1) assigned, and its planned start.
    fn one_route() -> (FleetState, i64) {
        let state = FleetState::new(CoreConfig::default(), &FeedConfig::default());
        let route = crate::history::tests::route("R1", "d1", &["T-1"]);
        let t0 = route.planned_start_ms;
        state.apply(
            &LogRecord::RouteAssigned { route, at_ms: t0 },
            &mut Vec::new(),
            &mut Vec::new(),
        );
        (state, t0)
    }

    #[test]
    fn a_snapshot_keeps_the_live_routes_analytics() {
        use milepost_proto::route::{DispatchEvent, DispatchUpdate, Update};
        let (state, t0) = one_route();
        let stalled = Update::Dispatch(DispatchUpdate {
            route_id: "R1".into(),
            driver: "d1".into(),
            fix_t_ms: t0,
            kind: DispatchEvent::DriverStalled {
                idle_s: 600,
                no_fix: true,
            },
        });
        lock(&state.core).observe(&stalled, |_| 0);
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = state.snapshot(dir.path(), 1, t0).unwrap();
        let back = FleetState::restore(CoreConfig::default(), read(&path).unwrap());
        let facts = lock(&back.core).route_facts(&"R1".into()).unwrap();
        assert_eq!(facts.counts.stalls, 1);
    }

    #[test]
    fn snapshots_of_earlier_releases_are_still_read() {
        use milepost_core::fold::Parts;
        let (state, t0) = one_route();
        let mut positions = lock(&state.positions);
        let mut core = lock(&state.core);
        let mut feed = lock(&state.feed);
        let parts = Parts {
            ledger: &state.ledger,
            positions: &mut positions,
            core: &mut core,
            feed: &mut feed,
        };
        let image = parts.image(1, t0);
        let service = image.service.expect("the service book");
        let calibration = image.calibration.expect("the calibration");
        // The files as MPSNAP01 (the image alone) and MPSNAP02 (with the service book and
        // the calibration, no tally) wrote them.
        let v1 = milepost_proto::encode(&image).unwrap();
        let v2 = milepost_proto::encode(&(&image, service, calibration)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (magic, payload) in [(b"MPSNAP01", v1), (b"MPSNAP02", v2)] {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
            let path = dir
                .path()
                .join(format!("{}.snap", String::from_utf8_lossy(magic)));
            std::fs::write(&path, bytes).unwrap();
            let snap = read(&path).unwrap();
            assert_eq!(snap.lsn_next, 1);
            assert_eq!(snap.core.routes.len(), 1);
            assert!(snap.tally.is_empty());
            let back = FleetState::restore(CoreConfig::default(), snap);
            let facts = lock(&back.core).route_facts(&"R1".into()).unwrap();
            assert_eq!(facts.counts.parcels, 1);
        }
    }
}
