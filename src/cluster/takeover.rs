//! Counters of per-partition snapshots and takeovers ([`TakeoverStats`]), on gateways that
//! fold only the partitions they own: kept with the leases (`crate::cluster::lease::Owned`),
//! written by the uploader and the partition readers, read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::render_value;

/// Counters of per-partition snapshots and takeovers.
#[derive(Debug, Default)]
pub struct TakeoverStats {
    /// Images written to the object store.
    pub written: AtomicU64,
    /// Bytes of the newest image written.
    pub written_bytes: AtomicU64,
    /// Images that could not be written.
    pub write_failures: AtomicU64,
    /// Takeovers that started from an image.
    pub loaded: AtomicU64,
    /// Images found but not usable (damaged, of another layout, unreadable).
    pub load_failures: AtomicU64,
    /// Records folded by takeovers before the partition was held.
    pub caught_up_records: AtomicU64,
}

impl TakeoverStats {
    /// Writes the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, &AtomicU64); 6] = [
            (
                "milepost_cluster_part_snapshots_total",
                "counter",
                "Partition images written to the cluster's object store",
                &self.written,
            ),
            (
                "milepost_cluster_part_snapshot_bytes",
                "gauge",
                "Size of the newest partition image written",
                &self.written_bytes,
            ),
            (
                "milepost_cluster_part_snapshot_failures_total",
                "counter",
                "Partition images that could not be written",
                &self.write_failures,
            ),
            (
                "milepost_cluster_takeovers_from_snapshot_total",
                "counter",
                "Partitions taken over starting from their image",
                &self.loaded,
            ),
            (
                "milepost_cluster_part_snapshot_load_failures_total",
                "counter",
                "Partition images found but not usable (the partition was read from the start)",
                &self.load_failures,
            ),
            (
                "milepost_cluster_takeover_records_total",
                "counter",
                "Records folded by takeovers before their partition was held",
                &self.caught_up_records,
            ),
        ];
        for (name, kind, help, v) in rows {
            render_value(out, name, kind, help, v.load(Relaxed));
        }
    }
}
