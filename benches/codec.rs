//! Codec benches: encoding and decoding the messages on the hot path (a batch of fixes, an
//! ack, a live-fix datagram), and framing.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use milepost_proto::{
    decode, encode, encode_into, frame, Ack, Activity, ClientDatagram, ClientMsg, Fix, FixBatch,
    RejectReason, Rejection, Seq, ServerMsg,
};

fn fix(i: i64) -> Fix {
    let mut f = Fix::from_degrees(
        1_764_000_000_000 + i * 1000,
        38.9 + i as f64 * 1e-5,
        -77.03,
        6.5,
    );
    f.speed_mps = Some(8.2);
    f.heading_deg = Some(91.0);
    f.battery_pct = Some(77);
    f.activity = Some(Activity::InVehicle);
    f
}

fn bench(c: &mut Criterion) {
    let batch = ClientMsg::FixBatch(FixBatch {
        first_seq: Seq(1_000),
        fixes: (0..10).map(fix).collect(),
    });
    let batch_bytes = encode(&batch).unwrap();
    let live = ClientDatagram::LiveFix {
        seq: Seq(1_234),
        fix: fix(0),
    };
    let live_bytes = encode(&live).unwrap();
    let ack = ServerMsg::Ack(Ack {
        first_seq: Seq(1_000),
        count: 10,
        duplicates: 0,
        rejected: vec![Rejection {
            seq: Seq(1_003),
            reason: RejectReason::ImplausibleJump,
        }],
        watermark: Seq(1_009),
    });

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(10));
    g.bench_function("encode_batch_10", |b| {
        b.iter(|| encode(black_box(&batch)).unwrap())
    });
    g.bench_function("decode_batch_10", |b| {
        b.iter(|| decode::<ClientMsg>(black_box(&batch_bytes)).unwrap())
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_live_fix", |b| {
        b.iter(|| encode(black_box(&live)).unwrap())
    });
    g.bench_function("decode_live_fix", |b| {
        b.iter(|| decode::<ClientDatagram>(black_box(&live_bytes)).unwrap())
    });
    let mut buf = Vec::with_capacity(64);
    g.bench_function("encode_ack_framed", |b| {
        b.iter(|| {
            buf.clear();
            encode_into(black_box(&ack), &mut buf).unwrap();
        })
    });
    let mut framed = Vec::new();
    encode_into(&batch, &mut framed).unwrap();
    g.bench_function("frame_parse_and_decode_batch_10", |b| {
        b.iter(|| {
            let (payload, _) = frame::parse(black_box(&framed), 65_536).unwrap().unwrap();
            decode::<ClientMsg>(payload).unwrap()
        })
    });
    g.finish();
    println!(
        "sizes: live-fix datagram {} B, batch of 10 {} B",
        live_bytes.len(),
        batch_bytes.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
