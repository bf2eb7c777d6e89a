//! The gateway's CPU per connection, by handshake path: what a phone's reconnect costs the
//! gateway, Hello and Welcome included (issue 24, "cheaper reconnects"). Not a criterion
//! bench: the figure wanted is the *gateway's* CPU per handshake, so the gateway runs as its own
//! process (the release binary) and its CPU time is read from `/proc` around each path, as the
//! load generator's own CPU is from `/proc/self`.
//!
//! Paths, each a driver connecting, sending its Hello, getting its Welcome and closing:
//! - `full`: no TLS ticket, no address token (a phone's first connection, or one whose
//!   tickets ran out): a full TLS 1.3 handshake with a certificate;
//! - `resumed`: a TLS ticket from an earlier connection (PSK with a fresh X25519 exchange), no
//!   address token;
//! - `resumed+token`: the ticket and a QUIC address token (NEW_TOKEN) from an earlier
//!   connection: what a phone reconnecting after a gateway restart or a network change does.
//!
//! Run: `cargo build --release --bin milepost && cargo bench --bench handshake` (env `N`
//! connections per path, default 2000; `CONCURRENCY`, default 16; `GW_BIN`, default
//! `target/release/milepost`; `GW_CORE`, a core to pin the gateway to with `taskset`, unset:
//! not pinned). Loopback only; the gateway is started on a free port and stopped at the end.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use milepost::auth::{Claims, Role, TokenKey};
use milepost::client::{ClientEndpoint, Phone, Session};
use milepost::replay::procfs::proc_sample;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The gateway process, stopped (SIGTERM by PID, then waited for) when dropped.
struct GatewayProcess {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Starts the gateway on a free UDP port of 127.0.0.1; its address, data directory and process.
fn start_gateway() -> (GatewayProcess, SocketAddr, std::path::PathBuf) {
    let bin = std::env::var("GW_BIN").unwrap_or_else(|_| "target/release/milepost".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_owned();
    std::fs::write(data.join("bench.toml"), "admin_listen = \"127.0.0.1:0\"\n").expect("config");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = match std::env::var("GW_CORE") {
        Ok(core) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &core, &bin]);
            c
        }
        Err(_) => Command::new(&bin),
    };
    let child = cmd
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(data.join("bench.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} (build it first): {e}"));
    let mut gw = GatewayProcess { child, _dir: dir };
    for _ in 0..100 {
        if data.join("secret.key").exists() && data.join("certs/ca.pem").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Ok(Some(status)) = gw.child.try_wait() {
        panic!("the gateway ({bin}) exited at start: {status}");
    }
    assert!(
        data.join("certs/ca.pem").exists(),
        "the gateway ({bin}) made no data directory within 10 s"
    );
    std::thread::sleep(Duration::from_millis(500));
    (gw, addr, data)
}

/// One connection of `phone` as driver `sub`: handshake, Hello, Welcome, close.
async fn connect_once(
    ep: &ClientEndpoint,
    phone: &Phone,
    addr: SocketAddr,
    token: &str,
    sub: &str,
) {
    let conn = ep
        .connect_as(phone, addr, "localhost")
        .await
        .expect("handshake");
    let session = Session::open(conn, token, sub, Default::default())
        .await
        .expect("Hello answered with a Welcome");
    session.close();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_num("N", 2000) as usize;
    let concurrency = env_num("CONCURRENCY", 16) as usize;
    let (gw, addr, data) = start_gateway();
    let gw_pid = gw.child.id().to_string();
    let key = TokenKey::load_or_create(&data.join("secret.key")).expect("the gateway's secret");
    let ep = Arc::new(
        ClientEndpoint::new(
            "127.0.0.1:0".parse().expect("address"),
            &data.join("certs/ca.pem"),
        )
        .expect("client endpoint"),
    );
    let now = chrono::Utc::now().timestamp();
    // One driver identity per worker: a phone reconnecting is the same driver each time.
    let tokens: Vec<(String, String)> = (0..concurrency)
        .map(|w| {
            let sub = format!("hs-{w}");
            let claims = Claims {
                role: Role::Driver,
                sub: sub.clone(),
                depot: "dc".into(),
                exp: now + 3600,
                iat: now,
                carrier: None,
            };
            (key.mint(&claims), sub)
        })
        .collect();
    println!(
        "gateway CPU per connection (handshake, Hello, Welcome, close), {n} connections per path, {concurrency} at a time"
    );
    println!("path            gateway_us/conn  client_us/conn  wall_ms/conn");
    for (name, tickets, tokens_kept) in [
        ("full", false, false),
        ("resumed", true, false),
        ("resumed+token", true, true),
    ] {
        // Each worker keeps one phone for the whole path; a warm-up connection gives it its
        // first ticket and token (and warms the gateway), outside the measurement.
        let phones: Vec<Phone> = (0..concurrency)
            .map(|_| ep.phone_keeping(tickets, tokens_kept).expect("phone"))
            .collect();
        for (w, phone) in phones.iter().enumerate() {
            connect_once(&ep, phone, addr, &tokens[w].0, &tokens[w].1).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gw0 = proc_sample(&gw_pid).expect("gateway /proc");
        let me0 = proc_sample("self").expect("own /proc");
        let t0 = Instant::now();
        let mut workers = Vec::new();
        for (w, phone) in phones.into_iter().enumerate() {
            let (ep, (token, sub)) = (ep.clone(), tokens[w].clone());
            let count = n / concurrency + usize::from(w < n % concurrency);
            workers.push(tokio::spawn(async move {
                for _ in 0..count {
                    connect_once(&ep, &phone, addr, &token, &sub).await;
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
        let wall = t0.elapsed();
        // Let the closes reach the gateway before reading its CPU.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gw1 = proc_sample(&gw_pid).expect("gateway /proc");
        let me1 = proc_sample("self").expect("own /proc");
        println!(
            "{name:<15} {:>15.1} {:>15.1} {:>13.3}",
            (gw1.cpu_us - gw0.cpu_us) as f64 / n as f64,
            (me1.cpu_us - me0.cpu_us) as f64 / n as f64,
            wall.as_secs_f64() * 1000.0 / n as f64,
        );
    }
    drop(gw);
}
