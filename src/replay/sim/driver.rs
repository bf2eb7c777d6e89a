//! A simulated phone's decisions, sans IO. [`Driver`] takes `now` (us since the run's start)
//! and what the network reported, updates its state and says what to do: [`Action`]s, a
//! connection attempt and its time limit, an [`Upload`]. It never awaits, reads the clock or
//! touches a socket or stderr; the driver's task (`task.rs`) carries its decisions out over a
//! QUIC link and reports back. It does write the run's shared tallies (counters, latency
//! histograms), which are plain memory.
//!
//! # A tick
//! At every wake-up the task calls, in order:
//! 1. [`Driver::begin_tick`]: window marks, the network switch, the offline period; then
//!    whether a connection attempt is due, answered by [`Driver::connected`] or
//!    [`Driver::connect_failed`];
//! 2. [`Driver::upload`]: measures the fixes due, expires live fixes, decides whether an upload
//!    is due; when connected, the task sends its live fix ([`Driver::sent_live`]) and the
//!    [`Driver::take_batches`] runs ([`Driver::batch_sent`] each);
//! 3. [`Driver::end_tick`]: done (all settled after the end, or drained) or given up.
//!
//! Between ticks it waits until [`Driver::next_wake`] or a message: [`Driver::on_session_ack`],
//! [`Driver::on_live_ack`], [`Driver::on_refused`], [`Driver::connection_lost`]. Then
//! [`Driver::finish`].

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use milepost_proto::Ack;

use super::config::Pace;
use super::plan::DriverPlan;
use super::queue::{FixQueue, Runs};
use super::rng::unit;
use super::run::{Run, US};
use crate::replay::metrics::{Counters, Kind};
use crate::replay::playback::{next_recorded, sample};

mod actions;
mod retry;
#[cfg(test)]
mod tests;

pub(super) use actions::{Action, Close, ConnectFailure, Upload};
use retry::Retry;

/// What the driver knows of its open session.
#[derive(Debug)]
struct Session {
    /// Most fixes in one batch (`Welcome.limits`).
    max_batch: usize,
    /// Batches in flight on the session stream, in order: (first seq, count).
    inflight: VecDeque<(u64, u32)>,
    /// True once an ack arrived on this session (counted in `Counters::synced`).
    acked: bool,
}

/// One simulated driver's state.
pub(super) struct Driver {
    run: Arc<Run>,
    plan: DriverPlan,
    session: Option<Session>,
    q: FixQueue,
    /// Next fix: due time (us since run start) and virtual trace time (ms); `None` before
    /// the first session (seqs start from its watermark).
    next_fix: Option<(u64, i64)>,
    /// When the first fix was due: the origin of this driver's schedule.
    first_due_us: u64,
    next_flush_us: u64,
    /// Reconnect (when disconnected) or resend after a refusal (when connected) at this time.
    retry_at: Option<u64>,
    retry: Retry,
    /// Disconnected involuntarily since this time.
    lost_since: Option<u64>,
    ever_connected: bool,
    offline_now: bool,
    marks_done: [bool; 2],
    done: bool,
    /// Actions not yet taken by the task.
    out: Vec<Action>,
}

impl Driver {
    /// A driver that has not started.
    pub fn new(run: Arc<Run>, plan: DriverPlan) -> Driver {
        Driver {
            run,
            plan,
            session: None,
            q: FixQueue::new(),
            next_fix: None,
            first_due_us: 0,
            next_flush_us: 0,
            retry_at: None,
            retry: Retry::new(),
            lost_since: None,
            ever_connected: false,
            offline_now: false,
            marks_done: [false; 2],
            done: false,
            out: Vec::new(),
        }
    }

    /// The driver id.
    pub fn id(&self) -> &str {
        &self.plan.id
    }

    /// When the driver starts, us since the run's start.
    pub fn start_us(&self) -> u64 {
        self.plan.start_us
    }

    /// True when the driver has stopped (settled, drained or given up).
    pub fn done(&self) -> bool {
        self.done
    }

    /// The actions decided since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// The end of the app suspension `now` falls in, if any (the network model's plan).
    pub fn suspended_until(&self, now: u64) -> Option<u64> {
        self.plan.schedule.suspended_until(now)
    }

    /// The driver starts at `now`: it connects at once.
    pub fn start(&mut self, now: u64) {
        self.retry_at = Some(now);
    }

    /// First part of a tick: window marks, the network switch and the offline period. Returns
    /// the time a connection attempt due now may take, ms.
    pub fn begin_tick(&mut self, now: u64) -> Option<u64> {
        let win = self.run.win;
        for (k, at) in [win.0, win.1].into_iter().enumerate() {
            if !self.marks_done[k] && now >= at {
                self.marks_done[k] = true;
                self.out.push(Action::MarkWire { end: k == 1 });
            }
        }
        if let Some(at) = self.plan.migrate_at.filter(|at| now >= *at) {
            self.plan.migrate_at = None;
            self.out.push(Action::Migrate { at });
        }
        if let Some((from, until)) = self.plan.offline {
            if !self.offline_now && now >= from {
                if self.ever_connected && now < until {
                    self.offline_now = true;
                    Counters::add(&self.run.c.offline_periods, 1);
                    self.lose(now, Close::Offline);
                    // Offline on purpose: no reconnect attempts, no giving up.
                    self.retry_at = None;
                    self.lost_since = None;
                } else {
                    // Too late for it (still logging in, or past its end): skip it.
                    self.plan.offline = None;
                }
            } else if self.offline_now && now >= until {
                self.offline_now = false;
                self.plan.offline = None;
                self.retry_at = Some(now);
            }
        }
        if self.session.is_none() && !self.offline_now && self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            return Some(self.retry.attempt_ms);
        }
        None
    }

    /// The attempt that started at `started` opened a session at `now`; the gateway holds
    /// every seq up to `watermark` and takes batches of up to `max_batch` fixes.
    pub fn connected(&mut self, started: u64, now: u64, watermark: u64, max_batch: u32) {
        let run = self.run.clone();
        run.lat
            .record(Kind::Handshake, now.saturating_sub(started), 1);
        Counters::add(&run.c.connects, 1);
        if self.ever_connected {
            Counters::add(&run.c.reconnects, 1);
        }
        if run.c.connected_up() == run.cfg.drivers as u64 {
            self.out.push(Action::Announce("connected"));
        }
        self.session = Some(Session {
            max_batch: max_batch.max(1) as usize,
            inflight: VecDeque::new(),
            acked: false,
        });
        self.lost_since = None;
        self.retry.reset();
        if !self.ever_connected {
            self.ever_connected = true;
            // Seqs continue after what the gateway already holds for this driver id; the
            // schedule starts now, with a random phase inside one fix interval so drivers
            // that logged in together do not send in lockstep.
            self.q.start_at(watermark + 1);
            let jitter = match run.cfg.pace {
                Pace::Rate { per_s, .. } => (unit(&mut self.plan.rng) * US as f64 / per_s) as u64,
                Pace::Recorded { .. } => 0,
            };
            self.first_due_us = now + jitter;
            self.next_fix = Some((self.first_due_us, self.plan.phase_ms));
            self.next_flush_us = self.first_due_us;
        } else {
            // Everything at or below the watermark is settled (stored, duplicate or
            // rejected: the ack that said which was lost with the connection).
            let mut by_mark = 0;
            for seq in self.q.base_seq()..=watermark {
                by_mark += self.q.settle(seq).is_some() as u64;
            }
            Counters::add(&run.c.acked, by_mark);
            Counters::add(&run.c.settled_by_watermark, by_mark);
            self.q.pop_settled();
        }
    }

    /// The attempt asked for at `asked_at` failed at `now`: give up, or retry after a back-off
    /// (a timed-out attempt makes the next one longer).
    pub fn connect_failed(&mut self, asked_at: u64, now: u64, why: ConnectFailure) {
        Counters::add(&self.run.c.connect_errors, 1);
        match why {
            ConnectFailure::Fatal => {
                Counters::add(&self.run.c.drivers_failed, 1);
                self.done = true;
                return;
            }
            ConnectFailure::Failed => {}
            ConnectFailure::TimedOut => self.retry.timed_out(),
        }
        self.lost_since.get_or_insert(asked_at);
        self.retry_at = Some(now + self.next_backoff_us());
    }

    /// Second part of a tick: measures the fixes due by `now`, sends live fixes not acked in
    /// time back to the queue, and decides whether an upload is due. An upload due fixes the
    /// scheduled time of the fresh fixes, connected or not (so a late upload, after an outage,
    /// shows in the latency); it is returned only when a session is open.
    pub fn upload(&mut self, now: u64) -> Option<Upload> {
        let run = self.run.clone();
        let cfg = &run.cfg;
        self.make_fixes(now);
        let ended = now >= run.end_us;
        let resend = self.q.expire_live(now, cfg.live_timeout.as_micros() as u64);
        let fresh = self.q.fresh();
        let mut flush_at = None;
        if fresh >= cfg.batch as u64 {
            flush_at = self.q.newest_due();
        }
        if let Some(iv) = cfg.batch_interval {
            let iv = (iv.as_micros() as u64).max(1);
            if now >= self.next_flush_us {
                if fresh > 0 {
                    flush_at = Some(flush_at.unwrap_or(self.next_flush_us));
                }
                while self.next_flush_us <= now {
                    self.next_flush_us += iv;
                }
            }
        }
        if self.retry_at.is_some_and(|t| now >= t) && self.session.is_some() {
            self.retry_at = None;
        }
        if resend && self.retry_at.is_none() {
            flush_at.get_or_insert(now);
        }
        if ended && fresh > 0 {
            flush_at.get_or_insert(now);
        }
        let sched = flush_at?;
        self.q.schedule(sched);
        self.session.as_ref()?;
        Some(Upload {
            sched,
            live: if cfg.live {
                self.q.newest_fresh()
            } else {
                None
            },
        })
    }

    /// The upload's live fix went as a datagram at `now`.
    pub fn sent_live(&mut self, sched: u64, now: u64) {
        self.q.sent_live(sched, now);
        Counters::add(&self.run.c.live_sent, 1);
    }

    /// What the upload scheduled at `sched` sends in batches: every fix waiting, as runs of
    /// consecutive seqs within the session's batch limit. They count as batched from here on.
    pub fn take_batches(&mut self, sched: u64) -> Runs {
        let max = self.session.as_ref().map_or(1, |s| s.max_batch);
        let (runs, resent) = self.q.take_runs(sched, max);
        Counters::add(&self.run.c.resent, resent);
        runs
    }

    /// A batch of `count` fixes from `first` was written on the session stream.
    pub fn batch_sent(&mut self, first: u64, count: u32) {
        if let Some(s) = self.session.as_mut() {
            s.inflight.push_back((first, count));
        }
        Counters::add(&self.run.c.batches_sent, 1);
    }

    /// Last part of a tick: after the end, stop once everything is settled and both window
    /// marks are taken, or once the drain time is over; give up when the gateway has been
    /// unreachable for `reconnect_for`.
    pub fn end_tick(&mut self, now: u64) {
        let run = self.run.clone();
        let cfg = &run.cfg;
        if now >= run.end_us {
            let settled = self.q.is_empty();
            let drained = now >= run.end_us + cfg.drain.as_micros() as u64;
            let marks = self.marks_done.iter().all(|m| *m);
            if (settled && marks) || drained {
                self.done = true;
            }
        }
        if let Some(since) = self.lost_since {
            if self.session.is_none() && now >= since + cfg.reconnect_for.as_micros() as u64 {
                self.out.push(Action::Unreachable);
                Counters::add(&run.c.drivers_failed, 1);
                self.done = true;
            }
        }
    }

    /// An ack on the session stream: it answers a batch in flight.
    pub fn on_session_ack(&mut self, ack: &Ack, now: u64) {
        if let Some(s) = self.session.as_mut() {
            let at = s.inflight.iter().position(|b| b.0 == ack.first_seq.0);
            if let Some(i) = at {
                s.inflight.remove(i);
            }
        }
        self.settle_ack(ack, now);
    }

    /// An ack on the gateway's ack stream (live fixes).
    pub fn on_live_ack(&mut self, ack: &Ack, now: u64) {
        self.settle_ack(ack, now);
    }

    /// A request-level refusal answers the oldest batch in flight: nothing of it is settled;
    /// it is resent after a back-off.
    pub fn on_refused(&mut self, now: u64) {
        Counters::add(&self.run.c.request_errors, 1);
        if let Some((first, count)) = self.session.as_mut().and_then(|s| s.inflight.pop_front()) {
            self.q.refused(first, count);
        }
        self.retry_at = Some(now + self.next_backoff_us());
    }

    /// The session broke (closed, timed out, a stream failed): reconnect after a back-off and
    /// resend everything in flight.
    pub fn connection_lost(&mut self, now: u64) {
        self.lose(now, Close::Broken);
    }

    /// The driver stops: what is unsettled is counted, the session closed.
    pub fn finish(&mut self) {
        let run = self.run.clone();
        Counters::add(&run.c.unsettled, self.q.unsettled());
        Counters::add(&run.c.drivers_done, 1);
        if let Some(s) = self.session.take() {
            self.out.push(Action::Drop(Close::Done));
            run.c.connected_down(s.acked);
        }
    }

    /// The next moment something is due.
    pub fn next_wake(&self, now: u64) -> u64 {
        let run = &self.run;
        let cfg = &run.cfg;
        let mut w = run.end_us + cfg.drain.as_micros() as u64;
        let mut at = |t: u64| w = w.min(t);
        if now < run.end_us {
            at(run.end_us);
        }
        if let Some((due, _)) = self.next_fix.filter(|(d, _)| *d < run.end_us) {
            at(due);
        }
        if cfg.batch_interval.is_some() && self.q.fresh() > 0 {
            at(self.next_flush_us);
        }
        if let Some(t) = self.q.live_deadline(cfg.live_timeout.as_micros() as u64) {
            at(t);
        }
        if let Some((from, until)) = self.plan.offline {
            at(if self.offline_now { until } else { from });
        }
        if let Some(m) = self.plan.migrate_at {
            at(m);
        }
        for (k, t) in [run.win.0, run.win.1].into_iter().enumerate() {
            if !self.marks_done[k] {
                at(t);
            }
        }
        if let Some(r) = self.retry_at.filter(|_| !self.offline_now) {
            at(r);
        }
        if let Some(since) = self.lost_since {
            at(since + cfg.reconnect_for.as_micros() as u64);
        }
        w
    }

    /// Settles the seqs an ack covers and records their latency.
    fn settle_ack(&mut self, ack: &Ack, now: u64) {
        let run = self.run.clone();
        if let Some(s) = self.session.as_mut().filter(|s| !s.acked) {
            s.acked = true;
            let synced = run.c.synced.fetch_add(1, Ordering::Relaxed) + 1;
            if synced == run.cfg.drivers as u64 {
                self.out.push(Action::Announce("connected and acked"));
            }
        }
        Counters::add(&run.c.duplicates, ack.duplicates as u64);
        let first = ack.first_seq.0;
        for seq in first..first.saturating_add(ack.count as u64) {
            let Some(slot) = self.q.settle(seq) else {
                continue;
            };
            if ack.rejected.iter().any(|r| r.seq.0 == seq) {
                Counters::add(&run.c.rejected, 1);
            } else {
                Counters::add(&run.c.acked, 1);
            }
            if slot.backlog {
                run.lat
                    .record(Kind::Backlog, now.saturating_sub(slot.due_us), 1);
            } else if let Some(sched) = slot.sched_us {
                run.lat
                    .record(run.kind(sched), now.saturating_sub(sched), 1);
            }
        }
        self.q.pop_settled();
    }

    /// The wait before the next retry, us (see [`Retry::next_backoff_us`]).
    fn next_backoff_us(&mut self) -> u64 {
        self.retry.next_backoff_us(&mut self.plan.rng)
    }

    /// The session is gone: everything in flight is to be resent on the next one. Going
    /// offline makes what is unsettled a backlog; a broken session is reconnected after a
    /// back-off.
    fn lose(&mut self, now: u64, how: Close) {
        let Some(s) = self.session.take() else {
            return;
        };
        self.out.push(Action::Drop(how));
        let run = self.run.clone();
        run.c.connected_down(s.acked);
        let involuntary = how == Close::Broken;
        self.q.lost(!involuntary);
        if involuntary {
            Counters::add(&run.c.conn_lost, 1);
            self.lost_since.get_or_insert(now);
            self.retry_at = Some(now + self.next_backoff_us());
        }
    }

    /// Measures every fix due by `now` (all of them, if the task was late: their scheduled
    /// times stay, so the delay shows in the latency).
    fn make_fixes(&mut self, now: u64) {
        let run = self.run.clone();
        let trace = &run.traces[self.plan.trace];
        while let Some((due, tau)) = self.next_fix {
            if due > now || due >= run.end_us {
                break;
            }
            let Some(sample) = sample(trace, tau) else {
                self.next_fix = None;
                break;
            };
            let fix = sample.to_fix(run.stamp_ms(due), self.plan.dlat, self.plan.dlon);
            self.q.push(fix, due, self.offline_now);
            Counters::add(&run.c.sent, 1);
            self.next_fix = self.after(due, tau);
        }
    }

    /// The fix after the one due at `due` with virtual time `tau`.
    fn after(&self, due: u64, tau: i64) -> Option<(u64, i64)> {
        let run = &self.run;
        match run.cfg.pace {
            Pace::Rate { per_s, speedup } => {
                let next = due + (US as f64 / per_s) as u64;
                let elapsed_ms = (next - self.first_due_us) as f64 / 1000.0;
                Some((next, self.plan.phase_ms + (elapsed_ms * speedup) as i64))
            }
            Pace::Recorded { speedup } => {
                let t = next_recorded(&run.traces[self.plan.trace], tau)?;
                let us = ((t - self.plan.phase_ms) as f64 * 1000.0 / speedup) as u64;
                Some((self.first_due_us + us, t))
            }
        }
    }
}
