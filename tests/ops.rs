//! Operations: the admin listener's metrics, health and readiness; graceful shutdown of the
//! real binary on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fix, start};
use milepost_proto::Seq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let status = body
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body)
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let t = start().await;
    let admin = t.gw.admin_addr.unwrap();
    assert_eq!(http_get(admin, "/healthz").await.0, 200);
    assert_eq!(http_get(admin, "/readyz").await.0, 200);
    let mut d = t.driver("D1", "north").await;
    let mut null = fix(1_000, 0);
    null.lat_e7 = 0;
    null.lon_e7 = 0;
    d.batch(Seq(1), vec![fix(2_000, 0), null]).await.unwrap();
    let (status, body) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "milepost_fixes_accepted_total 1",
        "milepost_fixes_rejected_total{reason=\"null_island\"} 1",
        "milepost_rtree_drivers 1",
        "milepost_connections_live 1",
        "milepost_ack_latency_seconds_count 1",
        "milepost_ready 1",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    assert!(body.contains("milepost_log_fsync_seconds_count"));
}

#[test]
fn sigterm_shuts_down_cleanly_and_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_milepost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("MILEPOST_SECRET", common::SECRET)
        .env("MILEPOST_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "milepost=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines.next().expect("gateway log").unwrap();
        if line.contains("addr=") {
            break;
        }
    }
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn tls_sessions_resume_across_a_restart() {
    let t = common::start().await;
    let ep = t.endpoint();
    // First contact: a full handshake, which leaves a session ticket with the phone.
    let conn = ep.connect(t.gw.local_addr, "localhost").await.unwrap();
    let tok = common::token(milepost::auth::Role::Driver, "D1", "north");
    let mut s = milepost::client::Session::open(conn, &tok, "D1", Default::default())
        .await
        .unwrap();
    s.batch(Seq(1), vec![fix(2_000, 0)]).await.unwrap();
    s.close();
    let common::TestGateway { gw, dir, .. } = t;
    gw.shutdown().await;
    // The restarted gateway still opens that ticket: the ticket key persisted.
    let gw = milepost::server::Gateway::start(common::config(dir.path()))
        .await
        .unwrap();
    let conn = ep.connect(gw.local_addr, "localhost").await.unwrap();
    let mut s = milepost::client::Session::open(conn, &tok, "D1", Default::default())
        .await
        .unwrap();
    assert_eq!(
        s.batch(Seq(2), vec![fix(1_000, 0)])
            .await
            .unwrap()
            .watermark,
        Seq(2)
    );
    let resumed = gw
        .shared()
        .tickets
        .resumed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(resumed >= 1, "the session was resumed from the ticket");
    s.close();
    gw.shutdown().await;
}
