//! Per-driver dedupe state: which seqs are settled (stored or refused for good), and the
//! driver's newest fixes for jump validation. It is a fold of the log, rebuilt on recovery.
//!
//! A driver's settled seqs are a watermark (every seq up to it is settled) plus the few settled
//! seqs above it (a live fix that overtook the backlog). In the steady state the set is empty,
//! so a driver costs a few dozen bytes; the window bounds it when a phone leaves gaps.

use std::collections::BTreeSet;

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
    /// Rate limit state.
    pub bucket: TokenBucket,
}

/// A token bucket, sans-IO: the caller passes `now_ms`.
#[derive(Clone, Debug, Default)]
pub struct TokenBucket {
    /// Tokens spent beyond the refill so far (0 = full bucket).
    debt: f64,
    /// When `debt` was last brought up to date.
    at_ms: i64,
}

impl TokenBucket {
    /// Takes `n` tokens from a bucket of `burst` refilled at `rate_per_s`; false (and nothing
    /// taken) when there are not enough.
    pub fn take(&mut self, n: u32, now_ms: i64, rate_per_s: u32, burst: u32) -> bool {
        let elapsed_s = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        self.debt = (self.debt - elapsed_s * rate_per_s as f64).max(0.0);
        self.at_ms = now_ms;
        if self.debt + n as f64 > burst as f64 {
            return false;
        }
        self.debt += n as f64;
        true
    }
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

    /// Withdraws a settlement that never reached the disk (the log refused the batch). Call it
    /// for a batch's seqs highest first, which keeps it cheap.
    pub fn unsettle(&mut self, seq: Seq) {
        let s = seq.0;
        if self.above.remove(&s) || s == 0 || s > self.watermark {
            return;
        }
        // Seqs between `s` and the watermark stay settled: they move above the new watermark.
        for x in s + 1..=self.watermark {
            self.above.insert(x);
        }
        self.watermark = s - 1;
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
    drivers: crate::hash::FastDashMap<DriverId, DriverLedger>,
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

    /// Forgets the drivers `gone` selects (a cluster gateway handing their partition over).
    pub fn forget(&self, gone: impl Fn(&DriverId) -> bool) {
        self.drivers.retain(|d, _| !gone(d));
    }

    /// Number of drivers known.
    pub fn len(&self) -> usize {
        self.drivers.len()
    }

    /// True when no driver is known.
    pub fn is_empty(&self) -> bool {
        self.drivers.is_empty()
    }

    /// Folds one log record in (recovery, and the applier's durable copy).
    pub fn apply(&self, record: &LogRecord) {
        if let LogRecord::Batch {
            driver, entries, ..
        } = record
        {
            self.with(driver, |l| {
                for e in entries {
                    l.settle(e.seq());
                    if let BatchEntry::Accepted { fix, .. } = e {
                        l.accepted(fix);
                    }
                }
            })
        }
    }

    /// Settles in this ledger every seq `durable` holds for `driver` (a cluster gateway does it
    /// when a phone connects: the phone's earlier fixes may have come through another gateway,
    /// and they are in the fold's ledger, not in this gateway's admission ledger).
    pub fn absorb(&self, driver: &DriverId, durable: &Ledger) {
        let Some(d) = durable.drivers.get(driver).map(|d| d.clone()) else {
            return;
        };
        self.with(driver, |l| {
            if d.watermark > l.watermark {
                let above: Vec<u64> = l.above.range(d.watermark + 1..).copied().collect();
                l.watermark = d.watermark;
                l.above = above.into_iter().collect();
                // Seqs just above may now join the watermark.
                while l.above.remove(&(l.watermark + 1)) {
                    l.watermark += 1;
                }
            }
            for &s in &d.above {
                l.settle(Seq(s));
            }
            if let Some(n) = d.newest {
                if l.newest.is_none_or(|m| n.t_ms > m.t_ms) {
                    l.newest = Some(n);
                }
            }
            if l.last.is_none() {
                l.last = d.last;
            }
        })
    }

    /// Every driver's durable state, for a snapshot (in driver order).
    pub fn export(&self) -> Vec<LedgerEntry> {
        self.export_of(|_| true)
    }

    /// The durable state of the drivers `keep` selects (a partition's image).
    pub fn export_of(&self, keep: impl Fn(&DriverId) -> bool) -> Vec<LedgerEntry> {
        let mut v: Vec<LedgerEntry> = self
            .drivers
            .iter()
            .filter(|e| keep(e.key()))
            .map(|e| LedgerEntry {
                driver: e.key().clone(),
                watermark: e.watermark,
                above: e.above.iter().copied().collect(),
                newest: e.newest,
                last: e.last,
            })
            .collect();
        v.sort_by(|a, b| a.driver.cmp(&b.driver));
        v
    }

    /// Takes in drivers' durable state (a partition's image), replacing what was known of them.
    pub fn absorb_entries(&self, entries: Vec<LedgerEntry>) {
        for (driver, l) in Ledger::import(entries).drivers {
            self.drivers.insert(driver, l);
        }
    }

    /// Rebuilds a ledger from a snapshot.
    pub fn import(entries: Vec<LedgerEntry>) -> Ledger {
        let ledger = Ledger::new();
        for e in entries {
            ledger.drivers.insert(
                e.driver,
                DriverLedger {
                    watermark: e.watermark,
                    above: e.above.into_iter().collect(),
                    newest: e.newest,
                    last: e.last,
                    bucket: TokenBucket::default(),
                },
            );
        }
        ledger
    }
}

/// One driver's ledger as stored in a snapshot.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    /// The driver.
    pub driver: DriverId,
    /// Every seq up to this is settled.
    pub watermark: u64,
    /// Settled seqs above the watermark.
    pub above: Vec<u64>,
    /// Newest accepted fix by time.
    pub newest: Option<Fix>,
    /// Last accepted fix by arrival.
    pub last: Option<Fix>,
}

#[cfg(test)]
mod absorb_tests {
    use super::*;

    #[test]
    fn absorb_merges_another_gateways_seqs() {
        let (mine, durable) = (Ledger::new(), Ledger::new());
        let d = DriverId::from("D1");
        mine.with(&d, |l| {
            for s in [1, 2, 9] {
                l.settle(Seq(s));
            }
        });
        durable.with(&d, |l| {
            for s in [1, 2, 3, 4, 5, 7] {
                l.settle(Seq(s));
            }
        });
        mine.absorb(&d, &durable);
        mine.with(&d, |l| {
            assert_eq!(l.watermark, 5);
            for s in [6, 8, 10] {
                assert_eq!(l.state(Seq(s), 100), SeqState::New, "seq {s}");
            }
            for s in [3, 7, 9] {
                assert_eq!(l.state(Seq(s), 100), SeqState::Duplicate, "seq {s}");
            }
        });
        mine.absorb(&DriverId::from("unknown"), &durable); // nothing to merge: no entry made
        assert_eq!(mine.len(), 1);
        durable.with(&d, |l| l.settle(Seq(6)));
        mine.absorb(&d, &durable);
        assert_eq!(mine.watermark(&d), Seq(7));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::default();
        assert!(b.take(10, 0, 2, 10));
        assert!(!b.take(1, 0, 2, 10));
        assert!(!b.take(2, 500, 2, 10));
        assert!(b.take(2, 1_000, 2, 10));
        assert!(b.take(10, 100_000, 2, 10));
    }

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
