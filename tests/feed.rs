//! The feed end to end: recipients and dispatchers subscribe over QUIC, get a snapshot then
//! events in order, resume with exactly what they missed (also across a restart), see the
//! driver only when the privacy rule allows, and a slow consumer slows nobody.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{now_ms, TestGateway, World};
use milepost::auth::Role;
use milepost::client::{FeedStream, Session};
use milepost::feed::FeedClass;
use milepost_proto::route::{ParcelEvent, ParcelState, Update};
use milepost_proto::{ErrorCode, FeedTarget, Seq, ServerMsg};

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
    let rec = w.t.recipient("MP100000004").await; // stop S3: two stops before it
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
    let t = common::start_with(|c| {
        c.feed.depot_events_kept = 3;
        c.feed.position_flush_ms = 10;
    })
    .await;
    let dispatch = t.assign_route().await;
    let mut feed = dispatch.subscribe(FeedTarget::Depot, None).await.unwrap();
    assert!(matches!(next(&mut feed).await, ServerMsg::FeedSnapshot(_)));
    let mut w = World::on(t).await;
    // A driver of another depot is never seen.
    let _south = w.stranger().await;
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
    let rec = w.t.recipient("MP100000003").await;
    // Subscribe and then do not read at all while the whole route is driven.
    let mut slow = rec
        .subscribe(FeedTarget::Parcel("MP100000003".into()), None)
        .await
        .unwrap();
    w.drive(0, 1, 60).await;
    w.deliver("S1").await;
    w.drive(1, 2, 60).await;
    w.deliver("S2").await;
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
}

#[tokio::test]
async fn feed_offsets_survive_a_restart() {
    let mut w = World::new().await;
    w.drive(0, 1, 60).await;
    let rec = w.t.recipient("MP100000001").await;
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
    let t = w.t.restart().await;
    let mut driver = t.driver("D1", "north").await;
    let delivered = common::delivered("ef");
    common::report(&mut driver, 3, "S1", Some("MP100000001"), delivered)
        .await
        .unwrap();
    let rec = t.recipient("MP100000001").await;
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

/// A dispatcher session on a client of its own whose streams accept only `window` bytes the
/// application has not read (a phone on a slow network, or a stuck app). The endpoint is
/// returned to keep it alive.
async fn narrow_dispatcher(t: &TestGateway, window: u32) -> (quinn::Endpoint, Session) {
    let tls = milepost::certs::client_tls(&t.ca).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window(quinn::VarInt::from_u32(window));
    cfg.transport_config(Arc::new(transport));
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(cfg);
    let conn = ep
        .connect(t.gw.local_addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    let tok = common::token(Role::Dispatcher, "north", "north");
    let s = Session::open(conn, &tok, "north", Default::default())
        .await
        .unwrap();
    (ep, s)
}

/// The depot feed's lag as the metrics see it: (subscribers, events behind summed).
fn depot_lag(t: &TestGateway) -> (u64, u64) {
    let sh = t.gw.shared();
    let m = sh
        .lag
        .measure(|f| f(&milepost::state::lock(&sh.state.feed)));
    let l = m[1];
    assert_eq!(FeedClass::ALL[1], FeedClass::DispatcherDepot);
    (l.subscribers, l.sum)
}

/// The newest route event offset of depot "north".
fn depot_head(t: &TestGateway) -> u64 {
    milepost::state::lock(&t.gw.shared().state.feed).depot_last(&"north".into())
}

/// What a depot subscriber saw: route events by offset, the newest position seq per driver,
/// and how many position messages came.
#[derive(Default)]
struct Seen {
    snapshot: Option<u64>,
    events: Vec<(u64, Update)>,
    newest: HashMap<String, u64>,
    positions: u64,
    resyncs: u64,
    resync_pending: bool,
}

impl Seen {
    fn take(&mut self, m: ServerMsg) {
        match m {
            ServerMsg::FeedSnapshot(s) => {
                if self.snapshot.is_none() || self.resync_pending {
                    // After a resync the events restart after the new snapshot.
                    self.snapshot = Some(s.offset);
                    self.events.clear();
                    self.resync_pending = false;
                }
                for p in s.positions {
                    self.newest.insert(p.driver.0, p.seq.0);
                }
            }
            ServerMsg::FeedEvent { offset, update } => self.events.push((offset, update)),
            ServerMsg::FeedPosition(p) => {
                self.positions += 1;
                let e = self.newest.entry(p.driver.0).or_default();
                assert!(p.seq.0 >= *e, "positions never go back");
                *e = p.seq.0;
            }
            ServerMsg::FeedResync => {
                self.resyncs += 1;
                self.resync_pending = true;
            }
            other => panic!("unexpected on a feed: {other:?}"),
        }
    }

    fn last_offset(&self) -> u64 {
        self.events
            .last()
            .map_or(self.snapshot.unwrap_or(0), |e| e.0)
    }

    /// Events are dense and in order, right after the snapshot.
    fn check_dense(&self) {
        let from = self.snapshot.expect("a snapshot first");
        for (i, e) in self.events.iter().enumerate() {
            assert_eq!(e.0, from + 1 + i as u64, "offsets dense and in order");
        }
    }

    fn caught_up(&self, head: u64, last_seqs: &HashMap<String, u64>) -> bool {
        self.last_offset() >= head
            && last_seqs
                .iter()
                .all(|(d, s)| self.newest.get(d).is_some_and(|n| n >= s))
    }
}

#[tokio::test]
async fn a_dispatcher_that_stops_reading_fills_only_its_own_stream() {
    let t = common::start_with(|c| {
        // Every position change goes out at once: the most bytes for the stuck stream.
        c.feed.position_flush_ms = 0;
    })
    .await;
    let _dispatch = t.assign_route().await;
    // The slow dispatcher subscribes to its depot and then does not read at all.
    let (_slow_ep, slow_session) = narrow_dispatcher(&t, 16 * 1024).await;
    let mut slow = slow_session
        .subscribe(FeedTarget::Depot, None)
        .await
        .unwrap();
    // The other dispatcher reads everything, as it comes.
    let fast_session = t.dispatcher("north").await;
    let mut fast = fast_session
        .subscribe(FeedTarget::Depot, None)
        .await
        .unwrap();
    let (fast_tx, mut fast_rx) = tokio::sync::mpsc::unbounded_channel();
    let fast_reader = tokio::spawn(async move {
        while let Ok(m) = fast.next().await {
            if fast_tx.send(m).is_err() {
                break;
            }
        }
    });
    let mut fast_seen = Seen::default();

    // Filler drivers of the same depot move all the time (one fix per batch, each acked):
    // their positions fill the slow dispatcher's stream.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut fillers = tokio::task::JoinSet::new();
    for k in 0..16 {
        let mut d = t.driver(&format!("F{k:02}"), "north").await;
        let (stop, acked) = (stop.clone(), acked.clone());
        fillers.spawn(async move {
            let t0 = now_ms() - 3_000_000;
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                // 2 m every 200 ms.
                let f = milepost_proto::Fix::from_degrees(
                    t0 + seq as i64 * 200,
                    38.90 + k as f64 * 1e-3 + seq as f64 * 2e-5,
                    -77.03,
                    5.0,
                );
                let ack = d.batch(Seq(seq), vec![f]).await.unwrap();
                assert_eq!((ack.count, ack.watermark), (1, Seq(seq)), "every fix acked");
                assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            (format!("F{k:02}"), seq)
        });
    }
    // Meanwhile the route is driven back and forth (route events: the dispatcher's
    // milestones), until the slow dispatcher's writer is stuck behind the depot's head while
    // the other dispatcher has everything.
    let mut w = World::on(t).await;
    w.drive(0, 1, 30).await;
    let mut legs = 0;
    let stuck_behind = loop {
        // A leg for every 500 filler fixes.
        while acked.load(Ordering::Relaxed) < (legs + 1) * 500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if legs % 2 == 0 {
            w.drive(1, 2, 30).await;
        } else {
            w.drive(2, 1, 30).await;
        }
        legs += 1;
        let head = depot_head(&w.t);
        while fast_seen.last_offset() < head {
            let m = tokio::time::timeout(Duration::from_secs(5), fast_rx.recv())
                .await
                .expect("the reading dispatcher keeps receiving")
                .expect("feed open");
            fast_seen.take(m);
        }
        // The reading dispatcher has handed over everything up to the head: whatever lag is
        // left is the slow one's.
        let (subs, behind) = depot_lag(&w.t);
        assert_eq!(subs, 2);
        if behind >= 3 {
            break behind;
        }
        assert!(
            legs < 30,
            "the slow dispatcher's stream never filled ({behind} behind)"
        );
    };
    // It stays stuck while ingestion goes on (2,000 more filler fixes, more route events):
    // its lag only grows.
    let stuck_at = acked.load(Ordering::Relaxed);
    w.drive(1, 2, 30).await;
    while acked.load(Ordering::Relaxed) < stuck_at + 2_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.drive(2, 1, 30).await;
    let (_, later) = depot_lag(&w.t);
    assert!(later > stuck_behind, "{later} <= {stuck_behind}");

    // Ingestion kept flowing the whole time: every filler batch was acked (asserted in the
    // fillers), and so was every fix of the route's driver (`drive` unwraps each ack).
    stop.store(true, Ordering::Relaxed);
    let mut last_seqs = HashMap::new();
    let mut fixes = 0;
    while let Some(r) = fillers.join_next().await {
        let (id, seq) = r.unwrap();
        assert!(seq > 0);
        fixes += seq;
        last_seqs.insert(id, seq);
    }
    last_seqs.insert("D1".to_string(), w.seq - 1);
    let head = depot_head(&w.t);

    // The reading dispatcher got every route event in order and every driver's newest position.
    while !fast_seen.caught_up(head, &last_seqs) {
        let m = tokio::time::timeout(Duration::from_secs(5), fast_rx.recv())
            .await
            .expect("the reading dispatcher gets the newest positions")
            .expect("feed open");
        fast_seen.take(m);
    }
    fast_seen.check_dense();
    assert_eq!(fast_seen.resyncs, 0);

    // The slow dispatcher finally reads: its milestones come without loss (or, had it fallen out
    // of the ring, a resync and a fresh snapshot), then the newest positions, coalesced.
    let mut slow_seen = Seen::default();
    while !slow_seen.caught_up(head, &last_seqs) {
        slow_seen.take(next(&mut slow).await);
    }
    slow_seen.check_dense();
    if slow_seen.resyncs == 0 {
        let from = slow_seen.snapshot.unwrap_or(0);
        let fast_tail: Vec<_> = fast_seen
            .events
            .iter()
            .filter(|e| e.0 > from)
            .cloned()
            .collect();
        assert_eq!(
            slow_seen.events, fast_tail,
            "the same milestones, in the same order"
        );
    }
    assert_eq!(slow_seen.last_offset(), head);
    assert!(
        slow_seen.positions < fixes,
        "positions coalesced: {} messages for {fixes} fixes",
        slow_seen.positions
    );
    // Caught up: the slow dispatcher is no longer behind.
    let (_, behind) = depot_lag(&w.t);
    assert_eq!(behind, 0);
    fast_reader.abort();
}

#[tokio::test]
async fn a_version_1_feed_passes_over_the_next_step_of_a_failed_attempt() {
    let mut w = World::new().await;
    let ep = milepost::client::ClientEndpoint::speaking("127.0.0.1:0".parse().unwrap(), &w.t.ca, 1)
        .unwrap();
    let conn = ep.connect(w.t.gw.local_addr, "localhost").await.unwrap();
    let token = common::token(milepost::auth::Role::Recipient, "MP100000001", "north");
    let rec = milepost::client::Session::open(conn, &token, "MP100000001", Default::default())
        .await
        .unwrap();
    // A version-2 subscriber, beside it, receives the decision.
    let rec2 = w.t.recipient("MP100000001").await;
    let mut feed2 = rec2
        .subscribe(FeedTarget::Parcel("MP100000001".into()), None)
        .await
        .unwrap();
    let mut feed = rec
        .subscribe(FeedTarget::Parcel("MP100000001".into()), None)
        .await
        .unwrap();
    w.drive(0, 1, 60).await;
    common::report(
        &mut w.driver,
        3,
        "S1",
        None,
        milepost_proto::route::Outcome::Failed {
            reason: milepost_proto::route::FailureReason::RecipientAbsent,
            note: String::new(),
        },
    )
    .await
    .unwrap();
    // The gateway's feed holds the decision after the failure...
    let kept = milepost::state::lock(&w.t.gw.shared().state.feed)
        .parcel_after(&"MP100000001".into(), 0, 1_000)
        .into_iter()
        .filter_map(|(_, u)| match u {
            Update::Parcel(p) => Some(p.kind),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert!(
        matches!(kept.last(), Some(ParcelEvent::NextStep { attempt: 1, .. })),
        "{kept:?}"
    );
    // ...which a version-1 subscriber never receives (its enums are closed): it ends on the
    // failure, and resuming after it skips the decision too.
    let evs = events(&drain(&mut feed, 500).await);
    assert!(evs.iter().all(|e| e.1.in_version_1()), "{evs:?}");
    let (last_offset, last) = evs.last().unwrap().clone();
    assert!(matches!(last, ParcelEvent::Failed { .. }), "{evs:?}");
    let mut again = rec
        .subscribe(FeedTarget::Parcel("MP100000001".into()), Some(last_offset))
        .await
        .unwrap();
    let rest = events(&drain(&mut again, 300).await);
    assert!(rest.is_empty(), "{rest:?}");
    let evs2 = events(&drain(&mut feed2, 300).await);
    assert!(
        matches!(
            evs2.last(),
            Some((_, ParcelEvent::NextStep { attempt: 1, .. }))
        ),
        "{evs2:?}"
    );
}
