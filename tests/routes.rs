//! The fleet core over QUIC: a dispatcher assigns a route, the driver's app is told, the driver
//! drives it (fixes), a recipient follows the parcel (stops away, ETA), leaves instructions that
//! reach the driver, the driver delivers with a one-time code, and all of it survives a restart.

mod common;

use std::time::Duration;

use common::{now_ms, TestGateway};
use milepost::auth::Role;
use milepost::client::ClientError;
use milepost_proto::route::{
    DriverEvent, Outcome, ParcelState, ParcelStatus, Proof, RouteId, StopId, TrackingNumber,
};
use milepost_proto::{CommandKind, ErrorCode, Seq, ServerMsg};

use common::{example_route as route, leg};

/// Fixes along a two-point path (see [`common::leg`]).
fn drive_to(points: &[(f64, f64); 2], t0: &mut i64, dwell_s: i64) -> Vec<milepost_proto::Fix> {
    leg(points[0], points[1], t0, dwell_s)
}

async fn status(s: &mut milepost::client::Session, tracking: &str) -> ParcelStatus {
    match s
        .command(
            9,
            CommandKind::ParcelStatus {
                tracking: tracking.into(),
            },
        )
        .await
        .unwrap()
    {
        ServerMsg::ParcelStatus { status, .. } => status,
        other => panic!("{other:?}"),
    }
}

fn code(r: Result<ServerMsg, ClientError>) -> Option<ErrorCode> {
    r.err().and_then(|e| e.code())
}

#[tokio::test]
async fn assign_drive_follow_instruct_deliver_restart() {
    let t = common::start().await;
    let mut driver = t.driver("D1", "north").await;
    let mut dispatch = t.dispatcher("north").await;

    // Refusals first: wrong role, wrong depot, invalid route.
    assert_eq!(
        code(driver.command(1, CommandKind::AssignRoute(route())).await),
        Some(ErrorCode::WrongRole)
    );
    let mut other = t.dispatcher("south").await;
    assert_eq!(
        code(other.command(1, CommandKind::AssignRoute(route())).await),
        Some(ErrorCode::OutOfScope)
    );
    let mut bad = route();
    bad.stops[1].id = bad.stops[0].id.clone();
    assert_eq!(
        code(dispatch.command(1, CommandKind::AssignRoute(bad)).await),
        Some(ErrorCode::RouteRefused)
    );

    // Assign: the driver's app is told on its push stream.
    assert_eq!(
        dispatch
            .command(2, CommandKind::AssignRoute(route()))
            .await
            .unwrap(),
        ServerMsg::Done { id: 2 }
    );
    let mut push = tokio::time::timeout(Duration::from_secs(5), driver.accept_ack_stream())
        .await
        .unwrap()
        .unwrap();
    let first_push = tokio::time::timeout(Duration::from_secs(5), push.next_msg())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first_push, Some(ServerMsg::Push(p)) if p.kind == DriverEvent::RouteAssigned));

    // The driver's app fetches its route: stops in order, with their instructions.
    match driver.command(20, CommandKind::MyRoute).await.unwrap() {
        ServerMsg::Route { route: r, .. } => {
            let ids: Vec<&str> = r.stops.iter().map(|s| s.id.0.as_str()).collect();
            assert_eq!(ids, ["S1", "S2", "S3"]);
        }
        other => panic!("{other:?}"),
    }
    // Drivers may not look up parcels; a dispatcher of another depot cannot either.
    assert_eq!(
        code(
            driver
                .command(
                    21,
                    CommandKind::ParcelStatus {
                        tracking: "MP100000003".into()
                    }
                )
                .await
        ),
        Some(ErrorCode::WrongRole)
    );
    assert_eq!(
        code(
            other
                .command(
                    22,
                    CommandKind::ParcelStatus {
                        tracking: "MP100000003".into()
                    }
                )
                .await
        ),
        Some(ErrorCode::OutOfScope)
    );

    // A recipient follows parcel MP100000003 (stop S2): one stop (S1) before it.
    let rec_ep = t.endpoint();
    let conn = rec_ep.connect(t.gw.local_addr, "localhost").await.unwrap();
    let rtok = common::token(Role::Recipient, "MP100000003", "north");
    let mut recipient =
        milepost::client::Session::open(conn, &rtok, "MP100000003", Default::default())
            .await
            .unwrap();
    let s = status(&mut recipient, "MP100000003").await;
    assert_eq!(s.stop, StopId::from("S2"));
    assert_eq!(
        s.state,
        ParcelState::Planned,
        "not out for delivery before the driver leaves"
    );
    // It may not look at another parcel.
    let err = recipient
        .command(
            3,
            CommandKind::ParcelStatus {
                tracking: "MP100000001".into(),
            },
        )
        .await;
    assert_eq!(code(err), Some(ErrorCode::OutOfScope));

    // The recipient leaves instructions; the driver's app receives them.
    let done = recipient
        .command(
            4,
            CommandKind::SetInstructions {
                tracking: "MP100000003".into(),
                text: "call on arrival".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(done, ServerMsg::Done { id: 4 });
    let pushed = tokio::time::timeout(Duration::from_secs(5), push.next_msg())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&pushed, Some(ServerMsg::Push(p)) if matches!(&p.kind, DriverEvent::Instructions { text, .. } if text == "call on arrival")),
        "{pushed:?}"
    );

    // Drive from the start to S1 and stay there long enough to count as arrived.
    let r = route();
    let start = r.start.unwrap();
    let mut t0 = now_ms() - 1_800_000;
    let fixes = drive_to(
        &[(start.lat, start.lon), (r.stops[0].lat, r.stops[0].lon)],
        &mut t0,
        60,
    );
    let mut seq = 1;
    for chunk in fixes.chunks(10) {
        driver.batch(Seq(seq), chunk.to_vec()).await.unwrap();
        seq += chunk.len() as u64;
    }
    let s = status(&mut recipient, "MP100000003").await;
    assert!(
        matches!(
            s.state,
            ParcelState::OutForDelivery | ParcelState::ArrivingSoon
        ),
        "{s:?}"
    );
    assert_eq!(s.stops_away, Some(1));
    // Deliver S1 (no code needed); S2's parcel is then next.
    let delivered = Outcome::Delivered {
        proof: Proof {
            photo_sha256: Some("ab".repeat(32)),
            ..Proof::default()
        },
    };
    let done = driver
        .command(
            5,
            CommandKind::ReportOutcome {
                stop: "S1".into(),
                tracking: None,
                outcome: delivered,
            },
        )
        .await
        .unwrap();
    assert_eq!(done, ServerMsg::Done { id: 5 });
    let s = status(&mut recipient, "MP100000003").await;
    assert_eq!(s.stops_away, Some(0));
    assert!(s.eta_ms.is_some(), "an ETA for the next stop");

    // Drive to S2; a wrong one-time code is refused, the right one delivers.
    let fixes = drive_to(
        &[
            (r.stops[0].lat, r.stops[0].lon),
            (r.stops[1].lat, r.stops[1].lon),
        ],
        &mut t0,
        60,
    );
    for chunk in fixes.chunks(10) {
        driver.batch(Seq(seq), chunk.to_vec()).await.unwrap();
        seq += chunk.len() as u64;
    }
    let with_code = |otp: &str| Outcome::Delivered {
        proof: Proof {
            otp: Some(otp.into()),
            ..Proof::default()
        },
    };
    let wrong = driver
        .command(
            6,
            CommandKind::ReportOutcome {
                stop: "S2".into(),
                tracking: None,
                outcome: with_code("0000"),
            },
        )
        .await;
    assert_eq!(code(wrong), Some(ErrorCode::OutcomeRefused));
    let right = driver
        .command(
            7,
            CommandKind::ReportOutcome {
                stop: "S2".into(),
                tracking: None,
                outcome: with_code("4821"),
            },
        )
        .await
        .unwrap();
    assert_eq!(right, ServerMsg::Done { id: 7 });
    assert_eq!(
        status(&mut recipient, "MP100000003").await.state,
        ParcelState::Delivered
    );
    // The instructions reached the route the driver sees.
    match driver.command(23, CommandKind::MyRoute).await.unwrap() {
        ServerMsg::Route { route: r, .. } => assert_eq!(r.stops[1].instructions, "call on arrival"),
        other => panic!("{other:?}"),
    }

    // The dispatcher sees the parcel too, and re-sequencing an unknown route is NotFound.
    assert_eq!(
        status(&mut dispatch, "MP100000004").await.stops_away,
        Some(0)
    );
    let err = dispatch
        .command(
            8,
            CommandKind::Resequence {
                route_id: RouteId::from("nope"),
                order: vec![],
            },
        )
        .await;
    assert_eq!(code(err), Some(ErrorCode::NotFound));

    // Everything survives a restart (routes and outcomes are in the log and the snapshot).
    driver.close();
    recipient.close();
    dispatch.close();
    let TestGateway { gw, dir, .. } = t;
    gw.shutdown().await;
    let t = common::start_in(dir).await;
    let mut dispatch = t.dispatcher("north").await;
    assert_eq!(
        status(&mut dispatch, "MP100000003").await.state,
        ParcelState::Delivered
    );
    assert_eq!(
        status(&mut dispatch, "MP100000001").await.state,
        ParcelState::Delivered
    );
    let _ = TrackingNumber::from("unused");
}

#[tokio::test]
async fn finished_routes_are_archived_and_stay_archived() {
    let t = common::start_configured(tempfile::tempdir().unwrap(), |c| {
        c.log.archive_routes_after_s = 0
    })
    .await;
    let mut dispatch = t.dispatcher("north").await;
    dispatch
        .command(1, CommandKind::AssignRoute(route()))
        .await
        .unwrap();
    let mut driver = t.driver("D1", "north").await;
    // Leave the depot, then report every stop failed: the route is finished.
    let r = route();
    let start = r.start.unwrap();
    let mut t0 = now_ms() - 1_800_000;
    let fixes = drive_to(
        &[(start.lat, start.lon), (r.stops[0].lat, r.stops[0].lon)],
        &mut t0,
        30,
    );
    driver.batch(Seq(1), fixes).await.unwrap();
    for stop in ["S1", "S2", "S3"] {
        let outcome = Outcome::Failed {
            reason: milepost_proto::route::FailureReason::RecipientAbsent,
            note: String::new(),
        };
        driver
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
    // Finished routes leave the live state once archived.
    let mut archived = 0;
    for _ in 0..50 {
        archived = milepost::server::archive::archive_once(t.gw.shared())
            .await
            .unwrap();
        if archived > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(archived, 1, "the finished route was archived");
    let line = std::fs::read_to_string(t.dir.path().join("archive/routes.jsonl")).unwrap();
    assert!(line.contains("R-2026-02-16-017"), "{line}");
    let err = dispatch
        .command(
            3,
            CommandKind::ParcelStatus {
                tracking: "MP100000001".into(),
            },
        )
        .await;
    assert_eq!(code(err), Some(ErrorCode::NotFound));
    // And recovery agrees (the archiving is in the log).
    driver.close();
    dispatch.close();
    let TestGateway { gw, dir, .. } = t;
    gw.shutdown().await;
    let t = common::start_in(dir).await;
    let mut dispatch = t.dispatcher("north").await;
    let err = dispatch
        .command(
            3,
            CommandKind::ParcelStatus {
                tracking: "MP100000001".into(),
            },
        )
        .await;
    assert_eq!(code(err), Some(ErrorCode::NotFound));
}
