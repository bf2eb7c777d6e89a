//! The driver's decisions, step by step, without a network: each test plays the task's part
//! (calls in tick order, with made-up times and answers) and checks state, actions and tallies.

use std::time::Duration;

use milepost_proto::{RejectReason, Rejection, Seq};

use super::retry::{ATTEMPT_MS, BACKOFF_MS};
use super::*;
use crate::replay::sim::config::{test_config, ReplayConfig};
use crate::replay::sim::queue::St;
use crate::replay::sim::run::test_run;
use crate::replay::trace::{Trace, TracePoint};

/// One second, us.
const S: u64 = US;
/// One millisecond, us.
const MS: u64 = 1_000;

/// Ten minutes going north, a point a second.
fn trace() -> Trace {
    let points = (0..600)
        .map(|i| TracePoint::new(1_700_000_000_000 + i * 1000, 45.0 + i as f64 * 1e-4, 7.0))
        .collect();
    Trace::new("north", points)
}

/// One driver at the recorded pace (a fix a second, no start jitter), batches of 1 with live
/// datagrams; the run ends at 61 s and its window is [21 s, 60.8 s).
fn config() -> ReplayConfig {
    let mut cfg = test_config();
    cfg.drivers = 1;
    cfg.warmup = Duration::from_secs(20);
    cfg
}

fn plan() -> DriverPlan {
    DriverPlan {
        id: "sim-00001".into(),
        trace: 0,
        phase_ms: 0,
        dlat: 0.0,
        dlon: 0.0,
        start_us: 0,
        offline: None,
        migrate_at: None,
        rng: 7,
        schedule: Default::default(),
        net_seed: 8,
    }
}

/// A driver of a run made with `cfg`, started at 0.
fn driver_with(cfg: ReplayConfig, plan: DriverPlan) -> Driver {
    let mut d = Driver::new(Arc::new(test_run(cfg, vec![trace()])), plan);
    d.start(0);
    d
}

fn driver() -> Driver {
    driver_with(config(), plan())
}

/// Its first session opens at `at` (in no time): the gateway holds seqs up to 41.
fn connect(d: &mut Driver, at: u64) {
    assert!(
        d.begin_tick(at).is_some(),
        "a connection attempt is due at {at}"
    );
    d.connected(at, at, 41, 100);
}

fn ack(first: u64, count: u32) -> Ack {
    Ack {
        first_seq: Seq(first),
        count,
        duplicates: 0,
        rejected: Vec::new(),
        watermark: Seq(first + count as u64 - 1),
    }
}

/// A counter of the driver's run.
fn get(d: &Driver, f: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
    Counters::get(f(&d.run.c))
}

/// Uploads at `now` as the task would with a working link: the live fix goes, the batches are
/// written. Returns the live seq and the batches (first seq, count).
fn upload_all(d: &mut Driver, now: u64) -> (Option<u64>, Vec<(u64, u32)>) {
    let Some(up) = d.upload(now) else {
        return (None, Vec::new());
    };
    if up.live.is_some() {
        d.sent_live(up.sched, now);
    }
    let mut batches = Vec::new();
    for (first, fixes) in d.take_batches(up.sched) {
        d.batch_sent(first, fixes.len() as u32);
        batches.push((first, fixes.len() as u32));
    }
    (up.live.map(|l| l.0), batches)
}

#[test]
fn the_first_session_is_asked_for_at_start_and_seqs_follow_its_watermark() {
    let mut d = driver();
    assert_eq!(d.begin_tick(0), Some(ATTEMPT_MS));
    assert_eq!(d.begin_tick(0), None, "one attempt at a time");
    d.connected(0, 30 * MS, 41, 100);
    assert_eq!(d.take_actions(), [Action::Announce("connected")]);
    assert_eq!(get(&d, |c| &c.connects), 1);
    assert_eq!(get(&d, |c| &c.reconnects), 0);
    assert_eq!(get(&d, |c| &c.connected), 1);
    let handshakes = d.run.lat.summaries().3;
    assert_eq!((handshakes.count, handshakes.max_us / 1000), (1, 30));
    // The first fix is due at once, as seq 42, and goes live.
    let up = d.upload(30 * MS).expect("an upload is due");
    assert_eq!(up.sched, 30 * MS);
    assert_eq!(up.live.map(|l| l.0), Some(42));
    assert_eq!(get(&d, |c| &c.sent), 1);
    d.sent_live(up.sched, 30 * MS);
    assert!(
        d.take_batches(up.sched).is_empty(),
        "the only fix went live"
    );
    assert_eq!(get(&d, |c| &c.live_sent), 1);
    // The next is due a recorded second later.
    assert_eq!(d.next_wake(30 * MS), S + 30 * MS);
}

#[test]
fn at_a_fixed_rate_the_schedule_starts_within_one_interval() {
    let mut cfg = config();
    cfg.pace = Pace::Rate {
        per_s: 10.0,
        speedup: 1.0,
    };
    let mut d = driver_with(cfg, plan());
    connect(&mut d, S);
    let (first, _) = d.next_fix.expect("scheduled");
    assert!((S..S + 100 * MS).contains(&first), "{first}");
    // A late tick measures every fix due, at its own time.
    d.upload(first + 250 * MS);
    assert_eq!(get(&d, |c| &c.sent), 3);
    assert_eq!(d.next_fix.map(|f| f.0), Some(first + 300 * MS));
}

#[test]
fn an_acked_live_fix_is_settled_with_its_latency_once() {
    let mut d = driver();
    connect(&mut d, 0);
    d.take_actions();
    assert_eq!(upload_all(&mut d, 0), (Some(42), vec![]));
    d.on_live_ack(&ack(42, 1), 5 * MS);
    assert_eq!(d.take_actions(), [Action::Announce("connected and acked")]);
    assert!(d.q.is_empty());
    assert_eq!(d.q.base_seq(), 43);
    assert_eq!(get(&d, |c| &c.acked), 1);
    assert_eq!(get(&d, |c| &c.synced), 1);
    let all = d.run.lat.summaries().0;
    assert_eq!(all.count, 1);
    assert!((4_995..=5_005).contains(&all.max_us), "{}", all.max_us);
    // Acked again (a resend of the ack): nothing changes.
    d.on_session_ack(&ack(42, 1), 9 * MS);
    assert_eq!(get(&d, |c| &c.acked), 1);
    assert_eq!(d.run.lat.summaries().0.count, 1);
    assert!(
        d.take_actions().is_empty(),
        "synced counts once per session"
    );
}

#[test]
fn a_rejected_fix_is_settled_but_not_counted_as_stored() {
    let mut d = driver();
    connect(&mut d, 0);
    upload_all(&mut d, 0);
    upload_all(&mut d, S);
    let mut a = ack(42, 2);
    a.duplicates = 1;
    a.rejected.push(Rejection {
        seq: Seq(43),
        reason: RejectReason::ImplausibleJump,
    });
    d.on_live_ack(&a, S + MS);
    assert!(d.q.is_empty());
    assert_eq!(get(&d, |c| &c.acked), 1);
    assert_eq!(get(&d, |c| &c.rejected), 1);
    assert_eq!(get(&d, |c| &c.duplicates), 1);
}

#[test]
fn a_live_fix_not_acked_in_time_is_resent_in_a_batch_keeping_its_scheduled_time() {
    let mut d = driver();
    connect(&mut d, 0);
    assert_eq!(upload_all(&mut d, 0), (Some(42), vec![]));
    // The live timeout (3 s) is what wakes the driver, if nothing else does.
    assert_eq!(d.q.live_deadline(3 * S), Some(3 * S));
    // At 3 s: fixes 43 to 45 are due, 42 has timed out; 45 goes live, the rest in one batch.
    assert_eq!(upload_all(&mut d, 3 * S), (Some(45), vec![(42, 3)]));
    assert_eq!(get(&d, |c| &c.resent), 1);
    assert_eq!(get(&d, |c| &c.batches_sent), 1);
    assert_eq!(d.q.st(42), Some(St::Batched));
    assert_eq!(d.q.st(45), Some(St::Live(3 * S)));
    // Acked at 3.01 s: 42's latency counts from its first upload, at 0.
    d.on_session_ack(&ack(42, 4), 3 * S + 10 * MS);
    assert!(d.session.as_ref().is_some_and(|s| s.inflight.is_empty()));
    let all = d.run.lat.summaries().0;
    assert_eq!(all.count, 4);
    assert!(
        (3_008_000..=3_012_000).contains(&all.max_us),
        "{}",
        all.max_us
    );
}

#[test]
fn a_lost_session_is_reopened_after_a_back_off_and_everything_unsettled_resent() {
    let mut d = driver();
    connect(&mut d, 0);
    d.take_actions();
    upload_all(&mut d, 0);
    upload_all(&mut d, S);
    let lost = S + 500 * MS;
    d.connection_lost(lost);
    assert_eq!(d.take_actions(), [Action::Drop(Close::Broken)]);
    assert_eq!(get(&d, |c| &c.conn_lost), 1);
    assert_eq!(get(&d, |c| &c.connected), 0);
    assert_eq!(
        (d.q.st(42), d.q.st(43)),
        (Some(St::Unsent), Some(St::Unsent))
    );
    // First back-off: 100 ms +-50 %.
    let retry = d.retry_at.expect("a reconnect is planned");
    assert!(
        (lost + 50 * MS..lost + 150 * MS).contains(&retry),
        "{retry}"
    );
    assert_eq!(d.begin_tick(retry - 1), None);
    assert_eq!(d.next_wake(retry - 1), retry);
    assert_eq!(d.begin_tick(retry), Some(ATTEMPT_MS));
    // The gateway had stored 42 (its ack was lost with the connection).
    d.connected(retry, 2 * S, 42, 100);
    assert_eq!(get(&d, |c| &c.reconnects), 1);
    assert_eq!(get(&d, |c| &c.settled_by_watermark), 1);
    assert_eq!(get(&d, |c| &c.acked), 1);
    assert_eq!(d.q.base_seq(), 43);
    // 43 is resent in a batch, the new fix (44) goes live.
    assert_eq!(upload_all(&mut d, 2 * S), (Some(44), vec![(43, 1)]));
    assert_eq!(get(&d, |c| &c.resent), 1);
    d.on_session_ack(&ack(43, 1), 2 * S + MS);
    assert!(d.session.as_ref().is_some_and(|s| s.inflight.is_empty()));
    assert_eq!(d.q.st(44), Some(St::Live(2 * S)));
}

#[test]
fn back_off_doubles_from_100_ms_to_2_s_with_jitter_and_resets_on_connect() {
    let mut d = driver();
    let mut at = 0;
    for b_ms in [100, 200, 400, 800, 1_600, 2_000, 2_000] {
        assert_eq!(
            d.begin_tick(at),
            Some(ATTEMPT_MS),
            "failures keep the attempt time"
        );
        d.connect_failed(at, at + MS, ConnectFailure::Failed);
        let retry = d.retry_at.expect("a retry is planned");
        let wait = retry - (at + MS);
        assert!(
            (b_ms * 500..b_ms * 1_500).contains(&wait),
            "{wait} us for {b_ms} ms"
        );
        at = retry;
    }
    assert_eq!(get(&d, |c| &c.connect_errors), 7);
    assert_eq!(d.lost_since, Some(0), "unreachable since the first attempt");
    d.begin_tick(at);
    d.connected(at, at, 41, 100);
    assert_eq!((d.retry.backoff_ms, d.lost_since), (BACKOFF_MS, None));
}

#[test]
fn timed_out_attempts_get_longer_up_to_10_s_and_reset_on_connect() {
    let mut d = driver();
    let mut attempts = Vec::new();
    let mut at = 0;
    for _ in 0..4 {
        let ms = d.begin_tick(at).expect("an attempt is due");
        attempts.push(ms);
        at += ms * MS;
        d.connect_failed(at - ms * MS, at, ConnectFailure::TimedOut);
        at = d.retry_at.expect("a retry is planned");
    }
    assert_eq!(attempts, [4_000, 8_000, 10_000, 10_000]);
    d.begin_tick(at);
    d.connected(at, at, 41, 100);
    d.connection_lost(at + S);
    let retry = d.retry_at.expect("a reconnect is planned");
    assert_eq!(d.begin_tick(retry), Some(ATTEMPT_MS));
}

#[test]
fn a_final_refusal_gives_up_at_once() {
    let mut d = driver();
    d.begin_tick(0);
    d.connect_failed(0, MS, ConnectFailure::Fatal);
    assert!(d.done());
    assert_eq!(get(&d, |c| &c.drivers_failed), 1);
    assert_eq!(get(&d, |c| &c.connect_errors), 1);
    assert_eq!(d.retry_at, None);
}

#[test]
fn an_unreachable_gateway_is_given_up_after_reconnect_for() {
    let mut cfg = config();
    cfg.reconnect_for = Duration::from_secs(10);
    let mut d = driver_with(cfg, plan());
    d.begin_tick(0);
    d.connect_failed(0, MS, ConnectFailure::Failed);
    d.end_tick(10 * S - 1);
    assert!(!d.done());
    d.end_tick(10 * S);
    assert!(d.done());
    assert_eq!(d.take_actions(), [Action::Unreachable]);
    assert_eq!(get(&d, |c| &c.drivers_failed), 1);
}

#[test]
fn a_refused_batch_is_resent_after_a_back_off() {
    let mut cfg = config();
    cfg.live = false;
    cfg.batch = 2;
    let mut d = driver_with(cfg, plan());
    connect(&mut d, 0);
    assert_eq!(
        upload_all(&mut d, 0),
        (None, vec![]),
        "one fix waits for a second"
    );
    assert_eq!(upload_all(&mut d, S), (None, vec![(42, 2)]));
    d.on_refused(S + 100 * MS);
    assert_eq!(get(&d, |c| &c.request_errors), 1);
    assert_eq!(
        (d.q.st(42), d.q.st(43)),
        (Some(St::Unsent), Some(St::Unsent))
    );
    assert!(d.session.as_ref().is_some_and(|s| s.inflight.is_empty()));
    let retry = d.retry_at.expect("a resend is planned");
    assert!((S + 150 * MS..S + 250 * MS).contains(&retry), "{retry}");
    assert_eq!(
        upload_all(&mut d, retry - 1),
        (None, vec![]),
        "not before the back-off"
    );
    assert_eq!(upload_all(&mut d, retry), (None, vec![(42, 2)]));
    assert_eq!(get(&d, |c| &c.resent), 2);
    assert_eq!(d.retry_at, None);
}

#[test]
fn going_offline_closes_the_session_and_what_is_measured_meanwhile_is_a_backlog() {
    let mut p = plan();
    p.offline = Some((5 * S, 8 * S));
    let mut d = driver_with(config(), p);
    connect(&mut d, 0);
    d.take_actions();
    for t in 0..5 {
        upload_all(&mut d, t * S);
    }
    d.on_live_ack(&ack(42, 4), 4 * S);
    assert_eq!(d.take_actions(), [Action::Announce("connected and acked")]);
    // 46 (measured at 4 s) is not acked when the phone goes offline.
    assert_eq!(d.begin_tick(5 * S), None);
    assert_eq!(d.take_actions(), [Action::Drop(Close::Offline)]);
    assert_eq!(get(&d, |c| &c.offline_periods), 1);
    assert_eq!(
        get(&d, |c| &c.conn_lost),
        0,
        "offline on purpose is not a loss"
    );
    assert_eq!(d.upload(7 * S), None, "no session, no upload");
    assert_eq!(d.q.unsettled(), 4);
    assert!(d.q.newest_fresh().is_some());
    // No reconnect, no giving up while offline; back online at 8 s.
    assert_eq!(d.begin_tick(7 * S), None);
    assert_eq!(d.next_wake(7 * S), 8 * S);
    assert_eq!(d.begin_tick(8 * S), Some(ATTEMPT_MS));
    d.connected(8 * S, 8 * S, 45, 100);
    assert_eq!(upload_all(&mut d, 8 * S), (Some(50), vec![(46, 4)]));
    d.on_session_ack(&ack(46, 4), 8 * S + 20 * MS);
    d.on_live_ack(&ack(50, 1), 8 * S + 20 * MS);
    // The backlog (46 to 49) is measured by its age, apart from the live latency (42 to 45,
    // and 50, measured back online).
    let (all, _, backlog, _) = d.run.lat.summaries();
    assert_eq!((all.count, backlog.count), (5, 4));
    assert!(
        backlog.max_us >= 4 * S,
        "46 was measured at 4 s: {}",
        backlog.max_us
    );
    // The period is over: it does not come back.
    assert_eq!(d.plan.offline, None);
}

#[test]
fn an_offline_period_while_still_logging_in_is_skipped() {
    let mut p = plan();
    p.offline = Some((S, 3 * S));
    let mut d = driver_with(config(), p);
    d.begin_tick(0);
    d.connect_failed(0, 0, ConnectFailure::Failed);
    d.begin_tick(S);
    assert_eq!(d.plan.offline, None);
    assert!(!d.offline_now);
    assert_eq!(get(&d, |c| &c.offline_periods), 0);
}

#[test]
fn window_marks_and_the_network_switch_are_asked_for_once() {
    let mut p = plan();
    p.migrate_at = Some(2_500 * MS);
    let mut d = driver_with(config(), p);
    connect(&mut d, 0);
    d.take_actions();
    upload_all(&mut d, 2 * S);
    // Before the next fix (3 s) and the live timeout (5 s).
    assert_eq!(d.next_wake(2 * S), 2_500 * MS);
    d.begin_tick(2_500 * MS);
    assert_eq!(d.take_actions(), [Action::Migrate { at: 2_500 * MS }]);
    d.begin_tick(4 * S);
    assert!(d.take_actions().is_empty());
    assert_eq!(d.next_wake(2_500 * MS), 3 * S);
    d.begin_tick(61 * S);
    let both = [
        Action::MarkWire { end: false },
        Action::MarkWire { end: true },
    ];
    assert_eq!(d.take_actions(), both);
    d.begin_tick(62 * S);
    assert!(d.take_actions().is_empty());
}

#[test]
fn after_the_end_the_driver_stops_once_settled_or_drained() {
    let mut cfg = config();
    cfg.duration = Duration::from_secs(2);
    let mut d = driver_with(cfg.clone(), plan());
    // Ends at 3 s; its window is [1.5 s, 2.9 s).
    connect(&mut d, S);
    upload_all(&mut d, S);
    upload_all(&mut d, 2 * S);
    d.begin_tick(3 * S);
    d.upload(3 * S);
    assert_eq!(get(&d, |c| &c.sent), 2, "no fix is due at the end");
    d.end_tick(3 * S);
    assert!(!d.done(), "two fixes are unsettled");
    d.on_live_ack(&ack(42, 2), 3 * S);
    d.end_tick(3 * S);
    assert!(d.done());

    // Unsettled: stops when the drain time (10 s) is over.
    let mut d = driver_with(cfg, plan());
    connect(&mut d, S);
    upload_all(&mut d, S);
    d.begin_tick(3 * S);
    d.end_tick(13 * S - 1);
    assert!(!d.done());
    d.end_tick(13 * S);
    assert!(d.done());
    d.take_actions();
    d.finish();
    assert_eq!(d.take_actions(), [Action::Drop(Close::Done)]);
    assert_eq!(get(&d, |c| &c.unsettled), 1);
    assert_eq!(get(&d, |c| &c.drivers_done), 1);
    assert_eq!(get(&d, |c| &c.connected), 0);
}

#[test]
fn batches_follow_the_gateways_limit() {
    let mut cfg = config();
    cfg.live = false;
    cfg.batch = 5;
    let mut d = driver_with(cfg, plan());
    d.begin_tick(0);
    d.connected(0, 0, 0, 2);
    assert_eq!(
        upload_all(&mut d, 4 * S),
        (None, vec![(1, 2), (3, 2), (5, 1)])
    );
}
