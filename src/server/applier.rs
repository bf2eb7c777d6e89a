//! The applier: one OS thread that folds durable records into the fleet state in log order
//! (dedupe ledger, live positions, routes, stop progress, ETAs), publishes the updates the core
//! emits, ticks the core once a second (stall detection), takes snapshots and applies
//! retention. Sessions wait for it to have applied their record before they ack, so what a phone
//! was acked is what a dispatcher's next query sees.
//!
//! A std thread and not a tokio task: applying is synchronous CPU work. A snapshot is encoded
//! here (it is the state at one record number), then written, fsynced and followed by
//! retention on a thread of its own, so the applier never waits on the disk. Its input is the
//! log writer's bounded commit queue: if the applier falls behind, the writer waits, and so do
//! the sessions: backpressure all the way to QUIC flow control.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use milepost_proto::route::Update;
use tokio::sync::{broadcast, watch};

use crate::server::clock::Clock;
use crate::state::{lock, FleetState};
use crate::store::writer::CommitGroup;
use crate::store::LogConfig;
use crate::store::WriterHandle;
use milepost_core::fold::CommandResult;

/// Command results kept for their issuers at most (oldest dropped first).
const RESULTS_KEPT: usize = 4096;

/// What the applier shares with the sessions.
#[derive(Clone)]
pub struct ApplierLink {
    /// Every record below this number has been applied.
    pub applied: watch::Receiver<u64>,
    /// Results of command records, by record number, until the issuing session takes them.
    pub results: Arc<Mutex<BTreeMap<u64, CommandResult>>>,
    /// The updates the core emits, in log order.
    pub updates: broadcast::Sender<Arc<Update>>,
}

impl ApplierLink {
    /// Waits until the record numbered `lsn` (and everything before it) is applied.
    pub async fn applied(&self, lsn: u64) {
        if *self.applied.borrow() > lsn {
            return;
        }
        let mut rx = self.applied.clone();
        let _ = rx.wait_for(|&n| n > lsn).await;
    }

    /// Takes the result of a command record once it is applied.
    pub async fn result(&self, lsn: u64) -> Option<CommandResult> {
        self.applied(lsn).await;
        lock(&self.results).remove(&lsn)
    }
}

/// Everything the applier thread needs.
pub struct ApplierParts {
    /// The state it folds into.
    pub state: Arc<FleetState>,
    /// Committed records from the log writer (or the cluster's stream), with the submitters
    /// to answer once they are applied.
    pub commits: Receiver<CommitGroup>,
    /// First record number it will see.
    pub next_lsn: u64,
    /// Records recovery replayed from the log (not yet in any snapshot).
    pub replayed: u64,
    /// Snapshot and retention settings.
    pub cfg: LogConfig,
    /// Where snapshots go.
    pub snapshot_dir: PathBuf,
    /// The log directory (retention deletes old segments).
    pub log_dir: PathBuf,
    /// The writer, told how much retention freed.
    pub writer: WriterHandle,
    /// The clock.
    pub clock: Clock,
    /// Counters.
    pub stats: Arc<ApplierStats>,
    /// Subscriptions to wake.
    pub hub: Arc<crate::feed::FeedHub>,
    /// Run stall detection from this thread's clock (a single box). A cluster gateway does
    /// not: ticks come through the stream as records, so every gateway folds the same ones.
    pub tick_locally: bool,
    /// Where each partition's position goes, when a cluster gateway folds only the partitions
    /// it owns (each read on its own, so there is no single position).
    pub positions: Option<Arc<crate::cluster::handover::Positions>>,
    /// Where partition images go, when a cluster gateway folds only what it owns and keeps
    /// per-partition snapshots.
    pub part_snapshots: Option<crate::server::part_images::PartSnapshots>,
}

/// Applier counters.
#[derive(Debug, Default)]
pub struct ApplierStats {
    /// Updates the core emitted.
    pub updates: std::sync::atomic::AtomicU64,
    /// Snapshots written.
    pub snapshots: std::sync::atomic::AtomicU64,
    /// Log segments deleted by retention.
    pub segments_deleted: std::sync::atomic::AtomicU64,
    /// Records applied.
    pub records: std::sync::atomic::AtomicU64,
    /// Size of the newest snapshot written, bytes.
    pub last_snapshot_bytes: std::sync::atomic::AtomicU64,
}

/// Starts the applier thread. It stops (after a final snapshot) when the writer closes the
/// commit queue.
pub fn spawn(parts: ApplierParts) -> std::io::Result<(ApplierLink, JoinHandle<()>)> {
    let (applied_tx, applied) = watch::channel(parts.next_lsn);
    let (updates, _) = broadcast::channel(65_536);
    let link = ApplierLink {
        applied,
        results: Arc::new(Mutex::new(BTreeMap::new())),
        updates: updates.clone(),
    };
    let results = link.results.clone();
    let snapshots = Snapshotter::start(&parts)?;
    let join = std::thread::Builder::new()
        .name("milepost-apply".into())
        .spawn(move || run(parts, snapshots, applied_tx, results, updates))?;
    Ok((link, join))
}

fn run(
    p: ApplierParts,
    snapshots: Snapshotter,
    applied_tx: watch::Sender<u64>,
    results: Arc<Mutex<BTreeMap<u64, CommandResult>>>,
    updates: broadcast::Sender<Arc<Update>>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut next = p.next_lsn;
    let mut out = Vec::new();
    let mut touched = Vec::new();
    let mut since_snapshot = p.replayed;
    let mut last_snapshot = Instant::now();
    let mut log_at_snapshot = p.writer.appended_bytes();
    let mut last_tick = Instant::now();
    let mut imager = p
        .part_snapshots
        .clone()
        .map(crate::server::part_images::PartImager::new);
    let publish = |out: &mut Vec<Update>| {
        p.stats.updates.fetch_add(out.len() as u64, Relaxed);
        for u in out.drain(..) {
            let _ = updates.send(Arc::new(u));
        }
    };
    loop {
        match p.commits.recv_timeout(Duration::from_secs(1)) {
            Ok(CommitGroup {
                records: group,
                answers,
                positions,
                release,
                install,
            }) => {
                if let Some((released, partitions)) = release {
                    let (routes, drivers) = p.state.release(&released, partitions);
                    if let Some(imager) = &mut imager {
                        imager.released(&released);
                    }
                    tracing::info!(
                        ?released,
                        routes,
                        drivers,
                        "partitions handed over: their state is forgotten here"
                    );
                }
                if let Some(image) = install {
                    let (part, lsn_next) = (image.partition, image.lsn_next);
                    let (routes, drivers) = p.state.install(*image);
                    if let Some(imager) = &mut imager {
                        imager.installed(part, lsn_next);
                    }
                    tracing::info!(
                        partition = part,
                        routes,
                        drivers,
                        "partition installed from its image"
                    );
                }
                for c in &group {
                    if let Some(r) = p.state.apply(&c.record, &mut out, &mut touched) {
                        let mut results = lock(&results);
                        results.insert(c.lsn, r);
                        // The issuing session takes its result as soon as it is applied; the
                        // rest (a cluster folds every gateway's commands) must not pile up.
                        while results.len() > RESULTS_KEPT {
                            results.pop_first();
                        }
                    }
                    publish(&mut out);
                    // A partition caught up after a takeover folds records older than the
                    // position: it never moves back.
                    next = next.max(c.lsn + 1);
                }
                wake(&p.hub, &mut touched);
                if let Some(imager) = &mut imager {
                    imager.folded(&positions);
                }
                if let Some(at) = &p.positions {
                    for (part, next) in positions {
                        at.advance(part, next);
                    }
                }
                since_snapshot += group.len() as u64;
                p.stats.records.fetch_add(group.len() as u64, Relaxed);
                let _ = applied_tx.send(next);
                // After `applied` moved: an answered session finds its record applied.
                answers.complete();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            p.hub.sweep();
            if p.tick_locally {
                let tick = milepost_core::fold::local_tick((p.clock)());
                p.state.apply(&tick, &mut out, &mut touched);
                wake(&p.hub, &mut touched);
                publish(&mut out);
            }
        }
        if let Some(imager) = &mut imager {
            imager.maybe_take(&p.state, (p.clock)());
        }
        let due = since_snapshot >= p.cfg.snapshot_every_records
            || (since_snapshot > 0
                && last_snapshot.elapsed() >= Duration::from_secs(p.cfg.snapshot_every_s));
        // Not before the log has grown by its share of the last snapshot (write amplification
        // stays bounded however large the fleet's state).
        let grown = p.writer.appended_bytes().saturating_sub(log_at_snapshot) as f64
            >= p.cfg.snapshot_log_ratio * p.stats.last_snapshot_bytes.load(Relaxed) as f64;
        // While the previous snapshot is still being written, the next one waits.
        if due && grown && !snapshots.busy() {
            snapshots.take(&p, next);
            since_snapshot = 0;
            last_snapshot = Instant::now();
            log_at_snapshot = p.writer.appended_bytes();
        }
    }
    // A gateway folding only the partitions it owns takes no snapshot (see `start_applier`).
    if since_snapshot > 0 && p.positions.is_none() {
        snapshots.take(&p, next);
    }
    // The final snapshot is on disk before the thread ends (the gateway joins it at shutdown).
    snapshots.finish();
}

/// Wakes the subscriptions of everything a group touched, each key once (positions once per
/// driver that moved).
fn wake(hub: &crate::feed::FeedHub, touched: &mut milepost_core::fold::Touched) {
    let unique: std::collections::HashSet<_> = touched.drain(..).collect();
    for (key, moved) in unique {
        hub.wake(&key, moved.as_ref());
    }
}

/// A snapshot the applier encoded, for the snapshot thread to write.
struct SnapshotJob {
    /// First record not folded into it.
    lsn_next: u64,
    /// Its encoding.
    payload: Vec<u8>,
    /// How long encoding it held the applier.
    encode: Duration,
}

/// The snapshot thread. The applier encodes a snapshot (it needs the state at one record
/// number, and holds the state's locks meanwhile); writing and fsyncing it, and retention,
/// happen on this thread. At 10,000 drivers a snapshot is 6.5 MB and writing it took 35-50 ms,
/// during which the applier, and every ack and feed update behind it, used to wait.
struct Snapshotter {
    jobs: Option<std::sync::mpsc::SyncSender<SnapshotJob>>,
    busy: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

/// What the snapshot thread needs from the applier's parts.
struct Retention {
    snapshot_dir: PathBuf,
    log_dir: PathBuf,
    writer: WriterHandle,
    stats: Arc<ApplierStats>,
    retention_s: u64,
}

impl Snapshotter {
    fn start(p: &ApplierParts) -> std::io::Result<Snapshotter> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<SnapshotJob>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let ctx = Retention {
            snapshot_dir: p.snapshot_dir.clone(),
            log_dir: p.log_dir.clone(),
            writer: p.writer.clone(),
            stats: p.stats.clone(),
            retention_s: p.cfg.retention_s,
        };
        let done = busy.clone();
        let join = std::thread::Builder::new()
            .name("milepost-snap".into())
            .spawn(move || {
                for job in rx {
                    persist_and_retain(&ctx, job);
                    done.store(false, Ordering::Release);
                }
            })?;
        Ok(Snapshotter {
            jobs: Some(jobs),
            busy,
            join: Some(join),
        })
    }

    /// True while a snapshot is being written.
    fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Encodes a snapshot at `next` and hands it to the thread (waiting for the one before it,
    /// if any, to be written).
    fn take(&self, p: &ApplierParts, next: u64) {
        let started = Instant::now();
        let payload = match p.state.encode_snapshot(&p.snapshot_dir, next, (p.clock)()) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed; the log is kept whole");
                return;
            }
        };
        let job = SnapshotJob {
            lsn_next: next,
            payload,
            encode: started.elapsed(),
        };
        if let Some(jobs) = &self.jobs {
            self.busy.store(true, Ordering::Release);
            if jobs.send(job).is_err() {
                tracing::error!("the snapshot thread is gone; the log is kept whole");
            }
        }
    }

    /// Waits until every snapshot handed over is written.
    fn finish(mut self) {
        drop(self.jobs.take());
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

/// Writes a snapshot and deletes the segments it makes unnecessary that are older than the
/// retention period.
fn persist_and_retain(ctx: &Retention, job: SnapshotJob) {
    use std::sync::atomic::Ordering::Relaxed;
    let started = Instant::now();
    let next = job.lsn_next;
    match crate::store::snapshot::persist(&ctx.snapshot_dir, next, &job.payload) {
        Ok((path, bytes)) => {
            ctx.stats.snapshots.fetch_add(1, Relaxed);
            ctx.stats.last_snapshot_bytes.store(bytes, Relaxed);
            tracing::info!(path = %path.display(), bytes, lsn_next = next,
                encode_ms = job.encode.as_millis() as u64,
                write_ms = started.elapsed().as_millis() as u64, "snapshot written");
        }
        Err(e) => {
            tracing::error!(error = %e, "snapshot failed; the log is kept whole");
            return;
        }
    }
    let Ok(segs) = crate::store::log::list_segments(&ctx.log_dir) else {
        return;
    };
    // Only what the *oldest* kept snapshot covers may go: recovery falls back to it when the
    // newest is damaged.
    let covered = crate::store::snapshot::list(&ctx.snapshot_dir)
        .ok()
        .and_then(|v| v.first().map(|s| s.0))
        .unwrap_or(0)
        .min(next);
    // A retention longer than the clock goes back keeps everything (and does not panic).
    let Some(horizon) =
        std::time::SystemTime::now().checked_sub(Duration::from_secs(ctx.retention_s))
    else {
        return;
    };
    for w in segs.windows(2) {
        let ((_, path), (next_first, _)) = (&w[0], &w[1]);
        if *next_first > covered {
            break; // not wholly covered by a snapshot
        }
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.modified().is_ok_and(|m| m < horizon) && std::fs::remove_file(path).is_ok() {
            ctx.writer.released(meta.len());
            ctx.stats.segments_deleted.fetch_add(1, Relaxed);
            tracing::info!(segment = %path.display(), "retention: deleted a log segment");
        }
    }
}
