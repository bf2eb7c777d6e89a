//! End-to-end tests of the load generator (`milepost::replay::sim::replay`) against an
//! in-process gateway on 127.0.0.1:0: simulated drivers with offline periods, network switches
//! and a gateway restart, and the gateway's own count of what it stored.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TestGateway, SECRET};
use milepost::auth::TokenKey;
use milepost::replay::sim::{replay, Pace, ReplayConfig};
use milepost::replay::trace::{Trace, TracePoint};
use milepost_proto::DriverId;

/// A synthetic drive: 10 m/s due north near Washington DC, one point a second for 10 minutes.
fn trace(id: &str, lon: f64) -> Trace {
    let points = (0..600)
        .map(|i| {
            let mut p = TracePoint::new(1_700_000_000_000 + i * 1000, 38.9 + i as f64 * 9e-5, lon);
            p.accuracy_m = Some(5.0);
            p.speed_mps = Some(10.0);
            p
        })
        .collect();
    Trace::new(id, points)
}

fn replay_config(t: &TestGateway) -> ReplayConfig {
    let ca = t.ca.clone();
    let mut cfg = ReplayConfig::new(t.gw.local_addr, ca, TokenKey::new(SECRET.as_bytes()));
    cfg.bind = "127.0.0.1".parse().expect("an IP");
    cfg.pace = Pace::Rate {
        per_s: 10.0,
        speedup: 1.0,
    };
    cfg.ramp = Duration::from_millis(500);
    cfg.warmup = Duration::from_millis(200);
    cfg.drain = Duration::from_secs(10);
    cfg.reconnect_for = Duration::from_secs(20);
    // Five drivers per socket, so migrating drivers (own sockets) and shared ones both occur.
    cfg.per_endpoint = 5;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_with_offline_periods_and_migrations_store_every_fix_once() {
    let t = common::start().await;
    let gw = &t.gw;
    let mut cfg = replay_config(&t);
    cfg.drivers = 20;
    cfg.duration = Duration::from_secs(4);
    cfg.offline_prob = 0.2;
    cfg.offline = Duration::from_millis(1500);
    cfg.migrate_prob = 0.2;
    cfg.seed = 7;
    let traces = vec![trace("a", -77.03), trace("b", -77.0)];
    let r = replay(cfg, traces).await.unwrap();
    eprintln!("{}", r.table());

    assert!(r.offline_periods >= 1, "no offline period: {r:?}");
    assert!(r.migrations >= 1, "no migration: {r:?}");
    assert_eq!(r.migration_errors, 0);
    assert_eq!(r.drivers_failed, 0);
    // 20 drivers x 10 fixes/s x at least 4 s.
    assert!(r.sent >= 20 * 10 * 4 - 40, "too few fixes: {}", r.sent);
    assert_eq!(r.unsettled, 0);
    assert_eq!(r.rejected, 0, "the synthetic traces are plausible");
    assert_eq!(r.acked, r.sent - r.rejected);
    // A network switch keeps the connection: only offline periods end sessions.
    assert_eq!(r.conn_lost, 0, "a migration lost its connection: {r:?}");
    assert_eq!(r.reconnects, r.offline_periods);
    assert!(
        r.backlog_age.count > 0,
        "offline fixes were not measured apart"
    );
    assert!(r.latency.count > 0 && r.window.acked > 0);

    let stats = &gw.shared().stats;
    // Every driver's fixes are settled without a gap.
    let mut total = 0;
    for i in 1..=20 {
        let id = DriverId(format!("sim-{i:05}"));
        total += gw.shared().ledger.watermark(&id).0;
    }
    let seen = (
        stats.fixes_accepted.load(Ordering::Relaxed),
        stats.fixes_rejected.load(Ordering::Relaxed),
        stats.fixes_duplicate.load(Ordering::Relaxed),
        total,
    );
    assert_eq!(
        stats.fixes_accepted.load(Ordering::Relaxed),
        r.acked,
        "{seen:?}"
    );
    assert_eq!(stats.fixes_duplicate.load(Ordering::Relaxed), r.duplicates);
    assert_eq!(total, r.sent);
    t.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_reconnect_after_a_gateway_restart_and_resend_what_was_not_acked() {
    let t = common::start().await;
    let addr = t.gw.local_addr;
    let mut cfg = replay_config(&t);
    cfg.drivers = 10;
    cfg.duration = Duration::from_secs(5);
    let run = tokio::spawn(replay(cfg, vec![trace("a", -77.03)]));

    tokio::time::sleep(Duration::from_millis(2000)).await;
    let dir = t.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The same port: the drivers reconnect to where the gateway was.
    let t = common::start_configured(dir, |c| c.listen = addr).await;
    let gw = &t.gw;

    let r = run.await.unwrap().unwrap();
    eprintln!("{}", r.table());
    assert_eq!(r.drivers_failed, 0);
    assert!(r.conn_lost >= 10, "every driver saw the restart: {r:?}");
    assert!(r.reconnects >= 10);
    assert_eq!(r.unsettled, 0);
    assert_eq!(r.acked, r.sent - r.rejected);
    // The restarted gateway recovered what was stored before and took the rest: every fix
    // of every driver is settled, and the recovered ledger counts each seq once.
    let mut total = 0;
    for i in 1..=10 {
        total += gw
            .shared()
            .ledger
            .watermark(&DriverId(format!("sim-{i:05}")))
            .0;
    }
    assert_eq!(total, r.sent);
    t.gw.shutdown().await;
}
