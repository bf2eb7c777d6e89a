//! The applier's side of per-partition snapshots (`cluster.fold = "owned"`, see
//! [`crate::cluster::snapshots`]): it knows each partition's position after every group it
//! folds, and every `cluster.partition_snapshot_s` encodes the image of each partition that
//! folded records since its last image, for the uploader to write. An image is the state at
//! one position of its partition, taken between groups, so it is consistent by construction.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cluster::snapshots::PartSnapshot;
use crate::state::FleetState;

/// Where and how often the applier hands partition images over.
#[derive(Clone)]
pub struct PartSnapshots {
    /// Partitions of depots.
    pub partitions: u32,
    /// How often.
    pub every: Duration,
    /// The uploader.
    pub images: tokio::sync::mpsc::Sender<PartSnapshot>,
    /// What this gateway holds: only a held partition's image is taken (one being taken over
    /// waits until it is held).
    pub owned: std::sync::Arc<crate::cluster::lease::Owned>,
}

/// A partition's position, whether it folded records since its last image, and when its last
/// image was handed over.
#[derive(Default)]
struct Part {
    next: u64,
    dirty: bool,
    sent: Option<Instant>,
}

/// Each partition's [`Part`], and when the last round was.
pub(super) struct PartImager {
    cfg: PartSnapshots,
    parts: HashMap<u32, Part>,
    last: Instant,
}

impl PartImager {
    pub(super) fn new(cfg: PartSnapshots) -> PartImager {
        PartImager {
            cfg,
            parts: HashMap::new(),
            last: Instant::now(),
        }
    }

    /// The applier folded a group: each partition in it is now at its position.
    pub(super) fn folded(&mut self, positions: &[(u32, u64)]) {
        for &(p, next) in positions {
            let e = self.parts.entry(p).or_default();
            if next > e.next {
                e.next = next;
                e.dirty = true;
            }
        }
    }

    /// Partitions forgotten here.
    pub(super) fn released(&mut self, parts: &[u32]) {
        for p in parts {
            self.parts.remove(p);
        }
    }

    /// A partition installed from its image at `lsn_next`: nothing new to write yet.
    pub(super) fn installed(&mut self, p: u32, lsn_next: u64) {
        let e = self.parts.entry(p).or_default();
        e.next = lsn_next;
        e.dirty = false;
    }

    /// When due, encodes the image of every partition that folded records since its last one
    /// and hands it to the uploader, the longest waiting first (one that does not fit waits
    /// for the next round, ahead of the others).
    pub(super) fn maybe_take(&mut self, state: &FleetState, now_ms: i64) {
        if self.last.elapsed() < self.cfg.every {
            return;
        }
        self.last = Instant::now();
        let mut dirty: Vec<(Option<Instant>, u32, u64)> = self
            .parts
            .iter()
            .filter(|(_, e)| e.dirty)
            .map(|(p, e)| (e.sent, *p, e.next))
            .collect();
        dirty.sort_unstable();
        for (_, p, lsn_next) in dirty {
            if !self.cfg.owned.holds(p) {
                continue;
            }
            // No room: the rest wait for the next round, ahead of the others (encoding holds
            // the state's locks, so nothing is encoded that would not be sent).
            if self.cfg.images.capacity() == 0 {
                break;
            }
            let started = Instant::now();
            let payload = match state.part_image(p, self.cfg.partitions, lsn_next, now_ms) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(partition = p, error = %e, "partition image does not encode");
                    continue;
                }
            };
            let bytes = payload.len();
            let image = PartSnapshot {
                partition: p,
                lsn_next,
                payload,
            };
            if self.cfg.images.try_send(image).is_ok() {
                let e = self.parts.entry(p).or_default();
                e.dirty = false;
                e.sent = Some(Instant::now());
                tracing::debug!(
                    partition = p,
                    bytes,
                    encode_us = started.elapsed().as_micros() as u64,
                    "partition image taken"
                );
            }
        }
    }
}
