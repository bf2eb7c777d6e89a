//! Gateways that fold only the partitions of depots they own (`cluster.fold = "owned"`), over
//! a real `nats-server -js`: each gateway holds its share of the partitions and none of the
//! others' state; a phone may land on any gateway; a partition whose owner goes away is taken
//! over by another (from its image, or its subject from the start) and its recipients resume
//! at the same offsets; a gateway that joins takes its share.
//!
//! Without nats-server these tests print SKIPPED and pass, unless `MILEPOST_REQUIRE_NATS` is
//! set (CI sets it).

mod common;

use std::time::{Duration, Instant};

use common::owned::{gateway, gateway_of, holds, settle, two_gateways, PARTITIONS};
use common::{example_route, leg, now_ms, route_point, Nats, TestGateway};
use milepost::cluster::config::FoldMode;
use milepost_core::store::record::partition_of_depot;
use milepost_proto::route::{FailureReason, Outcome, ParcelEvent};
use milepost_proto::{CommandKind, FeedTarget, Seq, ServerMsg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_gateway_folds_its_partitions_and_a_takeover_resumes_at_the_same_offsets() {
    let Some(nats) = Nats::start() else { return };
    let (owner, other) = two_gateways(&nats).await;
    assert!(!holds(&other, "north"));

    // A dispatcher on the other gateway assigns the route: the command is forwarded to the
    // partition's owner, which folds it; the other gateway holds none of it.
    let mut dispatch = other.dispatcher("north").await;
    let r = dispatch
        .command(1, CommandKind::AssignRoute(example_route()))
        .await
        .unwrap();
    assert!(matches!(r, ServerMsg::Done { .. }), "{r:?}");
    // A refusal comes back from the owner's fold too (the driver is busy with it).
    let mut busy = example_route();
    busy.id = "R-other".into();
    for (k, p) in busy
        .stops
        .iter_mut()
        .flat_map(|s| &mut s.parcels)
        .enumerate()
    {
        p.tracking = format!("MPX{k}").as_str().into();
    }
    let refused = dispatch.command(2, CommandKind::AssignRoute(busy)).await;
    assert!(
        format!("{refused:?}").contains("RouteRefused") && format!("{refused:?}").contains("D1"),
        "{refused:?}"
    );
    let route_id = example_route().id;
    // A command that reads the fold before it writes is answered by the holder only: the
    // other gateway names it.
    let order = example_route()
        .stops
        .iter()
        .rev()
        .map(|s| s.id.clone())
        .collect();
    let resequence = CommandKind::Resequence {
        route_id: route_id.clone(),
        order,
    };
    let elsewhere = format!("{:?}", dispatch.command(3, resequence).await);
    assert!(
        elsewhere.contains("ServerBusy") && elsewhere.contains("does not hold partition"),
        "{elsewhere}"
    );
    let recipient = owner.recipient("MP100000001").await;
    let mut feed = recipient
        .subscribe(FeedTarget::Parcel("MP100000001".into()), None)
        .await
        .unwrap();

    // A phone is taken by the gateway that holds its depot: the other one names it.
    let refused = other
        .session_as(milepost::auth::Role::Driver, "D1", "D1", "north")
        .await
        .err()
        .map(|e| format!("{e:?}"))
        .unwrap_or_default();
    assert!(refused.contains("ServerBusy"), "{refused}");
    let mut driver = owner.driver("D1", "north").await;
    let mut clock = now_ms() - 3_000_000;
    let mut seq = 1u64;
    for chunk in leg(route_point(0), route_point(1), &mut clock, 120).chunks(8) {
        let ack = driver.batch(Seq(seq), chunk.to_vec()).await.unwrap();
        assert_eq!(ack.duplicates, 0);
        seq += chunk.len() as u64;
    }
    let seen = common::parcel_events_until(
        &mut feed,
        |e| *e == ParcelEvent::Arrived,
        10,
        "parcel feed on the owner",
    )
    .await;
    assert!(
        seen.iter().any(|(_, e)| *e == ParcelEvent::OutForDelivery),
        "{seen:?}"
    );
    {
        let shared = other.gw.shared();
        let core = shared.state.core.lock().unwrap();
        assert!(
            core.route_view(&route_id).is_none(),
            "the other gateway folded the route"
        );
        let positions = shared.state.positions.lock().unwrap();
        assert!(positions.get(&"D1".into()).is_none());
    }
    {
        let shared = owner.gw.shared();
        assert!(shared
            .state
            .core
            .lock()
            .unwrap()
            .route_view(&route_id)
            .is_some());
        assert!(shared
            .state
            .positions
            .lock()
            .unwrap()
            .get(&"D1".into())
            .is_some());
    }

    // The other gateway does not serve the depot's feeds: it names the one that does.
    let elsewhere = match other
        .recipient("MP100000001")
        .await
        .subscribe(FeedTarget::Parcel("MP100000001".into()), None)
        .await
    {
        Ok(mut f) => format!("{:?}", f.next().await),
        Err(e) => format!("{e:?}"),
    };
    let owner_node = owner.gw.shared().cluster.as_ref().unwrap().node.clone();
    assert!(
        elsewhere.contains("ServerBusy")
            && elsewhere.contains(&format!("gateway {owner_node} does")),
        "{elsewhere}"
    );

    let delivered = common::report(&mut driver, 2, "S1", None, common::delivered("cd"))
        .await
        .unwrap();
    assert!(matches!(delivered, ServerMsg::Done { .. }), "{delivered:?}");
    let more = common::parcel_events_until(
        &mut feed,
        |e| matches!(e, ParcelEvent::Delivered { .. }),
        10,
        "parcel feed on the owner",
    )
    .await;
    let seen: Vec<_> = seen.into_iter().chain(more).collect();

    // The owner keeps its partitions' images: two more rounds after the delivery, so that the
    // newest holds it.
    let written = || {
        owner
            .gw
            .shared()
            .owned
            .takeover
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = written();
    let deadline = Instant::now() + Duration::from_secs(10);
    while written() < before + 2 {
        assert!(Instant::now() < deadline, "no partition image written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The owner goes away: the other gateway takes its partitions, starting from their images
    // and catching up from their subjects after them, and the recipient resumes there from
    // its last offset.
    drop((feed, recipient, dispatch));
    owner.gw.shutdown().await;
    settle(&[&other], &[PARTITIONS as usize]).await;
    let takeover = &other.gw.shared().owned.takeover;
    assert!(
        takeover.loaded.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "no takeover started from an image"
    );
    assert_eq!(
        takeover
            .load_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let recipient = other.recipient("MP100000001").await;
    let mut from_start = recipient
        .subscribe(FeedTarget::Parcel("MP100000001".into()), Some(0))
        .await
        .unwrap();
    let again = common::parcel_events_until(
        &mut from_start,
        |e| matches!(e, ParcelEvent::Delivered { .. }),
        10,
        "parcel feed after the takeover",
    )
    .await;
    assert_eq!(
        again, seen,
        "the new owner's feed differs from the old one's"
    );

    // The phone moves to the new owner: its Welcome watermark is what the old one acked.
    drop(driver);
    let mut driver = other.driver("D1", "north").await;
    assert_eq!(driver.welcome.watermark, Seq(seq - 1));

    // Driving on through the new owner: a failed attempt at stop 2 reaches its parcel's feed,
    // offsets in order.
    for chunk in leg(route_point(1), route_point(2), &mut clock, 120).chunks(8) {
        let ack = driver.batch(Seq(seq), chunk.to_vec()).await.unwrap();
        assert_eq!(ack.duplicates, 0);
        seq += chunk.len() as u64;
    }
    let failed = Outcome::Failed {
        reason: FailureReason::Refused,
        note: String::new(),
    };
    let r = common::report(&mut driver, 3, "S2", None, failed)
        .await
        .unwrap();
    assert!(matches!(r, ServerMsg::Done { .. }), "{r:?}");
    let r3 = other.recipient("MP100000003").await;
    let mut f3 = r3
        .subscribe(FeedTarget::Parcel("MP100000003".into()), Some(0))
        .await
        .unwrap();
    let third = common::parcel_events_until(
        &mut f3,
        |e| matches!(e, ParcelEvent::Failed { .. }),
        10,
        "stop 2's parcel",
    )
    .await;
    assert!(third.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{third:?}");
    drop((f3, r3));
    drop((from_start, recipient, driver));
    other.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_another_secret_fold_mode_or_webhooks_is_refused() {
    let Some(nats) = Nats::start() else { return };
    let a = gateway(&nats, "a", None).await;
    let refused = |edit: fn(&mut milepost::config::Config)| {
        let url = nats.url.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = common::config(dir.path());
            cfg.cluster.url = Some(url);
            cfg.cluster.node = Some("b".into());
            cfg.cluster.prefix = "o".into();
            cfg.cluster.partitions = PARTITIONS;
            cfg.cluster.fold = FoldMode::Owned;
            edit(&mut cfg);
            match milepost::server::Gateway::start(cfg).await {
                Ok(_) => panic!("a misconfigured gateway joined the fleet"),
                Err(e) => e.to_string(),
            }
        }
    };
    let secret =
        refused(|c| c.secret = Some("another-secret-another-secret-another!".into())).await;
    assert!(secret.contains("another secret"), "{secret}");
    let fold = refused(|c| c.cluster.fold = FoldMode::All).await;
    assert!(fold.contains("cluster.fold"), "{fold}");
    let hooks = refused(|c| c.feed.webhooks = vec!["http://127.0.0.1:9/hook".into()]).await;
    assert!(hooks.contains("webhooks are not available"), "{hooks}");
    a.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_joins_takes_partitions_and_loses_nothing_acked() {
    // Three gateways, then a fourth. Without partition images (`snapshot_s` 0): a takeover
    // reads the partition's subject from the start, the path taken when no image is usable.
    const PARTS: u32 = 8;
    let Some(nats) = Nats::start() else { return };
    let a = gateway_of(&nats, "a", None, PARTS, 0).await;
    let b = gateway_of(&nats, "b", Some(&a), PARTS, 0).await;
    let c = gateway_of(&nats, "c", Some(&a), PARTS, 0).await;
    settle(&[&a, &b, &c], &[3, 3, 2]).await;
    // A depot in the highest partition of a gateway holding three: the one it gives back when
    // a fourth gateway joins (above the fair share, highest first).
    let three: Vec<&TestGateway> = [&a, &b, &c]
        .into_iter()
        .filter(|g| g.gw.shared().owned.held().len() == 3)
        .collect();
    let highest = |g: &TestGateway| *g.gw.shared().owned.held().last().unwrap();
    let depot = (0..)
        .map(|i| format!("depot-{i}"))
        .find(|d| {
            let p = partition_of_depot(d, PARTS);
            three.iter().any(|g| highest(g) == p)
        })
        .unwrap();
    let p = partition_of_depot(&depot, PARTS);
    let old = *three.iter().find(|g| g.gw.shared().owned.holds(p)).unwrap();
    let mut route = example_route();
    route.depot = depot.as_str().into();
    let mut dispatch = old.dispatcher(&depot).await;
    let r = dispatch
        .command(1, CommandKind::AssignRoute(route))
        .await
        .unwrap();
    assert!(matches!(r, ServerMsg::Done { .. }), "{r:?}");
    let mut driver = old.driver("D1", &depot).await;
    let mut clock = now_ms() - 3_000_000;
    let mut seq = 1u64;
    let fixes = leg(route_point(0), route_point(1), &mut clock, 120);
    let (before, after) = fixes.split_at(fixes.len() / 2);
    for chunk in before.chunks(8) {
        driver.batch(Seq(seq), chunk.to_vec()).await.unwrap();
        seq += chunk.len() as u64;
    }
    // A recipient follows a parcel of the route on its holder.
    let recipient = old
        .session_as(
            milepost::auth::Role::Recipient,
            "MP100000001",
            "MP100000001",
            &depot,
        )
        .await
        .unwrap();
    let mut feed = recipient
        .subscribe(FeedTarget::Parcel("MP100000001".into()), None)
        .await
        .unwrap();

    // A fourth gateway joins: the depot's partition moves to it. The pause (no gateway
    // holding it) is bounded.
    let d = gateway_of(&nats, "d", Some(&a), PARTS, 0).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while old.gw.shared().owned.holds(p) {
        assert!(Instant::now() < deadline, "the partition never moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = Instant::now();
    while !d.gw.shared().owned.holds(p) {
        assert!(
            Instant::now() < deadline,
            "the new gateway never held the partition"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pause = left.elapsed();
    eprintln!("partition {p} held by no gateway for {pause:?}");
    assert!(pause < Duration::from_secs(5), "{pause:?}");
    settle(&[&a, &b, &c, &d], &[2, 2, 2, 2]).await;

    // The recipient's feed on the old holder ends, telling it to go elsewhere.
    let mut told = String::new();
    while !told.contains("ServerBusy") {
        match tokio::time::timeout(Duration::from_secs(5), feed.next()).await {
            Ok(m) => told = format!("{m:?}"),
            Err(_) => panic!("the feed of a released partition stayed open: {told}"),
        }
    }
    assert!(told.contains("does not hold partition"), "{told}");
    drop((feed, recipient));

    // The phone moves to the new holder: everything acked is there, and driving on works.
    drop(driver);
    let mut driver = d.driver("D1", &depot).await;
    assert_eq!(driver.welcome.watermark, Seq(seq - 1));
    for chunk in after.chunks(8) {
        let ack = driver.batch(Seq(seq), chunk.to_vec()).await.unwrap();
        assert_eq!(ack.duplicates, 0);
        seq += chunk.len() as u64;
    }
    assert_eq!(
        d.gw.shared().state.ledger.watermark(&"D1".into()),
        Seq(seq - 1)
    );
    drop((driver, dispatch));
    for g in [d, c, b, a] {
        g.gw.shutdown().await;
    }
}
