//! Fix-to-update latency through the whole pipeline: a driver's fix arrives at the gateway over
//! QUIC, is made durable, folded by the applier (route progress, ETA), and the recipient
//! subscribed to that driver's parcel receives the update on its feed stream. Not a criterion
//! bench: it runs N drivers at 1 Hz for a while, each with a one-stop route and a recipient
//! following that stop's parcel (so every fix yields a recipient-visible position), and prints
//! p50/p99/p999 of (recipient receive time - driver send time).
//!
//! Run: `cargo bench --bench feed_latency` (env `DRIVERS`, default 2000; `SECS`, default 20).
//! Everything runs in one process on this machine: gateway, drivers and recipients share the
//! two cores, so the figure includes the load's own cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use milepost::auth::{Claims, Role, TokenKey};
use milepost::client::{ClientEndpoint, Session};
use milepost::config::Config;
use milepost::server::Gateway;
use milepost_proto::route::{Parcel, Point, Route, Stop};
use milepost_proto::{CommandKind, FeedTarget, Fix, Seq, ServerMsg};
use tokio::sync::Mutex;

const SECRET: &str = "bench-secret-bench-secret-bench-secret";

fn token(role: Role, sub: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    TokenKey::new(SECRET.as_bytes()).mint(&Claims {
        role,
        sub: sub.into(),
        depot: "dc".into(),
        exp: now + 3600,
        iat: now,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Opens a session, retrying a few times (thousands of handshakes land at once).
async fn open(
    ep: &ClientEndpoint,
    addr: std::net::SocketAddr,
    role: Role,
    sub: &str,
) -> Option<Session> {
    for _ in 0..5 {
        if let Ok(conn) = ep.connect(addr, "localhost").await {
            if let Ok(s) = Session::open(conn, &token(role, sub), sub, Default::default()).await {
                return Some(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{sub}: could not connect");
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let drivers: usize = std::env::var("DRIVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let secs: u64 = std::env::var("SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: false,
        data_dir: dir.path().to_owned(),
        secret: Some(SECRET.into()),
        ..Config::default()
    };
    let gw = Gateway::start(cfg).await.unwrap();
    let ca = gw.dev_ca.clone().unwrap();
    let addr = gw.local_addr;
    let ep = ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &ca).unwrap();

    // One route per driver: start at the depot, one stop 3 km north with one parcel.
    let conn = ep.connect(addr, "localhost").await.unwrap();
    let mut dispatch = Session::open(
        conn,
        &token(Role::Dispatcher, "dc"),
        "dc",
        Default::default(),
    )
    .await
    .unwrap();
    for i in 0..drivers {
        let lon = -77.2 + i as f64 * 1e-4;
        let route = Route {
            id: format!("R{i}").as_str().into(),
            depot: "dc".into(),
            driver: format!("d{i}").as_str().into(),
            planned_start_ms: now_ms(),
            start: Some(Point { lat: 38.80, lon }),
            stops: vec![Stop {
                id: "S1".into(),
                lat: 38.83,
                lon,
                radius_m: None,
                parcels: vec![Parcel {
                    tracking: format!("T{i}").as_str().into(),
                    otp: None,
                }],
                window: None,
                service_s: None,
                planned_arrival_ms: None,
                path: vec![],
                instructions: String::new(),
                otp_required: false,
            }],
        };
        dispatch
            .command(i as u32, CommandKind::AssignRoute(route))
            .await
            .unwrap();
    }
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let sent: Arc<Vec<std::sync::Mutex<std::collections::HashMap<u64, Instant>>>> =
        Arc::new((0..drivers).map(|_| Default::default()).collect());
    let deadline = Instant::now() + Duration::from_secs(secs + 5);
    let mut tasks = Vec::new();
    for i in 0..drivers {
        let (rep, hist, rsent) = (ep.clone(), hist.clone(), sent.clone());
        // The recipient.
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i as u64 * 1000) / drivers as u64)).await;
            let t = format!("T{i}");
            let Some(s) = open(&rep, addr, Role::Recipient, &t).await else {
                return;
            };
            let mut feed = s
                .subscribe(FeedTarget::Parcel(t.as_str().into()), None)
                .await
                .unwrap();
            while Instant::now() < deadline {
                let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(2), feed.next()).await
                else {
                    continue;
                };
                if let ServerMsg::FeedPosition(p) = msg {
                    let at = rsent[i].lock().unwrap().remove(&p.seq.0);
                    if let Some(at) = at {
                        let _ = hist.lock().await.record(at.elapsed().as_micros() as u64);
                    }
                }
            }
        }));
        // The driver: 1 Hz, moving 8 m/s north from the depot (the route starts on the first
        // fix past 150 m).
        let (ep, sent) = (ep.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(
                (i as u64 * 1000) / drivers as u64 + 2000,
            ))
            .await;
            let d = format!("d{i}");
            let Some(mut s) = open(&ep, addr, Role::Driver, &d).await else {
                return;
            };
            let lon = -77.2 + i as f64 * 1e-4;
            let t0 = now_ms() - 60_000;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for k in 1..=secs {
                tick.tick().await;
                let f = Fix::from_degrees(
                    t0 + k as i64 * 1000,
                    38.802 + k as f64 * 8.0 / 111_000.0,
                    lon,
                    5.0,
                );
                sent[i].lock().unwrap().insert(k, Instant::now());
                if s.batch(Seq(k), vec![f]).await.is_err() {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let h = hist.lock().await;
    println!(
        "fix -> recipient update, {drivers} drivers at 1 Hz, {} samples: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    gw.shutdown().await;
}
