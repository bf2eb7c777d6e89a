//! The outbox in a cluster: whether this gateway leads (and so sends), what it reads from its
//! copy of the store when a term starts, and what it keeps when it stops leading: the
//! providers' answers not yet written. Answers of a round the journal did not take are written
//! in the next round if this gateway leads again, else handed to the journal as they are, so
//! the gateway that leads now does not send those messages again. Jobs still waiting for a
//! worker when the lead is lost are not sent at all ([`crate::notify::handle::Notify::epoch`]).

use std::sync::atomic::Ordering;

use super::state::{depot_cursor, Outbox, MILESTONES};
use crate::notify::store::{Batch, StoreError};

impl Outbox {
    /// Reads the cursors, the next id and the queue from the store, forgetting what was held;
    /// answers still to be written are applied to the queue read.
    pub(super) fn load(&mut self) -> Result<(), StoreError> {
        self.forget();
        let store = self.notify.store.clone();
        self.cursor = store.cursor(MILESTONES)?;
        self.next_id = store.next_id()?;
        for a in &self.composer.cfg.alerts {
            if let Some(c) = store.cursor(&depot_cursor(&a.depot))? {
                self.depot_cursors.insert(a.depot.clone(), c);
            }
        }
        for q in store.queued()? {
            self.insert(q);
        }
        let carried = std::mem::take(&mut self.carry);
        for (q, _) in &carried.finished {
            self.remove(q);
        }
        for (d, _) in &carried.dead {
            self.remove(&d.message);
        }
        for q in &carried.retry {
            if self.items.contains_key(&q.id) {
                self.items.insert(q.id, q.clone());
            }
        }
        self.carry = carried;
        Ok(())
    }

    /// Forgets the queue, the lanes and the cursors (another gateway leads, or the store is
    /// read again). The lanes in flight and the answers to write stay.
    fn forget(&mut self) {
        self.items.clear();
        self.lanes.clear();
        self.depot_cursors.clear();
        self.cursor = None;
    }

    /// Whether this gateway sends now: always on a single gateway; in a cluster, while it
    /// leads, reading the store again when a new term starts. A gateway that does not lead
    /// hands the answers it holds to the journal.
    pub(super) fn leading(&mut self) -> bool {
        let Some(journal) = self.notify.journal().cloned() else {
            return true;
        };
        match journal.lead() {
            Some(t) if self.term == Some(t) => true,
            Some(t) => match self.load() {
                Ok(()) => {
                    tracing::info!(
                        term = t,
                        queued = self.items.len(),
                        "this gateway now sends the notifications"
                    );
                    self.term = Some(t);
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "notification store not read; not leading");
                    false
                }
            },
            None => {
                self.stand_down();
                if !self.carry.is_empty() {
                    match journal.answers(&self.carry) {
                        Ok(()) => self.carry = Batch::default(),
                        Err(e) => tracing::warn!(error = %e, "answers not written yet"),
                    }
                }
                false
            }
        }
    }

    /// Stops leading (another gateway does, or the journal lost a round): jobs not yet taken
    /// by a worker are not sent.
    pub(super) fn stand_down(&mut self) {
        if self.term.take().is_some() {
            self.notify.epoch.fetch_add(1, Ordering::Relaxed);
            tracing::info!("this gateway no longer sends the notifications");
        }
        self.forget();
    }

    /// Keeps the answers of a round the journal did not take (they are written later: see the
    /// file's doc); what it read from the feed is read again.
    pub(super) fn keep_answers(&mut self, b: Batch) {
        self.carry.retry.extend(b.retry);
        self.carry.finished.extend(b.finished);
        self.carry.dead.extend(b.dead);
        self.carry.undead.extend(b.undead);
    }
}
