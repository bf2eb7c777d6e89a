//! Parcel and route history that outlives the live state: what a route and its parcels went
//! through (final view, milestones, outcome, proof summary, failure reason), kept in an
//! embedded database (`DATA_DIR/history.redb`, [redb]) for `history.retention_days` after the
//! route was archived or cancelled.
//!
//! The records are the core's ([`milepost_core::history`]); this file stores and reads them.
//! They are written while the record that closes a route is folded ([`crate::state`]), so
//! recovery and every gateway of a cluster write the same history; writing one twice (a log
//! replayed after a crash) leaves the same record.
//!
//! A write that fails (a full disk) waits in a [`backlog::Backlog`] and is retried, in order,
//! before the next write and before every snapshot; the fold goes on meanwhile (the log is the
//! truth and the live state must not stop). No snapshot is taken while a write waits
//! ([`crate::state::FleetState::encode_snapshot`]), so the log is never cut past a record whose
//! history is not written, and a restart folds it again.
//!
//! Tables: `parcels` (tracking number to JSON [`ParcelHistory`]), `routes` (route id to JSON
//! [`RouteHistory`]), `route_days` (`depot 0x1 YYYY-MM-DD 0x1 route` for listings) and
//! `closed` (`closed_ms 0x1 p|r 0x1 id`, for the retention sweep), and `alerts` (`depot 0x1
//! offset` to JSON [`AlertHandling`]: what was done about an alert, folded from
//! `AlertHandled` records the same way), and `facts` (route id to JSON
//! [`milepost_core::analytics::RouteFacts`], the route's analytics, written and purged with
//! it), `addresses` (a route's stops' street addresses, [`places`]) and `trails` (where a
//! route's driver went, for playback, [`trail`]), both purged with the route.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use milepost_core::history::{Closing, ParcelHistory, RouteHistory};
use milepost_core::store::record::AlertAction;
use milepost_proto::route::{DepotId, RouteId, TrackingNumber};
use redb::{Database, ReadableTable, TableDefinition};

pub mod backlog;
pub mod config;
pub mod facts;
pub mod places;
pub mod stores;
pub mod trail;

use stores::SEP;

pub use config::HistoryConfig;

const PARCELS: TableDefinition<&str, &[u8]> = TableDefinition::new("parcels");
const ROUTES: TableDefinition<&str, &[u8]> = TableDefinition::new("routes");
const ROUTE_DAYS: TableDefinition<&str, ()> = TableDefinition::new("route_days");
const CLOSED: TableDefinition<&str, ()> = TableDefinition::new("closed");
const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");
/// A closed route's analytics facts (route id to JSON [`RouteFacts`]), kept and purged with
/// its history; read by [`facts`].
const FACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("facts");

/// A failure of the history database.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database failed (boxed: redb's error is large).
    #[error("history database: {0}")]
    Db(Box<redb::Error>),
    /// A stored record does not decode.
    #[error("history record: {0}")]
    Decode(#[from] serde_json::Error),
}

macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for HistoryError {
            fn from(e: $t) -> Self {
                HistoryError::Db(Box::new(e.into()))
            }
        }
    )*};
}
db_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The history database.
pub struct History {
    /// The open database: swapped for a fresh handle after a failed write (redb refuses every
    /// write after an I/O error until the file is opened again).
    db: std::sync::RwLock<Database>,
    path: PathBuf,
    /// A write failed: reopen before the next one.
    reopen: std::sync::atomic::AtomicBool,
    retention_ms: AtomicI64,
    /// Writes that failed, waiting to be retried in order.
    backlog: backlog::Backlog<HistoryWrite>,
    /// Test hook: every write fails ([`History::fail_writes`]).
    fail_writes: std::sync::atomic::AtomicBool,
    /// Trail points not written yet ([`trail`]).
    trail: Mutex<stores::TrailBuffer>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("retention_ms", &self.retention_ms.load(Ordering::Relaxed))
            .finish()
    }
}

/// What was done about one alert.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlertHandling {
    /// The latest action.
    pub action: AlertAction,
    /// By whom.
    pub by: String,
    /// Their note.
    pub note: String,
    /// When, UTC ms.
    pub at_ms: i64,
}

fn retention_ms(cfg: &HistoryConfig) -> i64 {
    i64::from(cfg.retention_days) * 86_400_000
}

/// The UTC day of `ms`, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "0000-00-00".into())
}

impl History {
    /// The database at `path`, opened once per process: a gateway restarted in the same
    /// process (tests, an embedding application) gets the one still open if anything holds it,
    /// since the file cannot be opened twice.
    pub fn open_shared(path: &Path, cfg: &HistoryConfig) -> Result<Arc<History>, HistoryError> {
        static OPEN: Mutex<BTreeMap<PathBuf, Weak<History>>> = Mutex::new(BTreeMap::new());
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, h| h.strong_count() > 0);
        if let Some(h) = open.get(&key).and_then(Weak::upgrade) {
            h.retention_ms.store(retention_ms(cfg), Ordering::Relaxed);
            return Ok(h);
        }
        let h = Arc::new(History::open(path, cfg)?);
        open.insert(key, Arc::downgrade(&h));
        Ok(h)
    }

    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path, cfg: &HistoryConfig) -> Result<History, HistoryError> {
        Ok(History {
            db: std::sync::RwLock::new(open_db(path)?),
            path: path.to_owned(),
            reopen: Default::default(),
            retention_ms: AtomicI64::new(retention_ms(cfg)),
            backlog: Default::default(),
            fail_writes: Default::default(),
            trail: Default::default(),
        })
    }

    /// Stores what closing routes left behind, in one durable transaction. A parcel already
    /// in the history (an earlier route) is merged with the new record.
    pub fn record(&self, closings: &[Closing]) -> Result<(), HistoryError> {
        if closings.is_empty() {
            return Ok(());
        }
        let tx = self.db().begin_write()?;
        {
            let mut parcels = tx.open_table(PARCELS)?;
            let mut routes = tx.open_table(ROUTES)?;
            let mut days = tx.open_table(ROUTE_DAYS)?;
            let mut closed = tx.open_table(CLOSED)?;
            let mut facts = tx.open_table(FACTS)?;
            for c in closings {
                let r = &c.route;
                let id = r.view.route_id.0.as_str();
                // A route id closed before (and reused since): its old day entry goes.
                let old: Option<RouteHistory> = match routes.get(id)? {
                    Some(v) => Some(serde_json::from_slice(v.value())?),
                    None => None,
                };
                if let Some(o) = old {
                    let day = day_of(o.planned_start_ms);
                    days.remove(format!("{}{SEP}{day}{SEP}{id}", o.view.depot.0).as_str())?;
                }
                routes.insert(id, serde_json::to_vec(r)?.as_slice())?;
                facts.insert(id, serde_json::to_vec(&c.facts)?.as_slice())?;
                let day = day_of(r.planned_start_ms);
                days.insert(
                    format!("{}{SEP}{day}{SEP}{id}", r.view.depot.0).as_str(),
                    (),
                )?;
                closed.insert(format!("{:020}{SEP}r{SEP}{id}", r.closed_ms).as_str(), ())?;
                for p in &c.parcels {
                    let key = p.tracking.0.as_str();
                    let old: Option<ParcelHistory> = match parcels.get(key)? {
                        Some(v) => Some(serde_json::from_slice(v.value())?),
                        None => None,
                    };
                    let route = p.routes.last();
                    let merged = match old {
                        // An older route's closing written again (a replayed log) while the
                        // history has moved on: nothing to change.
                        Some(o)
                            if route.is_some_and(|r| o.routes.contains(r))
                                && o.routes.last() != route =>
                        {
                            continue;
                        }
                        // A newer route, or the newest one again: one history of both (the
                        // merge keeps each route and milestone once).
                        Some(o) => ParcelHistory::merge(o, p.clone()),
                        None => p.clone(),
                    };
                    parcels.insert(key, serde_json::to_vec(&merged)?.as_slice())?;
                    closed.insert(format!("{:020}{SEP}p{SEP}{key}", p.closed_ms).as_str(), ())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records what was done about alert `offset` of `depot` (a later action replaces an
    /// earlier one; the same record written twice leaves the same value).
    pub fn record_alert(
        &self,
        depot: &str,
        offset: u64,
        handling: &AlertHandling,
    ) -> Result<(), HistoryError> {
        let tx = self.db().begin_write()?;
        {
            let mut t = tx.open_table(ALERTS)?;
            let key = format!("{depot}{SEP}{offset:020}");
            t.insert(key.as_str(), serde_json::to_vec(handling)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// What was done about the alerts of `depot` at `offsets`.
    pub fn alerts(
        &self,
        depot: &str,
        offsets: impl Iterator<Item = u64>,
    ) -> Result<BTreeMap<u64, AlertHandling>, HistoryError> {
        let tx = self.db().begin_read()?;
        let t = tx.open_table(ALERTS)?;
        let mut out = BTreeMap::new();
        for o in offsets {
            if let Some(v) = t.get(format!("{depot}{SEP}{o:020}").as_str())? {
                out.insert(o, serde_json::from_slice(v.value())?);
            }
        }
        Ok(out)
    }

    /// A parcel's history, if it has one.
    pub fn parcel(&self, t: &TrackingNumber) -> Result<Option<ParcelHistory>, HistoryError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PARCELS)?;
        let v = table.get(t.0.as_str())?;
        Ok(match v {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    /// A closed route's history, if it has one.
    pub fn route(&self, id: &RouteId) -> Result<Option<RouteHistory>, HistoryError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(ROUTES)?;
        let v = table.get(id.0.as_str())?;
        Ok(match v {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    /// The ids of a depot's closed routes planned on `day` (`YYYY-MM-DD`, or every day when
    /// `None`), ascending by day then id, after `after` (a route id) when given.
    pub fn route_ids(
        &self,
        depot: &DepotId,
        day: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RouteId>, HistoryError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(ROUTE_DAYS)?;
        let prefix = match day {
            Some(d) => format!("{}{SEP}{d}{SEP}", depot.0),
            None => format!("{}{SEP}", depot.0),
        };
        let mut out = Vec::new();
        for entry in table.range(prefix.as_str()..)? {
            let (k, _) = entry?;
            let key = k.value();
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            if let Some(id) = key.rsplit(SEP).next() {
                out.push(RouteId(id.to_owned()));
            }
        }
        Ok(out)
    }

    /// The ids of a depot's closed routes, newest day first (an id closed on several days
    /// comes once per day).
    pub fn route_ids_newest(
        &self,
        depot: &DepotId,
        limit: usize,
    ) -> Result<Vec<RouteId>, HistoryError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(ROUTE_DAYS)?;
        let from = format!("{}{SEP}", depot.0);
        let to = format!("{}\u{2}", depot.0);
        let mut out = Vec::new();
        for entry in table.range(from.as_str()..to.as_str())?.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry?;
            if let Some(id) = k.value().rsplit(SEP).next() {
                out.push(RouteId(id.to_owned()));
            }
        }
        Ok(out)
    }

    /// Removes what closed more than the retention period before `now_ms`; returns how many
    /// parcels and routes it removed.
    pub fn purge(&self, now_ms: i64) -> Result<usize, HistoryError> {
        let purged = self.purge_once(now_ms);
        if purged.is_err() {
            // Like a failed write: the next write opens the file again first.
            self.reopen.store(true, Ordering::Relaxed);
        }
        purged
    }

    fn purge_once(&self, now_ms: i64) -> Result<usize, HistoryError> {
        let retention = self.retention_ms.load(Ordering::Relaxed);
        let horizon = format!("{:020}", (now_ms - retention).max(0));
        let tx = self.db().begin_write()?;
        let mut n = 0;
        {
            let mut closed = tx.open_table(CLOSED)?;
            let mut parcels = tx.open_table(PARCELS)?;
            let mut routes = tx.open_table(ROUTES)?;
            let mut days = tx.open_table(ROUTE_DAYS)?;
            let mut facts = tx.open_table(FACTS)?;
            let due: Vec<String> = closed
                .range(..horizon.as_str())?
                .map(|e| e.map(|(k, _)| k.value().to_owned()))
                .collect::<Result<_, _>>()?;
            for key in due {
                closed.remove(key.as_str())?;
                let mut parts = key.splitn(3, SEP);
                let (Some(at), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let at: i64 = at.parse().unwrap_or(0);
                match kind {
                    "p" => {
                        // A parcel closed again later (a newer route) is kept.
                        let still = match parcels.get(id)? {
                            Some(v) => serde_json::from_slice::<ParcelHistory>(v.value())?
                                .closed_ms
                                .gt(&at),
                            None => true,
                        };
                        if !still {
                            parcels.remove(id)?;
                            n += 1;
                        }
                    }
                    _ => {
                        let old = match routes.get(id)? {
                            Some(v) => Some(serde_json::from_slice::<RouteHistory>(v.value())?),
                            None => None,
                        };
                        // Only the record this entry was written for (an id closed again later
                        // keeps its newer record until that one is due).
                        if let Some(r) = old.filter(|r| r.closed_ms == at) {
                            routes.remove(id)?;
                            facts.remove(id)?;
                            stores::purge(&tx, id, r.closed_ms).map_err(HistoryError::Db)?;
                            let day = day_of(r.planned_start_ms);
                            days.remove(format!("{}{SEP}{day}{SEP}{id}", r.view.depot.0).as_str())?;
                            n += 1;
                        }
                    }
                }
            }
        }
        tx.commit()?;
        Ok(n)
    }
}

/// One write to the history.
#[derive(Debug, Clone)]
pub enum HistoryWrite {
    /// What closing routes left behind.
    Closings(Vec<Closing>),
    /// What was done about an alert.
    Alert {
        /// The alert's depot.
        depot: String,
        /// The alert's feed offset.
        offset: u64,
        /// What was done.
        handling: AlertHandling,
    },
    /// The addresses of a route's stops, all of them.
    Addresses {
        /// The route.
        route: RouteId,
        /// Stops and addresses (empty: none).
        set: Vec<(milepost_proto::route::StopId, String)>,
        /// When, server time, UTC ms.
        at_ms: i64,
    },
    /// A route assigned again: the addresses of stops it no longer has go.
    KeepAddresses {
        /// The route.
        route: RouteId,
        /// Its stops now.
        stops: Vec<milepost_proto::route::StopId>,
    },
    /// Points of routes' trails.
    Trail(Vec<stores::TrailPoint>),
}

impl History {
    /// Writes `w` after any older writes still waiting; on failure it waits too (logged, and
    /// counted in [`History::backlog`]). A write of nothing only retries what waits.
    pub fn submit(&self, w: HistoryWrite) {
        let w = match w {
            HistoryWrite::Closings(c) if c.is_empty() => None,
            w => Some(w),
        };
        if let Err(e) = self.backlog.submit(w, |w| self.write(w)) {
            let waiting = self.backlog.len();
            tracing::error!(error = %e, waiting, "history not written; will retry");
        }
    }

    /// Retries every waiting write, in order.
    ///
    /// # Errors
    /// The first write that failed again (it and those after it keep waiting).
    pub fn flush(&self) -> Result<(), HistoryError> {
        self.submit_trail();
        self.backlog.submit(None, |w| self.write(w))
    }

    /// Writes waiting to be retried.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Makes every write fail (`true`) or work again: for tests of the backlog, which cannot
    /// fill a disk.
    #[doc(hidden)]
    pub fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::Relaxed);
    }

    fn write(&self, w: &HistoryWrite) -> Result<(), HistoryError> {
        if self.fail_writes.load(Ordering::Relaxed) {
            let e = std::io::Error::other("history writes made to fail");
            self.reopen.store(true, Ordering::Relaxed);
            return Err(HistoryError::Db(Box::new(redb::Error::Io(e))));
        }
        if self.reopen.load(Ordering::Relaxed) {
            self.reopen_db()?;
        }
        let written = self.write_once(w);
        if written.is_err() {
            self.reopen.store(true, Ordering::Relaxed);
        }
        written
    }

    /// Opens the file again after a failed write. The old handle goes first (the file cannot
    /// be open twice); meanwhile readers see an empty stand-in with every table, not an
    /// error. A read that began before may hold the file a moment longer: a few tries.
    fn reopen_db(&self) -> Result<(), HistoryError> {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        let stand_in = with_tables(
            Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?,
        )?;
        drop(std::mem::replace(&mut *db, stand_in));
        let mut tries = 0;
        loop {
            // The tables exist since the first open: opening writes nothing.
            match Database::create(&self.path) {
                Ok(fresh) => {
                    *db = fresh;
                    self.reopen.store(false, Ordering::Relaxed);
                    tracing::info!(path = %self.path.display(), "history database reopened");
                    return Ok(());
                }
                Err(e) if tries >= 20 => return Err(e.into()),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
            }
        }
    }

    /// The open database, for one transaction.
    fn db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_once(&self, w: &HistoryWrite) -> Result<(), HistoryError> {
        match w {
            HistoryWrite::Closings(c) => self.record(c),
            HistoryWrite::Alert {
                depot,
                offset,
                handling,
            } => self.record_alert(depot, *offset, handling),
            HistoryWrite::Addresses { route, set, at_ms } => {
                self.record_addresses(route, set, *at_ms)
            }
            HistoryWrite::KeepAddresses { route, stops } => self.keep_addresses(route, stops),
            HistoryWrite::Trail(points) => self.record_trail(points),
        }
    }
}

/// Opens (or creates) the database at `path` with every table, so that readers never meet a
/// missing one.
fn open_db(path: &Path) -> Result<Database, HistoryError> {
    with_tables(Database::create(path)?)
}

/// `db` with every table created.
fn with_tables(db: Database) -> Result<Database, HistoryError> {
    let tx = db.begin_write()?;
    tx.open_table(PARCELS)?;
    tx.open_table(ROUTES)?;
    tx.open_table(ROUTE_DAYS)?;
    tx.open_table(CLOSED)?;
    tx.open_table(ALERTS)?;
    tx.open_table(FACTS)?;
    tx.open_table(stores::ADDRESSES)?;
    tx.open_table(stores::TRAILS)?;
    tx.commit()?;
    Ok(db)
}

#[cfg(test)]
pub(crate) mod tests;
