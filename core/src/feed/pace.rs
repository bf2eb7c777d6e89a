//! [`PositionPace`]: how often a recipient is sent the driver's position: the newest at most
//! once per `feed.recipient_position_ms`, whatever the driver's fix rate. Pure: the caller
//! gives the times.
//!
//! A position is due when its fix is at least the interval after the last one sent (by the
//! fixes' own times, so that a driver at one fix a second is never held back by arrival
//! jitter), or when the interval has passed on the clock since the last send (so that the
//! newest position of a driver who stopped sending still goes out, at the next look).

/// One subscriber's pace of position updates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PositionPace {
    /// Fix time and clock time of the last position sent.
    last: Option<(i64, i64)>,
}

impl PositionPace {
    /// True when a position whose fix was taken at `fix_ms` may be sent at `now_ms`, with at
    /// most one per `min_ms` (0: every one).
    pub fn due(&self, fix_ms: i64, now_ms: i64, min_ms: u64) -> bool {
        if min_ms == 0 {
            return true;
        }
        let min = i64::try_from(min_ms).unwrap_or(i64::MAX);
        match self.last {
            None => true,
            // A clock that stepped back since the last send does not hold the newest back.
            Some((fix, at)) => {
                fix_ms.saturating_sub(fix) >= min || now_ms < at || now_ms.saturating_sub(at) >= min
            }
        }
    }

    /// Records a position sent.
    pub fn sent(&mut self, fix_ms: i64, now_ms: i64) {
        self.last = Some((fix_ms, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fix_a_second_always_goes_out() {
        let mut p = PositionPace::default();
        // Arrivals jitter (990 ms apart on the clock), fixes are a second apart.
        let (mut fix, mut now) = (10_000, 50_000);
        for _ in 0..10 {
            assert!(p.due(fix, now, 1000));
            p.sent(fix, now);
            fix += 1000;
            now += 990;
        }
    }

    #[test]
    fn faster_fixes_are_thinned_and_the_newest_still_goes_out() {
        let mut p = PositionPace::default();
        assert!(p.due(0, 0, 1000));
        p.sent(0, 0);
        // 4 fixes a second: only every fourth is due...
        assert!(!p.due(250, 250, 1000));
        assert!(!p.due(750, 750, 1000));
        assert!(p.due(1000, 1000, 1000));
        p.sent(1000, 1000);
        // ... and when the driver stops at 1,250, its last fix goes out a second after the
        // last send, at the next look.
        assert!(!p.due(1250, 1300, 1000));
        assert!(p.due(1250, 2000, 1000));
    }

    #[test]
    fn a_clock_stepping_back_does_not_hold_the_newest() {
        let mut p = PositionPace::default();
        p.sent(10_000, 50_000);
        assert!(!p.due(10_100, 50_100, 1000));
        assert!(p.due(10_100, 40_000, 1000));
        // With 0, every one, whatever the times.
        assert!(p.due(0, 0, 0));
    }

    #[test]
    fn zero_sends_every_one_and_extreme_times_do_not_overflow() {
        let mut p = PositionPace::default();
        p.sent(i64::MAX, i64::MIN);
        assert!(p.due(i64::MIN, i64::MAX, 0));
        assert!(PositionPace::default().due(0, 0, u64::MAX));
        let mut q = PositionPace::default();
        q.sent(0, 0);
        assert!(!q.due(0, 0, u64::MAX));
        assert!(q.due(i64::MAX, 0, u64::MAX));
    }
}
