//! Durable storage: the ingest log is the truth, and everything else is a fold of it.
//!
//! - [`record`]: what the log holds ([`LogRecord`]).
//! - [`log`]: the on-disk format (segments of CRC-framed records), reading and torn-tail
//!   recovery.
//! - [`snapshot`]: snapshots of the fleet state, so recovery replays only the log tail.
//! - [`writer`]: the group-commit writer thread that makes appends durable before they are
//!   acked.
//! - [`ledger`]: per-driver dedupe state (settled seqs and the watermark), rebuilt from the log.

pub mod ledger;
pub mod log;
pub mod record;
pub mod snapshot;
pub mod writer;

pub use ledger::{Ledger, SeqState};
pub use log::{LogError, LogReader};
pub use record::{BatchEntry, LogRecord};
pub use writer::{Answer, Queued, RequestQueue};
pub use writer::{Committed, LogWriter, WriterHandle};
