//! Every write to the notification store as an operation ([`Op`]), and the [`Journal`] that
//! carries them to every gateway of a cluster.
//!
//! A single gateway applies an operation to its own store at once. In a cluster each gateway
//! keeps a copy of the store, and every write (a contact set through any gateway's API, an
//! opt-out, an erasure, each round of the outbox) goes to a journal that every gateway applies
//! in the same order (`crate::cluster::notify_journal`, over JetStream). Only one gateway
//! sends at a time (it "leads"); the rounds of its outbox carry the queue, the once-keys and
//! the cursor, so the gateway that takes over after it holds exactly what it had written and
//! neither loses a milestone's message nor queues it twice.
//!
//! Applying an operation twice changes nothing the second time (every message carries its
//! id), so a round resent after a lost acknowledgement is harmless.

use std::future::Future;
use std::pin::Pin;

pub use crate::notify::store::Op;
use crate::notify::store::{Batch, StoreError};

/// A future a journal answers with.
pub type JournalFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Why a round was not written.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// Another gateway leads now, or the journal could not say whether the round was kept:
    /// the outbox forgets what it holds and reads the store again once it leads.
    #[error("no longer leading the notification outbox: {0}")]
    Lost(String),
}

/// The journal of a cluster's notification store.
pub trait Journal: Send + Sync {
    /// Writes `op` for every gateway; resolves once this gateway's own store holds it, so a
    /// read after a write sees it.
    fn write(&self, op: Op) -> JournalFuture<'_>;

    /// Called by the outbox thread before each round (it may block briefly): the term in
    /// which this gateway leads, once its store holds every operation written so far; `None`
    /// while another gateway leads or this one is catching up.
    fn lead(&self) -> Option<u64>;

    /// Writes a round of the outbox (blocking, on the outbox thread); `Ok` once this
    /// gateway's store holds it.
    fn round(&self, b: &Batch) -> Result<(), RoundError>;

    /// Whether this gateway leads now (no waiting, no I/O).
    fn leads(&self) -> bool;

    /// Called by the outbox thread before it reads milestones (blocking, briefly): true once
    /// this gateway's copy holds every operation written so far (a contact set through another
    /// gateway just before its parcel's milestone), false if it could not tell in time.
    fn caught_up(&self) -> bool;

    /// Writes providers' answers that came back to a gateway after it stopped leading
    /// (blocking), so that the one that leads now does not send those messages again.
    fn answers(&self, b: &Batch) -> Result<(), StoreError>;
}
