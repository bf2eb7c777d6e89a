//! Per-driver dedupe state: which seqs are settled (stored or refused for good), and the
//! driver's newest fixes for jump validation. It is a fold of the log, rebuilt on recovery.
//!
//! A driver's settled seqs are a watermark (every seq up to it is settled) plus the few settled
//! seqs above it (a live fix that overtook the backlog). In the steady state the set is empty,
//! so a driver costs a few dozen bytes; the window bounds it when a phone leaves gaps.

use std::collections::BTreeSet;

use dashmap::DashMap;
use milepost_proto::{DriverId, Fix, Seq};

use crate::store::{BatchEntry, LogRecord};

/// Whether a seq is new to a driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqState {
    /// Never seen: validate and store it.
    New,
    /// Already settled: ack it again, store nothing.
    Duplicate,
    /// Zero, or too far above the watermark: refused.
    OutOfWindow,
}

/// One driver's dedupe and validation state.
#[derive(Clone, Debug, Default)]
pub struct DriverLedger {
    /// Every seq up to and including this is settled.
    pub watermark: u64,
    /// Settled seqs above the watermark.
    above: BTreeSet<u64>,
    /// The accepted fix with the latest measurement time.
    pub newest: Option<Fix>,
    /// The most recently accepted fix, in arrival order.
    pub last: Option<Fix>,
}

impl DriverLedger {
    /// Classifies `seq` given the window.
    pub fn state(&self, seq: Seq, window: u64) -> SeqState {
        let s = seq.0;
        if s == 0 || s > self.watermark.saturating_add(window) {
            SeqState::OutOfWindow
        } else if s <= self.watermark || self.above.contains(&s) {
            SeqState::Duplicate
        } else {
            SeqState::New
        }
    }

    /// Marks `seq` settled.
    pub fn settle(&mut self, seq: Seq) {
        let s = seq.0;
        if s == self.watermark + 1 {
            self.watermark = s;
            while self.above.remove(&(self.watermark + 1)) {
                self.watermark += 1;
            }
        } else if s > self.watermark {
            self.above.insert(s);
        }
    }

    /// Records an accepted fix for later jump checks.
    pub fn accepted(&mut self, fix: &Fix) {
        if self.newest.is_none_or(|n| fix.t_ms > n.t_ms) {
            self.newest = Some(*fix);
        }
        self.last = Some(*fix);
    }

    /// Settled seqs above the watermark (a measure of gaps).
    pub fn gaps(&self) -> usize {
        self.above.len()
    }
}

/// Every driver's ledger. A `DashMap` so that sessions of different drivers admit batches in
/// parallel; one driver's entry is locked only while a batch is classified, never across an
/// await.
#[derive(Default)]
pub struct Ledger {
    drivers: DashMap<DriverId, DriverLedger>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with the driver's ledger locked (created if new).
    pub fn with<R>(&self, driver: &DriverId, f: impl FnOnce(&mut DriverLedger) -> R) -> R {
        if let Some(mut entry) = self.drivers.get_mut(driver) {
            return f(&mut entry);
        }
        let mut entry = self.drivers.entry(driver.clone()).or_default();
        f(&mut entry)
    }

    /// The driver's watermark (0 for an unknown driver).
    pub fn watermark(&self, driver: &DriverId) -> Seq {
        Seq(self.drivers.get(driver).map_or(0, |l| l.watermark))
    }

    /// Number of drivers known.
    pub fn len(&self) -> usize {
        self.drivers.len()
    }

    /// True when no driver is known.
    pub fn is_empty(&self) -> bool {
        self.drivers.is_empty()
    }

    /// Folds one log record in (recovery).
    pub fn apply(&self, record: &LogRecord) {
        match record {
            LogRecord::Batch {
                driver, entries, ..
            } => self.with(driver, |l| {
                for e in entries {
                    l.settle(e.seq());
                    if let BatchEntry::Accepted { fix, .. } = e {
                        l.accepted(fix);
                    }
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn watermark_closes_gaps() {
        let mut l = DriverLedger::default();
        l.settle(Seq(1));
        l.settle(Seq(3));
        assert_eq!(l.watermark, 1);
        assert_eq!(l.state(Seq(3), 100), SeqState::Duplicate);
        assert_eq!(l.state(Seq(2), 100), SeqState::New);
        l.settle(Seq(2));
        assert_eq!((l.watermark, l.gaps()), (3, 0));
        assert_eq!(l.state(Seq(0), 100), SeqState::OutOfWindow);
        assert_eq!(l.state(Seq(104), 100), SeqState::OutOfWindow);
    }

    proptest! {
        #[test]
        fn any_settle_order_gives_the_same_watermark(mut seqs in proptest::collection::vec(1u64..200, 0..300)) {
            let mut l = DriverLedger::default();
            for &s in &seqs { l.settle(Seq(s)); }
            seqs.sort_unstable();
            seqs.dedup();
            let mut want = 0;
            for s in &seqs { if *s == want + 1 { want += 1 } }
            prop_assert_eq!(l.watermark, want);
            for s in &seqs { prop_assert_eq!(l.state(Seq(*s), 1000), SeqState::Duplicate); }
        }
    }
}
