//! [`LogConfig`]: the `[log]` section: segments, group commit, snapshots, retention, the disk
//! bound.

use serde::{Deserialize, Serialize};

/// Ingest log settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A segment file is closed and a new one started past this many bytes.
    pub segment_bytes: u64,
    /// Most bytes written by one group commit.
    pub group_commit_bytes: usize,
    /// fsync before acking. Turning this off breaks the durability promise: tests only.
    pub fsync: bool,
    /// Microseconds the log writer waits for more records before a group commit: fewer
    /// fsyncs under load, at that much added ack latency. 0 = commit at once.
    pub group_commit_linger_us: u64,
    /// Take a snapshot after this many log records...
    pub snapshot_every_records: u64,
    /// ... or this many seconds, whichever comes first (and at shutdown)...
    pub snapshot_every_s: u64,
    /// ... once the log has grown by at least this fraction of the last snapshot's size.
    /// Writing snapshots then costs at most 1/ratio times the bytes of the log itself, and
    /// recovery replays at most that much log past the snapshot. At 10,000 drivers a snapshot
    /// is 80-160 MB and pauses the applier 0.5-1 s: taken every 100,000 records, snapshots
    /// wrote 20 times the log's bytes. 0 = the record and time triggers alone (as in a
    /// cluster, where records come from the stream and the gateway has no log of its own).
    pub snapshot_log_ratio: f64,
    /// Log segments older than this many seconds are deleted once a snapshot covers them.
    pub retention_s: u64,
    /// Routes finished longer ago than this many seconds leave the live state: their final
    /// view is appended to `DATA_DIR/archive/routes.jsonl` and their parcels' feeds are dropped.
    pub archive_routes_after_s: u64,
    /// The log never grows past this many bytes: beyond it, fixes are refused with `DiskFull`
    /// (phones keep them) until retention frees space. Running out of real disk space is
    /// handled the same way.
    pub max_disk_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            group_commit_bytes: 1 << 20,
            fsync: true,
            group_commit_linger_us: 1_500,
            snapshot_every_records: 100_000,
            snapshot_every_s: 300,
            snapshot_log_ratio: 1.0,
            retention_s: 7 * 24 * 3600,
            archive_routes_after_s: 24 * 3600,
            max_disk_bytes: 64 << 30,
        }
    }
}

impl LogConfig {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.snapshot_log_ratio.is_finite() && self.snapshot_log_ratio >= 0.0) {
            return Err(format!(
                "log.snapshot_log_ratio must be a number of 0 or more, not {}",
                self.snapshot_log_ratio
            ));
        }
        Ok(())
    }
}
