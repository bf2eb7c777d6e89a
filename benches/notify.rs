//! Notifications under load: DRIVERS drivers (default 500) each drive a route of STOPS stops
//! (default 20, one parcel each, so DRIVERS x STOPS parcels, every recipient with a phone)
//! through about 45 minutes of fix time (a fix every 15 s, 750 m between stops at 10 m/s, a
//! minute at each stop, the parcel reported delivered), replayed as fast as the gateway acks.
//! Every parcel goes out for delivery, comes 3, 2... stops away, arrives soon and is delivered:
//! about four SMS each, sent through the Twilio adapter to a fake Twilio in this process that
//! answers 201 at once.
//!
//! The same drive runs twice in one process on fresh gateways, notifications off and on
//! (`ORDER=on,off` swaps them), and prints for each: fixes/s, the drivers' ack latency
//! p50/p99 (send to ack, as the phones see it), and with notifications: messages sent,
//! messages/s from the first milestone to the last provider answer, and the milestone-to-provider
//! latency p50/p99 (from the outbox's reading of the milestone to the provider's 201, by the
//! gateway's histogram buckets).
//!
//! `COMPARE=analytics` runs the same drive with the analytics tally (`core.analytics`) off and
//! on instead, notifications off in both.
//!
//! Run: `cargo bench --bench notify` (env `DRIVERS`, `STOPS`, `ORDER`, `COMPARE`, `SLOW_MS`,
//! `SNAPSHOT_EVERY`, `RUST_LOG`, `THREADS` (CPU by thread name), `FAKE_NICE` (the fake provider's nice value, 0), `NATS_URL` (the gateway as a cluster of one over that nats-server), `NOTIFY_STORE_SHM` (the outbox's store on tmpfs); `SPEEDUP`: fix time
//! runs this many times faster than the wall clock, the drivers spread evenly over the first
//! fix interval; 0, the default, sends as fast as acks come). Everything shares the two cores
//! (gateway, drivers, fake provider): compare the two runs of one invocation, not figures across
//! machines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use milepost::auth::{Claims, Role, TokenKey};
use milepost::client::{ClientEndpoint, Session};
use milepost::config::Config;
use milepost::notify::config::SmsConfig;
use milepost::notify::contact::Contact;
use milepost::notify::journal::Op;
use milepost::notify::store::StoredContact;
use milepost::server::Gateway;
use milepost_proto::route::{Outcome, Parcel, Point, Proof, Route, Stop};
use milepost_proto::{CommandKind, Fix, Seq};
use tokio::sync::Mutex;

const SECRET: &str = "bench-secret-bench-secret-bench-secret";
/// Metres between stops, speed, seconds between fixes, seconds at a stop.
const LEG_M: f64 = 750.0;
const SPEED: f64 = 10.0;
const FIX_EVERY_S: i64 = 15;
const DWELL_S: i64 = 60;
/// Departures spread over this much fix time, ms.
const DEPARTURES_MS: i64 = 20 * 60_000;
/// Fixes per batch.
const BATCH: usize = 4;
/// Connections per client endpoint (UDP socket).
const PER_ENDPOINT: usize = 500;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

/// Degrees of longitude per metre at latitude 45.
const DEG_PER_M: f64 = 1.0 / 78_710.0;

fn point(driver: usize, metres: f64) -> (f64, f64) {
    (45.0 + driver as f64 * 0.002, 14.0 + metres * DEG_PER_M)
}

fn route(driver: usize, stops: usize, start_ms: i64) -> Route {
    let (lat, lon) = point(driver, 0.0);
    Route {
        id: format!("R{driver}").as_str().into(),
        depot: "dc".into(),
        driver: format!("D{driver}").as_str().into(),
        planned_start_ms: start_ms,
        start: Some(Point { lat, lon }),
        stops: (1..=stops)
            .map(|i| {
                let (lat, lon) = point(driver, i as f64 * LEG_M);
                Stop {
                    id: format!("S{i}").as_str().into(),
                    lat,
                    lon,
                    radius_m: Some(40.0),
                    parcels: vec![Parcel {
                        tracking: format!("P{driver}x{i}").as_str().into(),
                        otp: None,
                    }],
                    window: None,
                    service_s: Some(DWELL_S as u32),
                    planned_arrival_ms: None,
                    path: Vec::new(),
                    instructions: String::new(),
                    otp_required: false,
                }
            })
            .collect(),
    }
}

/// The drive of one driver: legs and dwells, with the stop reached after each leg.
fn drive(driver: usize, stops: usize, start_ms: i64) -> Vec<(Vec<Fix>, Option<usize>)> {
    let mut out = Vec::new();
    let mut t = start_ms;
    let fix = |m: f64, t: i64| {
        let (lat, lon) = point(driver, m);
        Fix::from_degrees(t, lat, lon, 5.0)
    };
    for i in 1..=stops {
        let from = (i - 1) as f64 * LEG_M;
        let mut fixes = Vec::new();
        let leg_s = (LEG_M / SPEED) as i64;
        let mut s = 0;
        while s < leg_s {
            fixes.push(fix(from + s as f64 * SPEED, t));
            t += FIX_EVERY_S * 1000;
            s += FIX_EVERY_S;
        }
        let mut d = 0;
        while d <= DWELL_S {
            fixes.push(fix(i as f64 * LEG_M, t));
            t += FIX_EVERY_S * 1000;
            d += FIX_EVERY_S;
        }
        out.push((fixes, Some(i)));
    }
    out
}

/// Driver `d`'s departure: spread over the first 20 minutes of fix time, as a depot's vans
/// leave over a morning's loading.
fn departure(d: usize, drivers: usize, start_ms: i64) -> i64 {
    start_ms + (d as i64 * DEPARTURES_MS) / drivers as i64
}

/// A fake Twilio: reads each POST's form, as Twilio does, and answers 201 and a sid; counts
/// them. (Answering before the body is read makes hyper close the connection, so every
/// message would open a new one.)
fn fake_twilio(count: Arc<AtomicU64>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // `FAKE_NICE=N`: the fake provider at nice N. A real provider is not on this machine;
    // at nice 0 the fake competes with ingest for the two cores as an equal.
    let nice = env_num("FAKE_NICE", 0) as i32;
    std::thread::spawn(move || {
        milepost::priority::lower_priority(nice);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(move |_form: String| {
                let n = count.fetch_add(1, Ordering::Relaxed);
                async move {
                    (
                        axum::http::StatusCode::CREATED,
                        [("content-type", "application/json")],
                        format!("{{\"sid\":\"SM{n:032x}\",\"status\":\"queued\"}}"),
                    )
                }
            });
            let _ = axum::serve(listener, app).await;
        });
    });
    format!("http://{addr}")
}

/// CPU seconds this process has used (user + system).
fn cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU seconds per thread name of this process's live threads (from /proc/self/task).
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let tick = 100.0; // USER_HZ
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ... utime stime" (fields 14 and 15); comm may hold spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += (t(11) + t(12)) / tick;
    }
    out
}

struct Run {
    /// CPU seconds of the whole process (gateway, drivers, fake provider) from the first fix
    /// to the last message.
    cpu: f64,
    fixes: u64,
    secs: f64,
    acks: Histogram<u64>,
    sent: u64,
    send_secs: f64,
    latency: (f64, f64),
    /// Milestones skipped (ring overrun), messages dropped by a rule, dead letters.
    outbox: [u64; 3],
}

async fn run(notify: bool, analytics: bool, drivers: usize, stops: usize, speedup: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        secret: Some(SECRET.into()),
        admin: false,
        ..Config::default()
    };
    cfg.limits.max_connections = drivers as u32 + 100;
    cfg.core.analytics = analytics;
    // SNAPSHOT_EVERY=N: a snapshot every N records whatever the log's growth (0: none but
    // the last), to see what they cost.
    if let Some(n) = std::env::var("SNAPSHOT_EVERY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.log.snapshot_log_ratio = 0.0;
        cfg.log.snapshot_every_records = if n == 0 { u64::MAX } else { n };
        if n == 0 {
            cfg.log.snapshot_every_s = u64::MAX;
        }
    }
    if notify {
        cfg.web.public_url = Some("https://track.example".into());
        cfg.notify.enabled = true;
        cfg.notify.workers = 4;
        cfg.notify.rate_per_hour = 100;
        cfg.notify.sms = Some(SmsConfig::Twilio {
            base_url: fake_twilio(count.clone()),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: "token".into(),
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
        });
    }
    // NOTIFY_STORE_SHM=1: the outbox's store on tmpfs (not durable!), to see what its disk
    // writes cost ingest, whose log shares the disk.
    let _shm = if notify && std::env::var_os("NOTIFY_STORE_SHM").is_some() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        std::os::unix::fs::symlink(
            shm.path().join("notify.redb"),
            dir.path().join("notify.redb"),
        )
        .unwrap();
        Some(shm)
    } else {
        None
    };
    // NATS_URL=nats://...: the gateway is a cluster of one over that nats-server (its
    // notifications go through the journal: `crate::cluster::notify_journal`).
    if let Ok(url) = std::env::var("NATS_URL") {
        cfg.cluster.url = Some(url);
        cfg.cluster.prefix = format!("bench{}", now_ms());
        cfg.cluster.partitions = 4;
        cfg.cluster.lease_ttl_s = 2;
    }
    let gw = Gateway::start(cfg).await.unwrap();
    let key = TokenKey::new(SECRET.as_bytes());
    let ca = gw.dev_ca.clone().unwrap();
    let addr = gw.local_addr;
    // Fix times end before now even for the last driver to leave.
    let start_ms = now_ms() - 3_600_000 - DEPARTURES_MS;

    // Routes, and every recipient's phone (one transaction per route, as the API writes them).
    let eps: Vec<ClientEndpoint> = (0..drivers.div_ceil(PER_ENDPOINT) + 1)
        .map(|_| ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &ca).unwrap())
        .collect();
    let conn = eps[0].connect(addr, "localhost").await.unwrap();
    let mut dispatch = Session::open(
        conn,
        &token(&key, Role::Dispatcher, "dc"),
        "dc",
        Default::default(),
    )
    .await
    .unwrap();
    let outbox = gw.shared().notify.clone();
    for d in 0..drivers {
        let r = route(d, stops, departure(d, drivers, start_ms));
        dispatch
            .command(d as u32 + 1, CommandKind::AssignRoute(r.clone()))
            .await
            .unwrap();
        let contacts: Vec<(String, StoredContact)> = r
            .stops
            .iter()
            .flat_map(|s| &s.parcels)
            .enumerate()
            .map(|(i, p)| {
                let c = StoredContact {
                    contact: Contact {
                        phone: Some(format!("+3859{:07}{i:02}", d)),
                        ..Contact::default()
                    },
                    depot: "dc".into(),
                    set_ms: now_ms(),
                    touched_ms: now_ms(),
                };
                (p.tracking.0.clone(), c)
            })
            .collect();
        // One write per route, as the API makes them (through the journal in a cluster).
        outbox.write(Op::Contacts(contacts)).await.unwrap();
    }

    let acks = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let fixes = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_s();
    let threads0 = cpu_by_thread();
    let began = Instant::now();
    // The slowest ack of each second of the run, us: when the slow ones came.
    let slowest: Arc<Vec<AtomicU64>> = Arc::new((0..3600).map(|_| AtomicU64::new(0)).collect());
    let began_utc = chrono::Utc::now();
    let mut tasks = Vec::new();
    for d in 0..drivers {
        let ep = eps[1 + d / PER_ENDPOINT].clone();
        let key = TokenKey::new(SECRET.as_bytes());
        let (acks, fixes, slowest) = (acks.clone(), fixes.clone(), slowest.clone());
        tasks.push(tokio::spawn(async move {
            let sub = format!("D{d}");
            // Connect at departure (thousands of handshakes at once would time out).
            if let Some(due) =
                ((departure(d, drivers, start_ms) - start_ms) as u64).checked_div(speedup)
            {
                tokio::time::sleep_until((began + Duration::from_millis(due)).into()).await;
            }
            let mut s = None;
            for _ in 0..20 {
                if let Ok(conn) = ep.connect(addr, "localhost").await {
                    let t = token(&key, Role::Driver, &sub);
                    if let Ok(x) = Session::open(conn, &t, &sub, Default::default()).await {
                        s = Some(x);
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let Some(mut s) = s else {
                eprintln!("{sub}: could not connect");
                return;
            };
            let mut seq = 1u64;
            let mut local = Histogram::<u64>::new(3).unwrap();
            for (leg, stop) in drive(d, stops, departure(d, drivers, start_ms)) {
                for chunk in leg.chunks(BATCH) {
                    if let Some(due) = ((chunk[0].t_ms - start_ms) as u64).checked_div(speedup) {
                        let at = began + Duration::from_millis(due);
                        tokio::time::sleep_until(at.into()).await;
                    }
                    let t0 = Instant::now();
                    s.batch(Seq(seq), chunk.to_vec()).await.unwrap();
                    let us = t0.elapsed().as_micros() as u64;
                    local.record(us).unwrap();
                    if let Some(s) = slowest.get((t0 - began).as_secs() as usize) {
                        s.fetch_max(us, Ordering::Relaxed);
                    }
                    seq += chunk.len() as u64;
                    fixes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                if let Some(i) = stop {
                    let proof = Proof {
                        photo_sha256: Some("ab".repeat(32)),
                        ..Proof::default()
                    };
                    s.command(
                        1000 + i as u32,
                        CommandKind::ReportOutcome {
                            stop: format!("S{i}").as_str().into(),
                            tracking: None,
                            outcome: Outcome::Delivered { proof },
                        },
                    )
                    .await
                    .unwrap();
                }
            }
            acks.lock().await.add(&local).unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = began.elapsed().as_secs_f64();

    // Wait for the outbox to drain: nothing queued and the count steady for a second.
    let stats = gw.shared().notify.stats.clone();
    let mut last = u64::MAX;
    let mut send_secs = secs;
    if notify {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = count.load(Ordering::Relaxed);
            if now == last && stats.queued.load(Ordering::Relaxed) == 0 {
                break;
            }
            if now != last {
                send_secs = began.elapsed().as_secs_f64();
            }
            last = now;
        }
    }
    let cpu = cpu_s() - cpu0;
    // THREADS=1: where the CPU went, by thread name (the gateway's threads started with it).
    if std::env::var_os("THREADS").is_some() {
        let now = cpu_by_thread();
        let by: Vec<String> = now
            .iter()
            .map(|(k, v)| (k, v - threads0.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v >= 0.1)
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect();
        println!("  CPU s by thread: {}", by.join(", "));
    }
    let h = &stats.latency[1];
    let latency = (h.quantile_bound(0.5), h.quantile_bound(0.99));
    let outbox = [
        stats.skipped.load(Ordering::Relaxed),
        stats.dropped[1].load(Ordering::Relaxed),
        stats.dead[1].load(Ordering::Relaxed),
    ];
    let acks = acks.lock().await.clone();
    // SLOW_MS=N: the seconds whose slowest ack took longer than N ms (to line up with the
    // gateway's log, RUST_LOG=info: its snapshots).
    if let Some(limit) = std::env::var("SLOW_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let slow: Vec<String> = slowest
            .iter()
            .enumerate()
            .filter(|(_, s)| s.load(Ordering::Relaxed) > limit * 1000)
            .map(|(i, s)| {
                let at = began_utc + chrono::Duration::seconds(i as i64);
                format!(
                    "{} {} ms",
                    at.format("%H:%M:%S"),
                    s.load(Ordering::Relaxed) / 1000
                )
            })
            .collect();
        println!("  seconds with an ack over {limit} ms: {}", slow.join(", "));
    }
    gw.shutdown().await;
    Run {
        fixes: fixes.load(Ordering::Relaxed),
        secs,
        acks,
        sent: count.load(Ordering::Relaxed),
        send_secs,
        latency,
        outbox,
        cpu,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // RUST_LOG=info shows the gateway's own log (snapshots and their encode times).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let drivers = env_num("DRIVERS", 500) as usize;
    let stops = env_num("STOPS", 20) as usize;
    let speedup = env_num("SPEEDUP", 0);
    let order = std::env::var("ORDER").unwrap_or_else(|_| "off,on".into());
    // COMPARE=analytics: the same drive with the analytics tally off and on (notifications
    // off in both), for issue 22's "analytics must not slow ingest".
    let analytics_only = std::env::var("COMPARE").is_ok_and(|c| c == "analytics");
    let what = if analytics_only {
        "analytics"
    } else {
        "notifications"
    };
    println!(
        "notify bench: {drivers} drivers x {stops} stops = {} parcels with a phone, speedup {}",
        drivers * stops,
        if speedup == 0 {
            "none (as fast as acks)".to_string()
        } else {
            format!("{speedup}x")
        }
    );
    let mut cpu = [0.0f64; 2];
    for which in order.split(',') {
        let on = which.trim() == "on";
        let r = if analytics_only {
            run(false, on, drivers, stops, speedup).await
        } else {
            run(on, true, drivers, stops, speedup).await
        };
        cpu[on as usize] = r.cpu;
        println!(
            "{what} {:3}: {} fixes in {:.1} s = {:.0} fixes/s; ack p50 {:.2} ms p99 {:.2} ms",
            if on { "on" } else { "off" },
            r.fixes,
            r.secs,
            r.fixes as f64 / r.secs,
            r.acks.value_at_quantile(0.5) as f64 / 1000.0,
            r.acks.value_at_quantile(0.99) as f64 / 1000.0,
        );
        if on && !analytics_only {
            println!(
                "  messages: {} sent in {:.1} s = {:.0}/s; milestone to provider p50 <= {} s, p99 <= {} s",
                r.sent,
                r.send_secs,
                r.sent as f64 / r.send_secs,
                r.latency.0,
                r.latency.1
            );
            println!(
                "  outbox: milestones skipped (ring overrun) {}, messages dropped by rules {}, dead {}",
                r.outbox[0], r.outbox[1], r.outbox[2]
            );
        }
        println!("  process CPU: {:.1} s", r.cpu);
        if cpu[0] > 0.0 && cpu[1] > 0.0 && on && !analytics_only {
            println!(
                "  CPU per message sent (on - off): {:.0} us",
                (cpu[1] - cpu[0]) * 1e6 / r.sent.max(1) as f64
            );
        }
    }
    if cpu[0] > 0.0 && cpu[1] > 0.0 {
        println!("  CPU with {what} / without: {:.2}", cpu[1] / cpu[0]);
    }
}
