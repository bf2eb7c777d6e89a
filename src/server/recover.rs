//! Recovery: the fleet state as it was when the gateway stopped. A single box restores its
//! newest good snapshot and replays its log from there; a cluster gateway restores its newest
//! snapshot if the stream still holds what follows it (its consumer then folds the stream).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use milepost_core::feed::FeedConfig;
use milepost_core::fleet::config::CoreConfig;

use crate::cluster::config::FoldMode;
use crate::cluster::nats::Cluster;
use crate::cluster::seq::{lsn_of, resume_seq};
use crate::config::Config;
use crate::history::History;
use crate::server::error::{io_err, ServerError};
use crate::state::FleetState;
use crate::store::log::{LogReader, RecoveryStats};
use crate::store::snapshot::newest;

/// What recovery left, and where the log and the snapshots live.
pub(super) struct Recovered {
    /// The fleet state.
    pub(super) state: Arc<FleetState>,
    /// What recovery found (`next_lsn`: where the log goes on).
    pub(super) stats: RecoveryStats,
    /// This box's log.
    pub(super) log_dir: PathBuf,
    /// Where snapshots are written (a cluster's apart from a single box's).
    pub(super) snapshot_dir: PathBuf,
    /// The cluster stream's first and last sequence at start.
    pub(super) stream_bounds: Option<(u64, u64)>,
}

/// Rebuilds the fleet state off the async workers: the directories, the cluster stream's
/// bounds, then [`recover`] or [`recover_cluster`].
pub(super) async fn recover_state(
    cfg: &Config,
    cluster: Option<&Cluster>,
) -> Result<Recovered, ServerError> {
    let data = &cfg.data_dir;
    let log_dir = data.join("log");
    // A cluster's snapshots count stream sequences, not local record numbers: they live
    // apart from a single box's.
    let snapshot_dir = match cluster {
        Some(c) => data.join("cluster").join(&c.names.stream).join("snapshots"),
        None => data.join("snapshots"),
    };
    std::fs::create_dir_all(&log_dir).map_err(io_err("create log dir"))?;
    let stream_bounds = match cluster {
        Some(c) => Some(c.stream_bounds().await?),
        None => None,
    };
    let history = History::open_shared(&data.join("history.redb"), &cfg.history)
        .map_err(|e| io_err("open history database")(std::io::Error::other(e)))?;
    // Recovery is blocking disk and CPU work: keep it off the async workers.
    let (state, stats) = {
        let (log_dir, snapshot_dir, core_cfg, feed_cfg) = (
            log_dir.clone(),
            snapshot_dir.clone(),
            cfg.core.clone(),
            cfg.feed.clone(),
        );
        let owned_only = cluster.is_some_and(|c| c.cfg.fold == FoldMode::Owned);
        let partitions = cluster.map_or(1, |c| c.cfg.partitions);
        tokio::task::spawn_blocking(move || match stream_bounds {
            // Folding only what it owns, a gateway starts empty at the stream's end: each
            // partition it then takes is caught up from its own subject
            // (`crate::cluster::handover`), with windows calibrated per partition.
            Some((_, last)) if owned_only => {
                let core_cfg = CoreConfig {
                    calibration_groups: partitions,
                    ..core_cfg
                };
                let state = FleetState::new(core_cfg, &feed_cfg).with_history(history);
                let stats = RecoveryStats {
                    next_lsn: lsn_of(last + 1, 0),
                    ..Default::default()
                };
                Ok((state, stats))
            }
            Some(bounds) => recover_cluster(&snapshot_dir, bounds, core_cfg, &feed_cfg, history),
            None => recover(&log_dir, &snapshot_dir, core_cfg, &feed_cfg, history),
        })
        .await
        .map_err(|e| io_err("recovery task")(std::io::Error::other(e.to_string())))??
    };
    Ok(Recovered {
        state: Arc::new(state),
        stats,
        log_dir,
        snapshot_dir,
        stream_bounds,
    })
}

/// A cluster gateway's recovery: its newest snapshot if the stream still holds what follows
/// it, else nothing; the consumer then folds the stream from there.
fn recover_cluster(
    snapshot_dir: &Path,
    (first, last): (u64, u64),
    core: CoreConfig,
    feed: &FeedConfig,
    history: Arc<History>,
) -> Result<(FleetState, RecoveryStats), ServerError> {
    let snap = newest(snapshot_dir)?;
    let (state, from) = match snap {
        // A snapshot beyond the stream's end is of another (recreated) stream.
        Some(s) if resume_seq(s.lsn_next) <= last + 1 => {
            let from = s.lsn_next;
            (FleetState::restore(core, s), from)
        }
        Some(s) => {
            tracing::warn!(
                snapshot = s.lsn_next,
                last,
                "snapshot is ahead of the stream: ignored"
            );
            (FleetState::new(core, feed), lsn_of(1, 0))
        }
        None => (FleetState::new(core, feed), lsn_of(1, 0)),
    };
    let state = state.with_history(history);
    if first > resume_seq(from) && last > 0 {
        tracing::warn!(
            from,
            first,
            "the stream no longer holds records this gateway has not folded (retention): \
             state older than the stream's first record is missing"
        );
    }
    let stats = RecoveryStats {
        next_lsn: from,
        ..Default::default()
    };
    Ok((state, stats))
}

/// Rebuilds the fleet state: the newest good snapshot, then the log from where it ends.
fn recover(
    log_dir: &Path,
    snapshot_dir: &Path,
    core: CoreConfig,
    feed: &FeedConfig,
    history: Arc<History>,
) -> Result<(FleetState, RecoveryStats), ServerError> {
    let started = std::time::Instant::now();
    let (state, from) = match newest(snapshot_dir)? {
        Some(snap) => {
            let from = snap.lsn_next;
            (FleetState::restore(core, snap), from)
        }
        None => (FleetState::new(core, feed), 0),
    };
    let state = state.with_history(history);
    let (mut out, mut touched) = (Vec::new(), Vec::new());
    let stats = LogReader::new(log_dir).replay_from(from, |_, rec| {
        out.clear();
        touched.clear();
        state.apply(&rec, &mut out, &mut touched);
    })?;
    tracing::info!(
        snapshot_lsn = from,
        records = stats.records,
        segments = stats.segments,
        drivers = state.ledger.len(),
        torn_bytes = stats.torn_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    Ok((state, stats))
}
