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
    let dir = t.stop().await;
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

/// The value of `name{class="class"}` in a metrics page.
fn class_metric(body: &str, name: &str, class: &str) -> Option<u64> {
    let prefix = format!("{name}{{class=\"{class}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn feed_lag_per_subscriber_class() {
    use milepost::auth::Role;
    use milepost_proto::FeedTarget;
    // A webhook endpoint that is down (nothing listens on port 9): its outbox falls behind by
    // every milestone.
    let t = common::start_with(|c| {
        c.feed.webhooks = vec!["http://127.0.0.1:9/hook".into()];
        c.web.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let admin = t.gw.admin_addr.unwrap();
    let dispatch = t.assign_route().await;
    // One subscriber of each class.
    let recipient = t.recipient("MP100000001").await;
    let mut parcel = recipient
        .subscribe(FeedTarget::Parcel("MP100000001".into()), None)
        .await
        .unwrap();
    let mut depot = dispatch.subscribe(FeedTarget::Depot, None).await.unwrap();
    let mut area = dispatch
        .subscribe(
            FeedTarget::Area {
                min_lat_e7: 388_000_000,
                min_lon_e7: -771_000_000,
                max_lat_e7: 390_000_000,
                max_lon_e7: -769_000_000,
            },
            None,
        )
        .await
        .unwrap();
    let web = t.gw.web_addr.unwrap();
    let mut sse = tokio::net::TcpStream::connect(web).await.unwrap();
    let tok = common::token(Role::Recipient, "MP100000001", "north");
    sse.write_all(
        format!(
            "GET /t/MP100000001/events?after=0 HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: Bearer {tok}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = [0u8; 12];
    sse.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    for f in [&mut parcel, &mut depot, &mut area] {
        assert!(matches!(
            f.next().await.unwrap(),
            milepost_proto::ServerMsg::FeedSnapshot(_)
        ));
    }
    // The route starts and reaches its first stop: milestones for the parcel.
    let mut d = t.driver("D1", "north").await;
    let mut clock = common::now_ms() - 3_000_000;
    let fixes = common::leg(
        common::route_point(0),
        common::route_point(1),
        &mut clock,
        60,
    );
    let mut seq = 1;
    common::send_in_batches(&mut d, &mut seq, &fixes, 8).await;
    let milestones = t.milestones_last();
    assert!(milestones > 0);
    // The live subscribers get everything (lag 0); the dead webhook is behind by every
    // milestone. The writers run concurrently with this test: look until they have settled.
    let mut body = String::new();
    for _ in 0..200 {
        body = http_get(admin, "/metrics").await.1;
        let settled = ["recipient", "dispatcher_depot", "dispatcher_area", "sse"]
            .iter()
            .all(|c| class_metric(&body, "milepost_feed_lag_events", c) == Some(0))
            && class_metric(&body, "milepost_feed_lag_events", "webhook") == Some(milestones);
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for class in [
        "recipient",
        "dispatcher_depot",
        "dispatcher_area",
        "sse",
        "webhook",
    ] {
        assert_eq!(
            class_metric(&body, "milepost_feed_subscribers", class),
            Some(1),
            "{class} in\n{body}"
        );
        let lag = if class == "webhook" { milestones } else { 0 };
        assert_eq!(
            class_metric(&body, "milepost_feed_lag_events", class),
            Some(lag),
            "{class} in\n{body}"
        );
        assert_eq!(
            class_metric(&body, "milepost_feed_lag_events_max", class),
            Some(lag),
            "{class} in\n{body}"
        );
    }
    // A subscriber that leaves is no longer counted.
    drop(parcel);
    drop(recipient);
    for _ in 0..200 {
        body = http_get(admin, "/metrics").await.1;
        if class_metric(&body, "milepost_feed_subscribers", "recipient") == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        class_metric(&body, "milepost_feed_subscribers", "recipient"),
        Some(0)
    );
}
