//! The MQTT peer's load generator, for `benches/peers.sh`: N phones, each an MQTT 3.1.1 client
//! over TLS (rumqttc), publishing one ~60-byte fix a second at QoS 1 to `fleet/<id>`, open
//! loop: each fix has a scheduled send time, and its latency runs from that time to its
//! PUBACK (no coordinated omission). Connections are spread over the ramp; only fixes
//! scheduled in the window after it count.
//!
//! It prints one JSON object: acked per second, PUBACK latency p50/p99/p99.9 (an HDR
//! histogram), the broker's CPU per message and RSS per connection (from /proc of
//! `--server-pid`), and its own CPU per message. Not a criterion bench: `cargo bench --bench
//! mqtt_load -- --help` (peers.sh runs the built binary).
//!
//!   mqtt_load --port 8883 --ca ca.pem --clients 5000 --rate 1 --duration 40 --ramp 15 \
//!             --server-pid PID

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rumqttc::{
    AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};

/// Command-line settings.
struct Args {
    host: String,
    port: u16,
    ca: String,
    clients: usize,
    rate: f64,
    duration: u64,
    ramp: u64,
    server_pid: Option<u32>,
}

fn usage() -> ! {
    eprintln!(
        "usage: mqtt_load --port P --ca CA.pem --clients N [--host 127.0.0.1] [--rate 1] \
         [--duration 40] [--ramp 15] [--server-pid PID]"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 0,
        ca: String::new(),
        clients: 0,
        rate: 1.0,
        duration: 40,
        ramp: 15,
        server_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        // cargo bench passes --bench; ignore it.
        if k == "--bench" {
            continue;
        }
        let Some(v) = it.next() else { usage() };
        let bad = || -> ! {
            eprintln!("mqtt_load: bad value {v:?} for {k}");
            std::process::exit(2)
        };
        match k.as_str() {
            "--host" => a.host = v,
            "--port" => a.port = v.parse().unwrap_or_else(|_| bad()),
            "--ca" => a.ca = v,
            "--clients" => a.clients = v.parse().unwrap_or_else(|_| bad()),
            "--rate" => a.rate = v.parse().unwrap_or_else(|_| bad()),
            "--duration" => a.duration = v.parse().unwrap_or_else(|_| bad()),
            "--ramp" => a.ramp = v.parse().unwrap_or_else(|_| bad()),
            "--server-pid" => a.server_pid = Some(v.parse().unwrap_or_else(|_| bad())),
            _ => usage(),
        }
    }
    if a.port == 0 || a.ca.is_empty() || a.clients == 0 || !a.rate.is_finite() || a.rate <= 0.0 {
        usage()
    }
    a
}

/// utime + stime of `pid`, in clock ticks (100 a second on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident memory of `pid`, bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// This process's CPU, clock ticks.
fn own_ticks() -> u64 {
    cpu_ticks(std::process::id()).unwrap_or(0)
}

/// What every client adds to.
struct Totals {
    /// Fixes scheduled in the window and acked.
    acked: AtomicU64,
    /// Fixes sent in the window.
    sent: AtomicU64,
    /// Connections up now.
    connected: AtomicU64,
    /// Connection errors (each followed by a reconnect).
    errors: AtomicU64,
    /// PUBACK latencies of the window, microseconds.
    latency: Mutex<Histogram<u64>>,
}

/// One phone: connects at `start`, publishes every `period` from a random phase, and counts
/// the fixes scheduled in `[window_start, window_end)`.
async fn phone(
    id: usize,
    a: Arc<Args>,
    ca: Arc<Vec<u8>>,
    start: Instant,
    window: (Instant, Instant),
    stop: Instant,
    totals: Arc<Totals>,
) {
    tokio::time::sleep_until(start.into()).await;
    let mut o = MqttOptions::new(format!("phone-{id}"), a.host.clone(), a.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: ca.to_vec(),
        alpn: None,
        client_auth: None,
    }));
    let (client, mut events) = AsyncClient::new(o, 16);
    let topic = format!("fleet/{id}");
    let period = Duration::from_secs_f64(1.0 / a.rate);
    // A phase of its own, so that the fleet's fixes spread over the second.
    let phase =
        Duration::from_nanos((id as u64).wrapping_mul(2_654_435_761) % period.as_nanos() as u64);
    let mut next = Instant::now() + phase;
    // Publishes waiting for their packet id (FIFO), then in flight by packet id.
    let mut queued: VecDeque<Instant> = VecDeque::new();
    let mut in_flight: HashMap<u16, Instant> = HashMap::new();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let payload = vec![0x5a_u8; 60];
    let mut up = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()), if next < stop => {
                let at = next;
                next += period;
                if client.try_publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone()).is_ok() {
                    queued.push_back(at);
                    if at >= window.0 && at < window.1 {
                        totals.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if !up {
                        up = true;
                        totals.connected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(at) = queued.pop_front() {
                        in_flight.insert(pkid, at);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(at) = in_flight.remove(&ack.pkid) {
                        if at >= window.0 && at < window.1 {
                            let us = at.elapsed().as_micros().max(1) as u64;
                            let _ = hist.record(us.min(60_000_000));
                            totals.acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    if up {
                        up = false;
                        totals.connected.fetch_sub(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        }
        if Instant::now() >= stop + Duration::from_secs(5)
            || (next >= stop && in_flight.is_empty() && queued.is_empty())
        {
            break;
        }
    }
    if let Ok(mut h) = totals.latency.lock() {
        let _ = h.add(&hist);
    }
    let _ = client.try_disconnect();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Arc::new(args());
    let ca = match std::fs::read(&a.ca) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("mqtt_load: reading {}: {e}", a.ca);
            std::process::exit(1)
        }
    };
    let totals = Arc::new(Totals {
        acked: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        connected: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latency: Mutex::new(
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        ),
    });
    let rss0 = a.server_pid.and_then(rss_bytes);
    let t0 = Instant::now();
    let ramp = Duration::from_secs(a.ramp);
    // The window starts a few seconds after the last connection, so that handshakes are done.
    let w0 = t0 + ramp + Duration::from_secs(3);
    let w1 = w0 + Duration::from_secs(a.duration);
    let stop = w1;
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..a.clients {
        let start = t0 + ramp.mul_f64(id as f64 / a.clients as f64);
        tasks.spawn(phone(
            id,
            a.clone(),
            ca.clone(),
            start,
            (w0, w1),
            stop,
            totals.clone(),
        ));
    }
    tokio::time::sleep_until(w0.into()).await;
    let server0 = a.server_pid.and_then(cpu_ticks);
    let own0 = own_ticks();
    let connected_at_start = totals.connected.load(Ordering::Relaxed);
    tokio::time::sleep_until(w1.into()).await;
    let server1 = a.server_pid.and_then(cpu_ticks);
    let own1 = own_ticks();
    let rss1 = a.server_pid.and_then(rss_bytes);
    // Let the last fixes of the window be acked.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let acked = totals.acked.load(Ordering::Relaxed);
    let sent = totals.sent.load(Ordering::Relaxed);
    let h = totals
        .latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let secs = a.duration as f64;
    let tick_us = 10_000.0; // 100 ticks a second
    let per_msg = |t0: Option<u64>, t1: Option<u64>| match (t0, t1) {
        (Some(x), Some(y)) if acked > 0 => Some((y - x) as f64 * tick_us / acked as f64),
        _ => None,
    };
    let report = serde_json::json!({
        "clients": a.clients,
        "connected": connected_at_start,
        "window_s": secs,
        "sent": sent,
        "acked": acked,
        "acked_per_s": acked as f64 / secs,
        "latency_us": {
            "p50": h.value_at_quantile(0.50),
            "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999),
            "max": h.max(),
        },
        "server_cpu_us_per_msg": per_msg(server0, server1),
        "server_cores": match (server0, server1) {
            (Some(x), Some(y)) => Some((y - x) as f64 / 100.0 / secs),
            _ => None,
        },
        "server_rss_per_conn_bytes": match (rss0, rss1) {
            (Some(x), Some(y)) if connected_at_start > 0 => Some(y.saturating_sub(x) as f64 / connected_at_start as f64),
            _ => None,
        },
        "client_cpu_us_per_msg": per_msg(Some(own0), Some(own1)),
        "errors": totals.errors.load(Ordering::Relaxed),
    });
    println!("{report}");
}
