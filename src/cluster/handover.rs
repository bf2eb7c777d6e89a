//! Reading the stream on a gateway that folds only the partitions it owns
//! (`cluster.fold = "owned"`): one ordered consumer per partition it leases, each on the
//! partition's subject (`PREFIX.p.P`: every record about the partition's depots, in stream
//! order), so that a gateway receives only what it folds.
//!
//! A small loop compares the partitions this gateway leases ([`Owned::owns`]) with those it
//! reads:
//! - a partition newly leased gets a reader from the partition's first message: it is
//!   **caught up** once the applier has folded everything the subject held when the reader
//!   started, and only then held ([`Owned::holds`]) and served here;
//! - a partition no longer leased loses its reader and is **released**: the applier forgets its
//!   depots' routes, parcels, feeds, positions, ledgers and calibration
//!   ([`milepost_core::fold::Parts::release`]) before anything else it folds.
//!
//! A partition's state is a function of its own records alone (depots partition everything:
//! drivers, routes, parcels, depot feeds and the ETA calibration), so a new owner reaches the
//! same feeds, at the same offsets, as the old one. A takeover starts from the partition's
//! newest image ([`crate::cluster::snapshots`], written every `cluster.partition_snapshot_s`
//! by its holder) and reads only what follows it; without one, from the start of the stream
//! (bounded by `cluster.max_age_s`).
//!
//! Each partition has its own position ([`Positions`]): the publisher answers a record of a
//! held partition once that partition's position has passed it (so a phone's ack, or a
//! command's answer, still means "folded here"), and a record of a partition folded elsewhere
//! once JetStream has it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cluster::consume::take_ready;
use crate::cluster::lease::Owned;
use crate::cluster::nats::Cluster;
use crate::cluster::seq::{lsn_of, resume_seq};
use crate::cluster::snapshots;
use crate::store::writer::{Answers, CommitGroup, CommitSink};

/// Where readers hand their groups.
type Sender = tokio::sync::mpsc::Sender<CommitGroup>;

/// How often the loop looks at the leases.
const RECHECK: Duration = Duration::from_millis(200);
/// Records handed to the applier at once at most.
const GROUP: usize = 512;

/// Each partition's position: every record of it below this number is folded here.
pub struct Positions {
    next: Vec<AtomicU64>,
    changed: watch::Sender<u64>,
}

impl Positions {
    /// Positions of `partitions` partitions, all at 0.
    pub fn new(partitions: u32) -> Positions {
        Positions {
            next: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
            changed: watch::channel(0).0,
        }
    }

    /// Partition `p` has folded every record below `lsn_next`.
    pub fn advance(&self, p: u32, lsn_next: u64) {
        if let Some(n) = self.next.get(p as usize) {
            n.fetch_max(lsn_next, Ordering::Release);
            self.changed.send_modify(|v| *v += 1);
        }
    }

    fn reset(&self, p: u32) {
        if let Some(n) = self.next.get(p as usize) {
            n.store(0, Ordering::Release);
            self.changed.send_modify(|v| *v += 1);
        }
    }

    fn passed(&self, p: u32, lsn: u64) -> bool {
        self.next
            .get(p as usize)
            .is_none_or(|n| n.load(Ordering::Acquire) > lsn)
    }

    /// Waits until record `lsn` of partition `p` is folded (true), or `give_up` says the
    /// partition is no longer held here (false).
    pub async fn folded(&self, p: u32, lsn: u64, give_up: impl Fn() -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        loop {
            if self.passed(p, lsn) {
                return true;
            }
            if give_up() {
                return false;
            }
            // Woken by any partition's progress; a release is seen within a recheck.
            let _ = tokio::time::timeout(RECHECK, rx.changed()).await;
        }
    }
}

/// Starts the readers' loop on a thread of its own (like [`crate::cluster::consume`]: handing
/// a group to the applier blocks while it lags). It stops, closing `sink`, when `stop` turns
/// true.
pub fn start(
    cluster: Cluster,
    owned: Arc<Owned>,
    positions: Arc<Positions>,
    sink: CommitSink,
    stop: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("milepost-consume".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cluster consumer runtime");
                    return;
                }
            };
            rt.block_on(run(cluster, owned, positions, sink, stop));
        })
}

async fn run(
    cluster: Cluster,
    owned: Arc<Owned>,
    positions: Arc<Positions>,
    sink: CommitSink,
    mut stop: watch::Receiver<bool>,
) {
    // Readers hand their groups to one forwarder, which passes everything ready at once to
    // the applier as one group: one wake-up of the applier thread for many partitions.
    let (tx, rx) = tokio::sync::mpsc::channel::<CommitGroup>(64);
    let forwarder = tokio::spawn(forward(rx, sink));
    let mut readers: HashMap<u32, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut every = tokio::time::interval(RECHECK);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => break,
        }
        // A reader that failed (NATS restarted...) starts again from the partition's start.
        let failed: Vec<u32> = readers
            .iter()
            .filter(|(_, h)| h.is_finished())
            .map(|(p, _)| *p)
            .collect();
        let mut released = Vec::new();
        for p in 0..owned.partitions() {
            let leased = owned.owns(p);
            if readers.contains_key(&p) && (!leased || failed.contains(&p)) {
                if let Some(h) = readers.remove(&p) {
                    h.abort();
                    let _ = h.await;
                }
                owned.set_held(p, false);
                positions.reset(p);
                released.push(p);
            }
        }
        // Forgotten before anything folded after it (what the stopped reader sent is queued
        // before this).
        if !released.is_empty() {
            let group = CommitGroup {
                release: Some((released, owned.partitions())),
                ..CommitGroup::default()
            };
            if tx.send(group).await.is_err() {
                break;
            }
        }
        for p in 0..owned.partitions() {
            if owned.owns(p) && !readers.contains_key(&p) {
                let reader = read(cluster.clone(), p, owned.clone(), tx.clone());
                readers.insert(p, tokio::spawn(reader));
            }
        }
    }
    for (_, h) in readers {
        h.abort();
        let _ = h.await;
    }
    // The forwarder ends once every sender is gone, closing the applier's queue.
    drop(tx);
    let _ = forwarder.await;
}

/// Passes the readers' groups to the applier, everything ready at once merged into one group
/// (a release or an install travels alone, in order).
async fn forward(mut rx: tokio::sync::mpsc::Receiver<CommitGroup>, sink: CommitSink) {
    while let Some(first) = rx.recv().await {
        let mut merged = first;
        let mut pending = None;
        let alone = |g: &CommitGroup| g.release.is_some() || g.install.is_some();
        while !alone(&merged) && merged.records.len() < GROUP * 4 {
            match rx.try_recv() {
                Ok(g) if alone(&g) => {
                    pending = Some(g);
                    break;
                }
                Ok(g) => {
                    merged.records.extend(g.records);
                    merged.answers.extend(g.answers);
                    merged.positions.extend(g.positions);
                }
                Err(_) => break,
            }
        }
        // Blocks while the applier is behind: the backpressure we want.
        for g in std::iter::once(merged).chain(pending) {
            if sink.send(g).is_err() {
                return;
            }
        }
    }
}

/// Reads partition `p` from its first message, for as long as it is leased here.
async fn read(cluster: Cluster, p: u32, owned: Arc<Owned>, sink: Sender) {
    if let Err(e) = follow(&cluster, p, &owned, &sink).await {
        tracing::warn!(partition = p, error = %e, "partition reader failed; starting it again");
    }
}

async fn follow(cluster: &Cluster, p: u32, owned: &Owned, sink: &Sender) -> Result<(), String> {
    let started = Instant::now();
    let subject = cluster.names.partition_subject(p);
    let stream = cluster
        .js
        .get_stream(&cluster.names.stream)
        .await
        .map_err(|e| e.to_string())?;
    // Caught up once the partition's newest message now is folded (none: at once).
    let mut catch_up_to = match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => Some(m.sequence),
        Err(e)
            if e.kind()
                == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            None
        }
        Err(e) => return Err(e.to_string()),
    };
    // Started from the partition's newest image when there is one: only what follows it is
    // read.
    let mut image = snapshots::load(cluster, p, &owned.takeover).await;
    // An image ahead of the stream's end is of a stream since deleted (the frame names the
    // stream too): not this one's.
    if let Some(i) = &image {
        let (first, last) = cluster.stream_bounds().await.map_err(|e| e.to_string())?;
        if resume_seq(i.lsn_next) > last + 1 {
            tracing::warn!(
                partition = p,
                "partition image ahead of the stream's end: ignored"
            );
            owned.takeover.load_failures.fetch_add(1, Ordering::Relaxed);
            image = None;
        } else if resume_seq(i.lsn_next) < first {
            // Retention dropped records the image does not hold: what they changed is lost
            // (as it would be without the image).
            tracing::warn!(
                partition = p,
                image_next = resume_seq(i.lsn_next),
                stream_first = first,
                "records after the partition image were dropped by the stream's retention"
            );
        }
    }
    let from = image.as_ref().map_or(1, |i| resume_seq(i.lsn_next));
    if catch_up_to.is_some_and(|to| to < from) {
        catch_up_to = None;
    }
    let mut records = 0u64;
    if let Some(image) = image {
        owned.takeover.loaded.fetch_add(1, Ordering::Relaxed);
        let (answers, applied) = Answers::waiter();
        let lsn_next = image.lsn_next;
        let install = CommitGroup {
            install: Some(Box::new(image)),
            positions: vec![(p, lsn_next)],
            answers,
            ..CommitGroup::default()
        };
        sink.send(install)
            .await
            .map_err(|_| "the applier stopped".to_string())?;
        if catch_up_to.is_none() {
            let _ = applied.await;
        }
    }
    if catch_up_to.is_none() {
        held(owned, p, started, records);
    }
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy: match from {
                1 => DeliverPolicy::All,
                start_sequence => DeliverPolicy::ByStartSequence { start_sequence },
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut next = 0u64;
    let mut group = Vec::with_capacity(GROUP);
    loop {
        let Some(first) = messages.next().await else {
            return Err("the consumer ended".into());
        };
        let first = first.map_err(|e| e.to_string())?;
        let (last_seq, failed) = take_ready(first, &mut messages, &mut next, &mut group, GROUP);
        if !group.is_empty() {
            records += group.len() as u64;
            let mut commit: CommitGroup = std::mem::take(&mut group).into();
            commit.positions = vec![(p, lsn_of(last_seq + 1, 0))];
            let caught_up = catch_up_to.is_some_and(|to| last_seq >= to);
            let applied = if caught_up {
                let (answers, applied) = Answers::waiter();
                commit.answers = answers;
                Some(applied)
            } else {
                None
            };
            sink.send(commit)
                .await
                .map_err(|_| "the applier stopped".to_string())?;
            if let Some(applied) = applied {
                // Held only once folded: a request served here then sees the whole partition.
                let _ = applied.await;
                catch_up_to = None;
                held(owned, p, started, records);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
}

fn held(owned: &Owned, p: u32, started: Instant, records: u64) {
    owned.set_held(p, true);
    owned
        .takeover
        .caught_up_records
        .fetch_add(records, Ordering::Relaxed);
    tracing::info!(
        partition = p,
        records,
        ms = started.elapsed().as_millis() as u64,
        "partition taken over: caught up from its subject"
    );
}
