//! Failover when gateways fold only the partitions they own (`cluster.fold = "owned"`): three
//! real `milepost serve` binaries over a real `nats-server -js`, six drivers in three depots
//! spread over them; the gateway that holds the first driver's depot is killed with SIGKILL
//! mid-load. Checked: a survivor takes its partitions and serves the depot again within a
//! bound (printed; the target is 5 s), every acked fix is in the stream and in the new
//! holder's fold (its Welcome watermark covers it), and every recipient, following its parcel
//! on whichever gateway holds it and resuming from its last offset after the kill, sees the
//! milestones dense and in order through the arrival.
//!
//! Without nats-server this prints SKIPPED and passes, unless `MILEPOST_REQUIRE_NATS` is set.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{example_route, token, Nats};
use milepost::auth::Role;
use milepost::client::{ClientEndpoint, Session};
use milepost_core::store::record::partition_of_depot;
use milepost_proto::route::{ParcelEvent, Route};
use milepost_proto::{CommandKind, FeedTarget, Fix, Seq, ServerMsg};

const DRIVERS: usize = 6;
const PARTITIONS: u32 = 6;
const DEPOTS: [&str; 3] = ["north", "south", "east"];

fn depot_of(i: usize) -> &'static str {
    DEPOTS[i % DEPOTS.len()]
}

fn route_of(i: usize) -> Route {
    let mut r = example_route();
    r.id = format!("R{i}").as_str().into();
    r.driver = format!("D{i}").as_str().into();
    r.depot = depot_of(i).into();
    for s in &mut r.stops {
        for p in &mut s.parcels {
            p.tracking = format!("{}-{i}", p.tracking.0).as_str().into();
        }
    }
    r
}

async fn open(
    ep: &ClientEndpoint,
    addr: SocketAddr,
    role: Role,
    sub: &str,
    depot: &str,
) -> Option<Session> {
    let attempt = async {
        let conn = ep.connect(addr, "localhost").await.ok()?;
        Session::open(conn, &token(role, sub, depot), sub, Default::default())
            .await
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .ok()
        .flatten()
}

/// The gateway index holding `depot`'s partition now, from the lease bucket.
async fn holder(kv: &async_nats::jetstream::kv::Store, depot: &str) -> Option<usize> {
    let p = partition_of_depot(depot, PARTITIONS);
    let v = kv.get(format!("part.{p}")).await.ok()??;
    String::from_utf8_lossy(&v).strip_prefix('g')?.parse().ok()
}

/// Drives one phone: batches of 4, moving to the next gateway whenever one fails, resending
/// what is above the Welcome watermark. Returns the highest seq it was acked.
async fn drive(
    ep: ClientEndpoint,
    gateways: Vec<SocketAddr>,
    mut g: usize,
    i: usize,
    fixes: Vec<Fix>,
    progress: Arc<AtomicU64>,
) -> u64 {
    let id = format!("D{i}");
    let mut acked = 0u64;
    let n = fixes.len() as u64;
    let mut attempts = 0;
    while acked < n {
        attempts += 1;
        assert!(attempts < 60, "{id}: no gateway would take the fixes");
        let Some(mut s) = open(&ep, gateways[g], Role::Driver, &id, depot_of(i)).await else {
            g = (g + 1) % gateways.len();
            continue;
        };
        // A gateway that does not hold the depot refuses the phone (ServerBusy, naming the
        // holder): the loop moves on until it reaches the holder.
        let mut next = s.welcome.watermark.0.max(acked) + 1;
        while next <= n {
            let chunk: Vec<Fix> = fixes[(next - 1) as usize..(next + 3).min(n) as usize].to_vec();
            let len = chunk.len() as u64;
            match tokio::time::timeout(Duration::from_secs(3), s.batch(Seq(next), chunk)).await {
                Ok(Ok(ack)) => {
                    assert_eq!(ack.first_seq, Seq(next));
                    acked = acked.max(next + len - 1);
                    next += len;
                    progress.fetch_add(len, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                other => {
                    eprintln!("{id}: batch at {next} failed on gateway {g}: {other:?}");
                    g = (g + 1) % gateways.len();
                    break;
                }
            }
        }
    }
    acked
}

/// Follows parcel `tracking` of `depot` on whichever gateway holds it, resuming from the last
/// offset seen whenever the feed breaks, until `Arrived` (or 60 s pass).
async fn follow(
    ep: ClientEndpoint,
    gateways: Vec<SocketAddr>,
    kv: async_nats::jetstream::kv::Store,
    tracking: String,
    depot: &'static str,
) -> Vec<(u64, ParcelEvent)> {
    use milepost_proto::route::Update;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<(u64, ParcelEvent)> = Vec::new();
    while Instant::now() < deadline {
        let Some(g) = holder(&kv, depot).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some(s) = open(&ep, gateways[g], Role::Recipient, &tracking, depot).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let after = seen.last().map_or(0, |(o, _)| *o);
        let Ok(mut f) = s
            .subscribe(FeedTarget::Parcel(tracking.as_str().into()), Some(after))
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), f.next()).await {
            if let ServerMsg::FeedEvent {
                offset,
                update: Update::Parcel(p),
            } = m
            {
                seen.push((offset, p.kind.clone()));
                if p.kind == ParcelEvent::Arrived {
                    return seen;
                }
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_partition_owner_hands_its_depots_over_and_loses_nothing_acked() {
    let Some(nats) = Nats::start() else { return };
    let (mut children, addrs, ep, _dirs) = common::kill::spawn_three(
        &nats.url,
        &format!(
            "[cluster]\nprefix = \"okill\"\npartitions = {PARTITIONS}\nlease_ttl_s = 2\n\
             fold = \"owned\"\npartition_snapshot_s = 1\n"
        ),
    );
    let js = async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    let kv = js.get_key_value("okill-leases").await.unwrap();
    // The leases settle: every partition held, two each.
    let settle = Instant::now() + Duration::from_secs(15);
    loop {
        let mut counts = [0usize; 3];
        for p in 0..PARTITIONS {
            if let Ok(Some(v)) = kv.get(format!("part.{p}")).await {
                if let Some(g) = String::from_utf8_lossy(&v)
                    .strip_prefix('g')
                    .and_then(|g| g.parse::<usize>().ok())
                {
                    counts[g] += 1;
                }
            }
        }
        if counts == [2, 2, 2] {
            break;
        }
        assert!(Instant::now() < settle, "leases never settled: {counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Caught up (nothing to read yet) within a moment of taking the lease.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = holder(&kv, depot_of(0)).await.unwrap();

    // Routes for every driver, assigned through one gateway: each is forwarded to its
    // depot's holder.
    for i in 0..DRIVERS {
        let d = depot_of(i);
        let mut dispatch = open(&ep, addrs[(victim + 1) % 3], Role::Dispatcher, d, d)
            .await
            .unwrap();
        let r = dispatch
            .command(i as u32, CommandKind::AssignRoute(route_of(i)))
            .await
            .unwrap();
        assert!(matches!(r, ServerMsg::Done { .. }), "{r:?}");
    }
    // Recipients of every driver's last parcel, each on its depot's holder.
    let mut followers = Vec::new();
    for i in 0..DRIVERS {
        followers.push((
            i,
            tokio::spawn(follow(
                ep.clone(),
                addrs.clone(),
                kv.clone(),
                format!("MP100000004-{i}"),
                depot_of(i),
            )),
        ));
    }

    // Drivers spread over the three gateways; the holder of driver 0's depot dies a third of
    // the way through.
    let fixes = common::kill::trip();
    let total = (fixes.len() * DRIVERS) as u64;
    let progress = Arc::new(AtomicU64::new(0));
    let mut drivers = Vec::new();
    for i in 0..DRIVERS {
        drivers.push(tokio::spawn(drive(
            ep.clone(),
            addrs.clone(),
            i % 3,
            i,
            fixes.clone(),
            progress.clone(),
        )));
    }
    while progress.load(Ordering::Relaxed) < total / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    children[victim].kill().unwrap(); // SIGKILL
    children[victim].wait().unwrap();
    let killed = Instant::now();
    // Served again: a survivor holds the depot and answers a feed about it.
    let served_in = loop {
        if let Some(g) = holder(&kv, depot_of(0)).await.filter(|&g| g != victim) {
            if let Some(s) = open(&ep, addrs[g], Role::Recipient, "MP100000004-0", "north").await {
                if s.subscribe(FeedTarget::Parcel("MP100000004-0".into()), Some(0))
                    .await
                    .is_ok()
                {
                    break killed.elapsed();
                }
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "never served again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "depot {} served again {served_in:?} after the kill",
        depot_of(0)
    );
    let mut acked = Vec::new();
    for d in drivers {
        acked.push(d.await.unwrap());
    }
    assert!(acked.iter().all(|&a| a == fixes.len() as u64), "{acked:?}");

    // Every acked fix is in its depot's new holder's fold: its Welcome watermark covers it.
    for (i, &acked) in acked.iter().enumerate() {
        let id = format!("D{i}");
        let mut wm = 0;
        for _ in 0..100 {
            if let Some(g) = holder(&kv, depot_of(i)).await.filter(|&g| g != victim) {
                if let Some(s) = open(&ep, addrs[g], Role::Driver, &id, depot_of(i)).await {
                    wm = s.welcome.watermark.0;
                    s.close();
                    if wm >= acked {
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(wm, acked, "driver {id}");
    }

    // ... and in the stream, every seq of every driver.
    let seqs = common::kill::seq_counts(&nats.url, "OKILL_LOG", DRIVERS, fixes.len()).await;
    common::kill::assert_none_missing(&seqs);

    // Recipients followed every parcel to its arrival across the handover: offsets dense from
    // 1, none twice, none skipped.
    for (i, f) in followers {
        let events = f.await.unwrap();
        let offsets: Vec<u64> = events.iter().map(|(o, _)| *o).collect();
        let dense: Vec<u64> = (1..=offsets.len() as u64).collect();
        assert_eq!(offsets, dense, "driver {i}: {events:?}");
        assert_eq!(
            events.last().map(|e| &e.1),
            Some(&ParcelEvent::Arrived),
            "driver {i}"
        );
    }
    for (i, mut c) in children.into_iter().enumerate() {
        if i != victim {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
