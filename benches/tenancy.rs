//! The cost of tenancy per check: which carrier owns a depot (`Carriers::carrier_of`, a scan
//! of every carrier's depot list), and the brand a depot's page wears, with 1, 10, 100 and
//! 1,000 carriers of 10 depots each. Asked for the depot of the last carrier (the longest
//! scan) and for a depot of no carrier (the default's: every list scanned).
//!
//! Run: `cargo bench --bench tenancy`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use milepost::tenancy::{BrandConfig, CarrierConfig, Carriers};

fn carriers(n: usize) -> Carriers {
    let mut c = Carriers::default();
    for i in 0..n {
        c.0.insert(
            format!("c{i:04}"),
            CarrierConfig {
                name: format!("Carrier {i}"),
                depots: (0..10).map(|d| format!("dc-{i:04}-{d}")).collect(),
                ..Default::default()
            },
        );
    }
    c
}

fn bench(c: &mut Criterion) {
    let fallback = BrandConfig::default();
    let mut g = c.benchmark_group("tenancy");
    for n in [1usize, 10, 100, 1_000] {
        let cs = carriers(n);
        let last = format!("dc-{:04}-9", n - 1);
        g.bench_with_input(BenchmarkId::new("carrier_of_last", n), &last, |b, d| {
            b.iter(|| black_box(cs.carrier_of(black_box(d))).len())
        });
        g.bench_with_input(
            BenchmarkId::new("carrier_of_none", n),
            "elsewhere",
            |b, d| b.iter(|| black_box(cs.carrier_of(black_box(d))).len()),
        );
        g.bench_with_input(BenchmarkId::new("brand_of_depot", n), &last, |b, d| {
            b.iter(|| black_box(cs.brand_of_depot(black_box(d), &fallback)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
