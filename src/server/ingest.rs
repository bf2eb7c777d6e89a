//! Admission of fixes: the synchronous step between decoding a batch and logging it. Under the
//! driver's ledger lock it classifies every seq (new, duplicate, out of window), validates the
//! new fixes, settles them, and builds the one log record and the ack for the batch.

use std::sync::Arc;

use milepost_proto::{Ack, DriverId, ErrorCode, Fix, Rejection, Seq};

use crate::config::Config;
use crate::fleet::validate::{check_fix, check_jump, nearest_in_time};
use crate::store::{BatchEntry, Ledger, LogRecord, SeqState};

/// An admitted batch, waiting to be made durable.
#[derive(Debug)]
pub struct Admitted {
    /// The record to log, if any seq was new.
    pub record: Option<Arc<LogRecord>>,
    /// The ack to send once the record (or, for an all-duplicate batch, everything before it)
    /// is durable.
    pub ack: Ack,
    /// The accepted fixes, to apply to live state once durable.
    pub accepted: Vec<(Seq, Fix)>,
    /// When the batch was admitted (for the ack latency histogram).
    pub admitted_at: std::time::Instant,
}

/// Admits `fixes` with seqs `first_seq..` for `driver`. Refuses the whole batch (nothing
/// settled) if any seq is out of window.
pub fn admit(
    cfg: &Config,
    ledger: &Ledger,
    driver: &DriverId,
    depot: &str,
    first_seq: Seq,
    fixes: &[Fix],
    now_ms: i64,
) -> Result<Admitted, ErrorCode> {
    let n = fixes.len() as u64;
    let last = first_seq
        .0
        .checked_add(n.saturating_sub(1))
        .ok_or(ErrorCode::SeqOutOfWindow)?;
    let window = cfg.limits.seq_window;
    let limits = &cfg.limits;
    ledger.with(driver, |l| {
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
        let mut accepted = Vec::with_capacity(fixes.len());
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
                    accepted.push((seq, *fix));
                }
                Err(reason) => {
                    entries.push(BatchEntry::Rejected { seq, reason });
                    rejected.push(Rejection { seq, reason });
                }
            }
            l.settle(seq);
        }
        let record = (!entries.is_empty()).then(|| {
            Arc::new(LogRecord::Batch {
                driver: driver.clone(),
                depot: depot.to_owned(),
                received_ms: now_ms,
                entries,
            })
        });
        Ok(Admitted {
            record,
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
    use milepost_proto::RejectReason;

    const NOW: i64 = 1_764_000_000_000;

    #[test]
    fn duplicates_rejections_and_window() {
        let cfg = Config::default();
        let ledger = Ledger::new();
        let d = DriverId::from("D1");
        let good = Fix::from_degrees(NOW - 5_000, 38.9, -77.0, 5.0);
        let bad = Fix::from_degrees(NOW - 4_000, 0.0, 0.0, 5.0);
        let a = admit(&cfg, &ledger, &d, "x", Seq(1), &[good, bad], NOW).unwrap();
        assert_eq!(a.accepted.len(), 1);
        assert_eq!(
            a.ack.rejected,
            vec![Rejection {
                seq: Seq(2),
                reason: RejectReason::NullIsland
            }]
        );
        assert_eq!(a.ack.watermark, Seq(2));
        let again = admit(&cfg, &ledger, &d, "x", Seq(1), &[good, bad], NOW).unwrap();
        assert!(again.record.is_none());
        assert_eq!(again.ack.duplicates, 2);
        assert_eq!(
            admit(&cfg, &ledger, &d, "x", Seq(u64::MAX), &[good, good], NOW).unwrap_err(),
            ErrorCode::SeqOutOfWindow
        );
        assert_eq!(
            admit(&cfg, &ledger, &d, "x", Seq(0), &[good], NOW).unwrap_err(),
            ErrorCode::SeqOutOfWindow
        );
    }
}
