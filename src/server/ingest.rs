//! Admission of fixes: the synchronous step between decoding a batch and logging it. Under the
//! driver's ledger lock it classifies every seq (new, duplicate, out of window), validates the
//! new fixes, settles them, and builds the one log record and the ack for the batch.

use std::sync::Arc;

use milepost_proto::{Ack, DriverId, ErrorCode, Fix, Rejection, Seq};

use crate::config::Config;
use crate::store::writer::{Completion, LogPermit};
use milepost_core::fleet::validate::{check_fix, check_jump, nearest_in_time};
use milepost_core::store::{BatchEntry, Ledger, LogRecord, SeqState};

/// An admitted batch, waiting to be made durable.
pub struct Admitted {
    /// The writer's answer for the batch's record (or, when every seq was a duplicate, for a
    /// barrier behind everything submitted before).
    pub done: Completion,
    /// True when `done` is a barrier (nothing new was logged).
    pub barrier: bool,
    /// The ack to send once `done` resolves (its watermark is replaced by the durable one).
    pub ack: Ack,
    /// How many fixes were accepted.
    pub accepted: usize,
    /// When the batch was admitted (for the ack latency histogram).
    pub admitted_at: std::time::Instant,
}

/// Admits `fixes` with seqs `first_seq..` for `driver` and submits the batch's record to the
/// log through `permit`, under the driver's ledger lock: a seq is never settled without its
/// record being in the writer's queue, and a resend admitted after it queues its barrier
/// behind that record. Refuses the whole batch (nothing settled, the permit released) if a seq
/// is out of window or the rate limit is hit.
#[allow(clippy::too_many_arguments)]
pub fn admit(
    cfg: &Config,
    ledger: &Ledger,
    driver: &DriverId,
    depot: &str,
    first_seq: Seq,
    fixes: &[Fix],
    now_ms: i64,
    permit: LogPermit,
) -> Result<Admitted, ErrorCode> {
    let n = fixes.len() as u64;
    let last = first_seq
        .0
        .checked_add(n.saturating_sub(1))
        .ok_or(ErrorCode::SeqOutOfWindow)?;
    let window = cfg.limits.seq_window;
    let limits = &cfg.limits;
    ledger.with(driver, move |l| {
        if l.state(first_seq, window) == SeqState::OutOfWindow
            || l.state(Seq(last), window) == SeqState::OutOfWindow
        {
            return Err(ErrorCode::SeqOutOfWindow);
        }
        if !l.bucket.take(
            fixes.len() as u32,
            now_ms,
            limits.max_fixes_per_s,
            limits.burst_fixes,
        ) {
            return Err(ErrorCode::RateLimited);
        }
        let mut entries = Vec::with_capacity(fixes.len());
        let mut accepted = 0;
        let mut rejected = Vec::new();
        let mut duplicates = 0u32;
        for (i, fix) in fixes.iter().enumerate() {
            let seq = Seq(first_seq.0 + i as u64);
            if l.state(seq, window) != SeqState::New {
                duplicates += 1;
                continue;
            }
            let verdict = check_fix(fix, now_ms, &cfg.validation).and_then(|()| {
                match nearest_in_time(fix, &[l.newest.as_ref(), l.last.as_ref()]) {
                    Some(n) => check_jump(n, fix, &cfg.validation),
                    None => Ok(()),
                }
            });
            match verdict {
                Ok(()) => {
                    l.accepted(fix);
                    entries.push(BatchEntry::Accepted { seq, fix: *fix });
                    accepted += 1;
                }
                Err(reason) => {
                    entries.push(BatchEntry::Rejected { seq, reason });
                    rejected.push(Rejection { seq, reason });
                }
            }
            l.settle(seq);
        }
        let barrier = entries.is_empty();
        let done = if barrier {
            permit.barrier()
        } else {
            permit.append(Arc::new(LogRecord::Batch {
                driver: driver.clone(),
                depot: depot.to_owned(),
                received_ms: now_ms,
                entries,
            }))
        };
        Ok(Admitted {
            done,
            barrier,
            ack: Ack {
                first_seq,
                count: fixes.len() as u32,
                duplicates,
                rejected,
                watermark: Seq(l.watermark),
            },
            accepted,
            admitted_at: std::time::Instant::now(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LogWriter;
    use milepost_proto::RejectReason;

    const NOW: i64 = 1_764_000_000_000;

    #[tokio::test]
    async fn duplicates_rejections_and_window() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let w = LogWriter::start(dir.path(), &cfg.log, 0, None, Default::default(), None).unwrap();
        let log = w.handle();
        let ledger = Ledger::new();
        let d = DriverId::from("D1");
        let good = Fix::from_degrees(NOW - 5_000, 38.9, -77.0, 5.0);
        let bad = Fix::from_degrees(NOW - 4_000, 0.0, 0.0, 5.0);
        let admit = |first: u64, fixes: &[Fix], permit| {
            admit(&cfg, &ledger, &d, "x", Seq(first), fixes, NOW, permit)
        };
        let a = admit(1, &[good, bad], log.reserve().await.unwrap()).unwrap();
        assert_eq!((a.accepted, a.barrier), (1, false));
        assert_eq!(
            a.ack.rejected,
            vec![Rejection {
                seq: Seq(2),
                reason: RejectReason::NullIsland
            }]
        );
        assert_eq!(a.ack.watermark, Seq(2));
        assert_eq!(
            a.done.wait().await.unwrap(),
            0,
            "the record was submitted and written"
        );
        let again = admit(1, &[good, bad], log.reserve().await.unwrap()).unwrap();
        assert!(again.barrier);
        assert_eq!(again.ack.duplicates, 2);
        assert_eq!(
            again.done.wait().await.unwrap(),
            1,
            "the barrier resolves behind record 0"
        );
        let err = admit(u64::MAX, &[good, good], log.reserve().await.unwrap()).err();
        assert_eq!(err, Some(ErrorCode::SeqOutOfWindow));
        let err = admit(0, &[good], log.reserve().await.unwrap()).err();
        assert_eq!(err, Some(ErrorCode::SeqOutOfWindow));
        drop(log);
        tokio::task::spawn_blocking(move || w.shutdown())
            .await
            .unwrap();
    }
}
