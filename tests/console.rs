//! The dispatcher console over HTTP, and the pages' live stream over a WebSocket, against an
//! in-process gateway (web listener on 127.0.0.1:0): stops' addresses taken with the route
//! and checked; search, alerts and trails scoped to the token's depot; a trail that outlives
//! a restart; the live stream's messages and its refusal of another site's handshake.

mod common;
mod web_support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use web_support::{api, get, World};

const T4: &str = "MP100000004";

/// The example route as the API's JSON, with `addresses` on its stops.
fn route_with(addresses: &[&str]) -> serde_json::Value {
    let mut route = serde_json::to_value(common::example_route()).unwrap();
    for (i, a) in addresses.iter().enumerate() {
        route["stops"][i]["address"] = (*a).into();
    }
    route
}

/// PUTs `route` with a fresh back-office key (retried until the key file is read).
async fn put_route(w: &World, key: &str, route: &serde_json::Value) -> web_support::Resp {
    let path = format!("/api/v1/routes/{}", route["id"].as_str().unwrap());
    loop {
        let r = api(w, "PUT", &path, key, Some(route)).await;
        if r.status != 401 {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Route `id` as north's dispatcher page reads it.
async fn route_detail(w: &World, id: &str) -> serde_json::Value {
    get(
        w.web(),
        &format!("/dispatch/routes/{id}"),
        Some(&dispatcher("north")),
    )
    .await
    .json()
}

fn dispatcher(depot: &str) -> String {
    World::dispatcher_token(depot)
}

#[tokio::test]
async fn addresses_come_with_the_route_and_are_checked() {
    let w = World::with_web(|_| {}).await;
    let key = w.backoffice_key();
    let id = common::example_route().id.0;
    let r = put_route(&w, &key, &route_with(&["Ilica 12", "", "Savska 9"])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let detail = route_detail(&w, &id).await;
    let addr = |i: usize| detail["stops"][i]["address"].clone();
    assert_eq!(addr(0), "Ilica 12");
    assert!(addr(1).is_null());
    assert_eq!(addr(2), "Savska 9");

    // Too long, or with a control character: 400, the field named; nothing changes.
    for bad in ["x".repeat(201), "Ilica\u{7}12".to_owned()] {
        let r = put_route(&w, &key, &route_with(&["Ilica 12", &bad])).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["field"], "stops[1].address", "{}", r.text());
    }
    // The route again without addresses: they are gone.
    let r = put_route(&w, &key, &route_with(&[])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let detail = route_detail(&w, &id).await;
    assert!(detail["stops"][0]["address"].is_null(), "{detail}");
}

#[tokio::test]
async fn search_alerts_and_trails_answer_only_for_the_tokens_depot() {
    let mut w = World::with_web(|_| {}).await;
    w.drive(0, 1, 60).await;
    let _south = w.stranger().await;
    let id = common::example_route().id.0;
    let web = w.web();

    let found = get(web, "/dispatch/search?q=MP1000", Some(&dispatcher("north")))
        .await
        .json();
    let items = found["items"].as_array().unwrap();
    assert_eq!(
        items.iter().filter(|f| f["kind"] == "parcel").count(),
        4,
        "{found}"
    );
    let by_driver = get(web, "/dispatch/search?q=d1", Some(&dispatcher("north")))
        .await
        .json();
    assert_eq!(by_driver["items"][0]["kind"], "driver", "{by_driver}");
    assert_eq!(
        by_driver["items"][0]["route_id"],
        id.as_str(),
        "{by_driver}"
    );

    // Another depot's dispatcher finds nothing of north's, not even a count, and its own
    // driver only.
    for q in ["MP1000", "D1", &id] {
        let other = get(
            web,
            &format!("/dispatch/search?q={q}"),
            Some(&dispatcher("south")),
        )
        .await
        .json();
        assert_eq!(other["items"], serde_json::json!([]), "{q}: {other}");
    }
    let own = get(web, "/dispatch/search?q=x9", Some(&dispatcher("south")))
        .await
        .json();
    assert_eq!(own["items"][0]["id"], "X9", "{own}");
    // A query too short or too long is refused with a reason.
    let short = get(web, "/dispatch/search?q=M", Some(&dispatcher("north"))).await;
    assert_eq!(short.status, 400);

    // The trail: north's route has one; south is told it does not exist.
    let trail = get(
        web,
        &format!("/dispatch/routes/{id}/trail"),
        Some(&dispatcher("north")),
    )
    .await
    .json();
    let points = trail["points"].as_array().unwrap();
    assert!(points.len() >= 2, "{trail}");
    let times: Vec<i64> = points.iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {times:?}"
    );
    let foreign = get(
        web,
        &format!("/dispatch/routes/{id}/trail"),
        Some(&dispatcher("south")),
    )
    .await;
    assert_eq!(foreign.status, 404);

    // Alerts: south sees none of north's.
    let alerts = get(
        web,
        "/dispatch/alerts?state=all",
        Some(&dispatcher("south")),
    )
    .await
    .json();
    assert_eq!(alerts["items"], serde_json::json!([]), "{alerts}");
    let bad = get(
        web,
        "/dispatch/alerts?state=maybe",
        Some(&dispatcher("north")),
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn a_trail_outlives_a_restart() {
    let mut w = World::with_web(|_| {}).await;
    w.drive(0, 1, 60).await;
    w.drive(1, 2, 30).await;
    let id = common::example_route().id.0;
    let path = format!("/dispatch/routes/{id}/trail");
    let before = get(w.web(), &path, Some(&dispatcher("north"))).await.json();
    let n = before["points"].as_array().unwrap().len();
    assert!(n >= 3, "{before}");
    let World { t, driver, .. } = w;
    drop(driver);
    let t = t
        .restart_with(|c| c.web.listen = Some(([127, 0, 0, 1], 0).into()))
        .await;
    let web = t.gw.web_addr.unwrap();
    let after = get(web, &path, Some(&dispatcher("north"))).await.json();
    assert_eq!(after["points"], before["points"]);
}

/// A WebSocket handshake for `path` on `web` with `token`, from `origin` if given.
async fn ws_connect(
    web: std::net::SocketAddr,
    path: &str,
    token: &str,
    origin: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    let mut req = format!("ws://{web}{path}").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// The next event message: (name, id, data).
async fn next_event(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> (String, serde_json::Value, serde_json::Value) {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("the stream is open")
            .unwrap();
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            return (
                v["event"].as_str().unwrap().to_owned(),
                v["id"].clone(),
                v["data"].clone(),
            );
        }
    }
}

#[tokio::test]
async fn the_live_stream_over_a_websocket() {
    let mut w = World::with_web(|_| {}).await;
    let web = w.web();
    let token = World::recipient_token(T4);
    let path = format!("/t/{T4}/events?after=0");

    // The page's own origin (its Host): the stream's state first, then milestones as they
    // happen, with their offsets.
    let own = format!("http://{web}");
    let mut ws = ws_connect(web, &path, &token, Some(&own)).await.unwrap();
    let mut names = Vec::new();
    let mut ids = Vec::new();
    w.drive(0, 1, 60).await;
    w.deliver("S1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline && !names.iter().any(|n| n == "milestone") {
        let (name, id, data) = next_event(&mut ws).await;
        assert!(!data.is_null() || name == "position", "{name}: {data}");
        if let Some(i) = id.as_u64() {
            ids.push(i);
        }
        names.push(name);
    }
    assert_eq!(
        names.first().map(String::as_str),
        Some("status"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "milestone"), "{names:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    ws.send(Message::Close(None)).await.unwrap();

    // A page of another site may not open it with the recipient's credentials.
    let refused = ws_connect(web, &path, &token, Some("https://evil.example")).await;
    assert_eq!(refused.err(), Some(403));
    // No token: 401, as for the event stream.
    let mut req = format!("ws://{web}{path}").into_client_request().unwrap();
    req.headers_mut().insert("origin", own.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // The dispatcher's depot stream too.
    let mut d = ws_connect(
        web,
        "/dispatch/events?after=0",
        &dispatcher("north"),
        Some(&own),
    )
    .await
    .unwrap();
    let (name, _, data) = next_event(&mut d).await;
    assert_eq!(name, "positions", "{data}");
}

#[tokio::test]
async fn a_us_carrier_reads_a_12_hour_clock() {
    let w = World::with_web(|c| {
        c.carriers.0.insert(
            "acme-us".into(),
            milepost::tenancy::CarrierConfig {
                name: "Acme".into(),
                time_zone: "America/Chicago".into(),
                depots: vec!["north".into()],
                locale: "en-US".into(),
                ..Default::default()
            },
        );
    })
    .await;
    let view = web_support::recipient_status(w.web(), T4).await;
    let s = &view["status"];
    assert_eq!(s["hour12"], true, "{s}");
    let window = s["window_text"].as_str().unwrap_or_default();
    assert!(window.contains("AM") || window.contains("PM"), "{s}");
    let state = get(w.web(), "/dispatch/state", Some(&dispatcher("north")))
        .await
        .json();
    assert_eq!(state["hour12"], true);
    assert_eq!(state["time_zone"], "America/Chicago");
    let page = get(
        w.web(),
        &format!("/t/{T4}?token={}", World::recipient_token(T4)),
        None,
    )
    .await
    .text();
    assert!(page.contains(" AM") || page.contains(" PM"), "{page}");
}
