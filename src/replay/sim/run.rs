//! What every driver of a run shares ([`Run`]): the configuration, the traces, the run's
//! [`Timeline`] (ramp, measurement window, end), and the tallies every driver writes to
//! (counters, latency histograms, wire totals). Also the two clock conversions a fix needs: its
//! measurement stamp and which latency it counts in.

use std::time::Duration;

use tokio::time::Instant;

use super::config::ReplayConfig;
use super::netcount::NetCounters;
use crate::replay::metrics::{Counters, Kind, Latencies, WireMarks};
use crate::replay::trace::Trace;

/// Microseconds per second.
pub(super) const US: u64 = 1_000_000;

/// The run's phases, us since its start: drivers start over the ramp, measure until the end,
/// and the window in between is where the reported rates come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Timeline {
    /// End of the ramp: the last driver starts here.
    pub ramp_us: u64,
    /// When drivers stop measuring.
    pub end_us: u64,
    /// The measurement window: after the ramp and the warm-up, until just before the end.
    pub win: (u64, u64),
}

impl Timeline {
    /// The timeline `cfg` asks for.
    pub fn new(cfg: &ReplayConfig) -> Timeline {
        let ramp_us = cfg.ramp.as_micros() as u64;
        let dur_us = cfg.duration.as_micros() as u64;
        let end_us = ramp_us + dur_us;
        let warm_us = (cfg.warmup.as_micros() as u64).min(dur_us / 4);
        // The window closes just before the end, while every driver is still connected (they
        // close their sessions as soon as they are done, from `end_us` on).
        let win = (ramp_us + warm_us, end_us - (dur_us / 20).min(200_000));
        Timeline {
            ramp_us,
            end_us,
            win,
        }
    }
}

/// The run shared by every driver.
pub(super) struct Run {
    pub cfg: ReplayConfig,
    pub traces: Vec<Trace>,
    /// The run's start: every `_us` time is counted from here.
    pub t0: Instant,
    /// Wall clock at `t0`, UTC ms.
    pub wall0_ms: i64,
    /// When drivers stop measuring, us since `t0`.
    pub end_us: u64,
    /// The measurement window, us since `t0`.
    pub win: (u64, u64),
    pub c: Counters,
    pub lat: Latencies,
    pub wire: WireMarks,
    /// What the relays count, with a network model.
    pub net: Option<std::sync::Arc<NetCounters>>,
}

impl Run {
    /// A run starting now.
    pub fn start(cfg: ReplayConfig, traces: Vec<Trace>, tl: Timeline) -> Run {
        Run {
            traces,
            t0: Instant::now(),
            wall0_ms: chrono::Utc::now().timestamp_millis(),
            end_us: tl.end_us,
            win: tl.win,
            c: Counters::default(),
            lat: Latencies::default(),
            wire: WireMarks::default(),
            net: cfg.net.as_ref().map(|_| Default::default()),
            cfg,
        }
    }

    /// Now, us since the run's start.
    pub fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// The instant `us` after the run's start.
    pub fn at(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }

    /// Which ack latency a fix scheduled at `sched_us` counts in.
    pub fn kind(&self, sched_us: u64) -> Kind {
        if (self.win.0..self.win.1).contains(&sched_us) {
            Kind::AckInWindow
        } else {
            Kind::Ack
        }
    }

    /// The measurement time of a fix due at `due_us`. At a speedup above 1 the phone's clock
    /// runs as fast as the trace, so recorded speeds stay plausible; it is set back so the
    /// last fix of the run is stamped "now" and no fix is ever in the future.
    pub fn stamp_ms(&self, due_us: u64) -> i64 {
        let s = self.cfg.pace.speedup();
        if s > 1.0 {
            let left_ms = self.end_us.saturating_sub(due_us) as f64 / 1000.0;
            self.wall0_ms + (self.end_us / 1000) as i64 - (left_ms * s) as i64
        } else {
            self.wall0_ms + (due_us / 1000) as i64
        }
    }
}

/// Wall clock of the runs made by [`test_run`], UTC ms.
#[cfg(test)]
pub(super) const TEST_WALL0_MS: i64 = 1_700_000_000_000;

/// A run for unit tests, with a fixed wall clock.
#[cfg(test)]
pub(super) fn test_run(cfg: ReplayConfig, traces: Vec<Trace>) -> Run {
    let tl = Timeline::new(&cfg);
    Run {
        wall0_ms: TEST_WALL0_MS,
        ..Run::start(cfg, traces, tl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::sim::config::{test_config, Pace};

    #[test]
    fn the_window_opens_after_warm_up_and_closes_before_the_end() {
        // Defaults: 1 s ramp, 60 s run, 5 s warm-up; the window closes 200 ms early at most.
        let tl = Timeline::new(&test_config());
        assert_eq!(tl.ramp_us, 1_000_000);
        assert_eq!(tl.end_us, 61_000_000);
        assert_eq!(tl.win, (6_000_000, 60_800_000));
        // A short run: warm-up capped at a quarter, the close margin at a twentieth.
        let mut cfg = test_config();
        cfg.ramp = Duration::from_millis(500);
        cfg.duration = Duration::from_secs(2);
        let tl = Timeline::new(&cfg);
        assert_eq!(tl.end_us, 2_500_000);
        assert_eq!(tl.win, (1_000_000, 2_400_000));
    }

    #[test]
    fn only_fixes_scheduled_inside_the_window_count_in_it() {
        let run = test_run(test_config(), Vec::new());
        assert_eq!(run.kind(5_999_999), Kind::Ack);
        assert_eq!(run.kind(6_000_000), Kind::AckInWindow);
        assert_eq!(run.kind(60_799_999), Kind::AckInWindow);
        assert_eq!(run.kind(60_800_000), Kind::Ack);
    }

    #[test]
    fn stamps_follow_the_wall_clock_or_a_sped_up_one_ending_now() {
        let run = test_run(test_config(), Vec::new());
        assert_eq!(run.stamp_ms(2_500_999), TEST_WALL0_MS + 2_500);
        let mut cfg = test_config();
        cfg.pace = Pace::Rate {
            per_s: 1.0,
            speedup: 10.0,
        };
        let run = test_run(cfg, Vec::new());
        let end_ms = TEST_WALL0_MS + 61_000;
        assert_eq!(run.stamp_ms(run.end_us), end_ms);
        // One second before the end is ten seconds back on the phone's clock.
        assert_eq!(run.stamp_ms(run.end_us - 1_000_000), end_ms - 10_000);
        assert_eq!(run.stamp_ms(0), end_ms - 610_000);
    }
}
