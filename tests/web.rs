//! The web listener over real HTTP on loopback, without a browser: the parcel status JSON, the
//! tracking page (cookie, escaping, headers), instructions that reach the driver's app through
//! the log, the event stream (ids are feed offsets, `Last-Event-ID` resumes with exactly what
//! was missed), the privacy rule on positions, token refusals (no token, bad token, another
//! parcel, a driver, a dispatcher of another depot), the dispatcher's state, events, route
//! progress and "who is near here", static assets, and the streams ending at shutdown.

mod common;
mod web_support;

use std::time::Duration;

use milepost::auth::Role;
use milepost_proto::route::DriverEvent;
use milepost_proto::ServerMsg;
use web_support::{get, get_status, post_instructions, recipient_status, request, Sse, World};

const T4: &str = "MP100000004"; // stop S3: two stops before it

#[tokio::test]
async fn status_json_and_token_refusals() {
    let w = World::with_web(|_| {}).await;
    let web = w.web();
    let path = format!("/t/{T4}/status");
    let tok = World::recipient_token(T4);

    let r = get(web, &path, Some(&tok)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["offset"], 0);
    assert_eq!(v["status"]["state"], "Planned");
    assert_eq!(v["status"]["status_line"], "Planned for delivery");
    assert_eq!(v["status"]["tracking"], T4);
    assert!(
        v["position"].is_null(),
        "no position before the route starts"
    );
    assert!(v["destination"]["lat"].as_f64().is_some());
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // No token, garbage, expired: 401.
    assert_eq!(get_status(web, &path, None).await, 401);
    assert_eq!(get_status(web, &path, Some("mp1.garbage.sig")).await, 401);
    let now = common::now_s();
    let expired = common::mint(
        common::SECRET.as_bytes(),
        Role::Recipient,
        T4,
        "north",
        now - 10,
        now - 100,
    );
    assert_eq!(get_status(web, &path, Some(&expired)).await, 401);
    // Another parcel's token, a driver's token: 403.
    assert_eq!(
        get_status(web, &path, Some(&World::recipient_token("MP100000001"))).await,
        403
    );
    assert_eq!(
        get_status(
            web,
            &path,
            Some(&common::token(Role::Driver, "D1", "north"))
        )
        .await,
        403
    );
    // A dispatcher of the parcel's depot may look (customer support); another depot's may not.
    assert_eq!(
        get_status(web, &path, Some(&World::dispatcher_token("north"))).await,
        200
    );
    assert_eq!(
        get_status(web, &path, Some(&World::dispatcher_token("south"))).await,
        403
    );
    // Unknown parcel: 404; a tracking number that cannot be one: 404 before any lookup.
    assert_eq!(
        get_status(
            web,
            "/t/MP999/status",
            Some(&World::recipient_token("MP999"))
        )
        .await,
        404
    );
    assert_eq!(get_status(web, "/t/a%20b/status", Some(&tok)).await, 404);
    // The event stream refuses the same way.
    let s = Sse::open(
        web,
        &format!("/t/{T4}/events"),
        &[(
            "Authorization",
            &format!("Bearer {}", World::recipient_token("MP100000001")),
        )],
    )
    .await;
    assert_eq!(s.status, 403);
    let s = Sse::open(web, &format!("/t/{T4}/events"), &[]).await;
    assert_eq!(s.status, 401);
}

#[tokio::test]
async fn page_cookie_escaping_and_instructions_reach_the_driver() {
    let w = World::with_web(|_| {}).await;
    let web = w.web();
    let tok = World::recipient_token(T4);

    // The link with the token: the page, and the token in an HttpOnly cookie for this path.
    let r = get(web, &format!("/t/{T4}?token={tok}"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").expect("token cookie").to_owned();
    assert!(cookie.starts_with(&format!("mp_token={tok};")), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", &format!("Path=/t/{T4}")] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let html = r.text();
    assert!(
        html.contains("<h1 id=\"status-line\">Planned for delivery</h1>"),
        "status rendered on the server"
    );

    // Instructions through the cookie, with markup in them.
    let jar = format!("mp_token={tok}");
    let evil = r#"<script>alert("x")</script> gate 42 & "ring""#;
    let body = serde_json::json!({ "text": evil }).to_string();
    let r = post_instructions(web, T4, Some(&jar), "application/json", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["instructions"], evil);
    // They reached the driver's app through the log, unchanged (the push stream opens with
    // the first push: the route was assigned before D1 connected).
    let mut push = common::push_stream(&w.driver).await;
    let pushed = common::next_push(&mut push).await;
    assert!(
        matches!(&pushed, Some(ServerMsg::Push(p)) if matches!(&p.kind, DriverEvent::Instructions { text, .. } if text == evil)),
        "{pushed:?}"
    );
    // The page shows them escaped, never as markup.
    let html = get(web, &format!("/t/{T4}?token={tok}"), None).await.text();
    assert!(
        !html.contains("<script>alert"),
        "unescaped instructions in the page"
    );
    assert!(html.contains(
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; gate 42 &amp; &quot;ring&quot;"
    ));
    // The same through the cookie alone (a later visit without the token in the link).
    let r = request(web, "GET", &format!("/t/{T4}"), &[("Cookie", &jar)], None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").is_none());

    // Refusals: another parcel's token, not JSON, too long, no token; a page without a token.
    let other = format!("mp_token={}", World::recipient_token("MP100000001"));
    let r = post_instructions(web, T4, Some(&other), "application/json", &body).await;
    assert_eq!(r.status, 403);
    let r = post_instructions(web, T4, Some(&jar), "text/plain", "hi").await;
    assert_eq!(r.status, 400, "a cross-site form cannot post JSON");
    let long = serde_json::json!({ "text": "x".repeat(1_500) }).to_string();
    let r = post_instructions(web, T4, Some(&jar), "application/json", &long).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = post_instructions(web, T4, None, "application/json", &body).await;
    assert_eq!(r.status, 401);
    let r = get(web, &format!("/t/{T4}"), None).await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("Link not valid"));
    // A dispatcher may read but not instruct.
    let d = format!("mp_token={}", World::dispatcher_token("north"));
    let r = post_instructions(web, T4, Some(&d), "application/json", &body).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn event_stream_ids_resume_and_privacy() {
    // Privacy by stops only: the driver is visible once the recipient's stop is next.
    let mut w = World::with_web(|c| c.feed.position_minutes = 0).await;
    let web = w.web();
    let auth = format!("Bearer {}", World::recipient_token(T4));
    let path = format!("/t/{T4}/events?after=0");
    let mut s = Sse::open(web, &path, &[("Authorization", &auth)]).await;
    assert_eq!(s.status, 200);
    assert!(s
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
    let first = s.drain(300).await;
    assert!(
        first
            .iter()
            .any(|e| e.event == "status" && e.json()["state"] == "Planned"),
        "{first:#?}"
    );

    // The route starts and reaches S1: milestones arrive with dense ids, no position yet.
    w.drive(0, 1, 60).await;
    let evs = s.drain(400).await;
    let milestones: Vec<u64> = evs
        .iter()
        .filter(|e| e.event == "milestone")
        .filter_map(|e| e.offset())
        .collect();
    assert!(!milestones.is_empty(), "{evs:#?}");
    assert_eq!(
        milestones,
        (1..=milestones.len() as u64).collect::<Vec<_>>(),
        "ids are the feed offsets, dense and ordered"
    );
    let out = evs.iter().find(|e| e.event == "milestone").unwrap().json();
    assert_eq!(out["kind"], "OutForDelivery");
    assert!(
        evs.iter().any(|e| e.event == "status"
            && e.json()["status_line"]
                .as_str()
                .unwrap()
                .contains("stops away")),
        "{evs:#?}"
    );
    assert!(
        !evs.iter()
            .any(|e| e.event == "position" && e.data != "null"),
        "no position two stops away"
    );
    let status = recipient_status(web, T4).await;
    assert!(status["position"].is_null(), "nor in the status JSON");
    let seen = *milestones.last().unwrap();
    drop(s);

    // While the page is away, S1 and S2 are served.
    w.deliver("S1").await;
    w.drive(1, 2, 60).await;
    w.deliver("S2").await;
    // Reconnect as a browser does: same URL, Last-Event-ID = the last id seen.
    let last = seen.to_string();
    let mut s = Sse::open(
        web,
        &path,
        &[("Authorization", &auth), ("Last-Event-ID", &last)],
    )
    .await;
    w.drive(2, 3, 0).await;
    let evs = s.drain(500).await;
    let resumed: Vec<u64> = evs
        .iter()
        .filter(|e| e.event == "milestone")
        .filter_map(|e| e.offset())
        .collect();
    assert_eq!(
        resumed.first(),
        Some(&(seen + 1)),
        "resumes right after the last id seen: {evs:#?}"
    );
    assert_eq!(
        resumed,
        (seen + 1..seen + 1 + resumed.len() as u64).collect::<Vec<_>>()
    );
    assert!(
        evs.iter().any(|e| e.event == "milestone"
            && e.json()["kind"] == "StopsAway"
            && e.json()["text"] == "Next stop"),
        "{evs:#?}"
    );
    let pos = evs
        .iter()
        .rev()
        .find(|e| e.event == "position")
        .expect("a position once the stop is next");
    let p = pos.json();
    let (lat, lon) = common::route_point(3);
    assert!(
        (p["lat"].as_f64().unwrap() - lat).abs() < 1e-3
            && (p["lon"].as_f64().unwrap() - lon).abs() < 1e-3,
        "{p}"
    );
    let status = recipient_status(web, T4).await;
    assert!(status["position"]["lat"].is_number(), "{status}");

    // Delivered: the status says so with proof, and the position is withdrawn.
    common::report(&mut w.driver, 3, "S3", None, common::delivered("ee"))
        .await
        .unwrap();
    let evs = s
        .until(Duration::from_secs(5), |e| {
            e.event == "status" && e.json()["state"] == "Delivered"
        })
        .await;
    let st = evs.last().unwrap().json();
    assert!(
        st["status_line"]
            .as_str()
            .unwrap()
            .starts_with("Delivered "),
        "{st}"
    );
    assert_eq!(st["proof"]["photo_sha256"], "ee".repeat(32));
    let after = s.drain(1_500).await;
    assert!(
        evs.iter()
            .chain(after.iter())
            .any(|e| e.event == "position" && e.data == "null"),
        "position withdrawn once delivered: {evs:#?} {after:#?}"
    );

    // A bad Last-Event-ID is a 400, not a guess.
    let s = Sse::open(
        web,
        &path,
        &[("Authorization", &auth), ("Last-Event-ID", "x1")],
    )
    .await;
    assert_eq!(s.status, 400);
}

#[tokio::test]
async fn dispatcher_state_events_route_progress_and_nearby() {
    let mut w = World::with_web(|c| c.feed.position_flush_ms = 50).await;
    let web = w.web();
    let north = World::dispatcher_token("north");
    let south = World::dispatcher_token("south");

    let st = get(web, "/dispatch/state", Some(&north)).await;
    assert_eq!(st.status, 200, "{}", st.text());
    let st = st.json();
    assert_eq!(st["depot"], "north");
    assert_eq!(st["routes"][0]["stops"].as_array().unwrap().len(), 3);
    assert_eq!(st["routes"][0]["stops"][0]["state"], "pending");
    let offset = st["offset"].as_u64().unwrap();

    let auth = format!("Bearer {north}");
    let mut s = Sse::open(
        web,
        &format!("/dispatch/events?after={offset}"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(s.status, 200);
    // A driver of another depot is never seen.
    let _south = w.stranger().await;
    w.drive(0, 1, 30).await;
    let evs = s.drain(500).await;
    let positions: Vec<serde_json::Value> = evs
        .iter()
        .filter(|e| e.event == "positions")
        .flat_map(|e| e.json().as_array().cloned().unwrap_or_default())
        .collect();
    assert!(positions.iter().any(|p| p["id"] == "D1"), "{evs:#?}");
    assert!(!positions.iter().any(|p| p["id"] == "X9"));
    let dispatch: Vec<&web_support::SseEvent> =
        evs.iter().filter(|e| e.event == "dispatch").collect();
    assert!(
        dispatch.iter().any(|e| e.json()["kind"] == "RouteStarted"),
        "{evs:#?}"
    );
    let ids: Vec<u64> = dispatch.iter().filter_map(|e| e.offset()).collect();
    assert_eq!(
        ids,
        (offset + 1..=offset + ids.len() as u64).collect::<Vec<_>>()
    );
    assert!(
        evs.iter()
            .any(|e| e.event == "route" && e.json()["stops"][0]["state"] == "arrived"),
        "stop colours follow: {evs:#?}"
    );
    // Coalescing: far fewer position frames than fixes.
    let frames = evs.iter().filter(|e| e.event == "positions").count();
    assert!(frames < 40, "{frames} position frames");

    // Route progress with ETAs; another depot's dispatcher is refused.
    let r = get(web, "/dispatch/routes/R-2026-02-16-017", Some(&north)).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(v["started_ms"].is_number());
    assert!(v["stops"][1]["eta_text"].is_string(), "{v}");
    assert_eq!(
        get_status(web, "/dispatch/routes/R-2026-02-16-017", Some(&south)).await,
        403
    );
    assert_eq!(
        get_status(web, "/dispatch/routes/nope", Some(&north)).await,
        404
    );
    let st = get(web, "/dispatch/state", Some(&south)).await.json();
    assert!(
        st["routes"].as_array().unwrap().is_empty()
            && !st["drivers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["id"] == "D1")
    );
    // Not a dispatcher: 403; no token: 401.
    assert_eq!(
        get_status(web, "/dispatch/state", Some(&World::recipient_token(T4))).await,
        403
    );
    assert_eq!(get_status(web, "/dispatch/state", None).await, 401);
    assert_eq!(Sse::open(web, "/dispatch/events", &[]).await.status, 401);

    // Who is near S1? D1 (standing there), with its distance; bounded and validated queries.
    let (lat, lon) = common::route_point(1);
    let r = get(
        web,
        &format!("/dispatch/nearby?lat={lat}&lon={lon}&radius_m=500"),
        Some(&north),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["drivers"][0]["id"], "D1");
    assert!(v["drivers"][0]["distance_m"].as_f64().unwrap() < 50.0);
    let r = get(
        web,
        &format!("/dispatch/nearby?lat={lat}&lon={lon}&radius_m=500"),
        Some(&south),
    )
    .await
    .json();
    assert!(
        r["drivers"].as_array().unwrap().is_empty(),
        "south sees no north driver"
    );
    assert_eq!(
        get_status(
            web,
            "/dispatch/nearby?lat=91&lon=0&radius_m=500",
            Some(&north)
        )
        .await,
        400
    );
    assert_eq!(
        get_status(
            web,
            "/dispatch/nearby?lat=1&lon=0&radius_m=1e9",
            Some(&north)
        )
        .await,
        400
    );
    assert_eq!(
        get_status(web, "/dispatch/nearby?lat=x&lon=0&radius_m=5", Some(&north)).await,
        400
    );

    // The dispatcher page: cookie scoped to /dispatch; a recipient's link is refused.
    let r = get(web, &format!("/dispatch?token={north}"), None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").unwrap().contains("Path=/dispatch"));
    assert_eq!(
        get_status(
            web,
            &format!("/dispatch?token={}", World::recipient_token(T4)),
            None
        )
        .await,
        403
    );

    // Resuming from a cursor the depot ring still holds gives exactly the events after it.
    drop(s);
    let last = ids.last().copied().unwrap();
    w.deliver("S1").await;
    w.drive(1, 2, 30).await;
    let mut s = Sse::open(
        web,
        &format!("/dispatch/events?after={offset}"),
        &[
            ("Authorization", &auth),
            ("Last-Event-ID", &last.to_string()),
        ],
    )
    .await;
    let evs = s.drain(500).await;
    let ids: Vec<u64> = evs
        .iter()
        .filter(|e| e.event == "dispatch")
        .filter_map(|e| e.offset())
        .collect();
    assert_eq!(ids.first(), Some(&(last + 1)), "{evs:#?}");

    // A failed attempt: an alert on the stream and in the state, and the recipient is told why.
    let failed = milepost_proto::route::Outcome::Failed {
        reason: milepost_proto::route::FailureReason::RecipientAbsent,
        note: "nobody home".into(),
    };
    common::report(&mut w.driver, 4, "S2", None, failed)
        .await
        .unwrap();
    let evs = s
        .until(Duration::from_secs(5), |e| {
            e.event == "dispatch" && e.json()["kind"] == "AttemptFailed"
        })
        .await;
    let alert = evs.last().unwrap().json();
    assert_eq!(alert["alert"], true);
    assert_eq!(alert["text"], "Failed attempt at S2: recipient absent");
    let st = get(web, "/dispatch/state", Some(&north)).await.json();
    let alerts = st["alerts"].as_array().unwrap();
    assert!(alerts.iter().any(|a| a["kind"] == "AttemptFailed"), "{st}");
    assert!(
        alerts
            .windows(2)
            .all(|w| w[0]["offset"].as_u64() > w[1]["offset"].as_u64()),
        "newest first"
    );
    let t3 = "MP100000003";
    let v = recipient_status(web, t3).await;
    assert_eq!(
        v["status"]["status_line"],
        "Attempt failed: recipient absent"
    );
    assert_eq!(v["status"]["failure"], "recipient absent: nobody home");
    let page = get(
        web,
        &format!("/t/{t3}?token={}", World::recipient_token(t3)),
        None,
    )
    .await
    .text();
    assert!(page.contains("<p id=\"failure-text\">recipient absent: nobody home</p>"));
}

#[tokio::test]
async fn assets_are_embedded_compressed_and_cacheable() {
    let w = World::with_web(|_| {}).await;
    let web = w.web();
    let r = request(
        web,
        "GET",
        "/assets/track.js",
        &[("Accept-Encoding", "gzip, br")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    let plain = get(web, "/assets/track.js", None).await;
    assert!(plain.body.len() > r.body.len());
    assert!(plain.text().contains("MilepostLive.open"));
    assert_eq!(get_status(web, "/assets/../Cargo.toml", None).await, 404);
    assert_eq!(get_status(web, "/assets/nope.js", None).await, 404);
    let css = get(web, "/brand.css", None).await;
    assert!(css.text().contains("--brand:#0b5fff"));
    assert_eq!(get_status(web, "/nothing-here", None).await, 404);
}

#[tokio::test]
async fn streams_end_when_the_gateway_shuts_down() {
    let w = World::with_web(|_| {}).await;
    let web = w.web();
    let auth = format!("Bearer {}", World::recipient_token(T4));
    let mut s = Sse::open(
        web,
        &format!("/t/{T4}/events?after=0"),
        &[("Authorization", &auth)],
    )
    .await;
    let _ = s.drain(200).await;
    let World { t, driver, .. } = w;
    driver.close();
    let shutdown = tokio::spawn(t.gw.shutdown());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !s.ended {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream still open after shutdown"
        );
        let _ = s.next(Duration::from_millis(200)).await;
    }
    tokio::time::timeout(Duration::from_secs(20), shutdown)
        .await
        .unwrap()
        .unwrap();
    let _ = t.dir;
}

/// A page left open while the driver goes quiet is told so without any new event (the
/// stream looks every second).
#[tokio::test]
async fn an_open_page_learns_that_the_driver_went_quiet() {
    let mut w = World::with_web(|c| c.feed.stale_after_s = 4).await;
    // Fix times up to the wall clock, as a live phone's are: the leg ends 3 s from now (a
    // phone's clock may run a little ahead), so the view is fresh for 7 s from here, which
    // sending the leg and the first look fit in with seconds to spare.
    let mut probe = 0;
    let span = common::leg(
        common::route_point(0),
        common::route_point(1),
        &mut probe,
        0,
    )
    .last()
    .map_or(0, |f| f.t_ms);
    w.clock = common::now_ms() - span + 3_000;
    let web = w.web();
    w.drive(0, 1, 0).await;
    let auth = format!("Bearer {}", World::recipient_token(T4));
    let mut s = Sse::open(web, &format!("/t/{T4}/events"), &[("Authorization", &auth)]).await;
    assert_eq!(s.status, 200);
    let lines = |evs: &[web_support::SseEvent]| -> Vec<String> {
        evs.iter()
            .filter(|e| e.event == "status")
            .map(|e| e.json()["status_line"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let fresh = lines(&s.drain(500).await);
    assert!(
        fresh.last().is_some_and(|l| l.contains("stops away")),
        "{fresh:?}"
    );
    // No fix, no event: within a few seconds the page is told the driver went quiet.
    let quiet = lines(&s.drain(8_000).await);
    assert!(
        quiet
            .last()
            .is_some_and(|l| l.contains("no news from the driver since")),
        "{quiet:?}"
    );
}

/// Times on the pages are in the zone of the depot's carrier (`[carriers.<id>] time_zone`):
/// the status line's and the window's times, their label, the pages' footers.
#[tokio::test]
async fn pages_show_times_in_the_carriers_zone() {
    let w = World::with_web(|c| {
        c.carriers.0.insert(
            "acme".into(),
            milepost::tenancy::CarrierConfig {
                name: "Acme".into(),
                time_zone: "Asia/Kolkata".into(),
                depots: vec!["north".into()],
                ..Default::default()
            },
        );
    })
    .await;
    let route = common::example_route();
    let stop = route
        .stops
        .iter()
        .find(|s| s.window.is_some())
        .expect("a stop with a window");
    let t = stop.parcels[0].tracking.0.clone();
    let view = web_support::recipient_status(w.web(), &t).await;
    let s = &view["status"];
    let end_ms = s["window"]["end_ms"].as_i64().unwrap();
    assert_eq!(s["time_zone"], "Asia/Kolkata", "{s}");
    assert_eq!(s["zone_label"], "IST", "{s}");
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&chrono_tz::Asia::Kolkata)
            .format("%H:%M")
            .to_string()
    };
    let text = s["window_text"].as_str().unwrap();
    assert!(
        text.ends_with(&format!("-{}", local(end_ms))),
        "{text} is not in IST (window ends {})",
        local(end_ms)
    );
    let page = web_support::get(
        w.web(),
        &format!("/t/{t}?token={}", World::recipient_token(&t)),
        None,
    )
    .await
    .text();
    assert!(
        page.contains("Times are <span class=\"zone\">IST</span>."),
        "{page}"
    );
    let dispatch = web_support::get(
        w.web(),
        &format!("/dispatch?token={}", World::dispatcher_token("north")),
        None,
    )
    .await
    .text();
    assert!(dispatch.contains("Times are IST."), "{dispatch}");
}
