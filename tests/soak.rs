//! The soak test: an hour-long day compressed into minutes, with hostile traffic mixed into
//! real load, against the real (release) binary. `#[ignore]`d: run it with `benches/soak.sh`
//! (`SOAK_SECS`, `SOAK_DRIVERS` to size it).
//!
//! While simulated drivers stream fixes (batches and live datagrams, offline periods with
//! backlog uploads, network switches), a second task keeps sending malformed and hostile
//! traffic: garbage frames, oversized frames, truncated frames, forged and expired tokens,
//! bad datagrams, bad fixes. Half-way the gateway is killed with SIGKILL and restarted on the
//! same port and data directory. At the end: every fix the drivers had acked is in the log
//! exactly once, nothing is left unsettled, the gateway never fell over on its own, and its
//! memory stayed flat.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use milepost::auth::{Role, TokenKey};
use milepost::client::{ClientEndpoint, Session};
use milepost::replay::sim::{replay, Pace, ReplayConfig};
use milepost::replay::trace::{Trace, TracePoint};
use milepost::store::LogReader;
use milepost_core::store::{BatchEntry, LogRecord};
use milepost_proto::{ClientDatagram, Fix, Seq};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spawn(dir: &Path, listen: &str) -> (Child, SocketAddr) {
    common::spawn_binary(dir, listen, &[])
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A synthetic city drive: 10 m/s along a diagonal, one point a second for an hour.
fn trace(i: usize) -> Trace {
    let points = (0..3600)
        .map(|k| {
            let mut p = TracePoint::new(
                1_700_000_000_000 + k * 1000,
                38.85 + k as f64 * 6e-5,
                -77.1 + i as f64 * 0.01 + k as f64 * 6e-5,
            );
            p.accuracy_m = Some(6.0);
            p
        })
        .collect();
    Trace::new(format!("t{i}"), points)
}

/// Hostile traffic until `stop`; returns how many hostile actions were sent.
async fn hostile(
    addr: Arc<std::sync::Mutex<SocketAddr>>,
    ca: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let ep = ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &ca).unwrap();
    let secret = common::SECRET.as_bytes();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let server = *addr.lock().unwrap();
        let Ok(conn) = ep.connect(server, "localhost").await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let now = common::now_s();
        let evil = format!("evil-{}", i % 7);
        let tok = common::mint(secret, Role::Driver, &evil, "soak", now + 3600, now);
        let open = || Session::open(conn.clone(), &tok, &evil, Default::default());
        match i % 7 {
            // Garbage frame, oversized frame, truncated frame after a valid Hello.
            0..=2 => {
                if let Ok(s) = open().await {
                    if let Ok((mut send, _r)) = s.conn.open_bi().await {
                        let bytes: Vec<u8> = match i % 3 {
                            0 => vec![
                                9, 0, 0, 0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7,
                            ],
                            1 => vec![0xff, 0xff, 0xff, 0x7f],
                            _ => vec![200, 0, 0, 0, 1, 2, 3],
                        };
                        let _ = send.write_all(&bytes).await;
                        let _ = send.finish();
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(500), s.conn.closed()).await;
                }
            }
            // Forged token.
            3 => {
                let attacker = b"an attacker's secret, not ours!!";
                let forged =
                    common::mint(attacker, Role::Dispatcher, "soak", "soak", now + 60, now);
                let _ = Session::open(conn.clone(), &forged, "soak", Default::default()).await;
            }
            // Garbage datagrams, then a valid one with a bad fix.
            4 => {
                if let Ok(s) = open().await {
                    let _ = s.conn.send_datagram(vec![0xee; 40].into());
                    let bad = ClientDatagram::LiveFix {
                        seq: Seq(1),
                        fix: Fix::new(common::now_ms(), 0, 0, 5.0),
                    };
                    let _ = s
                        .conn
                        .send_datagram(milepost_proto::encode(&bad).unwrap().into());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            // Bad fixes in a batch, and an out-of-window seq.
            5 => {
                if let Ok(mut s) = Session::open(
                    conn.clone(),
                    &tok,
                    &format!("evil-{}", i % 7),
                    Default::default(),
                )
                .await
                {
                    let base = s.welcome.watermark.0 + 1;
                    let mut f = Fix::new(
                        common::now_ms() + 3_600_000,
                        389_000_000,
                        -770_000_000,
                        -3.0,
                    );
                    f.speed_mps = Some(f32::NAN);
                    let _ = s.batch(Seq(base), vec![f, Fix::new(0, 0, 0, 1.0)]).await;
                    let _ = s.batch(Seq(u64::MAX - 3), vec![f]).await;
                    s.close();
                }
            }
            // A client that never says Hello (held until the Hello timeout).
            _ => {
                let _ = conn.open_bi().await;
            }
        }
        conn.close(0u32.into(), b"");
        sent.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak test: run with benches/soak.sh"]
async fn soak_hostile_traffic_restart_no_loss_flat_memory() {
    let secs = env("SOAK_SECS", 120);
    let drivers = env("SOAK_DRIVERS", 300) as u32;
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn(dir.path(), "127.0.0.1:0");
    let child = Arc::new(std::sync::Mutex::new(child));
    let ca = dir.path().join("certs/ca.pem");
    let shared_addr = Arc::new(std::sync::Mutex::new(addr));
    let stop = Arc::new(AtomicBool::new(false));
    let hostile_sent = Arc::new(AtomicU64::new(0));
    let h = tokio::spawn(hostile(
        shared_addr.clone(),
        ca.clone(),
        stop.clone(),
        hostile_sent.clone(),
    ));

    // Memory samples and the mid-run kill -9.
    let started = Instant::now();
    let sampler = {
        let (child, stop, dir) = (child.clone(), stop.clone(), dir.path().to_owned());
        tokio::spawn(async move {
            let mut samples: Vec<(f64, u64)> = Vec::new();
            let mut restarted = false;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let t = started.elapsed().as_secs_f64();
                let pid = child.lock().unwrap().id();
                if let Some(kib) = rss_kib(pid) {
                    samples.push((t, kib));
                }
                if !restarted && t > secs as f64 / 2.0 {
                    restarted = true;
                    let mut c = child.lock().unwrap();
                    c.kill().unwrap();
                    c.wait().unwrap();
                    let (next, _) = spawn(&dir, &addr.to_string());
                    *c = next;
                    eprintln!("soak: gateway killed with SIGKILL and restarted at {t:.0} s");
                    samples.clear(); // memory is judged on the second life only
                }
            }
            samples
        })
    };

    let mut cfg = ReplayConfig::new(addr, ca.clone(), TokenKey::new(common::SECRET.as_bytes()));
    cfg.drivers = drivers;
    cfg.depot = "soak".into();
    cfg.pace = Pace::Rate {
        per_s: 2.0,
        speedup: 1.0,
    };
    cfg.duration = Duration::from_secs(secs);
    cfg.batch = 5;
    cfg.offline_prob = 0.3;
    cfg.offline = Duration::from_secs(20);
    cfg.migrate_prob = 0.3;
    cfg.reconnect_for = Duration::from_secs(120);
    cfg.bind = "127.0.0.1".parse().unwrap();
    let traces = (0..20).map(trace).collect();
    let report = replay(cfg, traces).await.expect("the load ran");
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    h.await.unwrap();
    let mut c = child.lock().unwrap();
    let still_up = c.try_wait().unwrap().is_none();
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let _ = c.wait();
    println!("{}", report.table());
    println!("hostile actions: {}", hostile_sent.load(Ordering::Relaxed));
    assert!(still_up, "the gateway did not fall over on its own");

    // Every acked fix is in the log once; nothing left unsettled.
    let mut count: HashMap<(String, u64), u32> = HashMap::new();
    LogReader::new(&dir.path().join("log"))
        .replay(|_, rec| {
            if let LogRecord::Batch {
                driver, entries, ..
            } = rec
            {
                if driver.0.starts_with("evil") {
                    return;
                }
                for e in entries {
                    if let BatchEntry::Accepted { seq, .. } = e {
                        *count.entry((driver.0.clone(), seq.0)).or_default() += 1;
                    }
                }
            }
        })
        .unwrap();
    assert!(count.values().all(|&c| c == 1), "a fix was stored twice");
    assert_eq!(report.unsettled, 0, "fixes left unsettled");
    assert_eq!(
        count.len() as u64,
        report.acked,
        "every acked fix is in the log, nothing else"
    );

    // Memory flat: after its warm-up (the first half of the second life), the gateway's RSS
    // stays within 25% of where it was.
    let n = samples.len();
    assert!(n >= 8, "enough memory samples ({n})");
    let mid = samples[n / 2..3 * n / 4].iter().map(|s| s.1).max().unwrap();
    let tail = samples[3 * n / 4..].iter().map(|s| s.1).max().unwrap();
    let series: Vec<u64> = samples
        .iter()
        .step_by((n / 10).max(1))
        .map(|s| s.1 / 1024)
        .collect();
    println!("gateway RSS over the second life (MiB): {series:?}; 3rd quarter max {mid} KiB, 4th {tail} KiB");
    assert!(
        tail as f64 <= mid as f64 * 1.25,
        "RSS grew from {mid} to {tail} KiB"
    );
}
