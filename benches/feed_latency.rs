//! Fix-to-update latency through the whole pipeline: a driver's fix arrives at the gateway over
//! QUIC, is made durable, folded by the applier (route progress, ETA), and the recipient
//! subscribed to that driver's parcel receives the update on its feed stream. Not a criterion
//! bench: it runs N drivers at 1 Hz for a while, each with a one-stop route and a recipient
//! following that stop's parcel (so every fix yields a recipient-visible position), and prints
//! p50/p99/p999 of (recipient receive time - driver send time), counted once every driver and
//! recipient is connected (after the ramp and a warm-up) and until the end of the measured
//! window; everyone stays connected a few seconds longer, so that the bench's own teardown
//! (every connection closing at once) is not measured.
//!
//! Run: `cargo bench --bench feed_latency` (env `DRIVERS`, default 2000; `SECS` measured,
//! default 20; `RAMP` seconds to connect everyone, default DRIVERS/500; `WARMUP`, default 5).
//! By default the gateway runs in this process and everything shares the two cores. With
//! `GATEWAY=127.0.0.1:4499 DATA_DIR=dir` it drives a gateway running apart (e.g. the release
//! binary pinned to one core with `taskset`), reading its token secret and development CA from
//! `dir`: see docs/BENCHMARKS.md. With `GW_PID` (the gateway's process) it also prints the
//! gateway's CPU per fix over the measured window, read from `/proc`; with `RECIPIENTS=0`
//! nobody follows the parcels, for the CPU per fix without a recipient update.

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

fn token(key: &TokenKey, role: Role, sub: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    key.mint(&Claims {
        role,
        sub: sub.into(),
        depot: "dc".into(),
        exp: now + 3600,
        iat: now,
        carrier: None,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Opens a session, retrying a few times (thousands of handshakes land at once).
async fn open(
    ep: &ClientEndpoint,
    addr: std::net::SocketAddr,
    key: &TokenKey,
    role: Role,
    sub: &str,
) -> Option<Session> {
    for _ in 0..5 {
        if let Ok(conn) = ep.connect(addr, "localhost").await {
            if let Ok(s) =
                Session::open(conn, &token(key, role, sub), sub, Default::default()).await
            {
                return Some(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{sub}: could not connect");
    None
}

/// Connections per client endpoint (UDP socket).
const PER_ENDPOINT: usize = 500;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let drivers = env_num("DRIVERS", 2000) as usize;
    let secs = env_num("SECS", 20);
    let ramp_ms = env_num("RAMP", (drivers as u64 / 500).max(1)) * 1000;
    let warmup_ms = env_num("WARMUP", 5) * 1000;
    let recipients = env_num("RECIPIENTS", 1) > 0;
    let gw_pid = std::env::var("GW_PID").ok();
    let dir = tempfile::tempdir().unwrap();
    let (gw, addr, ca, key) = match (std::env::var("GATEWAY"), std::env::var("DATA_DIR")) {
        (Ok(addr), Ok(data)) => {
            let data = std::path::PathBuf::from(data);
            let key = TokenKey::load_or_create(&data.join("secret.key")).unwrap();
            (None, addr.parse().unwrap(), data.join("certs/ca.pem"), key)
        }
        _ => {
            let cfg = Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                admin: false,
                data_dir: dir.path().to_owned(),
                secret: Some(SECRET.into()),
                ..Config::default()
            };
            let gw = Gateway::start(cfg).await.unwrap();
            let (addr, ca) = (gw.local_addr, gw.dev_ca.clone().unwrap());
            (Some(gw), addr, ca, TokenKey::new(SECRET.as_bytes()))
        }
    };
    let key = Arc::new(key);
    let endpoints: Vec<ClientEndpoint> = (0..(2 * drivers).div_ceil(PER_ENDPOINT) + 1)
        .map(|_| ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &ca).unwrap())
        .collect();
    let ep_for = |conn: usize| endpoints[conn / PER_ENDPOINT].clone();

    // One route per driver: start at the depot, one stop 3 km north with one parcel. Assigned
    // by 4 dispatcher sessions at once (the per-subject connection limit), so that group
    // commit serves several per fsync.
    let assigners = 4.min(drivers);
    let mut assign = Vec::new();
    for a in 0..assigners {
        let (ep, key) = (endpoints[endpoints.len() - 1].clone(), key.clone());
        assign.push(tokio::spawn(async move {
            let mut dispatch = open(&ep, addr, &key, Role::Dispatcher, "dc").await.unwrap();
            for i in (a..drivers).step_by(assigners) {
                dispatch
                    .command(i as u32, CommandKind::AssignRoute(route(i)))
                    .await
                    .unwrap();
            }
        }));
    }
    for a in assign {
        a.await.unwrap();
    }
    eprintln!(
        "{drivers} routes assigned; connecting over {} s",
        ramp_ms / 1000
    );
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let sent: Arc<Vec<std::sync::Mutex<std::collections::HashMap<u64, Instant>>>> =
        Arc::new((0..drivers).map(|_| Default::default()).collect());
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_millis(ramp_ms + 2000 + warmup_ms);
    let stop_at = measure_from + Duration::from_secs(secs);
    let deadline = stop_at + Duration::from_secs(5);
    let fixes_in_window = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The gateway's CPU time at the window's start and end.
    let cpu = gw_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let a = milepost::replay::procfs::proc_sample(&pid)?;
            tokio::time::sleep_until(stop_at.into()).await;
            let b = milepost::replay::procfs::proc_sample(&pid)?;
            Some(b.cpu_us.saturating_sub(a.cpu_us))
        })
    });
    let mut tasks = Vec::new();
    for i in 0..drivers {
        let (rep, hist, rsent, rkey) = (ep_for(2 * i), hist.clone(), sent.clone(), key.clone());
        // The recipient.
        tasks.push(tokio::spawn(async move {
            if !recipients {
                return;
            }
            tokio::time::sleep(Duration::from_millis(i as u64 * ramp_ms / drivers as u64)).await;
            let t = format!("T{i}");
            let Some(s) = open(&rep, addr, &rkey, Role::Recipient, &t).await else {
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
                    if let Some(at) = at.filter(|at| (measure_from..stop_at).contains(at)) {
                        let _ = hist.lock().await.record(at.elapsed().as_micros() as u64);
                    }
                }
            }
        }));
        // The driver: 1 Hz, moving 8 m/s north from the depot (the route starts on the first
        // fix past 150 m), from 2 s after its recipient.
        let (ep, sent, key) = (ep_for(2 * i + 1), sent.clone(), key.clone());
        let counted = fixes_in_window.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(
                i as u64 * ramp_ms / drivers as u64 + 2000,
            ))
            .await;
            let d = format!("d{i}");
            let Some(mut s) = open(&ep, addr, &key, Role::Driver, &d).await else {
                return;
            };
            let lon = -77.2 + i as f64 * 1e-4;
            let t0 = now_ms() - 60_000;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut k = 0u64;
            // Until the recipients stop listening: fixes sent in the measured window must not
            // have their updates queued behind 20,000 connections closing at once.
            while Instant::now() < deadline {
                tick.tick().await;
                k += 1;
                let f = Fix::from_degrees(
                    t0 + k as i64 * 1000,
                    38.802 + k as f64 * 8.0 / 111_000.0,
                    lon,
                    5.0,
                );
                let now = Instant::now();
                if (measure_from..stop_at).contains(&now) {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                sent[i].lock().unwrap().insert(k, now);
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
    if recipients {
        println!(
        "fix -> recipient update, {drivers} drivers at 1 Hz, {} samples over {secs} s: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    }
    if let Some(cpu) = cpu {
        let fixes = fixes_in_window.load(std::sync::atomic::Ordering::Relaxed);
        match cpu.await.ok().flatten() {
            Some(us) if fixes > 0 => println!(
                "gateway CPU {:.1} us per fix ({} fixes in the window, {})",
                us as f64 / fixes as f64,
                fixes,
                if recipients {
                    "a recipient following every route"
                } else {
                    "no recipients"
                }
            ),
            _ => println!("gateway CPU: not measured (no /proc for GW_PID, or no fix)"),
        }
    }
    if let Some(gw) = gw {
        gw.shutdown().await;
    }
}

/// Driver `i`'s route: from the depot, one stop 3 km north with parcel `T{i}`.
fn route(i: usize) -> Route {
    let lon = -77.2 + i as f64 * 1e-4;
    Route {
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
    }
}
