//! Self-service and the recipient-driver thread end to end, over real QUIC and HTTP on
//! loopback: a recipient's change (safe place, another slot) reaches the driver's app (as a
//! version-2 push, or as instructions on a version-1 app), another slot takes the parcel off
//! the route; messages go both ways and are rate-limited; bad input is refused with a clear
//! answer and changes nothing; the state survives a restart.

mod common;
mod web_support;

use std::time::Duration;

use milepost::client::{ClientEndpoint, ClientError, Session};
use milepost_proto::route::{DeliveryChange, DriverEvent, MessageFrom};
use milepost_proto::{CommandKind, DeviceInfo, ErrorCode, ServerMsg};
use serde_json::{json, Value};
use web_support::World;

const T1: &str = "MP100000001";
const T3: &str = "MP100000003";

async fn as_recipient(
    w: &World,
    method: &str,
    path: &str,
    t: &str,
    body: Option<Value>,
) -> web_support::Resp {
    web_support::api(w, method, path, &World::recipient_token(t), body.as_ref()).await
}

/// The next driver push that is not an ack, within 5 s.
async fn next_event(p: &mut milepost::client::AckStream) -> DriverEvent {
    loop {
        match common::next_push(p).await {
            Some(ServerMsg::Push(d)) => return d.kind,
            Some(_) => continue,
            None => panic!("push stream ended"),
        }
    }
}

fn with_pickup(c: &mut milepost::config::Config) {
    c.self_service.pickup_points = vec![milepost::selfservice::PickupPoint {
        id: "PP1".into(),
        name: "Kiosk Ilica 12".into(),
        address: "Ilica 12".into(),
    }];
    c.core.messages.per_hour = 3;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_and_messages_reach_the_driver_and_come_back() {
    let mut w = World::with_web(with_pickup).await;
    w.drive(0, 0, 0).await;

    // What is on offer.
    let r = as_recipient(&w, "GET", &format!("/t/{T1}/delivery"), T1, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let offers = r.json();
    assert!(!offers["offers"]["slots"].as_array().unwrap().is_empty());
    assert_eq!(offers["offers"]["pickup_points"][0]["id"], "PP1");
    assert!(offers["change"].is_null());

    // A safe place: the driver's app hears it, and its route says it.
    let body = json!({"safe_place": {"place": "behind the blue gate"}});
    let r = as_recipient(&w, "POST", &format!("/t/{T1}/delivery"), T1, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["change"], "Safe place: behind the blue gate");
    // (The gateway opens the push stream with its first push.)
    let mut pushes = common::push_stream(&w.driver).await;
    match next_event(&mut pushes).await {
        DriverEvent::DeliveryChanged {
            tracking, change, ..
        } => {
            assert_eq!(tracking.0, T1);
            assert_eq!(
                change,
                DeliveryChange::SafePlace {
                    place: "behind the blue gate".into()
                }
            );
        }
        other => panic!("unexpected push {other:?}"),
    }
    let route = match w.driver.command(7, CommandKind::MyRoute).await.unwrap() {
        ServerMsg::Route { route, .. } => route,
        other => panic!("{other:?}"),
    };
    assert!(
        route.stops[0].instructions.contains("behind the blue gate"),
        "{}",
        route.stops[0].instructions
    );

    // The recipient writes; the driver reads it and answers.
    let r = as_recipient(
        &w,
        "POST",
        &format!("/t/{T1}/messages"),
        T1,
        Some(json!({"text": "gate code 1234"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    match next_event(&mut pushes).await {
        DriverEvent::Message { tracking, text, .. } => {
            assert_eq!((tracking.0.as_str(), text.as_str()), (T1, "gate code 1234"));
        }
        other => panic!("unexpected push {other:?}"),
    }
    let reply = CommandKind::SendMessage {
        tracking: T1.into(),
        text: "Thanks, 5 minutes".into(),
    };
    assert_eq!(
        w.driver.command(8, reply).await.unwrap(),
        ServerMsg::Done { id: 8 }
    );
    let thread = as_recipient(&w, "GET", &format!("/t/{T1}/messages"), T1, None)
        .await
        .json();
    let said: Vec<(&str, &str)> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["from"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        vec![
            ("recipient", "gate code 1234"),
            ("driver", "Thanks, 5 minutes")
        ]
    );
    // The back office reads the same thread.
    let key = w.backoffice_key();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let r = web_support::api(
        &w,
        "GET",
        &format!("/api/v1/parcels/{T1}/messages"),
        &key,
        None,
    )
    .await;
    assert_eq!(
        r.json()["messages"].as_array().unwrap().len(),
        2,
        "{}",
        r.text()
    );

    // A driver may write only about its own route's parcels; a dispatcher not at all.
    let mut south = w.stranger().await;
    let other = CommandKind::SendMessage {
        tracking: T1.into(),
        text: "hi".into(),
    };
    assert!(
        matches!(south.command(9, other.clone()).await, Err(ClientError::Refused(e)) if e.code == ErrorCode::OutOfScope)
    );
    let mut disp = w.t.dispatcher("north").await;
    assert!(
        matches!(disp.command(9, other).await, Err(ClientError::Refused(e)) if e.code == ErrorCode::WrongRole)
    );

    // Bad input: clear answers, nothing changes.
    let path = format!("/t/{T1}/messages");
    for (body, status) in [
        (json!({"text": "x".repeat(501)}), 400),
        (json!({"text": "   "}), 400),
        (json!({"text": "ok", "extra": 1}), 400),
    ] {
        let r = as_recipient(&w, "POST", &path, T1, Some(body)).await;
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.json()["message"].is_string());
    }
    let dpath = format!("/t/{T1}/delivery");
    for (body, status) in [
        (json!({"reschedule": {"start_ms": 1, "end_ms": 2}}), 422),
        (json!({"pickup_point": {"id": "PP9"}}), 422),
        (
            json!({"neighbour": {"name": "Ana\r\nBcc: x@y.z", "address": "14"}}),
            422,
        ),
        (json!({"teleport": {}}), 400),
    ] {
        let r = as_recipient(&w, "POST", &dpath, T1, Some(body)).await;
        assert_eq!(r.status, status, "{}", r.text());
    }
    let r = as_recipient(&w, "GET", &dpath, T1, None).await;
    assert_eq!(r.json()["change"], "Safe place: behind the blue gate");
    // A dispatcher's token opens the page but does not write as the recipient.
    let disp = World::dispatcher_token("north");
    let r = web_support::api(&w, "POST", &path, &disp, Some(&json!({"text": "hi"}))).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = web_support::api(
        &w,
        "POST",
        &dpath,
        &disp,
        Some(&json!({"safe_place": {"place": "x"}})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Another parcel's token covers nothing here.
    let r = as_recipient(&w, "POST", &path, T3, Some(json!({"text": "hi"}))).await;
    assert_eq!(r.status, 403, "{}", r.text());

    // The rate limit: 3 an hour per side (1 sent already).
    for i in 0..2 {
        let r = as_recipient(
            &w,
            "POST",
            &path,
            T1,
            Some(json!({"text": format!("again {i}")})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = as_recipient(&w, "POST", &path, T1, Some(json!({"text": "one too many"}))).await;
    assert_eq!(r.status, 429, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_slot_takes_the_parcel_off_the_route_and_survives_a_restart() {
    let mut w = World::with_web(with_pickup).await;
    w.drive(0, 1, 0).await;
    let before = web_support::recipient_status(w.web(), "MP100000004").await;
    let slot = as_recipient(&w, "GET", &format!("/t/{T3}/delivery"), T3, None)
        .await
        .json()["offers"]["slots"][0]
        .clone();
    let body = json!({"reschedule": {"start_ms": slot["start_ms"], "end_ms": slot["end_ms"]}});
    let r = as_recipient(&w, "POST", &format!("/t/{T3}/delivery"), T3, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut pushes = common::push_stream(&w.driver).await;
    assert!(matches!(
        next_event(&mut pushes).await,
        DriverEvent::DeliveryChanged {
            change: DeliveryChange::Reschedule { .. },
            ..
        }
    ));
    let st = web_support::recipient_status(w.web(), T3).await;
    assert!(
        st["status"]["status_line"]
            .as_str()
            .unwrap()
            .starts_with("Rescheduled to"),
        "{st}"
    );
    assert!(st["status"]["eta_ms"].is_null());
    // S2 is no longer ahead of S3's parcel.
    let after = web_support::recipient_status(w.web(), "MP100000004").await;
    assert_eq!(
        after["status"]["stops_away"].as_u64().unwrap() + 1,
        before["status"]["stops_away"].as_u64().unwrap(),
        "{before} {after}"
    );
    // The driver cannot deliver it any more, nor can the recipient change it again.
    let r = common::report(&mut w.driver, 11, "S2", Some(T3), common::delivered("ab")).await;
    assert!(matches!(r, Err(ClientError::Refused(e)) if e.code == ErrorCode::OutcomeRefused));
    let again = json!({"safe_place": {"place": "porch"}});
    let r = as_recipient(&w, "POST", &format!("/t/{T3}/delivery"), T3, Some(again)).await;
    assert_eq!(r.status, 422, "{}", r.text());

    // After a restart (a snapshot, then the log), the parcel is still off the route.
    let World { t, driver, .. } = w;
    driver.conn.close(0u32.into(), b"bye");
    let t = t
        .restart_with(|c| {
            c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            with_pickup(c);
        })
        .await;
    let web = t.gw.web_addr.unwrap();
    let st = web_support::recipient_status(web, T3).await;
    assert!(
        st["status"]["status_line"]
            .as_str()
            .unwrap()
            .starts_with("Rescheduled to"),
        "{st}"
    );
    let after_restart = web_support::recipient_status(web, "MP100000004").await;
    assert_eq!(
        after_restart["status"]["stops_away"],
        after["status"]["stops_away"]
    );

    // The back office puts it on the chosen day's route (while the first is still under
    // way): there it is an ordinary parcel again, and its driver is not told to skip it.
    let w = World::on(t).await;
    let key = w.backoffice_key();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut r2 = common::example_route();
    r2.id = "R-LATER".into();
    r2.driver = "D7".into();
    r2.stops.retain(|s| s.id.0 == "S2");
    let r = web_support::api(
        &w,
        "POST",
        "/api/v1/routes",
        &key,
        Some(&serde_json::to_value(&r2).unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let st = web_support::recipient_status(web, T3).await;
    assert!(
        !st["status"]["status_line"]
            .as_str()
            .unwrap()
            .starts_with("Rescheduled"),
        "{st}"
    );
    assert_eq!(st["status"]["withdrawn"], false);
    let mut d7 = w.t.driver("D7", "north").await;
    let route = match d7.command(1, CommandKind::MyRoute).await.unwrap() {
        ServerMsg::Route { route, .. } => route,
        other => panic!("{other:?}"),
    };
    assert!(
        !route.stops[0].instructions.contains("do not deliver"),
        "{}",
        route.stops[0].instructions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_app_gets_changes_as_instructions_and_no_version_2_values() {
    let w = World::with_web(with_pickup).await;
    let ep = ClientEndpoint::speaking("127.0.0.1:0".parse().unwrap(), &w.t.ca, 1).unwrap();
    let conn = ep.connect(w.t.gw.local_addr, "localhost").await.unwrap();
    let token = common::token(milepost::auth::Role::Driver, "D1", "north");
    let mut v1 = Session::open(conn, &token, "D1", DeviceInfo::default())
        .await
        .unwrap();
    v1.batch(milepost_proto::Seq(1), vec![common::fix(2_000, 0)])
        .await
        .unwrap();

    // A message is not a version-1 push; the change that follows comes as instructions.
    let r = as_recipient(
        &w,
        "POST",
        &format!("/t/{T1}/messages"),
        T1,
        Some(json!({"text": "hello"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = json!({"neighbour": {"name": "Ana", "address": "no. 14"}});
    let r = as_recipient(&w, "POST", &format!("/t/{T1}/delivery"), T1, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut pushes = common::push_stream(&v1).await;
    match next_event(&mut pushes).await {
        DriverEvent::Instructions { tracking, text, .. } => {
            assert_eq!(tracking.0, T1);
            assert!(text.contains("Ana, no. 14"), "{text}");
        }
        other => panic!("a version-1 app got {other:?}"),
    }
    // A version-2 command on a version-1 session is a protocol violation (the session lives).
    let reply = CommandKind::SendMessage {
        tracking: T1.into(),
        text: "hi".into(),
    };
    assert!(
        matches!(v1.command(3, reply).await, Err(ClientError::Refused(e)) if e.code == ErrorCode::ProtocolViolation)
    );
    assert!(matches!(
        v1.command(4, CommandKind::MyRoute).await.unwrap(),
        ServerMsg::Route { .. }
    ));
    let _ = MessageFrom::Driver;
}
