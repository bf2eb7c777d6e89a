//! Criterion bench of the fleet core's per-fix cost: one driver on a 150-stop route (planned
//! paths between stops), fed a synthetic 1 Hz drive at ~8 m/s with GPS noise, stopping 30 s at
//! every stop. Reports fixes per second (`Throughput::Elements`), with the analytics tally on
//! (the default) and off, in the same run.
//!
//! Why this shape: it is the hot path of the gateway (every accepted fix goes through
//! `FleetCore::on_fix`), with the realistic mix of windowed path matching, geofence checks,
//! arrivals/departures and ETA re-estimation, and nothing else (no I/O, no allocation besides
//! the updates emitted).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use milepost_core::fleet::config::CoreConfig;
use milepost_core::fleet::engine::FleetCore;
use milepost_core::fleet::geo_util::M_PER_DEG;
use milepost_proto::route::{DispatchEvent, Parcel, Point, Route, Stop, Update};
use milepost_proto::{DriverId, Fix};

const LAT0: f64 = 38.9;
const T0: i64 = 1_771_243_200_000;

/// A deterministic pseudo-random generator (xorshift), so every run drives the same trace.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal, mean 0, sd 1 (sum of uniforms).
    fn gauss(&mut self) -> f64 {
        (0..6).map(|_| self.next_f64()).sum::<f64>() - 3.0
    }
}

/// Metres to (lat, lon) around the bench's origin.
fn ll(x_m: f64, y_m: f64) -> (f64, f64) {
    (
        LAT0 + y_m / M_PER_DEG,
        x_m / (M_PER_DEG * LAT0.to_radians().cos()),
    )
}

/// 150 stops on a Manhattan-like zigzag, 250-450 m apart, each leg an L-shaped planned path.
fn route_and_trace() -> (Route, Vec<Fix>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut stops = Vec::new();
    let mut waypoints = Vec::new(); // (x, y, is_stop)
    let (mut x, mut y) = (0.0, 0.0);
    waypoints.push((x, y, false));
    for k in 0..150 {
        let (dx, dy) = (
            150.0 + 150.0 * rng.next_f64(),
            (100.0 + 150.0 * rng.next_f64()) * if k % 10 < 5 { 1.0 } else { -1.0 },
        );
        let corner = (x + dx, y);
        let (sx, sy) = (x + dx, y + dy);
        let path = [(x, y), corner, (sx, sy)]
            .iter()
            .map(|&(px, py)| {
                let (lat, lon) = ll(px, py);
                Point { lat, lon }
            })
            .collect();
        let (lat, lon) = ll(sx, sy);
        stops.push(Stop {
            id: format!("S{k}").as_str().into(),
            lat,
            lon,
            radius_m: Some(40.0),
            parcels: vec![Parcel {
                tracking: format!("T{k}").as_str().into(),
                otp: None,
            }],
            window: None,
            service_s: Some(30),
            planned_arrival_ms: Some(T0 + k as i64 * 90_000),
            path,
            instructions: String::new(),
            otp_required: false,
        });
        waypoints.push((corner.0, corner.1, false));
        waypoints.push((sx, sy, true));
        (x, y) = (sx, sy);
    }
    let (slat, slon) = ll(0.0, 0.0);
    let route = Route {
        id: "R-bench".into(),
        depot: "D".into(),
        driver: "bench".into(),
        planned_start_ms: T0,
        start: Some(Point {
            lat: slat,
            lon: slon,
        }),
        stops,
    };
    // Drive the waypoints at 8 m/s, 1 Hz, 5 m noise; wait 30 s at each stop.
    let mut fixes = Vec::new();
    let mut t = T0;
    let mut pos = (0.0f64, 0.0f64);
    let mut push = |t: i64, p: (f64, f64), rng: &mut Rng| {
        let (lat, lon) = ll(p.0 + 5.0 * rng.gauss(), p.1 + 5.0 * rng.gauss());
        fixes.push(Fix::from_degrees(t, lat, lon, 8.0));
    };
    for &(wx, wy, is_stop) in &waypoints[1..] {
        loop {
            let (dx, dy) = (wx - pos.0, wy - pos.1);
            let d = (dx * dx + dy * dy).sqrt();
            if d <= 8.0 {
                pos = (wx, wy);
                break;
            }
            pos = (pos.0 + 8.0 * dx / d, pos.1 + 8.0 * dy / d);
            t += 1000;
            push(t, pos, &mut rng);
        }
        if is_stop {
            for _ in 0..30 {
                t += 1000;
                push(t, pos, &mut rng);
            }
        }
    }
    (route, fixes)
}

fn bench_on_fix(c: &mut Criterion) {
    let (route, fixes) = route_and_trace();
    let driver = DriverId::from("bench");
    // One untimed pass to show what the trace exercises.
    let mut core = FleetCore::new(CoreConfig::default());
    core.assign_route(route.clone(), T0).expect("valid route");
    let mut out = Vec::new();
    for f in &fixes {
        core.on_fix(&driver, f, &mut out);
    }
    let arrived = out
        .iter()
        .filter(|u| matches!(u, Update::Dispatch(d) if matches!(d.kind, DispatchEvent::StopArrived { .. })))
        .count();
    eprintln!(
        "trace: {} fixes, {} updates, {arrived} arrivals of 150 stops",
        fixes.len(),
        out.len()
    );
    let mut g = c.benchmark_group("fleet");
    g.throughput(Throughput::Elements(fixes.len() as u64));
    g.sample_size(20);
    // As the fold runs it: every fix, then every update it produced shown to the analytics
    // tally (`core.analytics`, on by default); and with analytics off, in the same run.
    for (name, analytics) in [
        ("on_fix_150_stops", true),
        ("on_fix_150_stops_analytics_off", false),
    ] {
        let cfg = CoreConfig {
            analytics,
            ..CoreConfig::default()
        };
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut core = FleetCore::new(cfg.clone());
                    core.assign_route(route.clone(), T0).expect("valid route");
                    (core, Vec::with_capacity(1024))
                },
                |(mut core, mut out)| {
                    for f in &fixes {
                        core.on_fix(&driver, f, &mut out);
                        for u in &out {
                            core.observe(u, |_| 0);
                        }
                        out.clear();
                    }
                    core
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_on_fix);
criterion_main!(benches);
