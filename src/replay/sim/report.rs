//! What a run tells: the one-second progress line on stderr while it runs, and the
//! [`ReplayReport`] it hands back, from the shared counters and histograms and the window's
//! [`Probes`] (rates, per-fix costs, the gateway's CPU and memory).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::netcount::DirCounters;
use super::probe::Probes;
use super::run::{Run, US};
use crate::replay::metrics::{Counters, GatewayUsage, ReplayReport, UdpDrops, WindowReport};
use crate::replay::netreport::{DirReport, NetReport};
use crate::replay::procfs::ProcSample;

/// One line per second on stderr (`\r`-rewritten on a terminal), until `stop`.
pub(super) async fn progress_loop(run: Arc<Run>, stop: Arc<AtomicBool>) {
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

/// `x / n`, or 0 when `n` is 0.
fn ratio(x: f64, n: f64) -> f64 {
    if n > 0.0 {
        x / n
    } else {
        0.0
    }
}

/// CPU time between two samples of a process, with the later sample.
fn cpu(a: Option<ProcSample>, b: Option<ProcSample>) -> Option<(u64, ProcSample)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((b.cpu_us.saturating_sub(a.cpu_us), b)),
        _ => None,
    }
}

/// The report of `run`, from the window's samples `p` and the gateway's process before the
/// run (`udp_drops` is left to the caller).
pub(super) fn report(run: &Run, p: Probes, gw_before: Option<ProcSample>) -> ReplayReport {
    let c = &run.c;
    let g = Counters::get;
    let (latency, win_latency, backlog_age, handshake) = run.lat.summaries();
    let (start, end) = (p.start, p.end);
    let secs = (end.wall_us.saturating_sub(start.wall_us)) as f64 / US as f64;
    let acked = end.acked.saturating_sub(start.acked);
    let per_fix = |x: f64| ratio(x, acked as f64);
    let per_s = |x: f64| ratio(x, secs);
    let bytes = g(&run.wire.end_bytes).saturating_sub(g(&run.wire.start_bytes));
    let dgrams = g(&run.wire.end_datagrams).saturating_sub(g(&run.wire.start_datagrams));
    let ip_overhead = if run.cfg.server.is_ipv4() { 28 } else { 48 };
    let gw_cpu = cpu(start.gateway, end.gateway);
    let gateway = gw_cpu.map(|(cpu_us, end_sample)| {
        let before = gw_before.map_or(0, |b| b.rss_kib);
        GatewayUsage {
            rss_before_kib: before,
            rss_end_kib: end_sample.rss_kib,
            rss_per_driver_bytes: end_sample.rss_kib.saturating_sub(before) * 1024
                / end.connected.max(1),
            cpu_us_per_fix: per_fix(cpu_us as f64),
            cores: per_s(cpu_us as f64 / US as f64),
        }
    });
    let client_us = cpu(start.client, end.client).map_or(0, |(us, _)| us);
    let gw_us = gw_cpu.map_or(0, |(us, _)| us);
    let other_cores = match (start.machine, end.machine) {
        (Some(a), Some(b)) => {
            per_s(b.saturating_sub(a).saturating_sub(gw_us + client_us) as f64 / US as f64)
        }
        _ => 0.0,
    };
    let net = run.net.as_ref().zip(run.cfg.net.as_ref()).map(|(c, p)| {
        let dir = |d: &DirCounters| {
            let packets = g(&d.packets);
            let lost = g(&d.lost);
            DirReport {
                packets,
                lost,
                queue_drops: g(&d.queue),
                down_drops: g(&d.down),
                delivered: g(&d.delivered),
                loss: if packets == 0 {
                    0.0
                } else {
                    lost as f64 / packets as f64
                },
            }
        };
        let hours = g(&c.phone_us) as f64 / 3.6e9;
        let rtt = run.lat.rtt();
        let per_h = |v: u64| if hours > 0.0 { v as f64 / hours } else { 0.0 };
        NetReport {
            profile: p.name.clone(),
            up: dir(&c.up),
            down: dir(&c.down),
            no_mapping: g(&c.no_mapping),
            rtt_p50_us: rtt.p50_us,
            rtt_p99_us: rtt.p99_us,
            rebinds: g(&c.rebinds),
            nat_expiries: g(&c.expiries),
            dead_zones: g(&c.dead_zones),
            suspensions: g(&c.suspensions),
            phone_hours: hours,
            bytes_up_per_h: per_h(g(&c.up.bytes)),
            bytes_down_per_h: per_h(g(&c.down.delivered_bytes)),
            packets_up_per_h: per_h(g(&c.up.packets)),
            packets_down_per_h: per_h(g(&c.down.delivered)),
            wakeups_per_h: per_h(g(&c.wakeups)),
        }
    });
    ReplayReport {
        net,
        routes: None,
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
        conn_reset: g(&c.conn_reset),
        conn_timed_out: g(&c.conn_timed_out),
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
            sent: end.sent.saturating_sub(start.sent),
            fixes_per_s: per_s(acked as f64),
            connected: end.connected,
            latency: win_latency,
            udp_bytes_per_fix: per_fix(bytes as f64),
            wire_bytes_per_fix: per_fix((bytes + dgrams * ip_overhead) as f64),
            datagrams_per_fix: per_fix(dgrams as f64),
            client_cpu_us_per_fix: per_fix(client_us as f64),
            gateway,
            other_cores,
        },
        udp_drops: UdpDrops::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::metrics::{Kind, Wire};
    use crate::replay::sim::config::test_config;
    use crate::replay::sim::probe::Edge;
    use crate::replay::sim::run::test_run;

    fn sample(cpu_us: u64, rss_kib: u64) -> Option<ProcSample> {
        Some(ProcSample { cpu_us, rss_kib })
    }

    #[test]
    fn window_rates_and_per_fix_costs() {
        let run = test_run(test_config(), Vec::new());
        Counters::add(&run.c.sent, 5_000);
        Counters::add(&run.c.acked, 4_900);
        run.lat.record(Kind::AckInWindow, 2_000, 3);
        run.wire.mark(
            false,
            Wire {
                bytes: 1_000,
                datagrams: 10,
            },
        );
        run.wire.mark(
            true,
            Wire {
                bytes: 101_000,
                datagrams: 2_010,
            },
        );
        let p = Probes {
            start: Edge {
                wall_us: 1_000_000,
                acked: 100,
                sent: 200,
                connected: 40,
                gateway: sample(1_000_000, 50_000),
                client: sample(3_000_000, 9_000),
                machine: Some(10_000_000),
            },
            end: Edge {
                wall_us: 3_000_000,
                acked: 1_100,
                sent: 1_250,
                connected: 50,
                gateway: sample(1_500_000, 60_000),
                client: sample(3_250_000, 9_000),
                machine: Some(12_000_000),
            },
        };
        let r = report(&run, p, sample(0, 40_000));
        assert_eq!((r.sent, r.acked, r.drivers), (5_000, 4_900, 100));
        let w = r.window;
        assert_eq!(
            (w.secs, w.acked, w.sent, w.connected),
            (2.0, 1_000, 1_050, 50)
        );
        assert_eq!(w.fixes_per_s, 500.0);
        assert_eq!(w.latency.count, 3);
        // 100 000 bytes in 2 000 datagrams for 1 000 fixes, plus 28 bytes of IPv4 and UDP
        // headers per datagram.
        assert_eq!(w.udp_bytes_per_fix, 100.0);
        assert_eq!(w.datagrams_per_fix, 2.0);
        assert_eq!(w.wire_bytes_per_fix, 156.0);
        assert_eq!(w.client_cpu_us_per_fix, 250.0);
        let gw = w.gateway.expect("the gateway was sampled");
        assert_eq!(gw.cpu_us_per_fix, 500.0);
        assert_eq!(gw.cores, 0.25);
        // 20 000 KiB more than before the run, for 50 drivers.
        assert_eq!((gw.rss_before_kib, gw.rss_end_kib), (40_000, 60_000));
        assert_eq!(gw.rss_per_driver_bytes, 20_000 * 1024 / 50);
        // 2 s of machine time in 2 s, of which 0.75 s were the gateway's and ours.
        assert_eq!(w.other_cores, 0.625);
    }

    #[test]
    fn an_empty_window_reports_zeros_not_nans() {
        let run = test_run(test_config(), Vec::new());
        let mut p = Probes::default();
        p.end.gateway = sample(10, 1);
        p.start.gateway = sample(5, 1);
        let r = report(&run, p, None);
        let w = r.window;
        assert_eq!(
            (w.secs, w.fixes_per_s, w.udp_bytes_per_fix),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(w.other_cores, 0.0);
        let gw = w.gateway.expect("both gateway samples are there");
        assert_eq!(
            (gw.cpu_us_per_fix, gw.cores, gw.rss_before_kib),
            (0.0, 0.0, 0)
        );
        // No gateway sample at one edge: no gateway figures.
        p.end.gateway = None;
        assert_eq!(report(&run, p, None).window.gateway, None);
    }
}
