//! Helpers of the `kill -9` cluster tests: a driver's whole trip, and how many times each seq
//! of each driver is in the stream.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use milepost_core::store::LogRecord;
use milepost_proto::Fix;

use super::{example_route, leg, now_ms};

/// The fixes of a driver: depot to S1 to S2 to S3, standing a while at each stop.
pub fn trip() -> Vec<Fix> {
    let r = example_route();
    let s = r.start.unwrap();
    let mut pts = vec![(s.lat, s.lon)];
    pts.extend(r.stops.iter().map(|s| (s.lat, s.lon)));
    let mut clock = now_ms() - 3_000_000;
    let mut out = Vec::new();
    for w in pts.windows(2) {
        out.extend(leg(w[0], w[1], &mut clock, 90));
    }
    out
}

/// How many times each seq `1..=n` of drivers `D0..` (`drivers` of them) is in stream
/// `stream`, read up to its end as it is now.
pub async fn seq_counts(nats_url: &str, stream: &str, drivers: usize, n: usize) -> Vec<Vec<u32>> {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let mut stream = js.get_stream(stream).await.unwrap();
    // Up to the end as it is now (gateways keep logging ticks while routes are under way).
    let last = stream.info().await.unwrap().state.last_sequence;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    let mut seqs: Vec<Vec<u32>> = vec![vec![0; n + 1]; drivers];
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await {
        let seq = m.info().unwrap().stream_sequence;
        let records = milepost_proto::codec::decode_trusted::<Vec<LogRecord>>(&m.payload).unwrap();
        for r in records {
            if let LogRecord::Batch {
                driver, entries, ..
            } = r
            {
                let i: usize = driver.0[1..].parse().unwrap();
                for e in entries {
                    seqs[i][e.seq().0 as usize] += 1;
                }
            }
        }
        if seq >= last {
            break;
        }
    }
    seqs
}

/// Panics naming the seqs of any driver missing from `seqs` (as [`seq_counts`] counts them).
pub fn assert_none_missing(seqs: &[Vec<u32>]) {
    for (i, s) in seqs.iter().enumerate() {
        let missing: Vec<usize> = (1..s.len()).filter(|&q| s[q] == 0).collect();
        assert!(
            missing.is_empty(),
            "D{i}: seqs missing from the stream: {missing:?}"
        );
    }
}

/// Three real `milepost serve --cluster` binaries, `g0` to `g2`, with `cluster_toml` (the
/// `[cluster]` section); the others use the first one's certificate. Returns the processes,
/// their QUIC addresses, a client endpoint trusting them and their data directories.
pub fn spawn_three(
    nats_url: &str,
    cluster_toml: &str,
) -> (
    Vec<std::process::Child>,
    Vec<std::net::SocketAddr>,
    milepost::client::ClientEndpoint,
    Vec<tempfile::TempDir>,
) {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let certs = dirs[0].path().join("certs");
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut toml = cluster_toml.to_owned();
        if i > 0 {
            toml = format!(
                "cert = {:?}\nkey = {:?}\n{toml}",
                certs.join("server.pem"),
                certs.join("server.key")
            );
        }
        let cfg = dir.path().join("milepost.toml");
        std::fs::write(&cfg, toml).unwrap();
        let node = format!("g{i}");
        let (child, addr) = super::spawn_binary(
            dir.path(),
            "127.0.0.1:0",
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--cluster",
                nats_url,
                "--node",
                &node,
            ],
        );
        children.push(child);
        addrs.push(addr);
    }
    let ep = milepost::client::ClientEndpoint::new(
        "127.0.0.1:0".parse().unwrap(),
        &certs.join("ca.pem"),
    )
    .unwrap();
    (children, addrs, ep, dirs)
}
