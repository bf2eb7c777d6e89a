//! A simulated phone's queue of fixes not yet settled ([`FixQueue`]): each fix with its seq,
//! its measurement and scheduled upload times and where it stands ([`St`]: fresh, to resend,
//! live, batched, settled). Usually one or two fixes long; settled fixes leave from the front.

use std::collections::VecDeque;

use milepost_proto::Fix;

/// Where a fix in the phone's queue stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum St {
    /// Measured, never sent.
    Fresh,
    /// To be sent (again).
    Unsent,
    /// Sent as a live datagram at this time (us).
    Live(u64),
    /// Sent in a batch on the current connection.
    Batched,
    /// Acked, rejected or under the watermark: done.
    Settled,
}

/// A fix in the phone's queue.
#[derive(Clone, Debug)]
pub(super) struct Slot {
    pub fix: Fix,
    /// When it was measured (due), us since the run start.
    pub due_us: u64,
    /// The scheduled time of its first upload, us since the run start (`None`: not due yet).
    pub sched_us: Option<u64>,
    /// Buffered through an offline period: measured apart.
    pub backlog: bool,
    pub st: St,
}

/// Runs of consecutive seqs to upload as `FixBatch`es: (first seq, fixes).
pub(super) type Runs = Vec<(u64, Vec<Fix>)>;

/// The fixes not yet settled, oldest (lowest seq) first.
#[derive(Debug)]
pub(super) struct FixQueue {
    /// Seq of `slots[0]`.
    base_seq: u64,
    slots: VecDeque<Slot>,
}

impl FixQueue {
    /// An empty queue whose first fix gets seq 1.
    pub fn new() -> FixQueue {
        FixQueue {
            base_seq: 1,
            slots: VecDeque::new(),
        }
    }

    /// Seqs start at `seq` (the first session's watermark + 1). Only before any fix is queued.
    pub fn start_at(&mut self, seq: u64) {
        debug_assert!(self.slots.is_empty());
        self.base_seq = seq;
    }

    /// Seq of the oldest fix held (the next one's, when empty).
    pub fn base_seq(&self) -> u64 {
        self.base_seq
    }

    /// True when every fix is settled.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds a fresh fix (the next seq) measured at `due_us`.
    pub fn push(&mut self, fix: Fix, due_us: u64, backlog: bool) {
        self.slots.push_back(Slot {
            fix,
            due_us,
            sched_us: None,
            backlog,
            st: St::Fresh,
        });
    }

    /// The fix with this seq, if held.
    fn get_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = seq.checked_sub(self.base_seq)?;
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    /// Where the fix with this seq stands, if held.
    #[cfg(test)]
    pub fn st(&self, seq: u64) -> Option<St> {
        let i = usize::try_from(seq.checked_sub(self.base_seq)?).ok()?;
        self.slots.get(i).map(|s| s.st)
    }

    /// Settles `seq`; the fix, if it was held and not settled yet. Call [`FixQueue::pop_settled`]
    /// when done settling.
    pub fn settle(&mut self, seq: u64) -> Option<&Slot> {
        let slot = self.get_mut(seq).filter(|s| s.st != St::Settled)?;
        slot.st = St::Settled;
        Some(slot)
    }

    /// Drops the settled fixes at the front.
    pub fn pop_settled(&mut self) {
        while self.slots.front().is_some_and(|s| s.st == St::Settled) {
            self.slots.pop_front();
            self.base_seq += 1;
        }
    }

    /// A refused batch: its fixes still batched are to be resent.
    pub fn refused(&mut self, first: u64, count: u32) {
        for seq in first..first + count as u64 {
            if let Some(slot) = self.get_mut(seq).filter(|s| s.st == St::Batched) {
                slot.st = St::Unsent;
            }
        }
    }

    /// The connection is gone: what was in flight is to be resent; `offline`: what is not
    /// settled is part of an offline backlog.
    pub fn lost(&mut self, offline: bool) {
        for slot in self.slots.iter_mut() {
            if matches!(slot.st, St::Live(_) | St::Batched) {
                slot.st = St::Unsent;
            }
            if offline && slot.st != St::Settled {
                slot.backlog = true;
            }
        }
    }

    /// Live fixes sent `timeout_us` or longer before `now` are to be resent. True when
    /// anything is to be resent.
    pub fn expire_live(&mut self, now: u64, timeout_us: u64) -> bool {
        let mut resend = false;
        for slot in self.slots.iter_mut() {
            if let St::Live(at) = slot.st {
                if now >= at + timeout_us {
                    slot.st = St::Unsent;
                }
            }
            resend |= slot.st == St::Unsent;
        }
        resend
    }

    /// When the oldest live fix times out.
    pub fn live_deadline(&self, timeout_us: u64) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| match s.st {
                St::Live(at) => Some(at + timeout_us),
                _ => None,
            })
            .min()
    }

    /// Fixes measured and never sent.
    pub fn fresh(&self) -> u64 {
        self.slots.iter().filter(|s| s.st == St::Fresh).count() as u64
    }

    /// Fixes not settled.
    pub fn unsettled(&self) -> u64 {
        self.slots.iter().filter(|s| s.st != St::Settled).count() as u64
    }

    /// When the newest fix was measured.
    pub fn newest_due(&self) -> Option<u64> {
        self.slots.back().map(|s| s.due_us)
    }

    /// An upload is due at `sched`: fresh fixes scheduled for none yet keep it as theirs.
    pub fn schedule(&mut self, sched: u64) {
        for slot in self.slots.iter_mut().filter(|s| s.st == St::Fresh) {
            slot.sched_us.get_or_insert(sched);
        }
    }

    /// The newest fix, with its seq, if it was never sent.
    pub fn newest_fresh(&self) -> Option<(u64, Fix)> {
        let slot = self.slots.back().filter(|s| s.st == St::Fresh)?;
        Some((self.base_seq + self.slots.len() as u64 - 1, slot.fix))
    }

    /// The newest fix went as a live datagram at `now`, for the upload scheduled at `sched`.
    pub fn sent_live(&mut self, sched: u64, now: u64) {
        if let Some(slot) = self.slots.back_mut() {
            slot.st = St::Live(now);
            slot.sched_us = Some(sched);
        }
    }

    /// Everything fresh or to be resent, as runs of at most `max` consecutive seqs, now
    /// batched; and how many of them are resends.
    pub fn take_runs(&mut self, sched: u64, max: usize) -> (Runs, u64) {
        let mut runs: Runs = Vec::new();
        let mut resent = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !matches!(slot.st, St::Fresh | St::Unsent) {
                continue;
            }
            let seq = self.base_seq + i as u64;
            match runs.last_mut() {
                Some((first, fixes)) if *first + fixes.len() as u64 == seq && fixes.len() < max => {
                    fixes.push(slot.fix)
                }
                _ => runs.push((seq, vec![slot.fix])),
            }
            if slot.st == St::Unsent {
                resent += 1;
            }
            slot.sched_us.get_or_insert(sched);
            slot.st = St::Batched;
        }
        (runs, resent)
    }
}

/// A fix for unit tests, told apart by its time.
#[cfg(test)]
pub(super) fn test_fix(t_ms: i64) -> Fix {
    crate::replay::playback::sample(
        &crate::replay::trace::Trace::new(
            "t",
            vec![crate::replay::trace::TracePoint::new(0, 45.0, 7.0)],
        ),
        0,
    )
    .expect("a one-point trace has a sample")
    .to_fix(t_ms, 0.0, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue from seq 10 holding fixes in these states.
    fn queue(sts: &[St]) -> FixQueue {
        let mut q = FixQueue::new();
        q.start_at(10);
        for (i, st) in sts.iter().enumerate() {
            q.push(test_fix(i as i64), i as u64 * 100, false);
            q.slots[i].st = *st;
        }
        q
    }

    fn sts(q: &FixQueue) -> Vec<St> {
        q.slots.iter().map(|s| s.st).collect()
    }

    #[test]
    fn settling_pops_from_the_front_only() {
        let mut q = queue(&[St::Batched, St::Batched, St::Batched]);
        assert!(q.settle(11).is_some());
        assert!(q.settle(11).is_none(), "settled twice");
        assert!(q.settle(9).is_none() && q.settle(13).is_none(), "not held");
        q.pop_settled();
        assert_eq!(q.base_seq(), 10);
        assert!(q.settle(10).is_some());
        q.pop_settled();
        assert_eq!(q.base_seq(), 12);
        assert_eq!(sts(&q), [St::Batched]);
        assert_eq!(q.st(12), Some(St::Batched));
        assert_eq!(q.st(11), None);
    }

    #[test]
    fn runs_are_consecutive_waiting_seqs_up_to_the_limit() {
        use St::*;
        let mut q = queue(&[Fresh, Unsent, Live(5), Unsent, Fresh, Fresh, Settled, Fresh]);
        q.slots[0].sched_us = Some(7);
        let (runs, resent) = q.take_runs(50, 2);
        let firsts: Vec<(u64, usize)> = runs.iter().map(|(s, f)| (*s, f.len())).collect();
        assert_eq!(firsts, [(10, 2), (13, 2), (15, 1), (17, 1)]);
        assert_eq!(runs[0].1[1], test_fix(1), "fixes in seq order");
        assert_eq!(resent, 2);
        assert_eq!(
            sts(&q),
            [
                Batched,
                Batched,
                Live(5),
                Batched,
                Batched,
                Batched,
                Settled,
                Batched
            ]
        );
        // A fix keeps its first scheduled time.
        assert_eq!(q.slots[0].sched_us, Some(7));
        assert_eq!(q.slots[1].sched_us, Some(50));
    }

    #[test]
    fn live_fixes_time_out_into_resends() {
        let mut q = queue(&[St::Live(1_000), St::Live(2_000), St::Batched]);
        assert_eq!(q.live_deadline(500), Some(1_500));
        assert!(!q.expire_live(1_499, 500));
        assert!(q.expire_live(1_500, 500));
        assert_eq!(sts(&q), [St::Unsent, St::Live(2_000), St::Batched]);
        assert_eq!(q.live_deadline(500), Some(2_500));
    }

    #[test]
    fn a_lost_connection_resends_what_was_in_flight() {
        let all = [St::Fresh, St::Live(3), St::Batched, St::Settled, St::Unsent];
        let mut q = queue(&all);
        q.lost(false);
        assert_eq!(
            sts(&q),
            [St::Fresh, St::Unsent, St::Unsent, St::Settled, St::Unsent]
        );
        assert!(q.slots.iter().all(|s| !s.backlog));
        let mut q = queue(&all);
        q.lost(true);
        let backlog: Vec<bool> = q.slots.iter().map(|s| s.backlog).collect();
        assert_eq!(backlog, [true, true, true, false, true]);
        assert_eq!(q.unsettled(), 4);
    }

    #[test]
    fn a_refusal_resends_only_what_is_still_batched() {
        let mut q = queue(&[St::Batched, St::Settled, St::Batched, St::Batched]);
        q.refused(10, 3);
        assert_eq!(sts(&q), [St::Unsent, St::Settled, St::Unsent, St::Batched]);
    }

    #[test]
    fn the_newest_fresh_fix_is_the_live_candidate() {
        let mut q = queue(&[St::Batched, St::Fresh, St::Fresh]);
        q.schedule(40);
        assert_eq!(q.fresh(), 2);
        assert_eq!(q.newest_due(), Some(200));
        assert_eq!(q.newest_fresh(), Some((12, test_fix(2))));
        q.sent_live(45, 300);
        assert_eq!(q.slots[2].st, St::Live(300));
        // The live fix takes this upload's scheduled time.
        assert_eq!(q.slots[2].sched_us, Some(45));
        assert_eq!(q.slots[1].sched_us, Some(40));
        assert_eq!(q.newest_fresh(), None);
    }
}
