//! The crash test: the real `milepost` binary is killed with SIGKILL in the middle of a stream
//! of fixes, restarted on the same data directory, and every fix that was acked before the kill
//! must be there, none twice, also after the client resends everything.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;

use milepost::auth::Role;
use milepost::client::{ClientEndpoint, Session};
use milepost::store::LogReader;
use milepost_core::store::{BatchEntry, LogRecord};
use milepost_proto::{Seq, ServerMsg};

/// Starts `milepost serve` on 127.0.0.1:0 with frequent snapshots, so that recovery after
/// the kill is "newest snapshot + log tail".
fn spawn_gateway(dir: &Path) -> (Child, SocketAddr) {
    let config = dir.join("milepost.toml");
    std::fs::write(
        &config,
        "[log]\nsnapshot_every_records = 37\nsnapshot_log_ratio = 0\n",
    )
    .unwrap();
    let config = config.to_string_lossy().to_string();
    common::spawn_binary(dir, "127.0.0.1:0", &["--config", &config])
}

async fn session(ep: &ClientEndpoint, addr: SocketAddr) -> Session {
    let conn = ep.connect(addr, "localhost").await.unwrap();
    Session::open(
        conn,
        &common::token(Role::Driver, "D1", "north"),
        "D1",
        Default::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_acked_fix_and_stores_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_gateway(dir.path());
    let ca = dir.path().join("certs/ca.pem");
    let ep = ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &ca).unwrap();
    let mut s = session(&ep, addr).await;

    // Pipeline batches of 10 fixes; kill the gateway once 200 batches are acked, while many
    // more are in flight.
    let batch = 10u64;
    let total_batches = 2_000u64;
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut sent_batches = 0u64;
    let mut in_flight = 0u64;
    let base = common::now_ms() - 3_600_000;
    let fix_of = |seq: u64| common::fix(0, (seq % 3) as i32).with_time(base + seq as i64 * 1_000);
    let mut killed = false;
    while !killed {
        while in_flight < 32 && sent_batches < total_batches {
            let first = sent_batches * batch + 1;
            let fixes = (first..first + batch).map(fix_of).collect();
            if s.send_batch(Seq(first), fixes).await.is_err() {
                break;
            }
            sent_batches += 1;
            in_flight += 1;
        }
        match s.recv().await {
            Ok(ServerMsg::Ack(a)) => {
                assert!(a.rejected.is_empty());
                acked.extend(a.first_seq.0..a.first_seq.0 + a.count as u64);
                in_flight -= 1;
                if acked.len() as u64 >= 200 * batch {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    killed = true;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let sent_upto = sent_batches * batch;
    let snapshots = milepost::store::snapshot::list(&dir.path().join("snapshots")).unwrap();
    assert!(
        !snapshots.is_empty(),
        "snapshots were taken before the kill"
    );
    assert!(
        sent_upto > acked.len() as u64,
        "the kill happened with fixes in flight"
    );

    // Restart on the same directory; the phone reconnects and resends everything it sent.
    let (mut child, addr) = spawn_gateway(dir.path());
    let mut s = session(&ep, addr).await;
    let watermark = s.welcome.watermark.0;
    assert!(
        watermark >= *acked.iter().next_back().unwrap(),
        "watermark {watermark} below acked"
    );
    let mut duplicates = 0;
    for first in (1..=sent_upto).step_by(100) {
        let fixes = (first..(first + 100).min(sent_upto + 1))
            .map(fix_of)
            .collect();
        let ack = s.batch(Seq(first), fixes).await.unwrap();
        duplicates += ack.duplicates as u64;
        assert!(
            ack.rejected.is_empty(),
            "{:?}",
            &ack.rejected[..ack.rejected.len().min(3)]
        );
    }
    assert_eq!(
        duplicates,
        watermark.min(sent_upto),
        "everything stored before is acked as a resend"
    );
    s.close();
    child.kill().unwrap();
    child.wait().unwrap();

    // Read the log: every acked seq is there, and no seq is there twice.
    let mut count: HashMap<u64, u32> = HashMap::new();
    LogReader::new(&dir.path().join("log"))
        .replay(|_, rec| {
            if let LogRecord::Batch { entries, .. } = rec {
                for e in entries {
                    if let BatchEntry::Accepted { seq, .. } = e {
                        *count.entry(seq.0).or_default() += 1;
                    }
                }
            }
        })
        .unwrap();
    for seq in &acked {
        assert_eq!(count.get(seq), Some(&1), "acked seq {seq}");
    }
    assert!(count.values().all(|&c| c == 1), "a seq was stored twice");
    assert_eq!(
        count.len() as u64,
        sent_upto,
        "after the resend every sent fix is stored"
    );
}
