//! Recovery time: how long a gateway takes to serve again after a crash, with 10 million
//! fixes in its log. Not a criterion bench (one measurement takes seconds): it builds the log
//! once, then times `Gateway::start` in two cases and prints the figures.
//!
//! 1. No snapshot: the whole log is replayed (the worst case, e.g. a lost snapshot directory).
//! 2. Snapshot + tail: the clean-shutdown snapshot, then a tail of `snapshot_every_records`
//!    (the default) records written after it, which is the most a `kill -9` can leave.
//!
//! Run: `cargo bench --bench recovery` (env `FIXES` overrides 10,000,000).

use std::sync::Arc;
use std::time::Instant;

use milepost::config::Config;
use milepost::server::Gateway;
use milepost::store::LogConfig;
use milepost::store::LogWriter;
use milepost_core::store::{BatchEntry, LogRecord};
use milepost_proto::{DriverId, Fix, Seq};

const DRIVERS: u64 = 20_000;
const PER_RECORD: u64 = 10;

/// Writes `records` batch records of `PER_RECORD` fixes, round-robin over the drivers, starting
/// at record `first_lsn` and batch number `from`.
fn write(dir: &std::path::Path, first_lsn: u64, from: u64, records: u64, now_ms: i64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = LogConfig {
        fsync: false,
        ..LogConfig::default()
    };
    let w = LogWriter::start(dir, &cfg, first_lsn, None, Default::default(), None).unwrap();
    let h = w.handle();
    rt.block_on(async move {
        let mut pending = Vec::new();
        for r in from..from + records {
            let d = r % DRIVERS;
            let round = r / DRIVERS;
            let base_t = now_ms - 3_600_000 + (round * PER_RECORD) as i64 * 1_000;
            let entries = (0..PER_RECORD)
                .map(|i| {
                    let k = round * PER_RECORD + i;
                    let lat = 38.8 + (d % 200) as f64 * 0.001 + (k % 50) as f64 * 1e-5;
                    let lon = -77.1 + (d / 200) as f64 * 0.001;
                    BatchEntry::Accepted {
                        seq: Seq(k + 1),
                        fix: Fix::from_degrees(base_t + i as i64 * 1_000, lat, lon, 5.0),
                    }
                })
                .collect();
            let rec = Arc::new(LogRecord::Batch {
                driver: DriverId(format!("d{d}")),
                depot: "dc".into(),
                received_ms: now_ms,
                entries,
            });
            let h = h.clone();
            pending.push(tokio::spawn(async move { h.append(rec).await.unwrap() }));
            if pending.len() >= 4096 {
                for p in pending.drain(..) {
                    p.await.unwrap();
                }
            }
        }
        for p in pending {
            p.await.unwrap();
        }
    });
    w.shutdown();
}

fn config(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: false,
        data_dir: dir.to_owned(),
        secret: Some("bench-secret-bench-secret-bench-secret".into()),
        ..Config::default()
    }
}

fn main() {
    let fixes: u64 = std::env::var("FIXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let records = fixes / PER_RECORD;
    let tail = LogConfig::default().snapshot_every_records.min(records);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let now_ms = chrono::Utc::now().timestamp_millis();
    let t = Instant::now();
    write(&log, 0, 0, records - tail, now_ms);
    println!(
        "wrote {} records ({} fixes) in {:.1?}",
        records - tail,
        (records - tail) * PER_RECORD,
        t.elapsed()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Case 1 (partial log, no snapshot yet) is measured after the tail is added, below; first a
    // clean start+shutdown to leave a snapshot covering everything written so far.
    rt.block_on(async {
        let gw = Gateway::start(config(dir.path())).await.unwrap();
        gw.shutdown().await;
    });
    let snaps = milepost::store::snapshot::list(&dir.path().join("snapshots")).unwrap();
    println!("snapshots after the clean shutdown: {snaps:?}");
    write(&log, records - tail, records - tail, tail, now_ms);
    println!(
        "wrote a tail of {tail} records ({} fixes) after the snapshot",
        tail * PER_RECORD
    );

    let t = Instant::now();
    let rec = rt.block_on(async {
        let gw = Gateway::start(config(dir.path())).await.unwrap();
        let r = gw.recovery.clone();
        std::mem::forget(gw); // a crash: no shutdown snapshot
        r
    });
    println!(
        "snapshot + tail: serving after {:.2?} (replayed {} records of {} in the log)",
        t.elapsed(),
        rec.records,
        records
    );

    // Case 2: no snapshot at all.
    let snaps = dir.path().join("snapshots");
    let _ = std::fs::remove_dir_all(&snaps);
    let t = Instant::now();
    let rec = rt.block_on(async {
        let mut cfg = config(dir.path());
        cfg.log.snapshot_every_records = u64::MAX;
        let gw = Gateway::start(cfg).await.unwrap();
        let r = gw.recovery.clone();
        std::mem::forget(gw);
        r
    });
    println!(
        "full replay (no snapshot): serving after {:.2?} ({} records, {} fixes)",
        t.elapsed(),
        rec.records,
        rec.records * PER_RECORD
    );
}
