//! What the load generator measures, and the report it hands back.
//!
//! Counters are shared atomics bumped by every simulated driver; latencies go into a few shared
//! HDR histograms behind one mutex (a record is a few tens of nanoseconds, far below the cost of
//! the QUIC packet that produced it, so the lock is not worth sharding). The gateway's CPU time
//! and memory come from [`crate::replay::procfs`] when the caller names the gateway's process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency recorded, microseconds (one hour); larger values are clamped to it.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Event counters, shared by every driver.
#[derive(Debug, Default)]
pub struct Counters {
    /// Fixes taken from the traces (each counted once, however often it is sent).
    pub sent: AtomicU64,
    /// Fixes settled as stored (or already stored): acked and not rejected.
    pub acked: AtomicU64,
    /// Fixes the gateway refused for good.
    pub rejected: AtomicU64,
    /// Sum of `Ack.duplicates`: resent fixes the gateway had already stored.
    pub duplicates: AtomicU64,
    /// Of `acked`: fixes settled by a `Welcome.watermark` after a reconnect, not by an ack.
    pub settled_by_watermark: AtomicU64,
    /// Live-fix datagrams sent.
    pub live_sent: AtomicU64,
    /// `FixBatch` frames sent.
    pub batches_sent: AtomicU64,
    /// Fixes sent more than once (live timeout, resend after a reconnect or a refusal).
    pub resent: AtomicU64,
    /// Request-level `Error` answers (rate limited, busy, storage failure...).
    pub request_errors: AtomicU64,
    /// Sessions opened (first connections and reconnections).
    pub connects: AtomicU64,
    /// Connection or Hello attempts that failed.
    pub connect_errors: AtomicU64,
    /// Sessions lost while in use (closed by the gateway, timed out, broken).
    pub conn_lost: AtomicU64,
    /// Of `conn_lost`: ended by a stateless reset (the gateway restarted and no longer knew
    /// the connection).
    pub conn_reset: AtomicU64,
    /// Of `conn_lost`: ended by the idle timeout (nothing heard from the gateway for that
    /// long).
    pub conn_timed_out: AtomicU64,
    /// Sessions opened again after a loss or an offline period.
    pub reconnects: AtomicU64,
    /// Drivers currently holding an open session.
    pub connected: AtomicU64,
    /// Most drivers connected at once.
    pub connected_peak: AtomicU64,
    /// Drivers whose current session has already had at least one of its fixes acked
    /// ("connected and acked": what a reconnect storm is measured by).
    pub synced: AtomicU64,
    /// Network switches simulated (client socket rebinds).
    pub migrations: AtomicU64,
    /// Network switches whose rebind failed locally.
    pub migration_errors: AtomicU64,
    /// Offline periods simulated.
    pub offline_periods: AtomicU64,
    /// Drivers that gave up (refused token, gateway unreachable past the reconnect bound).
    pub drivers_failed: AtomicU64,
    /// Drivers finished.
    pub drivers_done: AtomicU64,
    /// Fixes still unsettled when their driver stopped.
    pub unsettled: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Marks one more driver connected, tracking the peak; returns how many are connected now.
    pub fn connected_up(&self) -> u64 {
        let now = self.connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.connected_peak.fetch_max(now, Ordering::Relaxed);
        now
    }

    /// Marks one driver disconnected; `acked`: its session had been acked (counted in
    /// `synced`).
    pub fn connected_down(&self, acked: bool) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
        if acked {
            self.synced.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Which latency a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Ack latency from the scheduled send time, outside the measurement window.
    Ack,
    /// Ack latency from the scheduled send time, inside the measurement window.
    AckInWindow,
    /// Age at ack of a fix buffered while offline (from its measurement time).
    Backlog,
    /// Time to open a session (QUIC + TLS handshake, Hello, Welcome).
    Handshake,
    /// QUIC's smoothed round-trip estimate, sampled at every upload (with a network model).
    Rtt,
}

/// The shared histograms.
pub struct Histograms {
    all: Histogram<u64>,
    window: Histogram<u64>,
    /// Reset every progress line.
    interval: Histogram<u64>,
    backlog: Histogram<u64>,
    handshake: Histogram<u64>,
    rtt: Histogram<u64>,
}

fn new_hist() -> Histogram<u64> {
    // Bounds are constants within hdrhistogram's limits: construction cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            all: new_hist(),
            window: new_hist(),
            interval: new_hist(),
            backlog: new_hist(),
            handshake: new_hist(),
            rtt: new_hist(),
        }
    }
}

/// Histograms behind one lock.
#[derive(Default)]
pub struct Latencies(Mutex<Histograms>);

impl Latencies {
    fn lock(&self) -> std::sync::MutexGuard<'_, Histograms> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `n` values of `us` microseconds.
    pub fn record(&self, kind: Kind, us: u64, n: u64) {
        let us = us.clamp(1, MAX_LATENCY_US);
        let mut h = self.lock();
        match kind {
            Kind::Ack | Kind::AckInWindow => {
                h.all.saturating_record_n(us, n);
                h.interval.saturating_record_n(us, n);
                if kind == Kind::AckInWindow {
                    h.window.saturating_record_n(us, n);
                }
            }
            Kind::Backlog => h.backlog.saturating_record_n(us, n),
            Kind::Handshake => h.handshake.saturating_record_n(us, n),
            Kind::Rtt => h.rtt.saturating_record_n(us, n),
        }
    }

    /// The round trips sampled (`Kind::Rtt`).
    pub fn rtt(&self) -> Summary {
        Summary::of(&self.lock().rtt)
    }

    /// The ack latency since the last call (for the progress line), then resets it.
    pub fn take_interval(&self) -> Summary {
        let mut h = self.lock();
        let s = Summary::of(&h.interval);
        h.interval.reset();
        s
    }

    /// Summaries: (all acks, acks in the window, backlog ages, handshakes).
    pub fn summaries(&self) -> (Summary, Summary, Summary, Summary) {
        let h = self.lock();
        (
            Summary::of(&h.all),
            Summary::of(&h.window),
            Summary::of(&h.backlog),
            Summary::of(&h.handshake),
        )
    }
}

/// A latency distribution, microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest value.
    pub max_us: u64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// UDP traffic of some connections, as quinn counts it (UDP payload bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wire {
    /// Bytes sent and received.
    pub bytes: u64,
    /// Datagrams sent and received.
    pub datagrams: u64,
}

impl Wire {
    /// The traffic of one connection so far.
    pub fn of(conn: &quinn::Connection) -> Wire {
        let s = conn.stats();
        Wire {
            bytes: s.udp_tx.bytes + s.udp_rx.bytes,
            datagrams: s.udp_tx.datagrams + s.udp_rx.datagrams,
        }
    }

    /// The sum of two.
    pub fn plus(self, o: Wire) -> Wire {
        Wire {
            bytes: self.bytes + o.bytes,
            datagrams: self.datagrams + o.datagrams,
        }
    }
}

/// Wire totals reported by drivers at the window's start and end.
#[derive(Debug, Default)]
pub struct WireMarks {
    /// Sum of the drivers' totals at the window start.
    pub start_bytes: AtomicU64,
    /// Datagrams, same moment.
    pub start_datagrams: AtomicU64,
    /// Sum of the drivers' totals at the window end.
    pub end_bytes: AtomicU64,
    /// Datagrams, same moment.
    pub end_datagrams: AtomicU64,
}

impl WireMarks {
    /// Adds one driver's total at the start (`end == false`) or end of the window.
    pub fn mark(&self, end: bool, w: Wire) {
        let (b, d) = if end {
            (&self.end_bytes, &self.end_datagrams)
        } else {
            (&self.start_bytes, &self.start_datagrams)
        };
        b.fetch_add(w.bytes, Ordering::Relaxed);
        d.fetch_add(w.datagrams, Ordering::Relaxed);
    }
}

/// UDP datagrams dropped by the kernel for want of socket buffer space during a run: where
/// they were dropped says whose fault a lossy run was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct UdpDrops {
    /// On the gateway's socket (its port on this machine), `None` if it is not local.
    pub gateway: Option<u64>,
    /// On the load generator's own sockets (those open at the end of the run; a migrated
    /// driver's old socket takes its count with it).
    pub client: Option<u64>,
    /// Machine-wide receive and send buffer errors, every process included.
    pub machine: Option<u64>,
}

/// The gateway's resource use over the measurement window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct GatewayUsage {
    /// Gateway RSS before the first driver connected, KiB.
    pub rss_before_kib: u64,
    /// Gateway RSS at the window end, KiB.
    pub rss_end_kib: u64,
    /// (RSS at the window end - RSS before) / drivers connected at the window end, bytes.
    pub rss_per_driver_bytes: u64,
    /// Gateway CPU time in the window divided by fixes acked in it, microseconds.
    pub cpu_us_per_fix: f64,
    /// Gateway CPU time in the window divided by its wall time: cores used.
    pub cores: f64,
}

/// The steady-state window: after the ramp and a warm-up, until the end of the run (before the
/// drain), when every driver is connected and sending at its regular pace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct WindowReport {
    /// Length of the window, seconds.
    pub secs: f64,
    /// Fixes acked in the window.
    pub acked: u64,
    /// Fixes taken from the traces in the window.
    pub sent: u64,
    /// Acked fixes per second: the sustained throughput.
    pub fixes_per_s: f64,
    /// Drivers connected at the window end.
    pub connected: u64,
    /// Ack latency of fixes scheduled in the window, from their scheduled send time.
    pub latency: Summary,
    /// UDP payload bytes (both directions) per acked fix, as quinn counts them.
    pub udp_bytes_per_fix: f64,
    /// The same plus 28 bytes of IPv4 and UDP headers per datagram (48 for IPv6).
    pub wire_bytes_per_fix: f64,
    /// UDP datagrams (both directions) per acked fix.
    pub datagrams_per_fix: f64,
    /// The load generator's own CPU per acked fix, microseconds.
    pub client_cpu_us_per_fix: f64,
    /// The gateway's CPU and memory, when its process id was given.
    pub gateway: Option<GatewayUsage>,
    /// Cores used by every other process on the machine during the window (builds, tests...
    /// of other people): a measurement with a large value here was disturbed.
    pub other_cores: f64,
}

/// Everything a run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Simulated drivers.
    pub drivers: u64,
    /// Traces they were cycled over (after splitting at gaps).
    pub traces: u64,
    /// Wall time of the whole run, seconds (ramp, run and drain).
    pub elapsed_s: f64,
    /// Fixes taken from the traces (each counted once).
    pub sent: u64,
    /// Fixes settled as stored or already stored (not rejected).
    pub acked: u64,
    /// Fixes refused by the gateway (settled, never resent).
    pub rejected: u64,
    /// Sum of the acks' `duplicates`: resends of fixes already stored.
    pub duplicates: u64,
    /// Of `acked`: settled by a `Welcome.watermark` rather than an ack.
    pub settled_by_watermark: u64,
    /// Fixes not settled when their driver stopped (lost unless resent by a later run).
    pub unsettled: u64,
    /// Live-fix datagrams sent.
    pub live_sent: u64,
    /// `FixBatch` frames sent.
    pub batches_sent: u64,
    /// Fixes sent more than once.
    pub resent: u64,
    /// Request-level `Error` answers.
    pub request_errors: u64,
    /// Sessions opened.
    pub connects: u64,
    /// Failed connection or Hello attempts.
    pub connect_errors: u64,
    /// Sessions lost while in use.
    pub conn_lost: u64,
    /// Of `conn_lost`: ended by a stateless reset.
    pub conn_reset: u64,
    /// Of `conn_lost`: ended by the idle timeout.
    pub conn_timed_out: u64,
    /// Sessions reopened after a loss or an offline period.
    pub reconnects: u64,
    /// Most drivers connected at once.
    pub connected_peak: u64,
    /// Network switches (socket rebinds) simulated.
    pub migrations: u64,
    /// Rebinds that failed locally.
    pub migration_errors: u64,
    /// Offline periods simulated.
    pub offline_periods: u64,
    /// Drivers that gave up.
    pub drivers_failed: u64,
    /// Ack latency of every fix sent while connected, from its scheduled send time.
    pub latency: Summary,
    /// Age at ack of fixes buffered while offline.
    pub backlog_age: Summary,
    /// Session setup time.
    pub handshake: Summary,
    /// The steady-state window.
    pub window: WindowReport,
    /// UDP datagrams dropped by the kernel over the whole run.
    pub udp_drops: UdpDrops,
    /// What the network model did and what the phones' radios spent (with `--network`).
    pub net: Option<crate::replay::netreport::NetReport>,
    /// The drivers' route copies (with `--route`).
    pub routes: Option<RoutesAssigned>,
}

/// What `replay --route` assigned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RoutesAssigned {
    /// Route copies the gateway took.
    pub ok: u64,
    /// Copies it refused, or that could not be sent.
    pub failed: u64,
}

impl ReplayReport {
    /// A human-readable summary table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let ms = |us: u64| us as f64 / 1000.0;
        let lat = |s: &Summary| {
            format!(
                "n={:<9} p50 {:>8.2} ms  p99 {:>8.2} ms  p99.9 {:>8.2} ms  max {:>9.2} ms",
                s.count,
                ms(s.p50_us),
                ms(s.p99_us),
                ms(s.p999_us),
                ms(s.max_us)
            )
        };
        let w = &self.window;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "drivers {} (peak connected {}, failed {}) over {} traces, {:.1} s",
            self.drivers, self.connected_peak, self.drivers_failed, self.traces, self.elapsed_s
        );
        let _ = writeln!(
            o,
            "fixes   sent {}  acked {}  rejected {}  duplicates {}  unsettled {}  (by watermark {})",
            self.sent,
            self.acked,
            self.rejected,
            self.duplicates,
            self.unsettled,
            self.settled_by_watermark
        );
        let _ = writeln!(
            o,
            "packets live {}  batches {}  resent fixes {}  request errors {}",
            self.live_sent, self.batches_sent, self.resent, self.request_errors
        );
        let _ = writeln!(
            o,
            "conns   opened {}  failed {}  lost {} (reset {}, timed out {})  reconnects {}  migrations {} ({} failed)  offline {}",
            self.connects,
            self.connect_errors,
            self.conn_lost,
            self.conn_reset,
            self.conn_timed_out,
            self.reconnects,
            self.migrations,
            self.migration_errors,
            self.offline_periods
        );
        let _ = writeln!(o, "ack latency (all)     {}", lat(&self.latency));
        let _ = writeln!(o, "ack latency (window)  {}", lat(&w.latency));
        let _ = writeln!(o, "backlog age at ack    {}", lat(&self.backlog_age));
        let _ = writeln!(o, "handshake             {}", lat(&self.handshake));
        let _ = writeln!(
            o,
            "window  {:.1} s: {:.0} fixes/s acked, {} connected, {:.0} B/fix on the wire ({:.0} B UDP payload, {:.2} datagrams), client CPU {:.1} us/fix",
            w.secs,
            w.fixes_per_s,
            w.connected,
            w.wire_bytes_per_fix,
            w.udp_bytes_per_fix,
            w.datagrams_per_fix,
            w.client_cpu_us_per_fix
        );
        let _ = writeln!(
            o,
            "other processes used {:.2} cores during the window",
            w.other_cores
        );
        let n = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
        let _ = writeln!(
            o,
            "udp drops (socket buffers full): gateway socket {}, load generator sockets {}, machine-wide {}",
            n(self.udp_drops.gateway),
            n(self.udp_drops.client),
            n(self.udp_drops.machine)
        );
        if let Some(net) = &self.net {
            o.push_str(&net.table());
        }
        if let Some(r) = &self.routes {
            let _ = writeln!(
                o,
                "routes assigned {}, refused or not sent {}",
                r.ok, r.failed
            );
        }
        if let Some(g) = &w.gateway {
            let _ = writeln!(
                o,
                "gateway {:.1} us CPU/fix ({:.2} cores), RSS {} -> {} KiB = {:.1} KiB/driver",
                g.cpu_us_per_fix,
                g.cores,
                g.rss_before_kib,
                g.rss_end_kib,
                g.rss_per_driver_bytes as f64 / 1024.0
            );
        }
        o
    }
}
