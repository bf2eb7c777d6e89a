//! The fleet core over QUIC: a dispatcher assigns a route, the driver's app is told, the driver
//! drives it (fixes), a recipient follows the parcel (stops away, ETA), leaves instructions that
//! reach the driver, the driver delivers with a one-time code, and all of it survives a restart.

mod common;

use std::time::Duration;

use common::{now_ms, route_point};
use milepost::client::{ClientError, Session};
use milepost_proto::route::{
    DriverEvent, Outcome, ParcelState, ParcelStatus, Proof, RouteId, StopId, TrackingNumber,
};
use milepost_proto::{CommandKind, ErrorCode, Seq, ServerMsg};

use common::{example_route as route, leg};

/// Command `id`: the status of parcel `tracking`.
async fn status_cmd(s: &mut Session, id: u32, tracking: &str) -> Result<ServerMsg, ClientError> {
    s.command(
        id,
        CommandKind::ParcelStatus {
            tracking: tracking.into(),
        },
    )
    .await
}

async fn status(s: &mut Session, tracking: &str) -> ParcelStatus {
    match status_cmd(s, 9, tracking).await.unwrap() {
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
    let mut push = common::push_stream(&driver).await;
    let first_push = common::next_push(&mut push).await;
    assert!(matches!(first_push, Some(ServerMsg::Push(p)) if p.kind == DriverEvent::RouteAssigned));

    // The driver's app fetches its route: stops in order, with their instructions.
    match driver.command(20, CommandKind::MyRoute).await.unwrap() {
        ServerMsg::Route { route: r, .. } => {
            let ids: Vec<&str> = r.stops.iter().map(|s| s.id.0.as_str()).collect();
            assert_eq!(ids, ["S1", "S2", "S3"]);
            // Without the one-time codes: the driver asks the recipient for one.
            assert!(r
                .stops
                .iter()
                .flat_map(|s| &s.parcels)
                .all(|p| p.otp.is_none()));
        }
        other => panic!("{other:?}"),
    }
    // Drivers may not look up parcels; a dispatcher of another depot cannot either.
    assert_eq!(
        code(status_cmd(&mut driver, 21, "MP100000003").await),
        Some(ErrorCode::WrongRole)
    );
    assert_eq!(
        code(status_cmd(&mut other, 22, "MP100000003").await),
        Some(ErrorCode::OutOfScope)
    );

    // A recipient follows parcel MP100000003 (stop S2): one stop (S1) before it.
    let mut recipient = t.recipient("MP100000003").await;
    let s = status(&mut recipient, "MP100000003").await;
    assert_eq!(s.stop, StopId::from("S2"));
    assert_eq!(
        s.state,
        ParcelState::Planned,
        "not out for delivery before the driver leaves"
    );
    // It may not look at another parcel.
    let err = status_cmd(&mut recipient, 3, "MP100000001").await;
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
    let pushed = common::next_push(&mut push).await;
    assert!(
        matches!(&pushed, Some(ServerMsg::Push(p)) if matches!(&p.kind, DriverEvent::Instructions { text, .. } if text == "call on arrival")),
        "{pushed:?}"
    );

    // Drive from the start to S1 and stay there long enough to count as arrived.
    let mut t0 = now_ms() - 1_800_000;
    let fixes = leg(route_point(0), route_point(1), &mut t0, 60);
    let mut seq = 1;
    common::send_in_batches(&mut driver, &mut seq, &fixes, 10).await;
    let s = status(&mut recipient, "MP100000003").await;
    assert!(
        matches!(
            s.state,
            ParcelState::OutForDelivery | ParcelState::ArrivingSoon
        ),
        "{s:?}"
    );
    // The driver is at S1: S2 is the next stop, nothing before it to reach.
    assert_eq!(s.stops_away, Some(0));
    // Deliver S1 (no code needed); S2's parcel is still next.
    let done = common::report(&mut driver, 5, "S1", None, common::delivered("ab"))
        .await
        .unwrap();
    assert_eq!(done, ServerMsg::Done { id: 5 });
    let s = status(&mut recipient, "MP100000003").await;
    assert_eq!(s.stops_away, Some(0));
    assert!(s.eta_ms.is_some(), "an ETA for the next stop");

    // Drive to S2; a wrong one-time code is refused, the right one delivers.
    let fixes = leg(route_point(1), route_point(2), &mut t0, 60);
    common::send_in_batches(&mut driver, &mut seq, &fixes, 10).await;
    let with_code = |otp: &str| Outcome::Delivered {
        proof: Proof {
            otp: Some(otp.into()),
            ..Proof::default()
        },
    };
    let wrong = common::report(&mut driver, 6, "S2", None, with_code("0000")).await;
    assert_eq!(code(wrong), Some(ErrorCode::OutcomeRefused));
    let right = common::report(&mut driver, 7, "S2", None, with_code("4821"))
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
    let t = t.restart().await;
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
    let t = common::start_with(|c| c.log.archive_routes_after_s = 0).await;
    let mut dispatch = t.assign_route().await;
    let mut driver = t.driver("D1", "north").await;
    // Leave the depot, then report every stop failed: the route is finished.
    let mut t0 = now_ms() - 1_800_000;
    let fixes = leg(route_point(0), route_point(1), &mut t0, 30);
    driver.batch(Seq(1), fixes).await.unwrap();
    for stop in ["S1", "S2", "S3"] {
        let outcome = Outcome::Failed {
            reason: milepost_proto::route::FailureReason::RecipientAbsent,
            note: String::new(),
        };
        common::report(&mut driver, 2, stop, None, outcome)
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
    // The route left the live state; its parcels answer from the history, with their outcome,
    // to their depot's dispatcher and to nobody else's.
    let live = |t: &common::TestGateway| {
        milepost::state::lock(&t.gw.shared().state.core)
            .route_view(&"R-2026-02-16-017".into())
            .is_some()
    };
    assert!(!live(&t));
    let s = status(&mut dispatch, "MP100000001").await;
    assert_eq!(s.state, ParcelState::Failed);
    let mut south = t.dispatcher("south").await;
    let err = status_cmd(&mut south, 3, "MP100000001").await;
    assert_eq!(code(err), Some(ErrorCode::OutOfScope));
    south.close();
    // And recovery agrees (the archiving is in the log, the history on disk).
    driver.close();
    dispatch.close();
    let t = t.restart().await;
    assert!(!live(&t));
    let mut dispatch = t.dispatcher("north").await;
    assert_eq!(
        status(&mut dispatch, "MP100000001").await.state,
        ParcelState::Failed
    );
    let err = status_cmd(&mut dispatch, 4, "NOT-A-PARCEL").await;
    assert_eq!(code(err), Some(ErrorCode::NotFound));
}
