//! The load generator's engine: thousands of simulated driver phones, each its own QUIC
//! connection and token, replaying recorded traces against a gateway, measured honestly.
//!
//! # Model of a phone
//! - It logs in (QUIC + TLS, `Hello`/`Welcome`), then measures a fix at the recorded pace of its
//!   trace times a speedup, or at a fixed rate. Seqs continue from `Welcome.watermark + 1`.
//! - Fixes are buffered and uploaded every `batch` fixes (or every `batch_interval`); at each
//!   upload the newest fix goes as a live datagram (when `live` is on) and the rest as one
//!   `FixBatch` on the session stream, pipelined. With `batch = 1` and live on, every fix is one
//!   single-fix datagram: the gateway's hot path.
//! - A fix stays in the phone's queue until an ack (or a `Welcome.watermark`) settles it. A live
//!   fix not acked within `live_timeout` is resent in a batch (PROTOCOL.md 6.3); a batch refused
//!   with a request-level error is resent after a back-off.
//! - Some phones go offline for a while (the app notices and closes the connection; fixes keep
//!   being measured and are uploaded as a backlog on reconnect); some switch networks mid-route
//!   (their own UDP socket is rebound: QUIC migrates the connection, nothing is resent).
//! - A lost connection (gateway restart, idle timeout) is reopened with exponential back-off and
//!   jitter, and everything unsettled is resent, oldest first, with the newest as live.
//!
//! # Honest numbers
//! Every fix has a *scheduled* send time, fixed when it is due, whatever the load generator's
//! own delays: ack latency is the ack's arrival minus that time (no coordinated omission). A
//! resent fix keeps its first scheduled time, so outages show in the tail. Fixes buffered on
//! purpose while offline are measured apart (age at ack), so they do not hide the live latency.
//!
//! # Scale
//! One tokio task per driver, no task per fix; drivers share a few UDP sockets (one
//! [`ClientEndpoint`] per `per_endpoint` connections), except migrating drivers, which need a
//! socket of their own to rebind. Per driver: the task, its quinn connection, its own TLS
//! session tickets and QUIC address tokens (as a phone has: see [`crate::client::Phone`]) and a
//! queue of the fixes not yet settled (usually one or two).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use milepost_proto::{
    Ack, ClientDatagram, ClientMsg, DeviceInfo, ErrorCode, Fix, FixBatch, Hello, Limits, Seq,
    ServerMsg, MAX_FRAME_HARD, PROTOCOL_VERSION,
};
use tokio::time::Instant;

use crate::auth::{Claims, Role, TokenKey};
use crate::client::{ClientEndpoint, ClientError, Phone};
use crate::replay::metrics::{
    machine_busy_us, proc_sample, udp_buffer_errors, udp_socket_drops, Counters, GatewayUsage,
    Kind, Latencies, ProcSample, ReplayReport, UdpDrops, WindowReport, Wire, WireMarks,
};
use crate::replay::playback::{next_recorded, sample};
use crate::replay::trace::Trace;
use crate::wire::{write_msg, WireError};

/// How fast drivers produce fixes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// One fix per recorded point, at the recorded intervals divided by `speedup`.
    Recorded {
        /// Replay speed: 1.0 = as recorded.
        speedup: f64,
    },
    /// A fixed number of fixes per second per driver, positions interpolated along the trace,
    /// which is travelled at `speedup` times its recorded speed.
    Rate {
        /// Fixes per second per driver.
        per_s: f64,
        /// Travel speed along the trace: 1.0 = as recorded.
        speedup: f64,
    },
}

impl Pace {
    fn speedup(self) -> f64 {
        match self {
            Pace::Recorded { speedup } | Pace::Rate { speedup, .. } => speedup,
        }
    }
}

/// Everything a replay run needs besides the traces.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Gateway address.
    pub server: SocketAddr,
    /// Name on the gateway's certificate.
    pub server_name: String,
    /// CA certificate to trust.
    pub ca: PathBuf,
    /// The gateway's token key: one driver token is minted per simulated driver.
    pub key: TokenKey,
    /// Number of simulated drivers.
    pub drivers: u32,
    /// Number of the first driver: ids are `{driver_prefix}{n:05}` from here on (several load
    /// generators can split a fleet).
    pub first_driver: u32,
    /// Prefix of driver ids.
    pub driver_prefix: String,
    /// Depot every simulated driver belongs to.
    pub depot: String,
    /// How fast fixes are produced.
    pub pace: Pace,
    /// How long every driver sends after the ramp.
    pub duration: Duration,
    /// Drivers start evenly spread over this time, so handshakes do not all land at once.
    pub ramp: Duration,
    /// Warm-up after the ramp before the measurement window opens (capped at a quarter of
    /// `duration`).
    pub warmup: Duration,
    /// Drivers sharing a trace are moved by a random offset up to this many metres.
    pub spread_m: f64,
    /// Upload after this many new fixes.
    pub batch: u32,
    /// Also upload at this interval when fixes are waiting.
    pub batch_interval: Option<Duration>,
    /// Send the newest fix of each upload as a live datagram.
    pub live: bool,
    /// A live fix not acked within this time is resent in a batch.
    pub live_timeout: Duration,
    /// Chance that a driver has one offline period during its run.
    pub offline_prob: f64,
    /// Length of an offline period.
    pub offline: Duration,
    /// Chance that a driver switches networks (rebinds its socket) once during its run.
    pub migrate_prob: f64,
    /// Connections sharing one UDP socket.
    pub per_endpoint: u32,
    /// Local address for the client sockets.
    pub bind: IpAddr,
    /// A driver that cannot reach the gateway for this long gives up.
    pub reconnect_for: Duration,
    /// After the run, how long drivers wait for their last acks.
    pub drain: Duration,
    /// Seed for every random choice (phases, offsets, offline and migration times).
    pub seed: u64,
    /// Print a progress line on stderr every second.
    pub progress: bool,
    /// The gateway's process id, to measure its CPU time and memory from `/proc`.
    pub gateway_pid: Option<u32>,
}

impl ReplayConfig {
    /// A configuration with defaults: 100 drivers at the recorded pace for 60 s, batches of 1
    /// with live datagrams, no offline periods or migrations.
    pub fn new(server: SocketAddr, ca: PathBuf, key: TokenKey) -> ReplayConfig {
        ReplayConfig {
            server,
            server_name: "localhost".into(),
            ca,
            key,
            drivers: 100,
            first_driver: 1,
            driver_prefix: "sim-".into(),
            depot: "sim".into(),
            pace: Pace::Recorded { speedup: 1.0 },
            duration: Duration::from_secs(60),
            ramp: Duration::from_secs(1),
            warmup: Duration::from_secs(5),
            spread_m: 200.0,
            batch: 1,
            batch_interval: None,
            live: true,
            live_timeout: Duration::from_secs(3),
            offline_prob: 0.0,
            offline: Duration::from_secs(30),
            migrate_prob: 0.0,
            per_endpoint: 1000,
            bind: if server.is_ipv4() {
                IpAddr::from([0, 0, 0, 0])
            } else {
                IpAddr::from([0u16; 8])
            },
            reconnect_for: Duration::from_secs(60),
            drain: Duration::from_secs(10),
            seed: 1,
            progress: false,
            gateway_pid: None,
        }
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No trace has a point (recorded pace also needs two distinct times).
    #[error("no usable trace: {0}")]
    NoTraces(String),
    /// A configuration value is out of range.
    #[error("invalid replay configuration: {0}")]
    Config(String),
    /// A client endpoint could not be made (CA file, socket).
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Microseconds per second.
const US: u64 = 1_000_000;

/// The run shared by every driver.
struct Run {
    cfg: ReplayConfig,
    traces: Vec<Trace>,
    t0: Instant,
    /// Wall clock at `t0`, UTC ms.
    wall0_ms: i64,
    /// When drivers stop measuring, us since `t0`.
    end_us: u64,
    /// The measurement window, us since `t0`.
    win: (u64, u64),
    c: Counters,
    lat: Latencies,
    wire: WireMarks,
}

impl Run {
    fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    fn kind(&self, sched_us: u64) -> Kind {
        if (self.win.0..self.win.1).contains(&sched_us) {
            Kind::AckInWindow
        } else {
            Kind::Ack
        }
    }

    /// The measurement time of a fix due at `due_us`. At a speedup above 1 the phone's clock
    /// runs as fast as the trace, so recorded speeds stay plausible; it is set back so the
    /// last fix of the run is stamped "now" and no fix is ever in the future.
    fn stamp_ms(&self, due_us: u64) -> i64 {
        let s = self.cfg.pace.speedup();
        if s > 1.0 {
            let left_ms = self.end_us.saturating_sub(due_us) as f64 / 1000.0;
            self.wall0_ms + (self.end_us / 1000) as i64 - (left_ms * s) as i64
        } else {
            self.wall0_ms + (due_us / 1000) as i64
        }
    }
}

/// splitmix64: a tiny, seedable generator for per-driver random choices.
fn mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in [0, 1).
fn unit(state: &mut u64) -> f64 {
    (mix(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform time in `[lo, hi]` us (`lo` when the range is empty).
fn between(state: &mut u64, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        lo
    } else {
        lo + (unit(state) * (hi - lo) as f64) as u64
    }
}

/// Replays `traces` as `cfg.drivers` simulated drivers and reports what was measured.
pub async fn replay(cfg: ReplayConfig, traces: Vec<Trace>) -> Result<ReplayReport, ReplayError> {
    check(&cfg)?;
    let traces: Vec<Trace> = traces
        .into_iter()
        .filter(|t| match cfg.pace {
            Pace::Recorded { .. } => t.duration_ms() > 0,
            Pace::Rate { .. } => !t.is_empty(),
        })
        .collect();
    if traces.is_empty() {
        return Err(ReplayError::NoTraces(match cfg.pace {
            Pace::Recorded { .. } => {
                "replay at the recorded pace needs traces with two distinct times (or use a rate)"
                    .into()
            }
            Pace::Rate { .. } => "every trace is empty".into(),
        }));
    }
    let n = cfg.drivers as u64;
    let ramp_us = cfg.ramp.as_micros() as u64;
    let dur_us = cfg.duration.as_micros() as u64;
    let end_us = ramp_us + dur_us;
    let warm_us = (cfg.warmup.as_micros() as u64).min(dur_us / 4);
    // The window closes just before the end, while every driver is still connected (they
    // close their sessions as soon as they are done, from `end_us` on).
    let win = (ramp_us + warm_us, end_us - (dur_us / 20).min(200_000));
    let gw_pid = cfg.gateway_pid.map(|p| p.to_string());
    let gw_before = gw_pid.as_deref().and_then(proc_sample);
    // The gateway's socket is in this machine's tables only when it runs here.
    let gw_port: Vec<u16> = match cfg.server.ip().is_loopback() {
        true => vec![cfg.server.port()],
        false => Vec::new(),
    };
    let drops_before = (udp_socket_drops(&gw_port), udp_buffer_errors());

    // Endpoints: shared sockets, plus one per migrating driver.
    let mut rng = cfg.seed ^ 0x5EED;
    let migrating: Vec<bool> = (0..n).map(|_| unit(&mut rng) < cfg.migrate_prob).collect();
    let shared_count = migrating.iter().filter(|m| !**m).count() as u64;
    let per_ep = cfg.per_endpoint.max(1) as u64;
    let bind = SocketAddr::new(cfg.bind, 0);
    let mut shared_eps = Vec::new();
    for _ in 0..shared_count.div_ceil(per_ep) {
        shared_eps.push(endpoint(bind, &cfg.ca)?);
    }
    let mut specs = Vec::with_capacity(n as usize);
    let mut shared_i = 0u64;
    for i in 0..n {
        let mut r = cfg.seed.wrapping_mul(0x1000_0000_01B3) ^ (i + 1);
        mix(&mut r);
        let trace = (i % traces.len() as u64) as usize;
        let round = i / traces.len() as u64;
        // Drivers sharing a trace start at golden-ratio phases of its back-and-forth cycle.
        let cycle = 2 * traces[trace].duration_ms();
        let phase_ms = if round == 0 || cycle == 0 {
            0
        } else {
            ((round as f64 * 0.618_033_988_749_895).fract() * cycle as f64) as i64
        };
        let (dlat, dlon) = if cfg.spread_m > 0.0 {
            let lat0 = traces[trace].points.first().map_or(0.0, |p| p.lat);
            let d = cfg.spread_m * unit(&mut r).sqrt();
            let a = unit(&mut r) * std::f64::consts::TAU;
            let m_per_deg = 111_320.0;
            (
                d * a.sin() / m_per_deg,
                d * a.cos() / (m_per_deg * lat0.to_radians().cos().max(0.01)),
            )
        } else {
            (0.0, 0.0)
        };
        let start_us = ramp_us * i / n.max(1);
        let span = end_us.saturating_sub(start_us);
        let offline = (unit(&mut r) < cfg.offline_prob).then(|| {
            let len = cfg.offline.as_micros() as u64;
            let at = between(
                &mut r,
                start_us + span / 10,
                end_us.saturating_sub(len + span / 10),
            );
            (at, at + len)
        });
        let migrate_at = migrating[i as usize]
            .then(|| between(&mut r, start_us + span / 5, end_us.saturating_sub(span / 5)));
        let ep = if migrating[i as usize] {
            endpoint(bind, &cfg.ca)?
        } else {
            let ep = shared_eps[(shared_i / per_ep) as usize].clone();
            shared_i += 1;
            ep
        };
        specs.push(Spec {
            id: format!("{}{:05}", cfg.driver_prefix, cfg.first_driver as u64 + i),
            phone: ep.phone()?,
            ep,
            trace,
            phase_ms,
            dlat,
            dlon,
            start_us,
            offline,
            migrate_at,
            rng: r,
        });
    }

    let run = Arc::new(Run {
        traces,
        t0: Instant::now(),
        wall0_ms: chrono::Utc::now().timestamp_millis(),
        end_us,
        win,
        c: Counters::default(),
        lat: Latencies::default(),
        wire: WireMarks::default(),
        cfg,
    });
    let all_eps: Vec<ClientEndpoint> = specs.iter().map(|s| s.ep.clone()).collect();
    let handles: Vec<_> = specs
        .into_iter()
        .map(|s| tokio::spawn(Driver::new(run.clone(), s).run()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = run
        .cfg
        .progress
        .then(|| tokio::spawn(progress_loop(run.clone(), stop.clone())));
    let window = tokio::spawn(window_probe(run.clone(), gw_pid));
    for h in handles {
        // A panicking driver is a bug in this module; its fixes count as unsettled.
        let _ = h.await;
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    if run.now_us() < run.win.1 {
        // Every driver stopped early (refused, unreachable): there is no window to wait for.
        window.abort();
    }
    let probes = window.await.unwrap_or_default();
    // Before the sockets close: their drop counters go with them.
    let client_ports: Vec<u16> = {
        let mut p: Vec<u16> = all_eps
            .iter()
            .filter_map(|e| e.quinn().local_addr().ok().map(|a| a.port()))
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let since = |before: Option<u64>, now: Option<u64>| Some(now?.saturating_sub(before?));
    let udp_drops = UdpDrops {
        gateway: match gw_port.is_empty() {
            true => None,
            false => since(drops_before.0, udp_socket_drops(&gw_port)),
        },
        client: udp_socket_drops(&client_ports),
        machine: since(drops_before.1, udp_buffer_errors()),
    };
    // Let the closes reach the gateway (bounded: a dead gateway does not hold us up).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for ep in &all_eps {
            ep.wait_idle().await;
        }
    })
    .await;
    Ok(ReplayReport {
        udp_drops,
        ..report(&run, probes, gw_before)
    })
}

/// Socket buffer size asked for the client sockets (the kernel may cap it at
/// `net.core.rmem_max`/`wmem_max`, see [`crate::udp`]).
const SOCKET_BUFFER: usize = 16 << 20;

/// A UDP socket with large buffers: a thousand connections share one, and the default buffer
/// (about 200 KiB) overflows when the process is busy for a few milliseconds, which would show
/// up as lost live fixes and loss-recovery delays that are the load generator's, not the
/// gateway's.
fn big_socket(bind: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let sock = std::net::UdpSocket::bind(bind)?;
    // Best effort: a smaller buffer still works.
    let _ = crate::udp::size_buffers(&sock, SOCKET_BUFFER);
    Ok(sock)
}

/// A client endpoint trusting `ca`, moved onto a [`big_socket`].
fn endpoint(bind: SocketAddr, ca: &std::path::Path) -> Result<ClientEndpoint, ClientError> {
    let ep = ClientEndpoint::new(bind, ca)?;
    ep.quinn().rebind(big_socket(bind)?)?;
    Ok(ep)
}

fn check(cfg: &ReplayConfig) -> Result<(), ReplayError> {
    let bad = |m: &str| Err(ReplayError::Config(m.into()));
    let speedup = cfg.pace.speedup();
    if !(speedup.is_finite() && speedup > 0.0) {
        return bad("speedup must be a positive number");
    }
    if let Pace::Rate { per_s, .. } = cfg.pace {
        if !(per_s.is_finite() && per_s > 0.0 && per_s <= 1000.0) {
            return bad("rate must be in (0, 1000] fixes per second");
        }
    }
    if cfg.drivers == 0 || cfg.batch == 0 {
        return bad("drivers and batch must be at least 1");
    }
    for (p, what) in [
        (cfg.offline_prob, "offline probability"),
        (cfg.migrate_prob, "migration probability"),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(ReplayError::Config(format!("{what} must be in [0, 1]")));
        }
    }
    if !(cfg.spread_m.is_finite() && cfg.spread_m >= 0.0) {
        return bad("spread must be a non-negative number of metres");
    }
    // Fixes are stamped up to speedup x run length in the past: stay inside the gateway's
    // default backlog bound (7 days) with a margin.
    let stamped_s = (cfg.ramp + cfg.duration).as_secs_f64() * speedup.max(1.0);
    if stamped_s > 6.0 * 86_400.0 {
        return bad("speedup x run length exceeds 6 days: fixes would be refused as too old");
    }
    Ok(())
}

/// Samples taken at the window's edges.
#[derive(Default)]
struct Probes {
    acked: (u64, u64),
    sent: (u64, u64),
    connected_end: u64,
    gateway: (Option<ProcSample>, Option<ProcSample>),
    client: (Option<ProcSample>, Option<ProcSample>),
    machine: (Option<u64>, Option<u64>),
    wall_us: (u64, u64),
}

/// Reads the counters and the processes' CPU at the window's start and end.
async fn window_probe(run: Arc<Run>, gw_pid: Option<String>) -> Probes {
    let mut p = Probes::default();
    let gw = || gw_pid.as_deref().and_then(proc_sample);
    tokio::time::sleep_until(run.t0 + Duration::from_micros(run.win.0)).await;
    p.wall_us.0 = run.now_us();
    p.acked.0 = Counters::get(&run.c.acked);
    p.sent.0 = Counters::get(&run.c.sent);
    p.gateway.0 = gw();
    p.client.0 = proc_sample("self");
    p.machine.0 = machine_busy_us();
    tokio::time::sleep_until(run.t0 + Duration::from_micros(run.win.1)).await;
    p.wall_us.1 = run.now_us();
    p.acked.1 = Counters::get(&run.c.acked);
    p.sent.1 = Counters::get(&run.c.sent);
    p.connected_end = Counters::get(&run.c.connected);
    p.gateway.1 = gw();
    p.client.1 = proc_sample("self");
    p.machine.1 = machine_busy_us();
    p
}

/// One line per second on stderr (`\r`-rewritten on a terminal).
async fn progress_loop(run: Arc<Run>, stop: Arc<AtomicBool>) {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut sent0, mut acked0) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let c = &run.c;
        let (sent, acked) = (Counters::get(&c.sent), Counters::get(&c.acked));
        let settled = acked + Counters::get(&c.rejected);
        let l = run.lat.take_interval();
        let line = format!(
            "[{:>5.0}s] connected {:>6}/{} acked {:>6} | sent {:>7}/s acked {:>7}/s | unsettled {:>6} | ack p50 {:>7.2} ms p99 {:>7.2} ms | reconnects {} lost {} errors {}",
            run.t0.elapsed().as_secs_f64(),
            Counters::get(&c.connected),
            run.cfg.drivers,
            Counters::get(&c.synced),
            sent - sent0,
            acked - acked0,
            sent.saturating_sub(settled),
            l.p50_us as f64 / 1000.0,
            l.p99_us as f64 / 1000.0,
            Counters::get(&c.reconnects),
            Counters::get(&c.conn_lost),
            Counters::get(&c.connect_errors) + Counters::get(&c.request_errors),
        );
        (sent0, acked0) = (sent, acked);
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
    }
    if tty {
        eprintln!();
    }
}

fn report(run: &Run, p: Probes, gw_before: Option<ProcSample>) -> ReplayReport {
    let c = &run.c;
    let g = Counters::get;
    let (latency, win_latency, backlog_age, handshake) = run.lat.summaries();
    let secs = (p.wall_us.1.saturating_sub(p.wall_us.0)) as f64 / US as f64;
    let acked = p.acked.1.saturating_sub(p.acked.0);
    let per_fix = |x: f64| if acked > 0 { x / acked as f64 } else { 0.0 };
    let bytes = g(&run.wire.end_bytes).saturating_sub(g(&run.wire.start_bytes));
    let dgrams = g(&run.wire.end_datagrams).saturating_sub(g(&run.wire.start_datagrams));
    let ip_overhead = if run.cfg.server.is_ipv4() { 28 } else { 48 };
    let cpu = |a: Option<ProcSample>, b: Option<ProcSample>| match (a, b) {
        (Some(a), Some(b)) => Some((b.cpu_us.saturating_sub(a.cpu_us), b)),
        _ => None,
    };
    let gateway = cpu(p.gateway.0, p.gateway.1).map(|(cpu_us, end)| {
        let before = gw_before.map_or(0, |b| b.rss_kib);
        GatewayUsage {
            rss_before_kib: before,
            rss_end_kib: end.rss_kib,
            rss_per_driver_bytes: end.rss_kib.saturating_sub(before) * 1024
                / p.connected_end.max(1),
            cpu_us_per_fix: per_fix(cpu_us as f64),
            cores: if secs > 0.0 {
                cpu_us as f64 / US as f64 / secs
            } else {
                0.0
            },
        }
    });
    let client_us = cpu(p.client.0, p.client.1).map_or(0, |(us, _)| us);
    let client_cpu = per_fix(client_us as f64);
    let gw_us = cpu(p.gateway.0, p.gateway.1).map_or(0, |(us, _)| us);
    let other_cores = match p.machine {
        (Some(a), Some(b)) if secs > 0.0 => {
            b.saturating_sub(a).saturating_sub(gw_us + client_us) as f64 / US as f64 / secs
        }
        _ => 0.0,
    };
    ReplayReport {
        drivers: run.cfg.drivers as u64,
        traces: run.traces.len() as u64,
        elapsed_s: run.t0.elapsed().as_secs_f64(),
        sent: g(&c.sent),
        acked: g(&c.acked),
        rejected: g(&c.rejected),
        duplicates: g(&c.duplicates),
        settled_by_watermark: g(&c.settled_by_watermark),
        unsettled: g(&c.unsettled),
        live_sent: g(&c.live_sent),
        batches_sent: g(&c.batches_sent),
        resent: g(&c.resent),
        request_errors: g(&c.request_errors),
        connects: g(&c.connects),
        connect_errors: g(&c.connect_errors),
        conn_lost: g(&c.conn_lost),
        reconnects: g(&c.reconnects),
        connected_peak: g(&c.connected_peak),
        migrations: g(&c.migrations),
        migration_errors: g(&c.migration_errors),
        offline_periods: g(&c.offline_periods),
        drivers_failed: g(&c.drivers_failed),
        latency,
        backlog_age,
        handshake,
        window: WindowReport {
            secs,
            acked,
            sent: p.sent.1.saturating_sub(p.sent.0),
            fixes_per_s: if secs > 0.0 { acked as f64 / secs } else { 0.0 },
            connected: p.connected_end,
            latency: win_latency,
            udp_bytes_per_fix: per_fix(bytes as f64),
            wire_bytes_per_fix: per_fix((bytes + dgrams * ip_overhead) as f64),
            datagrams_per_fix: per_fix(dgrams as f64),
            client_cpu_us_per_fix: client_cpu,
            gateway,
            other_cores,
        },
        udp_drops: UdpDrops::default(),
    }
}

/// What differs between drivers, fixed before the run.
struct Spec {
    id: String,
    ep: ClientEndpoint,
    /// This phone's own TLS session tickets (resumed on every reconnect).
    phone: Phone,
    trace: usize,
    phase_ms: i64,
    dlat: f64,
    dlon: f64,
    start_us: u64,
    offline: Option<(u64, u64)>,
    migrate_at: Option<u64>,
    rng: u64,
}

/// Where a fix in the phone's queue stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Measured, never sent.
    Fresh,
    /// To be sent (again).
    Unsent,
    /// Sent as a live datagram at this time (us).
    Live(u64),
    /// Sent in a batch on the current connection.
    Batched,
    /// Acked, rejected or under the watermark: done.
    Settled,
}

/// A fix in the phone's queue.
struct Slot {
    fix: Fix,
    /// When it was measured (due), us since the run start.
    due_us: u64,
    /// The scheduled time of its first upload, us since the run start (`None`: not due yet).
    sched_us: Option<u64>,
    /// Buffered through an offline period: measured apart.
    backlog: bool,
    st: St,
}

/// Reads frames from a stream, cancel-safely: bytes are only taken from quinn by
/// `read_chunk` (cancel-safe) and kept here until a whole frame is in, so a `select!` that
/// drops the read loses nothing.
struct FrameRx {
    recv: quinn::RecvStream,
    buf: Vec<u8>,
}

impl FrameRx {
    fn new(recv: quinn::RecvStream) -> FrameRx {
        FrameRx {
            recv,
            buf: Vec::new(),
        }
    }

    /// The next message, or `None` when the stream ends at a frame boundary.
    async fn next(&mut self) -> Result<Option<ServerMsg>, WireError> {
        loop {
            if let Some((payload, used)) = milepost_proto::frame::parse(&self.buf, MAX_FRAME_HARD)?
            {
                let msg = milepost_proto::decode(payload)?;
                self.buf.drain(..used);
                return Ok(Some(msg));
            }
            match self.recv.read_chunk(64 * 1024, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(WireError::Truncated),
            }
        }
    }
}

/// Waits for the next live-fix ack, or forever when the ack stream is not open yet.
async fn next_on(rx: &mut Option<FrameRx>) -> Result<Option<ServerMsg>, WireError> {
    match rx {
        Some(rx) => rx.next().await,
        None => std::future::pending().await,
    }
}

/// An open session.
struct Link {
    conn: quinn::Connection,
    send: quinn::SendStream,
    rx: FrameRx,
    acks: Option<FrameRx>,
    limits: Limits,
    /// Batches in flight on the session stream, in order: (first seq, count).
    inflight: VecDeque<(u64, u32)>,
    /// True once an ack arrived on this session (counted in `Counters::synced`).
    acked: bool,
}

/// Opens a session: QUIC + TLS, then Hello/Welcome on the first bidirectional stream.
async fn open_link(
    run: &Run,
    ep: &ClientEndpoint,
    phone: &Phone,
    id: &str,
) -> Result<(Link, u64), ClientError> {
    let cfg = &run.cfg;
    let conn = ep.connect_as(phone, cfg.server, &cfg.server_name).await?;
    let (mut send, recv) = conn.open_bi().await?;
    let now_s = chrono::Utc::now().timestamp();
    let token = cfg.key.mint(&Claims {
        role: Role::Driver,
        sub: id.to_owned(),
        depot: cfg.depot.clone(),
        exp: now_s + 12 * 3600 + (cfg.ramp + cfg.duration + cfg.drain).as_secs() as i64,
        iat: now_s,
    });
    let hello = ClientMsg::Hello(Hello {
        version: PROTOCOL_VERSION,
        token,
        subject: id.to_owned(),
        device: DeviceInfo {
            device_id: id.to_owned(),
            app: concat!("milepost-replay/", env!("CARGO_PKG_VERSION")).into(),
            os: std::env::consts::OS.into(),
        },
    });
    write_msg(&mut send, &hello).await?;
    let mut rx = FrameRx::new(recv);
    match rx.next().await {
        Ok(Some(ServerMsg::Welcome(w))) => Ok((
            Link {
                conn,
                send,
                rx,
                acks: None,
                limits: w.limits,
                inflight: VecDeque::new(),
                acked: false,
            },
            w.watermark.0,
        )),
        Ok(Some(ServerMsg::Error(e))) => Err(ClientError::Refused(e)),
        Ok(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
        // The server may close before we read its error frame: its close code says why.
        Err(e) => Err(match conn.close_reason() {
            Some(reason) => ClientError::Connection(reason),
            None => e.into(),
        }),
    }
}

/// Notes on stderr, with the wall-clock time, the moment every driver is in a state (the
/// reconnect storm bench reads these lines).
fn all_drivers(what: &str) {
    let ms = chrono::Utc::now().timestamp_millis();
    eprintln!("all drivers {what} at unix_ms={ms}");
}

/// Refusals that a retry with the same token cannot fix (PROTOCOL.md 5.2).
fn fatal(code: Option<ErrorCode>) -> bool {
    matches!(
        code,
        Some(
            ErrorCode::ProtocolViolation
                | ErrorCode::UnsupportedVersion
                | ErrorCode::TokenInvalid
                | ErrorCode::TokenExpired
                | ErrorCode::WrongRole
                | ErrorCode::OutOfScope
                | ErrorCode::TokenRevoked
        )
    )
}

/// What woke a driver.
enum Event {
    Session(Result<Option<ServerMsg>, WireError>),
    LiveAck(Result<Option<ServerMsg>, WireError>),
    AckStream(Result<quinn::RecvStream, quinn::ConnectionError>),
    Timer,
}

/// Time given to a first connection attempt (handshake and Welcome), ms.
const ATTEMPT_MS: u64 = 4_000;
/// Longest time given to an attempt after earlier ones timed out, ms.
const ATTEMPT_MAX_MS: u64 = 10_000;

/// One simulated driver.
struct Driver {
    run: Arc<Run>,
    s: Spec,
    link: Option<Link>,
    /// Seq of `queue[0]`.
    base_seq: u64,
    queue: VecDeque<Slot>,
    /// Next fix: due time (us since run start) and virtual trace time (ms); `None` before
    /// the first session (seqs start from its watermark).
    next_fix: Option<(u64, i64)>,
    /// When the first fix was due: the origin of this driver's schedule.
    first_due_us: u64,
    next_flush_us: u64,
    /// Reconnect (when disconnected) or resend after a refusal (when connected) at this time.
    retry_at: Option<u64>,
    backoff_ms: u64,
    /// How long the next connection attempt may take before it is given up.
    attempt_ms: u64,
    /// Disconnected involuntarily since this time.
    lost_since: Option<u64>,
    ever_connected: bool,
    offline_now: bool,
    wire_closed: Wire,
    marks_done: [bool; 2],
    done: bool,
}

impl Driver {
    fn new(run: Arc<Run>, s: Spec) -> Driver {
        Driver {
            run,
            s,
            link: None,
            base_seq: 1,
            queue: VecDeque::new(),
            next_fix: None,
            first_due_us: 0,
            next_flush_us: 0,
            retry_at: None,
            backoff_ms: 100,
            attempt_ms: ATTEMPT_MS,
            lost_since: None,
            ever_connected: false,
            offline_now: false,
            wire_closed: Wire::default(),
            marks_done: [false; 2],
            done: false,
        }
    }

    async fn run(mut self) {
        let run = self.run.clone();
        tokio::time::sleep_until(run.t0 + Duration::from_micros(self.s.start_us)).await;
        self.retry_at = Some(run.now_us());
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            let now = run.now_us();
            self.tick(now).await;
            if self.done {
                break;
            }
            let wake = self.next_wake(now);
            sleep
                .as_mut()
                .reset(run.t0 + Duration::from_micros(wake.max(now)));
            let ev = match self.link.as_mut() {
                Some(l) => tokio::select! {
                    biased;
                    r = l.rx.next() => Event::Session(r),
                    r = next_on(&mut l.acks) => Event::LiveAck(r),
                    r = l.conn.accept_uni(), if l.acks.is_none() => Event::AckStream(r),
                    _ = &mut sleep => Event::Timer,
                },
                None => {
                    sleep.as_mut().await;
                    Event::Timer
                }
            };
            self.on_event(ev, run.now_us());
        }
        let left = self.queue.iter().filter(|s| s.st != St::Settled).count() as u64;
        Counters::add(&run.c.unsettled, left);
        Counters::add(&run.c.drivers_done, 1);
        if let Some(l) = self.link.take() {
            l.conn.close(quinn::VarInt::from_u32(0), b"done");
            run.c.connected_down(l.acked);
        }
    }

    fn on_event(&mut self, ev: Event, now: u64) {
        match ev {
            Event::Timer => {}
            Event::Session(Ok(Some(ServerMsg::Ack(ack)))) => {
                if let Some(l) = self.link.as_mut() {
                    let at = l.inflight.iter().position(|b| b.0 == ack.first_seq.0);
                    if let Some(i) = at {
                        l.inflight.remove(i);
                    }
                }
                self.settle_ack(&ack, now);
            }
            Event::Session(Ok(Some(ServerMsg::Error(e)))) => {
                // A request-level refusal answers the oldest batch in flight: nothing of it is
                // settled; resend it after a back-off.
                Counters::add(&self.run.c.request_errors, 1);
                tracing::debug!(driver = %self.s.id, code = %e.code, "batch refused");
                if let Some((first, count)) =
                    self.link.as_mut().and_then(|l| l.inflight.pop_front())
                {
                    for seq in first..first + count as u64 {
                        if let Some(slot) = self.slot_mut(seq) {
                            if slot.st == St::Batched {
                                slot.st = St::Unsent;
                            }
                        }
                    }
                }
                self.retry_at = Some(now + self.next_backoff_us());
            }
            Event::Session(Ok(Some(other))) => {
                tracing::debug!(driver = %self.s.id, msg = ?other, "unexpected message");
            }
            Event::Session(Ok(None)) | Event::Session(Err(_)) | Event::AckStream(Err(_)) => {
                self.lose(now, true);
            }
            Event::LiveAck(Ok(Some(ServerMsg::Ack(ack)))) => self.settle_ack(&ack, now),
            Event::LiveAck(Ok(Some(_))) | Event::LiveAck(Ok(None)) | Event::LiveAck(Err(_)) => {
                // The server ended its ack stream: it opens another when it needs one; a
                // broken connection shows on the session stream.
                if let Some(l) = self.link.as_mut() {
                    l.acks = None;
                }
            }
            Event::AckStream(Ok(recv)) => {
                if let Some(l) = self.link.as_mut() {
                    l.acks = Some(FrameRx::new(recv));
                }
            }
        }
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = seq.checked_sub(self.base_seq)?;
        self.queue.get_mut(usize::try_from(i).ok()?)
    }

    /// Settles the seqs an ack covers and records their latency.
    fn settle_ack(&mut self, ack: &Ack, now: u64) {
        let run = self.run.clone();
        if let Some(l) = self.link.as_mut().filter(|l| !l.acked) {
            l.acked = true;
            let now = run.c.synced.fetch_add(1, Ordering::Relaxed) + 1;
            if now == run.cfg.drivers as u64 {
                all_drivers("connected and acked");
            }
        }
        Counters::add(&run.c.duplicates, ack.duplicates as u64);
        let first = ack.first_seq.0;
        for seq in first..first.saturating_add(ack.count as u64) {
            let Some(slot) = self.slot_mut(seq) else {
                continue;
            };
            if slot.st == St::Settled {
                continue;
            }
            slot.st = St::Settled;
            if ack.rejected.iter().any(|r| r.seq.0 == seq) {
                Counters::add(&run.c.rejected, 1);
            } else {
                Counters::add(&run.c.acked, 1);
            }
            if slot.backlog {
                run.lat
                    .record(Kind::Backlog, now.saturating_sub(slot.due_us), 1);
            } else if let Some(sched) = slot.sched_us {
                run.lat
                    .record(run.kind(sched), now.saturating_sub(sched), 1);
            }
        }
        self.pop_settled();
    }

    fn pop_settled(&mut self) {
        while self.queue.front().is_some_and(|s| s.st == St::Settled) {
            self.queue.pop_front();
            self.base_seq += 1;
        }
    }

    /// Exponential back-off with jitter: 100 ms doubling to 2 s, +-50 %.
    fn next_backoff_us(&mut self) -> u64 {
        let b = self.backoff_ms;
        self.backoff_ms = (b * 2).min(2_000);
        let jitter = 0.5 + unit(&mut self.s.rng);
        (b as f64 * jitter * 1000.0) as u64
    }

    /// The connection is gone: everything in flight is to be resent on the next one.
    fn lose(&mut self, now: u64, involuntary: bool) {
        let Some(l) = self.link.take() else {
            return;
        };
        self.wire_closed = self.wire_closed.plus(Wire::of(&l.conn));
        if !involuntary {
            l.conn.close(quinn::VarInt::from_u32(0), b"offline");
        }
        let run = self.run.clone();
        run.c.connected_down(l.acked);
        for slot in self.queue.iter_mut() {
            if matches!(slot.st, St::Live(_) | St::Batched) {
                slot.st = St::Unsent;
            }
            if !involuntary && slot.st != St::Settled {
                // Not acked when the network went away: part of the offline backlog.
                slot.backlog = true;
            }
        }
        if involuntary {
            Counters::add(&run.c.conn_lost, 1);
            self.lost_since.get_or_insert(now);
            self.retry_at = Some(now + self.next_backoff_us());
        }
    }

    fn wire_total(&self) -> Wire {
        match &self.link {
            Some(l) => self.wire_closed.plus(Wire::of(&l.conn)),
            None => self.wire_closed,
        }
    }

    /// Does everything that is due at `now`.
    async fn tick(&mut self, now: u64) {
        let run = self.run.clone();
        let cfg = &run.cfg;
        // Window marks for the wire totals.
        for (k, at) in [run.win.0, run.win.1].into_iter().enumerate() {
            if !self.marks_done[k] && now >= at {
                self.marks_done[k] = true;
                run.wire.mark(k == 1, self.wire_total());
            }
        }
        if let Some(at) = self.s.migrate_at.filter(|at| now >= *at) {
            self.s.migrate_at = None;
            let moved = big_socket(SocketAddr::new(cfg.bind, 0))
                .and_then(|sock| self.s.ep.quinn().rebind(sock));
            match moved {
                Ok(()) => Counters::add(&run.c.migrations, 1),
                Err(e) => {
                    tracing::warn!(driver = %self.s.id, error = %e, at, "rebind failed");
                    Counters::add(&run.c.migration_errors, 1);
                }
            }
        }
        if let Some((from, until)) = self.s.offline {
            if !self.offline_now && now >= from {
                if self.ever_connected && now < until {
                    self.offline_now = true;
                    Counters::add(&run.c.offline_periods, 1);
                    self.lose(now, false);
                    // Offline on purpose: no reconnect attempts, no giving up.
                    self.retry_at = None;
                    self.lost_since = None;
                } else {
                    // Too late for it (still logging in, or past its end): skip it.
                    self.s.offline = None;
                }
            } else if self.offline_now && now >= until {
                self.offline_now = false;
                self.s.offline = None;
                self.retry_at = Some(now);
            }
        }
        // (Re)connect.
        if self.link.is_none() && !self.offline_now && self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            self.connect(now).await;
            if self.done {
                return;
            }
        }
        let now = run.now_us();
        self.make_fixes(now);
        let ended = now >= run.end_us;
        // Live fixes not acked in time go back into the queue for a batch.
        let timeout = cfg.live_timeout.as_micros() as u64;
        let mut resend = false;
        for slot in self.queue.iter_mut() {
            if let St::Live(at) = slot.st {
                if now >= at + timeout {
                    slot.st = St::Unsent;
                }
            }
            resend |= slot.st == St::Unsent;
        }
        let fresh = self.queue.iter().filter(|s| s.st == St::Fresh).count() as u64;
        let mut flush_at = None;
        if fresh >= cfg.batch as u64 {
            flush_at = self.queue.back().map(|s| s.due_us);
        }
        if let Some(iv) = cfg.batch_interval {
            let iv = (iv.as_micros() as u64).max(1);
            if now >= self.next_flush_us {
                if fresh > 0 {
                    flush_at = Some(flush_at.unwrap_or(self.next_flush_us));
                }
                while self.next_flush_us <= now {
                    self.next_flush_us += iv;
                }
            }
        }
        if self.retry_at.is_some_and(|t| now >= t) && self.link.is_some() {
            self.retry_at = None;
        }
        if resend && self.retry_at.is_none() {
            flush_at.get_or_insert(now);
        }
        if ended && fresh > 0 {
            flush_at.get_or_insert(now);
        }
        if let Some(sched) = flush_at {
            // The upload is due now, connected or not: that fixes the scheduled send time of
            // what it carries, so a late upload (after an outage) shows in the latency.
            for slot in self.queue.iter_mut() {
                if slot.st == St::Fresh {
                    slot.sched_us.get_or_insert(sched);
                }
            }
            if self.link.is_some() {
                self.flush(sched, now).await;
            }
        }
        if ended {
            let settled = self.queue.is_empty();
            let drained = now >= run.end_us + cfg.drain.as_micros() as u64;
            let marks = self.marks_done.iter().all(|m| *m);
            if (settled && marks) || drained {
                self.done = true;
            }
        }
        if let Some(since) = self.lost_since {
            if self.link.is_none() && now >= since + cfg.reconnect_for.as_micros() as u64 {
                tracing::warn!(driver = %self.s.id, "gateway unreachable: giving up");
                Counters::add(&run.c.drivers_failed, 1);
                self.done = true;
            }
        }
    }

    /// Measures every fix due by `now` (all of them, if the task was late: their scheduled
    /// times stay, so the delay shows in the latency).
    fn make_fixes(&mut self, now: u64) {
        let run = self.run.clone();
        let trace = &run.traces[self.s.trace];
        while let Some((due, tau)) = self.next_fix {
            if due > now || due >= run.end_us {
                break;
            }
            let Some(sample) = sample(trace, tau) else {
                self.next_fix = None;
                break;
            };
            let fix = sample.to_fix(run.stamp_ms(due), self.s.dlat, self.s.dlon);
            self.queue.push_back(Slot {
                fix,
                due_us: due,
                sched_us: None,
                backlog: self.offline_now,
                st: St::Fresh,
            });
            Counters::add(&run.c.sent, 1);
            self.next_fix = self.after(due, tau);
        }
    }

    /// The fix after the one due at `due` with virtual time `tau`.
    fn after(&self, due: u64, tau: i64) -> Option<(u64, i64)> {
        let run = &self.run;
        match run.cfg.pace {
            Pace::Rate { per_s, speedup } => {
                let next = due + (US as f64 / per_s) as u64;
                let elapsed_ms = (next - self.first_due_us) as f64 / 1000.0;
                Some((next, self.s.phase_ms + (elapsed_ms * speedup) as i64))
            }
            Pace::Recorded { speedup } => {
                let t = next_recorded(&run.traces[self.s.trace], tau)?;
                let us = ((t - self.s.phase_ms) as f64 * 1000.0 / speedup) as u64;
                Some((self.first_due_us + us, t))
            }
        }
    }

    /// Opens a session; schedules a retry on failure.
    async fn connect(&mut self, now: u64) {
        let run = self.run.clone();
        let started = run.now_us();
        // Like a phone that knows its network is up: give a handshake (and the Welcome) 4 s,
        // then try again (QUIC's own retransmission backoff would otherwise stretch one
        // attempt over the whole outage; Chromium's QUIC gives a handshake 10 s). Each attempt
        // that times out doubles the next one's time, up to 10 s: a gateway busy with a
        // reconnect storm answers late, and a phone that gives up on a handshake the gateway
        // is about to finish makes it do that work twice.
        let attempt = tokio::time::timeout(
            Duration::from_millis(self.attempt_ms),
            open_link(&run, &self.s.ep, &self.s.phone, &self.s.id),
        )
        .await;
        let (link, watermark) = match attempt {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                Counters::add(&run.c.connect_errors, 1);
                if fatal(e.code()) {
                    tracing::warn!(driver = %self.s.id, error = %e, "refused: giving up");
                    Counters::add(&run.c.drivers_failed, 1);
                    self.done = true;
                    return;
                }
                tracing::debug!(driver = %self.s.id, error = %e, "connect failed");
                self.lost_since.get_or_insert(now);
                self.retry_at = Some(run.now_us() + self.next_backoff_us());
                return;
            }
            Err(_) => {
                Counters::add(&run.c.connect_errors, 1);
                self.attempt_ms = (self.attempt_ms * 2).min(ATTEMPT_MAX_MS);
                self.lost_since.get_or_insert(now);
                self.retry_at = Some(run.now_us() + self.next_backoff_us());
                return;
            }
        };
        let now = run.now_us();
        run.lat
            .record(Kind::Handshake, now.saturating_sub(started), 1);
        Counters::add(&run.c.connects, 1);
        if self.ever_connected {
            Counters::add(&run.c.reconnects, 1);
        }
        if run.c.connected_up() == run.cfg.drivers as u64 {
            all_drivers("connected");
        }
        self.link = Some(link);
        self.lost_since = None;
        self.backoff_ms = 100;
        self.attempt_ms = ATTEMPT_MS;
        if !self.ever_connected {
            self.ever_connected = true;
            // Seqs continue after what the gateway already holds for this driver id; the
            // schedule starts now, with a random phase inside one fix interval so drivers
            // that logged in together do not send in lockstep.
            self.base_seq = watermark + 1;
            let jitter = match run.cfg.pace {
                Pace::Rate { per_s, .. } => (unit(&mut self.s.rng) * US as f64 / per_s) as u64,
                Pace::Recorded { .. } => 0,
            };
            self.first_due_us = now + jitter;
            self.next_fix = Some((self.first_due_us, self.s.phase_ms));
            self.next_flush_us = self.first_due_us;
        } else {
            // Everything at or below the watermark is settled (stored, duplicate or
            // rejected: the ack that said which was lost with the connection).
            let mut by_mark = 0;
            for seq in self.base_seq..=watermark {
                if let Some(slot) = self.slot_mut(seq) {
                    if slot.st != St::Settled {
                        slot.st = St::Settled;
                        by_mark += 1;
                    }
                }
            }
            Counters::add(&run.c.acked, by_mark);
            Counters::add(&run.c.settled_by_watermark, by_mark);
            self.pop_settled();
        }
    }

    /// Uploads: the newest never-sent fix as a live datagram (if live is on), everything else
    /// waiting as batches of consecutive seqs. `sched` is the scheduled time of this upload.
    async fn flush(&mut self, sched: u64, now: u64) {
        let run = self.run.clone();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let max = link.limits.max_batch.max(1) as usize;
        let mut live_sent = false;
        if run.cfg.live {
            let seq = self.base_seq + self.queue.len() as u64 - 1;
            if let Some(slot) = self.queue.back_mut().filter(|s| s.st == St::Fresh) {
                let msg = ClientDatagram::LiveFix {
                    seq: Seq(seq),
                    fix: slot.fix,
                };
                // A datagram that cannot go (too big, no datagram support) goes in the batch.
                let sent = milepost_proto::encode(&msg)
                    .ok()
                    .is_some_and(|b| link.conn.send_datagram(b.into()).is_ok());
                if sent {
                    slot.st = St::Live(now);
                    slot.sched_us = Some(sched);
                    live_sent = true;
                }
            }
        }
        if live_sent {
            Counters::add(&run.c.live_sent, 1);
        }
        // Runs of consecutive waiting seqs, at most `max` long.
        let mut runs: Vec<(u64, Vec<Fix>)> = Vec::new();
        let mut resent = 0;
        for (i, slot) in self.queue.iter_mut().enumerate() {
            if !matches!(slot.st, St::Fresh | St::Unsent) {
                continue;
            }
            let seq = self.base_seq + i as u64;
            match runs.last_mut() {
                Some((first, fixes)) if *first + fixes.len() as u64 == seq && fixes.len() < max => {
                    fixes.push(slot.fix)
                }
                _ => runs.push((seq, vec![slot.fix])),
            }
            if slot.st == St::Unsent {
                resent += 1;
            }
            slot.sched_us.get_or_insert(sched);
            slot.st = St::Batched;
        }
        Counters::add(&run.c.resent, resent);
        for (first, fixes) in runs {
            let count = fixes.len() as u32;
            let msg = ClientMsg::FixBatch(FixBatch {
                first_seq: Seq(first),
                fixes,
            });
            if write_msg(&mut link.send, &msg).await.is_err() {
                self.lose(run.now_us(), true);
                return;
            }
            link.inflight.push_back((first, count));
            Counters::add(&run.c.batches_sent, 1);
        }
    }

    /// The next moment something is due.
    fn next_wake(&self, now: u64) -> u64 {
        let run = &self.run;
        let cfg = &run.cfg;
        let mut w = run.end_us + cfg.drain.as_micros() as u64;
        let mut at = |t: u64| w = w.min(t);
        if now < run.end_us {
            at(run.end_us);
        }
        if let Some((due, _)) = self.next_fix.filter(|(d, _)| *d < run.end_us) {
            at(due);
        }
        if cfg.batch_interval.is_some() && self.queue.iter().any(|s| s.st == St::Fresh) {
            at(self.next_flush_us);
        }
        let timeout = cfg.live_timeout.as_micros() as u64;
        for s in &self.queue {
            if let St::Live(t) = s.st {
                at(t + timeout);
            }
        }
        if let Some((from, until)) = self.s.offline {
            at(if self.offline_now { until } else { from });
        }
        if let Some(m) = self.s.migrate_at {
            at(m);
        }
        for (k, t) in [run.win.0, run.win.1].into_iter().enumerate() {
            if !self.marks_done[k] {
                at(t);
            }
        }
        if let Some(r) = self.retry_at.filter(|_| !self.offline_now) {
            at(r);
        }
        if let Some(since) = self.lost_since {
            at(since + cfg.reconnect_for.as_micros() as u64);
        }
        w
    }
}
