//! End-to-end tests: an in-process gateway on 127.0.0.1:0, real QUIC and TLS on loopback, the
//! real client.

mod common;

use std::sync::atomic::Ordering;

use common::{fix, mint, next_ack, now_ms, now_s, push_stream, start, SECRET};
use milepost::auth::Role;
use milepost::client::ClientError;
use milepost_proto::{deg_to_e7, ErrorCode, Fix, QueryKind, RejectReason, Rejection, Seq};

fn nearest(k: u32) -> QueryKind {
    QueryKind::Nearest {
        lat_e7: deg_to_e7(38.9),
        lon_e7: deg_to_e7(-77.03),
        k,
    }
}

#[tokio::test]
async fn fixes_are_acked_and_queryable() {
    let t = start().await;
    let mut d = t.driver("D1", "north").await;
    assert_eq!(d.welcome.watermark, Seq(0));
    let ack = d
        .batch(Seq(1), vec![fix(3_000, 0), fix(2_000, 1), fix(1_000, 2)])
        .await
        .unwrap();
    assert_eq!(
        (ack.first_seq, ack.count, ack.duplicates, ack.watermark),
        (Seq(1), 3, 0, Seq(3))
    );
    assert!(ack.rejected.is_empty());

    let mut q = t.dispatcher("north").await;
    let r = q.query(7, nearest(5)).await.unwrap();
    assert_eq!(r.id, 7);
    assert_eq!(r.drivers.len(), 1);
    assert_eq!(
        (r.drivers[0].driver.0.as_str(), r.drivers[0].seq),
        ("D1", Seq(3))
    );
    let r = q
        .query(
            8,
            QueryKind::Nearby {
                lat_e7: deg_to_e7(38.9002),
                lon_e7: deg_to_e7(-77.03),
                radius_m: 50.0,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.drivers.len(), 1);
    assert!(r.drivers[0].distance_m < 1.0);
    let r = q
        .query(
            9,
            QueryKind::Within {
                min_lat_e7: deg_to_e7(38.95),
                min_lon_e7: deg_to_e7(-77.1),
                max_lat_e7: deg_to_e7(39.0),
                max_lon_e7: deg_to_e7(-77.0),
            },
        )
        .await
        .unwrap();
    assert!(r.drivers.is_empty());
    // Another depot's dispatcher sees nothing.
    let mut other = t.dispatcher("south").await;
    assert!(other.query(1, nearest(5)).await.unwrap().drivers.is_empty());
    // A query with an inverted box is a typed error, and the stream stays usable.
    let err = q
        .query(
            10,
            QueryKind::Within {
                min_lat_e7: 10,
                min_lon_e7: 10,
                max_lat_e7: 0,
                max_lon_e7: 0,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadQuery));
    assert_eq!(q.query(11, nearest(1)).await.unwrap().drivers.len(), 1);
}

#[tokio::test]
async fn bad_fixes_are_rejected_with_reasons() {
    let t = start().await;
    let mut d = t.driver("D1", "north").await;
    let mut null_island = fix(5_000, 0);
    null_island.lat_e7 = 0;
    null_island.lon_e7 = 0;
    let mut bad_acc = fix(4_000, 0);
    bad_acc.accuracy_m = -1.0;
    let future = Fix::from_degrees(now_ms() + 3_600_000, 38.9, -77.03, 5.0);
    let teleport = Fix::from_degrees(now_ms() - 2_000, 48.85, 2.35, 5.0);
    let good = fix(1_000, 0);
    let ack = d
        .batch(
            Seq(1),
            vec![fix(6_000, 0), null_island, bad_acc, future, teleport, good],
        )
        .await
        .unwrap();
    assert_eq!(
        ack.rejected,
        vec![
            Rejection {
                seq: Seq(2),
                reason: RejectReason::NullIsland
            },
            Rejection {
                seq: Seq(3),
                reason: RejectReason::AccuracyInvalid
            },
            Rejection {
                seq: Seq(4),
                reason: RejectReason::FutureTimestamp
            },
            Rejection {
                seq: Seq(5),
                reason: RejectReason::ImplausibleJump
            },
        ]
    );
    assert_eq!(ack.watermark, Seq(6));
    let s = &t.gw.shared().stats;
    assert_eq!(s.fixes_accepted.load(Ordering::Relaxed), 2);
    assert_eq!(s.fixes_rejected.load(Ordering::Relaxed), 4);
    // The session is still usable after rejections.
    assert_eq!(
        d.batch(Seq(7), vec![fix(500, 0)]).await.unwrap().rejected,
        vec![]
    );
    // Batch-level refusals keep the stream open too.
    let err = d.batch(Seq(8), vec![]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadBatchSize));
    let err = d
        .batch(Seq(u64::MAX - 1), vec![fix(100, 0)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::SeqOutOfWindow));
    assert_eq!(d.batch(Seq(8), vec![fix(100, 0)]).await.unwrap().count, 1);
}

#[tokio::test]
async fn tokens_and_roles_are_enforced() {
    let t = start().await;
    // A driver token cannot speak for another driver.
    let err = t
        .session_as(Role::Driver, "D1", "D2", "north")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(ErrorCode::OutOfScope), "{err}");
    // Forged token.
    let other_secret = b"not the server secret, not at all";
    let forged = mint(other_secret, Role::Driver, "D1", "north", now_s() + 60, 0);
    let err = t.open(&forged, "D1").await.err().unwrap();
    assert_eq!(err.code(), Some(ErrorCode::TokenInvalid), "{err}");
    // Expired token.
    let expired = mint(
        SECRET.as_bytes(),
        Role::Driver,
        "D1",
        "north",
        now_s() - 1,
        0,
    );
    let err = t.open(&expired, "D1").await.err().unwrap();
    assert_eq!(err.code(), Some(ErrorCode::TokenExpired), "{err}");
    // A dispatcher cannot send fixes, a driver cannot query.
    let mut disp = t.dispatcher("north").await;
    assert_eq!(
        disp.batch(Seq(1), vec![fix(0, 0)])
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::WrongRole)
    );
    let mut drv = t.driver("D1", "north").await;
    assert_eq!(
        drv.query(1, nearest(1)).await.unwrap_err().code(),
        Some(ErrorCode::WrongRole)
    );
    // A recipient may open a session (for its parcel's feed) but neither send fixes nor query.
    let mut rec = t
        .session_as(Role::Recipient, "T1", "T1", "north")
        .await
        .unwrap();
    assert_eq!(
        rec.batch(Seq(1), vec![fix(0, 0)]).await.unwrap_err().code(),
        Some(ErrorCode::WrongRole)
    );
    assert_eq!(
        rec.query(1, nearest(1)).await.unwrap_err().code(),
        Some(ErrorCode::WrongRole)
    );
}

#[tokio::test]
async fn resend_after_reconnect_is_stored_once() {
    let t = start().await;
    let fixes: Vec<Fix> = (0..5).map(|i| fix(10_000 - i as i64 * 1_000, i)).collect();
    let mut d = t.driver("D1", "north").await;
    d.batch(Seq(1), fixes.clone()).await.unwrap();
    d.close();
    let mut d = t.driver("D1", "north").await;
    assert_eq!(d.welcome.watermark, Seq(5));
    let ack = d.batch(Seq(1), fixes.clone()).await.unwrap();
    assert_eq!((ack.duplicates, ack.count), (5, 5));
    let ack = d
        .batch(Seq(4), vec![fixes[3], fixes[4], fix(500, 9)])
        .await
        .unwrap();
    assert_eq!((ack.duplicates, ack.watermark), (2, Seq(6)));
    assert_eq!(
        t.gw.shared().stats.fixes_accepted.load(Ordering::Relaxed),
        6
    );
}

#[tokio::test]
async fn late_fix_does_not_move_the_live_position() {
    let t = start().await;
    let mut d = t.driver("D1", "north").await;
    d.batch(Seq(1), vec![fix(1_000, 0)]).await.unwrap();
    // Backlog from a minute ago, somewhere else: stored, but the live position stays.
    let ack = d.batch(Seq(2), vec![fix(60_000, 30)]).await.unwrap();
    assert!(ack.rejected.is_empty());
    let mut q = t.dispatcher("north").await;
    let r = q.query(1, nearest(1)).await.unwrap();
    assert_eq!(r.drivers[0].seq, Seq(1));
}

#[tokio::test]
async fn live_datagrams_are_acked_on_the_ack_stream() {
    let t = start().await;
    let d = t.driver("D1", "north").await;
    d.send_live(Seq(1), fix(100, 0)).unwrap();
    let mut acks = push_stream(&d).await;
    let ack = next_ack(&mut acks).await;
    assert_eq!(
        (ack.first_seq, ack.count, ack.watermark),
        (Seq(1), 1, Seq(1))
    );
    // A live fix that overtakes the backlog: settled above the watermark, backlog fills the gap.
    d.send_live(Seq(5), fix(50, 1)).unwrap();
    let ack = next_ack(&mut acks).await;
    assert_eq!((ack.first_seq, ack.watermark), (Seq(5), Seq(1)));
}

#[tokio::test]
async fn state_survives_a_restart() {
    let t = start().await;
    let mut d = t.driver("D1", "north").await;
    d.batch(Seq(1), vec![fix(3_000, 0), fix(2_000, 1)])
        .await
        .unwrap();
    d.close();
    let t = t.restart().await;
    // The clean shutdown wrote a snapshot that covers the whole log: nothing to replay.
    assert_eq!(t.gw.recovery.records, 0);
    let mut d = t.driver("D1", "north").await;
    assert_eq!(d.welcome.watermark, Seq(2));
    assert_eq!(
        d.batch(Seq(2), vec![fix(2_000, 1)])
            .await
            .unwrap()
            .duplicates,
        1
    );
    let mut q = t.dispatcher("north").await;
    assert_eq!(q.query(1, nearest(1)).await.unwrap().drivers[0].seq, Seq(2));
}

#[tokio::test]
async fn garbage_and_oversized_frames_close_the_connection_with_a_code() {
    let t = start().await;
    for (bytes, want) in [
        (
            vec![3u8, 0, 0, 0, 0xff, 0xff, 0xff],
            ErrorCode::ProtocolViolation,
        ),
        (vec![0xff, 0xff, 0xff, 0x7f], ErrorCode::FrameTooLarge),
    ] {
        let d = t.driver("D1", "north").await;
        let (mut send, _recv) = d.conn.open_bi().await.unwrap();
        send.write_all(&bytes).await.unwrap();
        assert_eq!(common::close_code(&d.conn).await, Some(want));
    }
    // The gateway still serves.
    let mut d = t.driver("D2", "north").await;
    assert_eq!(d.batch(Seq(1), vec![fix(0, 0)]).await.unwrap().count, 1);
    let _: Option<ClientError> = None;
}

#[tokio::test]
async fn a_session_that_dies_with_batches_in_flight_never_reports_them_settled_unless_stored() {
    let t = start().await;
    let mut d = t.driver("D1", "north").await;
    // Pipeline 50 batches and vanish without reading a single ack.
    for b in 0..50u64 {
        let fixes = (0..10)
            .map(|i| fix(600_000 - (b * 10 + i) as i64 * 1_000, 0))
            .collect();
        d.send_batch(Seq(b * 10 + 1), fixes).await.unwrap();
    }
    d.conn.close(0u32.into(), b"gone");
    // A new session: whatever the watermark says is settled must really be stored, so that
    // the phone may drop it; everything above is resent and stored once.
    let mut d = t.driver("D1", "north").await;
    let w = d.welcome.watermark.0;
    let ack = d
        .batch(
            Seq(w + 1),
            (w + 1..=500)
                .map(|s| fix(600_000 - s as i64 * 1_000 + 1_000, 0))
                .collect(),
        )
        .await;
    if w < 500 {
        assert_eq!(ack.unwrap().watermark, Seq(500));
    }
    d.close();
    let dir = t.stop().await;
    let mut stored = std::collections::HashMap::<u64, u32>::new();
    milepost::store::LogReader::new(&dir.path().join("log"))
        .replay(|_, rec| {
            if let milepost_core::store::LogRecord::Batch { entries, .. } = rec {
                for e in entries {
                    *stored.entry(e.seq().0).or_default() += 1;
                }
            }
        })
        .unwrap();
    assert_eq!(stored.len(), 500, "every seq stored");
    assert!(stored.values().all(|&c| c == 1), "none twice");
}
