//! The feed end to end: recipients and dispatchers subscribe over QUIC, get a snapshot then
//! events in order, resume with exactly what they missed (also across a restart), see the
//! driver only when the privacy rule allows, and a slow consumer slows nobody.

mod common;

use std::time::Duration;

use common::{now_ms, TestGateway};
use milepost::auth::Role;
use milepost::client::{FeedStream, Session};
use milepost_proto::route::{ParcelEvent, ParcelState, Update};
use milepost_proto::{CommandKind, ErrorCode, FeedTarget, Seq, ServerMsg};

use common::{example_route as route, leg};

struct World {
    t: TestGateway,
    driver: Session,
    seq: u64,
    clock: i64,
}

impl World {
    async fn new() -> World {
        World::with(|_| {}).await
    }

    async fn with(edit: impl FnOnce(&mut milepost::config::Config)) -> World {
        let t = common::start_configured(tempfile::tempdir().unwrap(), edit).await;
        let mut dispatch = t.dispatcher("north").await;
        dispatch
            .command(1, CommandKind::AssignRoute(route()))
            .await
            .unwrap();
        let driver = t.driver("D1", "north").await;
        World {
            t,
            driver,
            seq: 1,
            clock: now_ms() - 3_000_000,
        }
    }

    async fn drive(&mut self, a: usize, b: usize, dwell_s: i64) {
        let r = route();
        let p = |i: usize| {
            if i == 0 {
                (r.start.unwrap().lat, r.start.unwrap().lon)
            } else {
                (r.stops[i - 1].lat, r.stops[i - 1].lon)
            }
        };
        let fixes = leg(p(a), p(b), &mut self.clock, dwell_s);
        for chunk in fixes.chunks(8) {
            self.driver
                .batch(Seq(self.seq), chunk.to_vec())
                .await
                .unwrap();
            self.seq += chunk.len() as u64;
        }
    }

    async fn deliver(&mut self, stop: &str) {
        let proof = milepost_proto::route::Proof {
            photo_sha256: Some("cd".repeat(32)),
            ..Default::default()
        };
        let otp = if stop == "S2" {
            Some("4821".to_string())
        } else {
            None
        };
        let outcome = milepost_proto::route::Outcome::Delivered {
            proof: milepost_proto::route::Proof { otp, ..proof },
        };
        self.driver
            .command(
                2,
                CommandKind::ReportOutcome {
                    stop: stop.into(),
                    tracking: None,
                    outcome,
                },
            )
            .await
            .unwrap();
    }

    async fn recipient(&self, tracking: &str) -> Session {
        let ep = self.t.endpoint();
        let conn = ep.connect(self.t.gw.local_addr, "localhost").await.unwrap();
        let tok = common::token(Role::Recipient, tracking, "north");
        Session::open(conn, &tok, tracking, Default::default())
            .await
            .unwrap()
    }
}

async fn next(f: &mut FeedStream) -> ServerMsg {
    tokio::time::timeout(Duration::from_secs(5), f.next())
        .await
        .expect("feed message in time")
        .unwrap()
}

/// Reads feed messages for `ms`, returning them.
async fn drain(f: &mut FeedStream, ms: u64) -> Vec<ServerMsg> {
    let mut v = Vec::new();
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(ms), f.next()).await {
        v.push(m);
    }
    v
}

fn events(msgs: &[ServerMsg]) -> Vec<(u64, ParcelEvent)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::FeedEvent {
                offset,
                update: Update::Parcel(p),
            } => Some((*offset, p.kind.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn recipient_feed_snapshot_events_resume_and_privacy() {
    // Privacy by stops only: the driver is visible once the recipient's stop is next.
    let mut w = World::with(|c| c.feed.position_minutes = 0).await;
    let rec = w.recipient("MP100000004").await; // stop S3: two stops before it
                                                // Another parcel's feed is refused.
    let mut other = rec
        .subscribe(FeedTarget::Parcel("MP100000001".into()), None)
        .await
        .unwrap();
    assert_eq!(
        other.next().await.err().and_then(|e| e.code()),
        Some(ErrorCode::OutOfScope)
    );

    let mut feed = rec
        .subscribe(FeedTarget::Parcel("MP100000004".into()), None)
        .await
        .unwrap();
    match next(&mut feed).await {
        ServerMsg::FeedSnapshot(s) => {
            assert_eq!(s.offset, 0);
            assert_eq!(s.parcel.unwrap().state, ParcelState::Planned);
            assert!(s.positions.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // The route starts and reaches S1: milestones arrive in order, no position yet (2 stops away).
    w.drive(0, 1, 60).await;
    let msgs = drain(&mut feed, 300).await;
    let evs = events(&msgs);
    assert!(!evs.is_empty());
    assert_eq!(evs[0].1, ParcelEvent::OutForDelivery);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.0, i as u64 + 1, "offsets are dense and ordered");
    }
    assert!(
        !msgs.iter().any(|m| matches!(m, ServerMsg::FeedPosition(_))),
        "no position 2 stops away"
    );
    let seen = evs.last().unwrap().0;
    drop(feed);

    // While the recipient is away, S1 and S2 are served.
    w.deliver("S1").await;
    w.drive(1, 2, 60).await;
    w.deliver("S2").await;
    // Resume from the last offset seen: exactly the missed events, then live positions (the
    // stop is next now).
    let mut feed = rec
        .subscribe(FeedTarget::Parcel("MP100000004".into()), Some(seen))
        .await
        .unwrap();
    w.drive(2, 3, 0).await;
    let msgs = drain(&mut feed, 500).await;
    let evs = events(&msgs);
    assert_eq!(
        evs.first().map(|e| e.0),
        Some(seen + 1),
        "resumes right after the last seen"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e.1, ParcelEvent::StopsAway { n: 0 })),
        "{evs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| matches!(m, ServerMsg::FeedPosition(p) if p.driver.0 == "D1")),
        "position once next"
    );
}

#[tokio::test]
async fn dispatcher_feed_positions_events_and_resync() {
    let t = common::start_configured(tempfile::tempdir().unwrap(), |c| {
        c.feed.depot_events_kept = 3;
        c.feed.position_flush_ms = 10;
    })
    .await;
    let mut dispatch = t.dispatcher("north").await;
    dispatch
        .command(1, CommandKind::AssignRoute(route()))
        .await
        .unwrap();
    let mut feed = dispatch.subscribe(FeedTarget::Depot, None).await.unwrap();
    assert!(matches!(next(&mut feed).await, ServerMsg::FeedSnapshot(_)));
    let mut w = World {
        driver: t.driver("D1", "north").await,
        t,
        seq: 1,
        clock: now_ms() - 3_000_000,
    };
    // A driver of another depot is never seen.
    let mut south = w.t.driver("X9", "south").await;
    south
        .batch(Seq(1), vec![common::fix(1_000, 0)])
        .await
        .unwrap();
    w.drive(0, 1, 30).await;
    let msgs = drain(&mut feed, 300).await;
    assert!(msgs
        .iter()
        .any(|m| matches!(m, ServerMsg::FeedPosition(p) if p.driver.0 == "D1")));
    assert!(!msgs
        .iter()
        .any(|m| matches!(m, ServerMsg::FeedPosition(p) if p.driver.0 == "X9")));
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMsg::FeedEvent {
            update: Update::Dispatch(_),
            ..
        }
    )));

    // A dispatcher who was away longer than the ring is told to resync, then gets a snapshot.
    drop(feed);
    for stop in ["S1", "S2", "S3"] {
        let _ = stop;
        w.drive(1, 2, 30).await;
        w.drive(2, 1, 30).await;
    }
    w.deliver("S1").await;
    let mut feed = dispatch
        .subscribe(FeedTarget::Depot, Some(1))
        .await
        .unwrap();
    assert!(matches!(next(&mut feed).await, ServerMsg::FeedResync));
    assert!(matches!(next(&mut feed).await, ServerMsg::FeedSnapshot(_)));
}

#[tokio::test]
async fn a_slow_consumer_slows_nobody_and_misses_nothing() {
    let mut w = World::new().await;
    let rec = w.recipient("MP100000003").await;
    // Subscribe and then do not read at all while the whole route is driven.
    let mut slow = rec
        .subscribe(FeedTarget::Parcel("MP100000003".into()), None)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    w.drive(0, 1, 60).await;
    w.deliver("S1").await;
    w.drive(1, 2, 60).await;
    w.deliver("S2").await;
    let ingest = started.elapsed();
    // A consumer that kept up from the start of the route (a fresh subscription) for contrast.
    let msgs = drain(&mut slow, 500).await;
    let evs = events(&msgs);
    assert!(
        evs.iter()
            .any(|e| matches!(e.1, ParcelEvent::Delivered { .. })),
        "{evs:?}"
    );
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.0, i as u64 + 1);
    }
    // Ingestion did not wait for the consumer (a generous bound: this is a correctness check,
    // the latency figures come from the benchmarks).
    assert!(ingest < Duration::from_secs(20), "{ingest:?}");
}

#[tokio::test]
async fn feed_offsets_survive_a_restart() {
    let mut w = World::new().await;
    w.drive(0, 1, 60).await;
    let rec = w.recipient("MP100000001").await;
    let mut feed = rec
        .subscribe(FeedTarget::Parcel("MP100000001".into()), Some(0))
        .await
        .unwrap();
    let before = events(&drain(&mut feed, 300).await);
    assert!(!before.is_empty());
    let last = before.last().unwrap().0;
    drop(feed);
    rec.close();
    w.driver.close();
    let World { t, .. } = w;
    let TestGateway { gw, dir, .. } = t;
    gw.shutdown().await;
    let t = common::start_in(dir).await;
    let mut driver = t.driver("D1", "north").await;
    let proof = milepost_proto::route::Proof {
        photo_sha256: Some("ef".repeat(32)),
        ..Default::default()
    };
    driver
        .command(
            3,
            CommandKind::ReportOutcome {
                stop: "S1".into(),
                tracking: Some("MP100000001".into()),
                outcome: milepost_proto::route::Outcome::Delivered { proof },
            },
        )
        .await
        .unwrap();
    let ep = t.endpoint();
    let conn = ep.connect(t.gw.local_addr, "localhost").await.unwrap();
    let tok = common::token(Role::Recipient, "MP100000001", "north");
    let rec = Session::open(conn, &tok, "MP100000001", Default::default())
        .await
        .unwrap();
    let mut feed = rec
        .subscribe(FeedTarget::Parcel("MP100000001".into()), Some(last))
        .await
        .unwrap();
    let after = events(&drain(&mut feed, 300).await);
    assert_eq!(after.first().map(|e| e.0), Some(last + 1));
    assert!(after
        .iter()
        .any(|e| matches!(e.1, ParcelEvent::Delivered { .. })));
}
