//! Three real `milepost serve --cluster` binaries over a real `nats-server -js` on loopback;
//! six drivers spread over them drive their routes; one gateway is killed with SIGKILL
//! mid-load. Its phones move to the survivors and resend what they were not acked. Checked:
//! every acked fix is in the stream and in the survivors' fold (their Welcome watermark covers
//! it), and recipients on the surviving gateways keep receiving their parcel's milestones,
//! dense and in order, identical on both survivors, through the arrival that came after the
//! kill.
//!
//! Without nats-server this prints SKIPPED and passes, unless `MILEPOST_REQUIRE_NATS` is set.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{example_route, token, Nats};
use milepost::auth::Role;
use milepost::client::{ClientEndpoint, Session};
use milepost_proto::route::{ParcelEvent, Route};
use milepost_proto::{CommandKind, FeedTarget, Fix, Seq, ServerMsg};

const DRIVERS: usize = 6;

fn route_of(i: usize) -> Route {
    let mut r = example_route();
    r.id = format!("R{i}").as_str().into();
    r.driver = format!("D{i}").as_str().into();
    for s in &mut r.stops {
        for p in &mut s.parcels {
            p.tracking = format!("{}-{i}", p.tracking.0).as_str().into();
        }
    }
    r
}

async fn open(ep: &ClientEndpoint, addr: SocketAddr, role: Role, sub: &str) -> Option<Session> {
    let attempt = async {
        let conn = ep.connect(addr, "localhost").await.ok()?;
        Session::open(conn, &token(role, sub, "north"), sub, Default::default())
            .await
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .ok()
        .flatten()
}

/// Drives one phone: batches of 4, moving to the next gateway whenever one fails, resending
/// everything above the Welcome watermark. Returns the highest seq it was acked.
async fn drive(
    ep: ClientEndpoint,
    gateways: Vec<SocketAddr>,
    mut g: usize,
    id: String,
    fixes: Vec<Fix>,
    progress: Arc<AtomicU64>,
) -> u64 {
    let mut acked = 0u64;
    let n = fixes.len() as u64;
    let mut attempts = 0;
    while acked < n {
        attempts += 1;
        assert!(attempts < 60, "{id}: no gateway would take the fixes");
        let Some(mut s) = open(&ep, gateways[g], Role::Driver, &id).await else {
            eprintln!("{id}: gateway {g} refused or timed out");
            g = (g + 1) % gateways.len();
            continue;
        };
        let mut next = s.welcome.watermark.0 + 1;
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

/// Parcel events of one subscription, read until `done` is among them (or 30 s pass).
async fn follow(s: Session, tracking: String) -> Vec<(u64, ParcelEvent)> {
    let mut f = s
        .subscribe(FeedTarget::Parcel(tracking.as_str().into()), Some(0))
        .await
        .unwrap();
    common::parcel_events_until(&mut f, |e| *e == ParcelEvent::Arrived, 30, &tracking).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_gateway_loses_nothing_acked() {
    let Some(nats) = Nats::start() else { return };
    let (mut children, addrs, ep, _dirs) = common::kill::spawn_three(
        &nats.url,
        "[cluster]\nprefix = \"kill\"\npartitions = 8\nlease_ttl_s = 2\n",
    );

    // Routes for every driver, assigned through gateway 1.
    let mut dispatch = open(&ep, addrs[1], Role::Dispatcher, "north")
        .await
        .unwrap();
    for i in 0..DRIVERS {
        let r = dispatch
            .command(i as u32, CommandKind::AssignRoute(route_of(i)))
            .await
            .unwrap();
        assert!(matches!(r, ServerMsg::Done { .. }), "{r:?}");
    }
    // Recipients of every driver's last parcel, on both gateways that will survive.
    let mut followers = Vec::new();
    for i in 0..DRIVERS {
        for g in [1, 2] {
            let tracking = format!("MP100000004-{i}");
            let s = open(&ep, addrs[g], Role::Recipient, &tracking)
                .await
                .unwrap();
            followers.push(((i, g), tokio::spawn(follow(s, tracking))));
        }
    }

    // Drivers spread over the three gateways; gateway 0 dies a third of the way through.
    let fixes = common::kill::trip();
    let total = (fixes.len() * DRIVERS) as u64;
    let progress = Arc::new(AtomicU64::new(0));
    let mut drivers = Vec::new();
    for i in 0..DRIVERS {
        drivers.push(tokio::spawn(drive(
            ep.clone(),
            addrs.clone(),
            i % 3,
            format!("D{i}"),
            fixes.clone(),
            progress.clone(),
        )));
    }
    while progress.load(Ordering::Relaxed) < total / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "killing gateway 0 at {} of {total} fixes",
        progress.load(Ordering::Relaxed)
    );
    children[0].kill().unwrap(); // SIGKILL
    children[0].wait().unwrap();
    let mut acked = Vec::new();
    for d in drivers {
        acked.push(d.await.unwrap());
    }
    eprintln!("drivers done: {acked:?}");
    assert!(acked.iter().all(|&a| a == fixes.len() as u64), "{acked:?}");

    // Every acked fix is in the survivors' fold: their Welcome watermarks cover it (a moment
    // of replication lag is allowed for).
    for g in [1, 2] {
        for (i, &acked) in acked.iter().enumerate() {
            let id = format!("D{i}");
            let mut wm = 0;
            for _ in 0..100 {
                let s = open(&ep, addrs[g], Role::Driver, &id).await.unwrap();
                wm = s.welcome.watermark.0;
                s.close();
                if wm >= acked {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(wm, acked, "gateway {g}, driver {id}");
        }
    }

    // ... and in the stream, every seq of every driver.
    let seqs = common::kill::seq_counts(&nats.url, "KILL_LOG", DRIVERS, fixes.len()).await;
    common::kill::assert_none_missing(&seqs);
    let twice: u32 = seqs.iter().flatten().map(|&c| c.saturating_sub(1)).sum();
    eprintln!("seqs logged twice (resends after the kill, folded once): {twice}");

    // Recipients on the survivors followed every parcel to its arrival: dense offsets from 1,
    // the same on both gateways.
    let mut seen = std::collections::HashMap::new();
    for ((i, g), f) in followers {
        let events = f.await.unwrap();
        let offsets: Vec<u64> = events.iter().map(|(o, _)| *o).collect();
        let dense: Vec<u64> = (1..=offsets.len() as u64).collect();
        assert_eq!(offsets, dense, "driver {i} on gateway {g}: {events:?}");
        assert_eq!(
            events.first().map(|e| &e.1),
            Some(&ParcelEvent::OutForDelivery)
        );
        if let Some(other) = seen.insert(i, events.clone()) {
            let n = other.len().min(events.len());
            assert_eq!(
                other[..n],
                events[..n],
                "driver {i}: the survivors disagree"
            );
        }
    }
    for mut c in children.into_iter().skip(1) {
        let _ = c.kill();
        let _ = c.wait();
    }
}
