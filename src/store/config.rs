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
    /// ... or this many seconds, whichever comes first (and at shutdown).
    pub snapshot_every_s: u64,
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
            retention_s: 7 * 24 * 3600,
            archive_routes_after_s: 24 * 3600,
            max_disk_bytes: 64 << 30,
        }
    }
}
