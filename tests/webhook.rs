//! Webhooks: milestones reach a notifier as signed JSON, in order, retried after failures,
//! and a restart neither loses nor repeats what was delivered.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::now_ms;
use milepost_proto::{CommandKind, Fix, Seq};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct Received {
    /// (offset, signature ok, body)
    posts: Vec<(u64, bool, String)>,
    /// Requests to fail before answering 200.
    fail_first: usize,
    seen: usize,
}

/// The number in the header line starting with `name` (lower case, with the colon); 0 when
/// there is none or it is not a number.
fn header_number<N: std::str::FromStr + Default>(head: &str, name: &str) -> N {
    head.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .map(|v| v.trim().parse().unwrap_or_default())
        })
        .unwrap_or_default()
}

/// A minimal HTTP/1.1 receiver on 127.0.0.1:0.
async fn receiver(rx: Arc<Mutex<Received>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = text[..head_end].to_lowercase();
                    let len: usize = header_number(&head, "content-length:");
                    if buf.len() < head_end + 4 + len {
                        continue;
                    }
                    let body =
                        String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]).to_string();
                    let sig = head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-milepost-signature:"))
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    let ok_sig = sig
                        == milepost::feed::webhook::signature(
                            common::SECRET.as_bytes(),
                            body.as_bytes(),
                        );
                    let offset: u64 = header_number(&head, "x-milepost-offset:");
                    let status = {
                        let mut r = rx.lock().unwrap();
                        r.seen += 1;
                        if r.seen <= r.fail_first {
                            "500 Internal Server Error"
                        } else {
                            r.posts.push((offset, ok_sig, body));
                            "200 OK"
                        }
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    return;
                }
            });
        }
    });
    format!("http://{addr}/hook")
}

/// The test configuration sends webhooks to `url`.
fn hooks(c: &mut milepost::config::Config, url: &str) {
    c.feed.webhooks = vec![url.to_string()];
}

async fn wait_for(rx: &Arc<Mutex<Received>>, n: usize) {
    for _ in 0..200 {
        if rx.lock().unwrap().posts.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("only {} deliveries", rx.lock().unwrap().posts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milestones_are_signed_retried_ordered_and_survive_restart() {
    let rx = Arc::new(Mutex::new(Received {
        fail_first: 2,
        ..Default::default()
    }));
    let url = receiver(rx.clone()).await;
    let t = common::start_with(|c| hooks(c, &url)).await;
    let route = common::example_route_as_written();
    let mut dispatch = t.dispatcher("north").await;
    dispatch
        .command(1, CommandKind::AssignRoute(route.clone()))
        .await
        .unwrap();
    // The driver leaves the depot: every parcel goes out for delivery (4 milestones at least).
    let depot_pt = route.start.unwrap();
    let mut d = t.driver("D1", "north").await;
    let t0 = now_ms() - 600_000;
    let fixes: Vec<Fix> = (0..20)
        .map(|i| {
            Fix::from_degrees(
                t0 + i * 5_000,
                depot_pt.lat + i as f64 * 0.0002,
                depot_pt.lon,
                5.0,
            )
        })
        .collect();
    d.batch(Seq(1), fixes).await.unwrap();
    wait_for(&rx, 4).await;
    let first: Vec<(u64, bool)> = rx
        .lock()
        .unwrap()
        .posts
        .iter()
        .map(|p| (p.0, p.1))
        .collect();
    assert!(first.iter().all(|p| p.1), "every delivery is signed");
    for w in first.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "in order, none skipped: {first:?}");
    }
    let body = rx.lock().unwrap().posts[0].2.clone();
    assert!(
        body.contains("\"tracking\"") && body.contains("OutForDelivery"),
        "{body}"
    );
    let delivered = first.len();
    let failures =
        t.gw.shared()
            .webhook_stats
            .get()
            .unwrap()
            .failures
            .load(std::sync::atomic::Ordering::Relaxed);
    assert!(failures >= 2, "the two failures were retried");

    // Restart: the cursor was saved, so nothing delivered is sent again; new milestones flow.
    d.close();
    dispatch.close();
    let t = t.restart_with(|c| hooks(c, &url)).await;
    let mut d = t.driver("D1", "north").await;
    common::report(
        &mut d,
        2,
        "S1",
        Some("MP100000001"),
        common::delivered("aa"),
    )
    .await
    .unwrap();
    wait_for(&rx, delivered + 1).await;
    for _ in 0..100 {
        if rx
            .lock()
            .unwrap()
            .posts
            .iter()
            .any(|p| p.2.contains("Delivered"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all: Vec<u64> = rx.lock().unwrap().posts.iter().map(|p| p.0).collect();
    for w in all.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "no repeat and no gap across the restart: {all:?}"
        );
    }
    assert!(rx
        .lock()
        .unwrap()
        .posts
        .iter()
        .any(|p| p.2.contains("Delivered")));
}
