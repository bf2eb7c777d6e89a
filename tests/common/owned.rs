//! Gateways that fold only the partitions they own (`cluster.fold = "owned"`), for the tests
//! of that mode: started over a test's nats-server, settled, and keys shared between them.

use std::time::{Duration, Instant};

use milepost::cluster::config::FoldMode;
use milepost_core::store::record::partition_of_depot;

use super::{now_ms, Nats, TestGateway};

pub const PARTITIONS: u32 = 4;

pub async fn gateway(nats: &Nats, node: &str, first: Option<&TestGateway>) -> TestGateway {
    gateway_of(nats, node, first, PARTITIONS, 1).await
}

/// A gateway of `partitions` partitions writing partition images every `snapshot_s` seconds
/// (0: never, so that a takeover reads the partition's subject from the start).
pub async fn gateway_of(
    nats: &Nats,
    node: &str,
    first: Option<&TestGateway>,
    partitions: u32,
    snapshot_s: u64,
) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = super::config(dir.path());
    cfg.cluster.url = Some(nats.url.clone());
    cfg.cluster.node = Some(node.into());
    cfg.cluster.prefix = "o".into();
    cfg.cluster.partitions = partitions;
    cfg.cluster.lease_ttl_s = 2;
    cfg.cluster.fold = FoldMode::Owned;
    cfg.cluster.partition_snapshot_s = snapshot_s;
    cfg.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    if let Some(f) = first {
        cfg.cert = Some(f.dir.path().join("certs/server.pem"));
        cfg.key = Some(f.dir.path().join("certs/server.key"));
    }
    super::launch(dir, cfg, first.map(|f| f.ca.clone())).await
}

/// Waits until the gateways hold `shares` partitions each (10 s at most).
pub async fn settle(gws: &[&TestGateway], shares: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held: Vec<Vec<u32>> = gws.iter().map(|g| g.gw.shared().owned.held()).collect();
        let counts: Vec<usize> = held.iter().map(Vec::len).collect();
        if counts == shares {
            let mut all: Vec<u32> = held.concat();
            all.sort();
            all.dedup();
            assert_eq!(
                all.len(),
                shares.iter().sum::<usize>(),
                "held twice: {held:?}"
            );
            return;
        }
        assert!(Instant::now() < deadline, "leases never settled: {held:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn holds(g: &TestGateway, depot: &str) -> bool {
    g.gw.shared()
        .owned
        .holds(partition_of_depot(depot, PARTITIONS))
}

/// Two gateways of [`PARTITIONS`] partitions, settled: the one that holds depot "north" and
/// the other.
pub async fn two_gateways(nats: &Nats) -> (TestGateway, TestGateway) {
    let a = gateway(nats, "a", None).await;
    let b = gateway(nats, "b", Some(&a)).await;
    settle(&[&a, &b], &[2, 2]).await;
    if holds(&a, "north") {
        (a, b)
    } else {
        (b, a)
    }
}

/// A new API key `name` with `scope`, written to the first gateway's key file and copied to
/// the others' (each picks it up within a second).
pub async fn shared_key(gws: &[&TestGateway], name: &str, scope: &str) -> String {
    use milepost::apikeys::{KeyFile, Scope, FILE};
    let path = gws[0].dir.path().join(FILE);
    let mut f = KeyFile::read(&path).unwrap();
    let scopes = vec![Scope::parse(scope).unwrap()];
    let (_, key) = f.create(name, "*", scopes, now_ms()).unwrap();
    f.write(&path).unwrap();
    for g in &gws[1..] {
        std::fs::copy(&path, g.dir.path().join(FILE)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    key
}
