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

/// Each partition's position, whether it folded records since its last image, and when its
/// last image was handed over.
pub(super) struct PartImager {
    cfg: PartSnapshots,
    at: HashMap<u32, (u64, bool)>,
    sent: HashMap<u32, Instant>,
    last: Instant,
}

impl PartImager {
    pub(super) fn new(cfg: PartSnapshots) -> PartImager {
        PartImager {
            cfg,
            at: HashMap::new(),
            sent: HashMap::new(),
            last: Instant::now(),
        }
    }

    /// The applier folded a group: each partition in it is now at its position.
    pub(super) fn folded(&mut self, positions: &[(u32, u64)]) {
        for &(p, next) in positions {
            let e = self.at.entry(p).or_insert((0, false));
            if next > e.0 {
                *e = (next, true);
            }
        }
    }

    /// Partitions forgotten here.
    pub(super) fn released(&mut self, parts: &[u32]) {
        for p in parts {
            self.at.remove(p);
            self.sent.remove(p);
        }
    }

    /// A partition installed from its image at `lsn_next`: nothing new to write yet.
    pub(super) fn installed(&mut self, p: u32, lsn_next: u64) {
        self.at.insert(p, (lsn_next, false));
    }

    /// When due, encodes the image of every partition that folded records since its last one
    /// and hands it to the uploader, the longest waiting first (one that does not fit waits
    /// for the next round, ahead of the others).
    pub(super) fn maybe_take(&mut self, state: &FleetState, now_ms: i64) {
        if self.last.elapsed() < self.cfg.every {
            return;
        }
        self.last = Instant::now();
        let mut dirty: Vec<u32> = self.at.iter().filter(|e| e.1 .1).map(|e| *e.0).collect();
        dirty.sort_unstable_by_key(|p| (self.sent.get(p).copied(), *p));
        for p in dirty {
            let Some(&(lsn_next, _)) = self.at.get(&p) else {
                continue;
            };
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
                self.at.insert(p, (lsn_next, false));
                self.sent.insert(p, Instant::now());
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
