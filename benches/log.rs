//! Log append path: records through the group-commit writer with fsync, from many concurrent
//! submitters (as sessions do), measured as fixes made durable per second.

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use milepost::store::LogConfig;
use milepost::store::LogWriter;
use milepost_core::store::{BatchEntry, LogRecord};
use milepost_proto::{DriverId, Fix, Seq};

fn record(driver: usize, seq: u64, fixes: usize) -> Arc<LogRecord> {
    Arc::new(LogRecord::Batch {
        driver: DriverId(format!("d{driver}")),
        depot: "dc".into(),
        received_ms: 1,
        entries: (0..fixes as u64)
            .map(|i| BatchEntry::Accepted {
                seq: Seq(seq + i),
                fix: Fix::from_degrees(1, 38.9, -77.0, 5.0),
            })
            .collect(),
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("log");
    g.sample_size(10);
    for (writers, fixes_per_record) in [(1usize, 1usize), (1000, 1), (100, 10)] {
        let per_iter = (writers * fixes_per_record) as u64;
        g.throughput(Throughput::Elements(per_iter));
        g.bench_function(
            format!("durable_append_{writers}x{fixes_per_record}"),
            |b| {
                let dir = tempfile::tempdir().unwrap();
                let w = LogWriter::start(
                    dir.path(),
                    &LogConfig::default(),
                    0,
                    None,
                    Default::default(),
                    None,
                )
                .unwrap();
                let h = w.handle();
                b.iter_custom(|iters| {
                    let h = h.clone();
                    rt.block_on(async move {
                        let start = Instant::now();
                        for it in 0..iters {
                            let mut tasks = Vec::with_capacity(writers);
                            for d in 0..writers {
                                let h = h.clone();
                                let rec =
                                    record(d, it * fixes_per_record as u64 + 1, fixes_per_record);
                                tasks.push(tokio::spawn(
                                    async move { h.append(rec).await.unwrap() },
                                ));
                            }
                            for t in tasks {
                                t.await.unwrap();
                            }
                        }
                        start.elapsed()
                    })
                });
                w.shutdown();
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
