//! The gateway under emulated mobile networks: the load generator's user-space relay
//! (`milepost::replay::sim`, `--network`) with a fixed seed between simulated phones and an
//! in-process gateway on loopback. Every fix must be settled and stored exactly once whatever
//! the network does: burst loss, delay and reordering, NAT rebinding in the middle of batches,
//! a dead zone longer than the idle timeout, an app suspended for longer than it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::TestGateway;
use milepost::replay::metrics::ReplayReport;
use milepost::replay::sim::{replay, NetParams, ReplayConfig};
use milepost_core::store::BatchEntry;
use milepost_proto::DriverId;

/// One replay at a time: each is a few thousand packets a second through the relays, and the
/// machine has two cores. (Run side by side, the 3g-poor test once ended with one fix unsettled
/// after its 30 s drain on a live connection: a load generator or gateway bug under CPU
/// starvation, not found yet; see docs/NETWORK.md, "Known problems".)
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(t: &TestGateway, drivers: u32, per_s: f64, secs: u64, net: NetParams) -> ReplayConfig {
    let mut cfg = common::replay_config(t.gw.local_addr, t.ca.clone(), per_s);
    cfg.drivers = drivers;
    cfg.duration = Duration::from_secs(secs);
    cfg.ramp = Duration::from_millis(500);
    cfg.warmup = Duration::from_millis(200);
    cfg.drain = Duration::from_secs(15);
    cfg.seed = 26;
    cfg.net = Some(net);
    cfg
}

/// Every fix the replay sent is in the gateway once: its counters agree with the replay's, and
/// every driver's seqs are settled without a gap.
async fn assert_stored_once(t: &TestGateway, r: &ReplayReport) {
    assert_eq!(r.drivers_failed, 0, "{r:?}");
    assert_eq!(r.unsettled, 0, "every fix settled: {r:?}");
    assert_eq!(r.rejected, 0, "the synthetic traces are plausible");
    assert_eq!(r.acked, r.sent);
    let shared = t.gw.shared();
    let watermarks: u64 = (1..=r.drivers)
        .map(|i| shared.ledger.watermark(&DriverId(format!("sim-{i:05}"))).0)
        .sum();
    assert_eq!(watermarks, r.sent, "every seq settled, none skipped");
    // The counters of sessions that ended before their batches were durable are added by a
    // task of their own: give them a moment.
    for _ in 0..50 {
        if shared.stats.fixes_accepted.load(Ordering::Relaxed) == r.acked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shared.stats.fixes_accepted.load(Ordering::Relaxed), r.acked);
}

/// Every accepted fix in the log, per driver: seq -> how many times stored; and whether each
/// driver's multi-fix batches came oldest first.
fn stored(dir: &std::path::Path) -> (BTreeMap<String, BTreeMap<u64, u32>>, bool) {
    let mut seen: BTreeMap<String, BTreeMap<u64, u32>> = BTreeMap::new();
    let mut last_batch: BTreeMap<String, u64> = BTreeMap::new();
    let mut in_order = true;
    for (driver, entries) in common::batches_in_log(dir) {
        let first = entries.first().map(|e| e.seq().0);
        if entries.len() > 1 {
            let prev = last_batch.insert(driver.0.clone(), first.unwrap_or(0));
            in_order &= prev.is_none_or(|p| p < first.unwrap_or(0));
        }
        let m = seen.entry(driver.0).or_default();
        for e in entries {
            if let BatchEntry::Accepted { seq, .. } = e {
                *m.entry(seq.0).or_default() += 1;
            }
        }
    }
    (seen, in_order)
}

/// The log of `dir` holds every driver's fixes once each, without a gap, its backlogs
/// uploaded oldest first.
fn assert_complete_in_order_once(dir: &std::path::Path) {
    let (seen, in_order) = stored(dir);
    assert!(in_order, "every backlog was uploaded oldest first");
    let expected: BTreeSet<u64> = seen.values().flat_map(|m| m.keys().copied()).collect();
    assert!(!expected.is_empty());
    for (driver, m) in &seen {
        assert!(m.values().all(|&n| n == 1), "{driver} stored a fix twice");
        let max = m.keys().next_back().copied().unwrap_or(0);
        assert_eq!(m.len() as u64, max, "{driver}: a gap in what was stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_slow_network_still_settles_every_fix_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = common::start().await;
    let net = NetParams::profile("3g-poor").unwrap();
    let cfg = config(&t, 20, 5.0, 8, net);
    let r = replay(
        cfg,
        vec![
            common::north_trace("a", -77.03),
            common::north_trace("b", -77.0),
        ],
    )
    .await
    .unwrap();
    eprintln!("{}", r.table());
    let n = r.net.as_ref().expect("a network report");
    assert!(
        n.up.lost > 0 && n.down.lost > 0,
        "the profile loses packets"
    );
    assert!(
        (0.02..0.10).contains(&n.up.loss),
        "realised loss near 5 %: {}",
        n.up.loss
    );
    assert!(n.rtt_p50_us > 200_000, "a 300 ms network: {}", n.rtt_p50_us);
    assert!(r.resent > 0 || r.duplicates > 0 || n.up.lost > 0);
    assert_stored_once(&t, &r).await;
    let dir = t.stop().await;
    let (seen, _) = stored(dir.path());
    let twice: Vec<_> = seen
        .iter()
        .flat_map(|(d, m)| m.iter().filter(|(_, &n)| n > 1).map(move |(s, _)| (d, s)))
        .collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_rebindings_in_the_middle_of_batches_lose_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = common::start().await;
    let mut net = NetParams::profile("lte-urban").unwrap();
    // A new public port every 700 ms on average, while batches of 10 are on their way.
    net.rebind_every = Some(Duration::from_millis(700));
    let mut cfg = config(&t, 10, 10.0, 6, net);
    cfg.batch = 10;
    cfg.live = false;
    let r = replay(cfg, vec![common::north_trace("a", -77.03)])
        .await
        .unwrap();
    eprintln!("{}", r.table());
    let n = r.net.as_ref().expect("a network report");
    assert!(n.rebinds >= 20, "rebinds: {}", n.rebinds);
    // QUIC migrates: a new address keeps the connection.
    assert_eq!(r.conn_lost, 0, "{r:?}");
    assert_stored_once(&t, &r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_zones_and_suspensions_longer_than_the_idle_timeout_lose_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = common::start().await;
    let mut net = NetParams::profile("lte-good").unwrap();
    // 35 s outages (longer than the 30 s idle timeout): 175 fixes of backlog each at 5 fixes/s.
    net.dead_every = Some(Duration::from_secs(30));
    net.dead_for = (Duration::from_secs(35), Duration::from_secs(35));
    net.suspend_every = Some(Duration::from_secs(30));
    net.suspend_for = (Duration::from_secs(35), Duration::from_secs(35));
    let cfg = config(&t, 6, 5.0, 45, net);
    let r = replay(
        cfg,
        vec![
            common::north_trace("a", -77.03),
            common::north_trace("b", -77.0),
        ],
    )
    .await
    .unwrap();
    eprintln!("{}", r.table());
    let n = r.net.as_ref().expect("a network report");
    assert!(n.dead_zones >= 1 && n.suspensions >= 1, "{n:?}");
    assert!(
        r.conn_timed_out >= 1,
        "an outage outlived the idle timeout: {r:?}"
    );
    assert!(r.reconnects >= 1);
    assert!(r.backlog_age.count > 0 || r.latency.max_us > 30_000_000);
    assert_stored_once(&t, &r).await;
    let dir = t.stop().await;
    assert_complete_in_order_once(dir.path());
}

/// The check at full length: a 3-minute dead zone (900 fixes of backlog at 5 fixes/s)
/// arrives complete, in order and once. About 3.5 minutes: not in the default run;
/// `cargo test --test network -- --ignored` runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "3.5 minutes; run with --ignored"]
async fn a_three_minute_dead_zone_delivers_its_backlog_complete_in_order_and_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = common::start().await;
    let mut net = NetParams::profile("lte-good").unwrap();
    // One zone a couple of seconds in, lasting past the end of the run's measuring (no second
    // one can start), then the drain.
    net.dead_every = Some(Duration::from_secs(2));
    net.dead_for = (Duration::from_secs(180), Duration::from_secs(180));
    let cfg = config(&t, 2, 5.0, 181, net);
    let r = replay(cfg, vec![common::north_trace("a", -77.03)])
        .await
        .unwrap();
    eprintln!("{}", r.table());
    let n = r.net.as_ref().expect("a network report");
    assert!(n.dead_zones >= 2, "every driver went through one: {n:?}");
    // A zone that began before a driver's first connection shows as failed connection
    // attempts rather than a timed-out connection.
    assert!(r.conn_timed_out >= 1 && r.connect_errors >= 1, "{r:?}");
    assert!(r.backlog_age.count >= 1_000 || r.latency.max_us > 170_000_000);
    assert_stored_once(&t, &r).await;
    let dir = t.stop().await;
    assert_complete_in_order_once(dir.path());
}
