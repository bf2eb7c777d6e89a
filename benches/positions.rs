//! Position store benches at 100k and 1M drivers: moving a driver (update), and the three
//! dispatcher queries (box, radius, k-nearest), on drivers spread over a city.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use milepost_core::fleet::positions::Positions;
use milepost_proto::{DriverId, Fix, Seq};
use rand::{Rng, SeedableRng};

/// Drivers spread uniformly over ~40 x 40 km around Washington DC.
fn city(n: usize) -> (Positions, Vec<DriverId>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut p = Positions::new();
    let ids: Vec<DriverId> = (0..n).map(|i| DriverId(format!("d{i}"))).collect();
    for id in &ids {
        let f = Fix::from_degrees(
            1,
            38.7 + rng.gen::<f64>() * 0.36,
            -77.25 + rng.gen::<f64>() * 0.46,
            5.0,
        );
        p.update(id, "dc", Seq(1), &f);
    }
    (p, ids)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("positions");
    g.sample_size(30);
    for n in [100_000usize, 1_000_000] {
        let (mut p, ids) = city(n);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut t = 2i64;
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("update_move", n), &n, |b, _| {
            b.iter(|| {
                let id = &ids[rng.gen_range(0..ids.len())];
                let (_, old) = p.get(id).unwrap();
                t += 1;
                // A realistic move: a few metres from the last position.
                let f = Fix::from_degrees(t, old.lat() + 3e-5, old.lon() + 3e-5, 5.0);
                p.update(black_box(id), "dc", Seq(2), &f)
            })
        });
        g.bench_with_input(BenchmarkId::new("within_1km_box", n), &n, |b, _| {
            b.iter(|| p.within("dc", (38.88, -77.04), (38.889, -77.0285), 1000))
        });
        g.bench_with_input(BenchmarkId::new("nearby_500m", n), &n, |b, _| {
            b.iter(|| p.nearby("dc", black_box(38.89), -77.03, 500.0, 1000))
        });
        g.bench_with_input(BenchmarkId::new("nearest_10", n), &n, |b, _| {
            b.iter(|| p.nearest("dc", black_box(38.89), -77.03, 10))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
