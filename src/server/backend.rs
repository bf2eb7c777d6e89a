//! The durable path behind the sessions: where the log is kept ([`Backend`]: this box's writer
//! on its own segments, or the cluster's publisher to and consumer from JetStream), what the
//! log does with a refused record, and the applier that folds what is durable into the state.
//! Started in that order by [`crate::server::boot`], and closed in an order that loses nothing
//! acked.

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use milepost_core::store::{Ledger, LogRecord};
use tokio::sync::watch;

use crate::cluster::consume::start_consumer;
use crate::cluster::handover::{self, Positions};
use crate::cluster::lease::Owned;
use crate::cluster::nats::Cluster;
use crate::cluster::publish::{depot_resolver, run_publisher, OwnedFold};
use crate::cluster::seq::{lsn_of, resume_seq};
use crate::config::Config;
use crate::feed::hub::FeedHub;
use crate::metrics::Histogram;
use crate::server::applier::{self, ApplierLink, ApplierParts, ApplierStats};
use crate::server::clock::Clock;
use crate::server::error::{io_err, ServerError};
use crate::server::recover::Recovered;
use crate::store::writer::commit::{CommitGroup, CommitSink, RefusedHook};
use crate::store::writer::queue::{RequestQueue, WriterHandle};
use crate::store::writer::thread::LogWriter;

/// Where the log is kept: local segments, or the cluster's stream.
pub(super) enum Backend {
    /// This box's own log.
    Local(LogWriter),
    /// The cluster's JetStream stream.
    Cluster {
        /// Submits to the publisher.
        handle: WriterHandle,
        /// The publisher task.
        publisher: tokio::task::JoinHandle<()>,
        /// The consumer thread feeding the applier.
        consumer: JoinHandle<()>,
    },
}

/// The applier thread and what the sessions share with it.
pub(super) struct Applier {
    /// What the sessions share with the applier.
    pub(super) link: ApplierLink,
    /// The thread.
    pub(super) join: JoinHandle<()>,
    /// Its counters.
    pub(super) stats: Arc<ApplierStats>,
    /// The subscriptions it wakes.
    pub(super) hub: Arc<FeedHub>,
}

/// What the log does with a record it refuses: withdraw the settlement of its seqs from the
/// admission ledger (even if the session that sent it is gone).
pub(super) fn refused_hook(ledger: Arc<Ledger>) -> RefusedHook {
    Box::new(move |rec| {
        if let LogRecord::Batch {
            driver, entries, ..
        } = rec
        {
            ledger.with(driver, |l| {
                for e in entries.iter().rev() {
                    l.unsettle(e.seq());
                }
            });
        }
    })
}

/// What the cluster's log needs: the connection, the partitions held here and, when the
/// gateway folds only what it owns, each partition's position.
pub(super) struct ClusterLog<'a> {
    /// The connection.
    pub(super) cluster: &'a Cluster,
    /// The partitions owned and held here.
    pub(super) owned: &'a Arc<Owned>,
    /// Each partition's position (`cluster.fold = "owned"`).
    pub(super) positions: Option<&'a Arc<Positions>>,
}

/// Starts the log: this box's writer on its own segments, or the cluster's publisher (to
/// JetStream) and consumer (from it). Either way durable records go to `commits`.
pub(super) fn start_log(
    cfg: &Config,
    cluster: Option<ClusterLog<'_>>,
    recovered: &Recovered,
    commits: CommitSink,
    fsync_latency: Arc<Histogram>,
    on_refused: RefusedHook,
    stop_cluster: watch::Receiver<bool>,
) -> Result<(Backend, WriterHandle), ServerError> {
    let next_lsn = recovered.stats.next_lsn;
    match cluster {
        None => {
            let writer = LogWriter::start(
                &recovered.log_dir,
                &cfg.log,
                next_lsn,
                Some(commits),
                fsync_latency,
                Some(on_refused),
            )?;
            let handle = writer.handle();
            Ok((Backend::Local(writer), handle))
        }
        Some(ClusterLog {
            cluster: c,
            owned,
            positions,
        }) => {
            let (handle, queue) = RequestQueue::new(8192);
            let (publisher, consumer) = match positions {
                // A gateway that folds only what it owns reads each partition it leases on
                // its own, and finds the depot of a command in its fold.
                Some(positions) => {
                    let fold = OwnedFold {
                        resolve: depot_resolver(recovered.state.core.clone()),
                        owned: owned.clone(),
                        positions: positions.clone(),
                    };
                    let publisher =
                        tokio::spawn(run_publisher(c.clone(), Some(fold), queue, on_refused));
                    let consumer = handover::start(
                        c.clone(),
                        owned.clone(),
                        positions.clone(),
                        commits,
                        stop_cluster,
                    );
                    (publisher, consumer)
                }
                None => {
                    let publisher = tokio::spawn(run_publisher(c.clone(), None, queue, on_refused));
                    let consumer = start_consumer(c.clone(), next_lsn, commits, stop_cluster);
                    (publisher, consumer)
                }
            };
            let consumer = consumer.map_err(io_err("cluster consumer thread"))?;
            let backend = Backend::Cluster {
                handle: handle.clone(),
                publisher,
                consumer,
            };
            Ok((backend, handle))
        }
    }
}

/// What the applier needs of a gateway that folds only the partitions it owns.
pub(super) struct FoldOwned {
    /// Each partition's position.
    pub positions: Arc<Positions>,
    /// Where its partition images go, if it takes them.
    pub snapshots: Option<crate::server::part_images::PartSnapshots>,
}

/// Starts the applier thread, which folds `commits` into the recovered state.
pub(super) fn start_applier(
    cfg: &Config,
    recovered: &Recovered,
    commits: Receiver<CommitGroup>,
    log: &WriterHandle,
    clock: &Clock,
    tick_locally: bool,
    owned: Option<FoldOwned>,
) -> Result<Applier, ServerError> {
    let folds_owned_only = owned.is_some();
    let (positions, part_snapshots) = match owned {
        Some(o) => (Some(o.positions), o.snapshots),
        None => (None, None),
    };
    let stats = Arc::new(ApplierStats::default());
    let mut log_cfg = cfg.log.clone();
    if folds_owned_only {
        // Its state is not the fold of a prefix of the stream (partitions come and go), so a
        // local snapshot could not be resumed from: it starts from the stream (see
        // `recover`), and takes none.
        log_cfg.snapshot_every_records = u64::MAX;
        log_cfg.snapshot_every_s = u64::MAX;
    }
    if !tick_locally {
        // A cluster gateway's records come from the stream, not from a log of its own: there
        // are no log bytes to weigh its snapshots against, so records and time alone decide.
        log_cfg.snapshot_log_ratio = 0.0;
    }
    let hub = Arc::new(FeedHub::default());
    let (link, join) = applier::spawn(ApplierParts {
        state: recovered.state.clone(),
        commits,
        // Folding only what it owns, it has no single position: each partition has its own
        // (`positions`), and the publisher waits on those.
        next_lsn: match folds_owned_only {
            true => u64::MAX,
            false => recovered.stats.next_lsn,
        },
        replayed: recovered.stats.records,
        cfg: log_cfg,
        snapshot_dir: recovered.snapshot_dir.clone(),
        log_dir: recovered.log_dir.clone(),
        writer: log.clone(),
        clock: clock.clone(),
        stats: stats.clone(),
        hub: hub.clone(),
        tick_locally,
        positions,
        part_snapshots,
    })
    .map_err(io_err("applier thread"))?;
    Ok(Applier {
        link,
        join,
        stats,
        hub,
    })
}

/// A cluster gateway is ready only once the stream as it was at start is folded in (the
/// cluster's recovery): a phone's Welcome then carries the watermark its last gateway acked.
pub(super) async fn catch_up(applied: &ApplierLink, recovered: &Recovered) {
    let Some((_, last)) = recovered.stream_bounds else {
        return;
    };
    tracing::info!(
        from = resume_seq(recovered.stats.next_lsn),
        to = last,
        "catching up with the stream"
    );
    if last > 0 {
        applied.applied(lsn_of(last, 0)).await;
    }
}

impl Backend {
    /// Stops taking records. A cluster's publisher first publishes (and has acked) everything
    /// submitted; then its consumer is told to stop, which closes the applier's queue (it
    /// snapshots and exits). What remains is joined off the async workers: [`Closing::join`].
    pub(super) async fn close(self, stop_cluster: &watch::Sender<bool>) -> Closing {
        match self {
            Backend::Local(w) => Closing {
                writer: Some(w),
                consumer: None,
            },
            Backend::Cluster {
                handle,
                publisher,
                consumer,
            } => {
                handle.close().await;
                let _ = tokio::time::timeout(Duration::from_secs(10), publisher).await;
                let _ = stop_cluster.send(true);
                Closing {
                    writer: None,
                    consumer: Some(consumer),
                }
            }
        }
    }
}

/// The threads of a closed [`Backend`], to join.
pub(super) struct Closing {
    writer: Option<LogWriter>,
    consumer: Option<JoinHandle<()>>,
}

impl Closing {
    /// Finishes what was submitted and syncs the local log (stopping the writer closes the
    /// applier's queue), or waits for the cluster's consumer to end. Blocks.
    pub(super) fn join(self) {
        if let Some(w) = self.writer {
            w.shutdown();
        }
        if let Some(c) = self.consumer {
            let _ = c.join();
        }
    }
}
