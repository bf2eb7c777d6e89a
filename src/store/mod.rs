//! Durable storage, the shell's side: the files. The ingest log is the truth, and everything
//! else is a fold of it (the records and the fold itself are in `milepost_core`).
//!
//! - [`log`]: the on-disk format (segments of CRC-framed records), reading and torn-tail
//!   recovery.
//! - [`snapshot`]: snapshot files of the fleet state, so recovery replays only the log tail.
//! - [`writer`]: the group-commit writer thread that makes appends durable before they are
//!   acked.
//! - [`LogConfig`]: the `[log]` section (segments, group commit, snapshots, retention).

pub mod config;
pub mod log;
pub mod snapshot;
pub mod writer;

#[cfg(test)]
mod tests;

pub use config::LogConfig;
pub use log::{LogError, LogReader};
pub use writer::{Answer, Queued, RequestQueue};
pub use writer::{Committed, LogWriter, WriterHandle};
