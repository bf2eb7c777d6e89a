//! The failed-delivery (NDR) policy end to end, over the back-office API on loopback: each
//! failed attempt is followed by the carrier's decision (`core.ndr`: by reason, and back to the
//! sender after `max_attempts` failures), counted across the re-attempt routes the parcel moves
//! to, and shown in the parcel's history; a bad policy stops the start with a clear error.

mod common;
mod web_support;

use milepost_proto::route::Route;
use serde_json::{json, Value};
use web_support::World;

fn key(w: &World) -> String {
    w.backoffice_key()
}

async fn call(w: &World, method: &str, path: &str, key: &str, body: Option<&Value>) -> Value {
    let r = web_support::api(w, method, path, key, body).await;
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
    r.json()
}

/// A one-stop route of driver `driver` carrying parcel `tracking`.
fn route(id: &str, driver: &str, tracking: &str) -> Route {
    let mut r = common::example_route();
    r.id = id.into();
    r.driver = driver.into();
    r.stops.truncate(1);
    r.stops[0].parcels.truncate(1);
    r.stops[0].parcels[0].tracking = tracking.into();
    r
}

/// The parcel's next steps so far, in words.
async fn next_steps(w: &World, k: &str, tracking: &str) -> Vec<String> {
    let p = call(w, "GET", &format!("/api/v1/parcels/{tracking}"), k, None).await;
    p["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "NextStep")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_attempt_gets_the_policys_next_step_across_reattempt_routes() {
    let w = World::with_web(|c| {
        c.core.ndr.hold_place = "Depot North, gate 2".into();
        // The recipient is told by SMS (the log adapter).
        c.web.public_url = Some("http://milepost.test".into());
        c.notify.enabled = true;
        c.notify.sms = Some(milepost::notify::config::SmsConfig::Log);
    })
    .await;
    let k = key(&w);
    let absent = json!({"outcome": "failed", "reason": "recipient_absent", "note": "no answer"});
    // Attempt 1 and 2 on two routes: re-attempted; attempt 3: back to the sender.
    for (i, (route_id, driver)) in [("R-N1", "D5"), ("R-N2", "D6"), ("R-N3", "D7")]
        .into_iter()
        .enumerate()
    {
        let mut r = serde_json::to_value(route(route_id, driver, "NDR-1")).unwrap();
        r["recipients"] = json!({"NDR-1": {"phone": "+385911234567"}});
        call(&w, "POST", "/api/v1/routes", &k, Some(&r)).await;
        call(
            &w,
            "POST",
            "/api/v1/parcels/NDR-1/outcome",
            &k,
            Some(&absent),
        )
        .await;
        assert_eq!(next_steps(&w, &k, "NDR-1").await.len(), i + 1);
    }
    assert_eq!(
        next_steps(&w, &k, "NDR-1").await,
        vec![
            "We will try again on a later delivery",
            "We will try again on a later delivery",
            "Going back to the sender after 3 attempts",
        ]
    );
    // The recipient was told each attempt with its next step; the back office's return after
    // the third is not told twice.
    let returned = json!({"outcome": "returned", "note": "back to the shop"});
    call(
        &w,
        "POST",
        "/api/v1/parcels/NDR-1/outcome",
        &k,
        Some(&returned),
    )
    .await;
    let mut told = Vec::new();
    for _ in 0..200 {
        let log = call(&w, "GET", "/api/v1/parcels/NDR-1/notifications", &k, None).await;
        told = log
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    m["milestone"].as_str().unwrap(),
                    m["state"].as_str().unwrap()
                )
            })
            // (Its "out for delivery" was overtaken by the failure behind it.)
            .filter(|m| !m.starts_with("out_for_delivery"))
            .collect();
        if told.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = call(&w, "GET", "/api/v1/parcels/NDR-1/notifications", &k, None).await;
    assert!(!log.to_string().contains("\"returned\""), "{log}");
    assert_eq!(told, vec!["attempt_failed sent"; 3], "{log}");
    // An address not found is held where the policy says; a refusal goes back at once.
    let r = serde_json::to_value(route("R-N4", "D8", "NDR-2")).unwrap();
    call(&w, "POST", "/api/v1/routes", &k, Some(&r)).await;
    let not_found = json!({"outcome": "failed", "reason": "address_not_found"});
    call(
        &w,
        "POST",
        "/api/v1/parcels/NDR-2/outcome",
        &k,
        Some(&not_found),
    )
    .await;
    assert_eq!(
        next_steps(&w, &k, "NDR-2").await,
        vec!["Held for you at Depot North, gate 2"]
    );
}

#[tokio::test]
async fn a_bad_policy_stops_the_start() {
    let mut cfg = common::config(tempfile::tempdir().unwrap().path());
    cfg.core.ndr.max_attempts = 0;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("max_attempts"));
    let mut cfg = common::config(tempfile::tempdir().unwrap().path());
    cfg.core
        .ndr
        .on
        .insert("absent".into(), milepost_core::fleet::ndr::Action::Hold);
    assert!(cfg.validate().unwrap_err().to_string().contains("absent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_form_an_exception_queue_with_the_recipients_wish() {
    let w = World::with_web(|_| {}).await;
    let k = key(&w);
    let r = serde_json::to_value(route("R-X1", "D5", "EXC-1")).unwrap();
    call(&w, "POST", "/api/v1/routes", &k, Some(&r)).await;
    let absent = json!({"outcome": "failed", "reason": "recipient_absent"});
    call(
        &w,
        "POST",
        "/api/v1/parcels/EXC-1/outcome",
        &k,
        Some(&absent),
    )
    .await;
    let queue = |state: &'static str| {
        let w = &w;
        let k = k.clone();
        async move {
            let path = format!("/api/v1/depots/north/exceptions?state={state}");
            call(w, "GET", &path, &k, None).await["items"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let open = queue("open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let x = &open[0];
    assert_eq!(x["tracking"], "EXC-1");
    assert_eq!(x["reason"], "recipient absent");
    assert_eq!(x["attempt"], 1);
    assert_eq!(x["next_step"], "We will try again on a later delivery");
    assert_eq!(x["state"], "open");
    assert!(x["wish"].is_null());

    // The recipient, following the failed-attempt message's link, asks for a safe place.
    let token = World::recipient_token("EXC-1");
    let wish = json!({"safe_place": {"place": "the garage"}});
    let r = web_support::api(&w, "POST", "/t/EXC-1/delivery", &token, Some(&wish)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(queue("open").await[0]["wish"], "Safe place: the garage");

    // The dispatcher page acknowledges, then resolves it (the same record as the API's).
    let id = x["alert_id"].as_u64().unwrap();
    let disp = World::dispatcher_token("north");
    let page_post = |path: String| {
        let w = &w;
        let disp = disp.clone();
        async move {
            let auth = format!("Bearer {disp}");
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            web_support::request(w.web(), "POST", &path, &headers, Some("{}")).await
        }
    };
    let r = page_post(format!("/dispatch/alerts/{id}/acknowledge")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["handled_by"], "dispatcher:north");
    let r = page_post(format!("/dispatch/alerts/{id}/acknowledge")).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let page = web_support::get(w.web(), "/dispatch/exceptions", Some(&disp)).await;
    assert_eq!(page.json()["items"][0]["state"], "acknowledged");
    assert_eq!(queue("acknowledged").await.len(), 1);
    let r = page_post(format!("/dispatch/alerts/{id}/resolve")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(queue("open").await.is_empty());
    assert_eq!(queue("resolved").await.len(), 1);
    let r = page_post(format!("/dispatch/alerts/{id}/shrug")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // The wish outlives the failed route: cancelled, then a re-attempt route for the parcel,
    // whose driver reads it and whose page shows it.
    call(
        &w,
        "POST",
        "/api/v1/routes/R-X1/cancel",
        &k,
        Some(&json!({})),
    )
    .await;
    let r = serde_json::to_value(route("R-X2", "D6", "EXC-1")).unwrap();
    call(&w, "POST", "/api/v1/routes", &k, Some(&r)).await;
    let st = web_support::recipient_status(w.web(), "EXC-1").await;
    assert_eq!(st["status"]["change"], "Safe place: the garage", "{st}");
    let mut d6 = w.t.driver("D6", "north").await;
    match d6
        .command(1, milepost_proto::CommandKind::MyRoute)
        .await
        .unwrap()
    {
        milepost_proto::ServerMsg::Route { route, .. } => {
            let text = &route.stops[0].instructions;
            assert!(text.contains("leaving it at: the garage"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    // Another depot's dispatcher sees none of it.
    let south = World::dispatcher_token("south");
    let page = web_support::get(w.web(), "/dispatch/exceptions", Some(&south)).await;
    assert_eq!(page.json()["items"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_counted_across_a_cancelled_route_and_a_restart() {
    let w = World::with_web(|_| {}).await;
    let k = key(&w);
    let absent = json!({"outcome": "failed", "reason": "recipient_absent"});
    // Attempt 1 on R-C1, which the back office then cancels (its feed goes with it).
    let r = serde_json::to_value(route("R-C1", "D5", "CNT-1")).unwrap();
    call(&w, "POST", "/api/v1/routes", &k, Some(&r)).await;
    call(
        &w,
        "POST",
        "/api/v1/parcels/CNT-1/outcome",
        &k,
        Some(&absent),
    )
    .await;
    call(
        &w,
        "POST",
        "/api/v1/routes/R-C1/cancel",
        &k,
        Some(&json!({})),
    )
    .await;
    // Attempt 2 on R-C2 is counted as the second.
    let r = serde_json::to_value(route("R-C2", "D6", "CNT-1")).unwrap();
    call(&w, "POST", "/api/v1/routes", &k, Some(&r)).await;
    call(
        &w,
        "POST",
        "/api/v1/parcels/CNT-1/outcome",
        &k,
        Some(&absent),
    )
    .await;
    // (The parcel's history spans its routes; its feed, since R-C1 was cancelled, this one.)
    assert_eq!(
        next_steps(&w, &k, "CNT-1").await,
        vec!["We will try again on a later delivery"]
    );
    call(
        &w,
        "POST",
        "/api/v1/routes/R-C2/cancel",
        &k,
        Some(&json!({})),
    )
    .await;
    // After a restart (snapshot), attempt 3 is the policy's last: back to the sender.
    let World { t, driver, .. } = w;
    driver.conn.close(0u32.into(), b"bye");
    let t = t
        .restart_with(|c| c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))))
        .await;
    let w = World::on(t).await;
    let r = serde_json::to_value(route("R-C3", "D7", "CNT-1")).unwrap();
    call(&w, "POST", "/api/v1/routes", &k, Some(&r)).await;
    call(
        &w,
        "POST",
        "/api/v1/parcels/CNT-1/outcome",
        &k,
        Some(&absent),
    )
    .await;
    let p = call(&w, "GET", "/api/v1/parcels/CNT-1", &k, None).await;
    let last = p["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["kind"] == "NextStep")
        .cloned()
        .unwrap();
    assert_eq!(
        last["text"], "Going back to the sender after 3 attempts",
        "{p}"
    );
}
