//! The log's data, without its files: what a record holds, the dedupe ledger folded from the
//! records, and the image of the state a snapshot holds. Writing and reading files is the
//! shell's (`milepost::store`).
//!
//! - [`record`]: what the log holds ([`LogRecord`]).
//! - [`ledger`]: per-driver dedupe state (settled seqs and the watermark), rebuilt from the log.
//! - [`image`]: the snapshot's contents (ledger, positions, core, feeds) as serde types.

pub mod image;
pub mod ledger;
pub mod record;

pub use ledger::{Ledger, SeqState};
pub use record::{BatchEntry, LogRecord};
