//! The back-office API (`/api/v1`) against a real gateway over HTTP on loopback: routes
//! created, replaced, listed, re-sequenced, changed and cancelled; parcel status live and from
//! the history, in bulk, and tracking links; outcomes and proof files; every error status with
//! its one JSON shape, and that a refused request changes nothing in the log; idempotent
//! retries; API keys refused within a second of their revocation; the OpenAPI document and its
//! reference page.

mod common;
mod web_support;

use std::time::Duration;

use milepost::apikeys::{KeyFile, FILE};
use milepost_proto::route::Route;
use serde_json::{json, Value};
use web_support::{hook_receiver, request, Hooked, Resp, World};

/// The world's route (`examples/route.json`).
const R1: &str = "R-2026-02-16-017";

async fn call(w: &World, method: &str, path: &str, key: &str, body: Option<&Value>) -> Resp {
    web_support::api(w, method, path, key, body).await
}

/// Log records applied so far (every accepted write is one).
fn records(w: &World) -> u64 {
    w.t.gw
        .shared()
        .applier_stats
        .records
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// A route of depot `depot` for driver `driver` with one parcel per stop.
fn route(id: &str, depot: &str, driver: &str, tracking: &[&str]) -> Route {
    let mut r = common::example_route();
    r.id = id.into();
    r.depot = depot.into();
    r.driver = driver.into();
    r.stops.truncate(tracking.len());
    for (s, t) in r.stops.iter_mut().zip(tracking) {
        s.parcels.truncate(1);
        s.parcels[0].tracking = (*t).into();
        s.parcels[0].otp = None;
        s.otp_required = false;
    }
    r
}

/// `POST /api/v1/parcels/{tracking}/outcome` with `body`.
async fn post_outcome(w: &World, key: &str, tracking: &str, body: &Value) -> Resp {
    let path = format!("/api/v1/parcels/{tracking}/outcome");
    call(w, "POST", &path, key, Some(body)).await
}

fn assert_error(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v.get("field").is_some(), "{v}");
    v
}

#[tokio::test]
async fn a_back_office_assigns_follows_changes_and_cancels_a_route() {
    let w = World::with_web(|_| {}).await;
    let k = w.key_with("orders", &["backoffice:north"]);
    let r = route("R-API-1", "north", "D7", &["API-T1", "API-T2", "API-T3"]);
    let body = serde_json::to_value(&r).unwrap();

    let created = call(&w, "PUT", "/api/v1/routes/R-API-1", &k, Some(&body)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let v = created.json();
    assert_eq!(
        (v["state"].as_str(), v["stops"].as_array().unwrap().len()),
        (Some("planned"), 3)
    );
    assert!(v["stops"][0]["location"]["lat"].is_number());
    // The same route again replaces it.
    let replaced = call(&w, "PUT", "/api/v1/routes/R-API-1", &k, Some(&body)).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    // POST of a live id is a conflict.
    let again = call(&w, "POST", "/api/v1/routes", &k, Some(&body)).await;
    assert_error(&again, 409, "conflict");

    // Listed with the world's own route, a page at a time.
    let page = call(&w, "GET", "/api/v1/routes?depot=north&limit=1", &k, None).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let p = page.json();
    assert_eq!(p["items"].as_array().unwrap().len(), 1);
    let cursor = p["next_cursor"].as_str().unwrap().to_owned();
    let next = call(
        &w,
        "GET",
        &format!("/api/v1/routes?depot=north&limit=1&cursor={cursor}"),
        &k,
        None,
    )
    .await;
    let n = next.json();
    assert_eq!(n["items"].as_array().unwrap().len(), 1);
    assert!(n["next_cursor"].is_null(), "{n}");
    let ids = [
        p["items"][0]["route_id"].clone(),
        n["items"][0]["route_id"].clone(),
    ];
    assert!(ids.contains(&json!("R-API-1")), "{ids:?}");
    let today = milepost::history::day_of(r.planned_start_ms);
    let by_day = call(
        &w,
        "GET",
        &format!("/api/v1/routes?depot=north&day={today}"),
        &k,
        None,
    )
    .await;
    assert_eq!(by_day.json()["items"].as_array().unwrap().len(), 2);

    // Re-sequenced, a stop added and one removed.
    let seq = json!({"order": ["S3", "S1", "S2"]});
    let s = call(
        &w,
        "POST",
        "/api/v1/routes/R-API-1/sequence",
        &k,
        Some(&seq),
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(s.json()["stops"][0]["id"], "S3");
    let mut extra = r.stops[0].clone();
    extra.id = "S9".into();
    extra.parcels[0].tracking = "API-T9".into();
    let added = call(
        &w,
        "POST",
        "/api/v1/routes/R-API-1/stops",
        &k,
        Some(&serde_json::to_value(&extra).unwrap()),
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.text());
    assert_eq!(added.json()["stops"].as_array().unwrap().len(), 4);
    let removed = call(&w, "DELETE", "/api/v1/routes/R-API-1/stops/S9", &k, None).await;
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(removed.json()["stops"].as_array().unwrap().len(), 3);

    // Cancelled: gone from the live state, answered from the history.
    let c = call(&w, "POST", "/api/v1/routes/R-API-1/cancel", &k, None).await;
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.json()["state"], "cancelled");
    let g = call(&w, "GET", "/api/v1/routes/R-API-1", &k, None).await;
    assert_eq!(g.json()["state"], "cancelled");
    let parcel = call(&w, "GET", "/api/v1/parcels/API-T1", &k, None).await;
    assert_eq!(parcel.status, 200, "{}", parcel.text());
    assert_eq!(parcel.json()["live"], false);
    assert_error(
        &call(&w, "POST", "/api/v1/routes/R-API-1/cancel", &k, None).await,
        404,
        "not_found",
    );
    // Its parcels may go out on a new route.
    let r2 = route("R-API-2", "north", "D7", &["API-T1"]);
    let again = call(
        &w,
        "POST",
        "/api/v1/routes",
        &k,
        Some(&serde_json::to_value(&r2).unwrap()),
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.text());
    let t1 = call(&w, "GET", "/api/v1/parcels/API-T1", &k, None)
        .await
        .json();
    assert_eq!(
        (t1["live"].clone(), t1["routes"].clone()),
        (json!(true), json!(["R-API-1", "R-API-2"]))
    );
}

#[tokio::test]
async fn every_refusal_has_one_shape_and_changes_nothing_in_the_log() {
    let w = World::with_web(|c| {
        c.web.api.max_body_bytes = 4096;
        c.proofs.max_bytes = 64;
    })
    .await;
    let k = w.key_with("orders", &["backoffice:north"]);
    let reader = w.key_with("viewer", &["dispatcher:north"]);
    let before = records(&w);
    let r = route("R-BAD", "north", "D8", &["BAD-1", "BAD-2"]);

    // 401: nothing, a bad key, a recipient's token is 403.
    assert_error(
        &request(w.web(), "GET", &format!("/api/v1/routes/{R1}"), &[], None).await,
        401,
        "unauthorized",
    );
    assert_error(
        &call(
            &w,
            "GET",
            &format!("/api/v1/routes/{R1}"),
            "mpk_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            None,
        )
        .await,
        401,
        "unauthorized",
    );
    assert_error(
        &call(&w, "GET", &format!("/api/v1/routes/{R1}"), "garbage", None).await,
        401,
        "unauthorized",
    );
    let rtok = World::recipient_token("MP100000004");
    assert_error(
        &call(&w, "GET", &format!("/api/v1/routes/{R1}"), &rtok, None).await,
        403,
        "forbidden",
    );
    // 403: another depot's route; a read-only key writing.
    let south = route("R-SOUTH", "south", "X1", &["S-1"]);
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/routes",
            &k,
            Some(&serde_json::to_value(&south).unwrap()),
        )
        .await,
        403,
        "forbidden",
    );
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/routes",
            &reader,
            Some(&serde_json::to_value(&r).unwrap()),
        )
        .await,
        403,
        "forbidden",
    );
    // 400 naming the field; 415 without JSON; 413 over the limit.
    let mut bad = serde_json::to_value(&r).unwrap();
    bad["stops"][1]["lat"] = json!("north-ish");
    let e = assert_error(
        &call(&w, "POST", "/api/v1/routes", &k, Some(&bad)).await,
        400,
        "bad_request",
    );
    assert_eq!(e["field"], "stops[1].lat");
    let auth = format!("Bearer {k}");
    let raw = request(
        w.web(),
        "POST",
        "/api/v1/routes",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some("{\"id\": "),
    )
    .await;
    assert_error(&raw, 400, "bad_request");
    let plain = request(
        w.web(),
        "POST",
        "/api/v1/routes",
        &[("Authorization", &auth)],
        Some("{}"),
    )
    .await;
    assert_error(&plain, 415, "unsupported_media_type");
    let mut big = r.clone();
    big.stops[0].instructions = "x".repeat(5000);
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/routes",
            &k,
            Some(&serde_json::to_value(&big).unwrap()),
        )
        .await,
        413,
        "too_large",
    );
    // 404: unknown route, parcel, stop.
    assert_error(
        &call(&w, "GET", "/api/v1/routes/NOPE", &k, None).await,
        404,
        "not_found",
    );
    assert_error(
        &call(&w, "GET", "/api/v1/parcels/NOPE", &k, None).await,
        404,
        "not_found",
    );
    assert_error(
        &call(&w, "GET", "/api/v1/nothing/here", &k, None).await,
        404,
        "not_found",
    );
    // 422: a route that cannot be valid; a failed outcome without a reason; a proof whose bytes
    // do not hash to its name.
    let mut empty = r.clone();
    empty.stops.clear();
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/routes",
            &k,
            Some(&serde_json::to_value(&empty).unwrap()),
        )
        .await,
        422,
        "unprocessable",
    );
    let e = assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/parcels/MP100000001/outcome",
            &k,
            Some(&json!({"outcome": "failed"})),
        )
        .await,
        422,
        "unprocessable",
    );
    assert_eq!(e["field"], "reason");
    let wrong = request(
        w.web(),
        "PUT",
        &format!("/api/v1/proofs/{}", "ab".repeat(32)),
        &[("Authorization", &auth)],
        Some("not the photo"),
    )
    .await;
    assert_error(&wrong, 422, "unprocessable");
    let huge = "p".repeat(100);
    let name = milepost::proofs::sha256_hex(huge.as_bytes());
    let too_big = request(
        w.web(),
        "PUT",
        &format!("/api/v1/proofs/{name}"),
        &[("Authorization", &auth)],
        Some(&huge),
    )
    .await;
    assert_error(&too_big, 413, "too_large");
    // 409: a re-sequence that is not the route's stops; a driver busy on another route.
    let e = assert_error(
        &call(
            &w,
            "POST",
            &format!("/api/v1/routes/{R1}/sequence"),
            &k,
            Some(&json!({"order": ["S1"]})),
        )
        .await,
        409,
        "conflict",
    );
    assert!(e["message"].as_str().unwrap().len() > 3);
    let busy = route("R-BUSY", "north", "D1", &["BUSY-1"]);
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/routes",
            &k,
            Some(&serde_json::to_value(&busy).unwrap()),
        )
        .await,
        409,
        "conflict",
    );
    // The two 409s are command records the core refused (kept in the log as attempts, like a
    // QUIC command's); nothing else was logged, and nothing changed.
    assert_eq!(records(&w), before + 2);
    assert_error(
        &call(&w, "GET", "/api/v1/routes/R-BAD", &k, None).await,
        404,
        "not_found",
    );
    assert_eq!(
        call(&w, "GET", &format!("/api/v1/routes/{R1}"), &k, None)
            .await
            .json()["stops"][0]["id"],
        "S1"
    );
    assert!(!w.t.dir.path().join("proofs").exists());
}

#[tokio::test]
async fn requests_over_the_key_rate_get_429_with_retry_after() {
    let w = World::with_web(|c| {
        c.web.api.rate_per_s = 1;
        c.web.api.burst = 3;
    })
    .await;
    let k = w.key_with("orders", &["backoffice:north"]);
    for _ in 0..3 {
        assert_eq!(
            call(&w, "GET", &format!("/api/v1/routes/{R1}"), &k, None)
                .await
                .status,
            200
        );
    }
    let r = call(&w, "GET", &format!("/api/v1/routes/{R1}"), &k, None).await;
    assert_error(&r, 429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Another key has its own budget.
    let other = w.key_with("other", &["dispatcher:north"]);
    assert_eq!(
        call(&w, "GET", &format!("/api/v1/routes/{R1}"), &other, None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_retried_write_with_the_same_idempotency_key_changes_nothing_twice() {
    let w = World::with_web(|_| {}).await;
    let k = w.key_with("orders", &["backoffice:north"]);
    let body = serde_json::to_value(route("R-IDEM", "north", "D5", &["IDEM-1"]))
        .unwrap()
        .to_string();
    let auth = format!("Bearer {k}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "order-4711"),
    ];
    let before = records(&w);
    let first = request(w.web(), "POST", "/api/v1/routes", &headers, Some(&body)).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let second = request(w.web(), "POST", "/api/v1/routes", &headers, Some(&body)).await;
    assert_eq!(second.status, 201, "{}", second.text());
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.json(), second.json());
    assert_eq!(records(&w), before + 1);
    // The same key with another body is refused; without the key, the POST is a conflict.
    let other = body.replace("IDEM-1", "IDEM-2");
    assert_error(
        &request(w.web(), "POST", "/api/v1/routes", &headers, Some(&other)).await,
        422,
        "unprocessable",
    );
    let no_key = &headers[..2];
    assert_error(
        &request(w.web(), "POST", "/api/v1/routes", no_key, Some(&body)).await,
        409,
        "conflict",
    );
}

#[tokio::test]
async fn outcomes_and_proof_files_from_the_back_office() {
    let w = World::with_web(|c| c.proofs.max_bytes = 1 << 20).await;
    let k = w.key_with("orders", &["backoffice:north"]);
    let auth = format!("Bearer {k}");
    let photo = "a photo of a parcel on a doorstep";
    let sha = milepost::proofs::sha256_hex(photo.as_bytes());
    let path = format!("/api/v1/proofs/{sha}");
    let up = request(
        w.web(),
        "PUT",
        &path,
        &[("Authorization", &auth)],
        Some(photo),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.text());
    let again = request(
        w.web(),
        "PUT",
        &path,
        &[("Authorization", &auth)],
        Some(photo),
    )
    .await;
    assert_eq!(
        (again.status, again.json()["created"].clone()),
        (200, json!(false))
    );

    // Delivered with the photo's digest and the receiver's name, by the back office; a name
    // that is no name is refused with its field.
    let nameless = json!({"outcome": "delivered", "photo_sha256": sha, "received_by": " \t "});
    let e = assert_error(
        &post_outcome(&w, &k, "MP100000001", &nameless).await,
        422,
        "unprocessable",
    );
    assert_eq!(e["field"], "received_by");
    let d = json!({"outcome": "delivered", "photo_sha256": sha, "received_by": "J. Smith"});
    let r = post_outcome(&w, &k, "MP100000001", &d).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["state"], "Delivered");
    assert_eq!(v["proof"]["photo_sha256"], json!(sha));
    assert_eq!(v["received_by"], "J. Smith");
    assert!(
        v["status_line"].as_str().unwrap().ends_with(" to J. Smith"),
        "{v}"
    );
    assert!(v["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["kind"] == "Delivered"));
    // Twice is refused by the core.
    assert_error(
        &post_outcome(&w, &k, "MP100000001", &d).await,
        409,
        "conflict",
    );
    // Failed, with a documented reason code.
    let f =
        json!({"outcome": "failed", "reason": "recipient_absent", "note": "no answer at the door"});
    let r = post_outcome(&w, &k, "MP100000003", &f).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["state"].clone(), v["failure"]["reason"].clone()),
        (json!("Failed"), json!("recipient_absent"))
    );
    // A failed parcel may go back to the sender, once.
    let ret = json!({"outcome": "returned", "note": "refused twice"});
    let r = post_outcome(&w, &k, "MP100000003", &ret).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["state"].clone(), v["status_line"].clone()),
        (json!("Returned"), json!("Returning to sender"))
    );
    assert!(
        v["milestones"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "Returned"),
        "{v}"
    );
    assert_error(
        &post_outcome(&w, &k, "MP100000003", &ret).await,
        409,
        "conflict",
    );
    let bad = json!({"outcome": "failed", "reason": "aliens"});
    let e = assert_error(
        &post_outcome(&w, &k, "MP100000004", &bad).await,
        400,
        "bad_request",
    );
    assert_eq!(e["field"], "reason");

    // A dispatcher reads the parcel and the photo, but records nothing.
    let disp = World::dispatcher_token("north");
    assert_eq!(
        call(&w, "GET", "/api/v1/parcels/MP100000001", &disp, None)
            .await
            .status,
        200
    );
    let file = call(
        &w,
        "GET",
        &format!("{path}?tracking=MP100000001"),
        &disp,
        None,
    )
    .await;
    assert_eq!((file.status, file.text()), (200, photo.to_owned()));
    // Not as another parcel's proof, nor for another depot, nor without saying whose.
    assert_error(
        &call(
            &w,
            "GET",
            &format!("{path}?tracking=MP100000004"),
            &disp,
            None,
        )
        .await,
        404,
        "not_found",
    );
    let south_disp = World::dispatcher_token("south");
    assert_error(
        &call(
            &w,
            "GET",
            &format!("{path}?tracking=MP100000001"),
            &south_disp,
            None,
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &call(&w, "GET", &path, &disp, None).await,
        400,
        "bad_request",
    );
    assert_error(
        &post_outcome(&w, &disp, "MP100000004", &f).await,
        403,
        "forbidden",
    );
    // Another depot's dispatcher does not learn the parcel exists.
    let south = World::dispatcher_token("south");
    assert_error(
        &call(&w, "GET", "/api/v1/parcels/MP100000001", &south, None).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn bulk_status_tracking_links_and_drivers() {
    let mut w = World::with_web(|_| {}).await;
    w.drive(0, 1, 0).await;
    let k = w.key_with("orders", &["backoffice:north"]);
    let south_key = w.key_with("south", &["backoffice:south"]);
    let south = route("R-S", "south", "X2", &["SOUTH-1"]);
    assert_eq!(
        call(
            &w,
            "POST",
            "/api/v1/routes",
            &south_key,
            Some(&serde_json::to_value(&south).unwrap())
        )
        .await
        .status,
        201
    );

    let asked = json!({"tracking": ["MP100000001", "NOPE", "SOUTH-1", "MP100000004"]});
    let b = call(&w, "POST", "/api/v1/parcels/status", &k, Some(&asked)).await;
    assert_eq!(b.status, 200, "{}", b.text());
    let v = b.json();
    let found: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["tracking"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["MP100000001", "MP100000004"]);
    assert_eq!(v["not_found"], json!(["NOPE", "SOUTH-1"]));
    let many: Vec<String> = (0..1001).map(|i| format!("T{i}")).collect();
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/parcels/status",
            &k,
            Some(&json!({"tracking": many})),
        )
        .await,
        413,
        "too_large",
    );

    let l = call(
        &w,
        "POST",
        "/api/v1/parcels/MP100000004/link",
        &k,
        Some(&json!({"ttl_s": 3600})),
    )
    .await;
    assert_eq!(l.status, 200, "{}", l.text());
    let link = l.json();
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with("/t/MP100000004?token=mp1."), "{url}");
    let page = request(w.web(), "GET", url, &[], None).await;
    assert_eq!(page.status, 200);
    let status = web_support::get(w.web(), "/t/MP100000004/status", link["token"].as_str()).await;
    assert_eq!(status.status, 200);

    let d = call(&w, "GET", "/api/v1/drivers/D1", &k, None).await;
    assert_eq!(d.status, 200, "{}", d.text());
    let v = d.json();
    assert_eq!(
        (v["depot"].clone(), v["route_id"].clone()),
        (json!("north"), json!(R1))
    );
    assert!(v["position"]["lat"].is_number());
    let list = call(&w, "GET", "/api/v1/depots/north/drivers", &k, None)
        .await
        .json();
    assert_eq!(list["items"][0]["driver"], "D1");
    assert_error(
        &call(&w, "GET", "/api/v1/depots/south/drivers", &k, None).await,
        403,
        "forbidden",
    );
    assert_error(
        &call(&w, "GET", "/api/v1/drivers/X2", &k, None).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_within_a_second() {
    let w = World::with_web(|_| {}).await;
    let k = w.key_with("orders", &["backoffice:north"]);
    assert_eq!(
        call(&w, "GET", &format!("/api/v1/routes/{R1}"), &k, None)
            .await
            .status,
        200
    );
    // What `milepost key revoke` does: mark it in the key file, add it to the deny list.
    let path = w.t.dir.path().join(FILE);
    let mut f = KeyFile::read(&path).unwrap();
    let id = milepost::apikeys::id_of(&k).unwrap().to_owned();
    let entry = f.revoke(&id, common::now_ms()).unwrap().deny_entry();
    f.write(&path).unwrap();
    std::fs::write(w.t.dir.path().join("revoked.txt"), format!("{entry}\n")).unwrap();
    let revoked_at = std::time::Instant::now();
    loop {
        let r = call(&w, "GET", &format!("/api/v1/routes/{R1}"), &k, None).await;
        if r.status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "still {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_parcel_archived_after_moving_to_a_reattempt_route_keeps_its_feed_and_history() {
    let w = World::with_web(|c| c.log.archive_routes_after_s = 0).await;
    let k = w.key_with("orders", &["backoffice:north"]);
    let first = route("R-A", "north", "D3", &["RE-1", "RE-2"]);
    assert_eq!(
        call(
            &w,
            "POST",
            "/api/v1/routes",
            &k,
            Some(&serde_json::to_value(&first).unwrap())
        )
        .await
        .status,
        201
    );
    let failed = json!({"outcome": "failed", "reason": "recipient_absent"});
    assert_eq!(
        call(
            &w,
            "POST",
            "/api/v1/parcels/RE-1/outcome",
            &k,
            Some(&failed)
        )
        .await
        .status,
        200
    );
    let delivered = json!({"outcome": "delivered", "signature_sha256": "ef".repeat(32)});
    assert_eq!(
        call(
            &w,
            "POST",
            "/api/v1/parcels/RE-2/outcome",
            &k,
            Some(&delivered)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(&w, "GET", "/api/v1/routes/R-A", &k, None).await.json()["state"],
        "finished"
    );
    // RE-1 goes out again on a new route, then the first route is archived.
    let second = route("R-B", "north", "D4", &["RE-1"]);
    assert_eq!(
        call(
            &w,
            "POST",
            "/api/v1/routes",
            &k,
            Some(&serde_json::to_value(&second).unwrap())
        )
        .await
        .status,
        201
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let n = milepost::server::archive::archive_once(w.t.gw.shared())
        .await
        .unwrap();
    assert!(n >= 1);
    assert_eq!(
        call(&w, "GET", "/api/v1/routes/R-A", &k, None).await.json()["state"],
        "archived"
    );
    // The recipient's page still answers, from the new route, with the failed attempt in its
    // timeline; the API has one history across both routes.
    let status = web_support::recipient_status(w.web(), "RE-1").await;
    assert!(
        status["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "Failed"),
        "{status}"
    );
    let v = call(&w, "GET", "/api/v1/parcels/RE-1", &k, None)
        .await
        .json();
    assert_eq!(
        (v["live"].clone(), v["routes"].clone()),
        (json!(true), json!(["R-A", "R-B"]))
    );
    // The delivered parcel of the archived route answers from the history, with its proof.
    let v = call(&w, "GET", "/api/v1/parcels/RE-2", &k, None)
        .await
        .json();
    assert_eq!(
        (v["live"].clone(), v["state"].clone()),
        (json!(false), json!("Delivered"))
    );
    assert_eq!(v["proof"]["signature_sha256"], json!("ef".repeat(32)));
    // And after a restart too (the history is on disk; the live state comes back from the log).
    let t =
        w.t.restart_with(|c| c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))))
            .await;
    let web = t.gw.web_addr.unwrap();
    let auth = format!("Bearer {k}");
    let r = request(
        web,
        "GET",
        "/api/v1/parcels/RE-2",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.json()["state"], "Delivered", "{}", r.text());
}

#[tokio::test]
async fn the_openapi_document_and_its_reference_page_are_served() {
    let w = World::with_web(|_| {}).await;
    let doc = request(w.web(), "GET", "/api/v1/openapi.json", &[], None).await;
    assert_eq!(doc.status, 200);
    let v = doc.json();
    assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(v["paths"]["/api/v1/routes/{route_id}"]["put"].is_object());
    let page = request(w.web(), "GET", "/api/v1/docs", &[], None).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/api/v1/parcels/{tracking}/outcome"));
}

/// Runs the `milepost` binary with `args`; its exit status and output.
fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_milepost"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn the_cli_records_outcomes_and_cancels_routes_through_the_api() {
    let w = World::with_web(|_| {}).await;
    let k = w.key_with("cli", &["backoffice:north"]);
    let api = format!("http://{}", w.web());
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("door.jpg");
    std::fs::write(&photo, b"\xff\xd8\xff a small jpeg").unwrap();
    let photo = photo.to_str().unwrap().to_owned();
    // The CLI blocks: it runs beside the gateway's runtime, not on it.
    let run = |args: Vec<&str>| {
        let mut all: Vec<String> = args.into_iter().map(str::to_owned).collect();
        all.extend(["--api".into(), api.clone(), "--key".into(), k.clone()]);
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            cli(&refs)
        })
    };
    let (ok, out) = run(vec![
        "outcome",
        "delivered",
        "MP100000001",
        "--photo",
        &photo,
    ])
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("MP100000001: Delivered"), "{out}");
    let sha = milepost::proofs::sha256_hex(b"\xff\xd8\xff a small jpeg");
    assert!(w
        .t
        .dir
        .path()
        .join("proofs")
        .join(&sha[..2])
        .join(&sha)
        .is_file());
    // A refusal is a non-zero exit with the API's message.
    let (ok, out) = run(vec!["outcome", "failed", "MP100000003"]).await.unwrap();
    assert!(!ok && out.contains("--reason"), "{out}");
    let (ok, out) = run(vec![
        "outcome",
        "failed",
        "NOPE-1",
        "--reason",
        "recipient-absent",
    ])
    .await
    .unwrap();
    assert!(!ok && out.contains("HTTP 404"), "{out}");
    let (ok, out) = run(vec!["route", "cancel", R1]).await.unwrap();
    assert!(ok && out.contains("cancelled"), "{out}");
    let (ok, out) = run(vec!["route", "cancel", R1]).await.unwrap();
    assert!(!ok && out.contains("HTTP 404"), "{out}");
}

#[tokio::test]
async fn alerts_are_listed_acknowledged_and_resolved_and_stay_so_after_a_restart() {
    let w = World::with_web(|_| {}).await;
    let k = w.key_with("orders", &["backoffice:north"]);
    let disp = World::dispatcher_token("north");
    let failed = json!({"outcome": "failed", "reason": "access_problem", "note": "gate locked"});
    let r = post_outcome(&w, &k, "MP100000003", &failed).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let list = call(&w, "GET", "/api/v1/depots/north/alerts", &disp, None).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let items = list.json()["items"].as_array().unwrap().clone();
    let alert = items
        .iter()
        .find(|a| a["kind"] == "AttemptFailed")
        .unwrap_or_else(|| panic!("{items:?}"))
        .clone();
    assert_eq!(
        (alert["state"].clone(), alert["active"].clone()),
        (json!("open"), json!(true))
    );
    let id = alert["id"].as_u64().unwrap();

    let ack = format!("/api/v1/depots/north/alerts/{id}/acknowledge");
    let a = call(
        &w,
        "POST",
        &ack,
        &disp,
        Some(&json!({"note": "calling the customer"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["state"], "acknowledged");
    assert_eq!(a.json()["note"], "calling the customer");
    assert_error(
        &call(&w, "POST", &ack, &disp, Some(&json!({}))).await,
        409,
        "conflict",
    );
    let res = format!("/api/v1/depots/north/alerts/{id}/resolve");
    let r = call(
        &w,
        "POST",
        &res,
        &k,
        Some(&json!({"note": "re-attempt tomorrow"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["state"].clone(), r.json()["handled_by"].clone()),
        (json!("resolved"), json!("orders"))
    );
    assert_error(
        &call(&w, "POST", &res, &k, Some(&json!({}))).await,
        409,
        "conflict",
    );

    // Refusals: another depot, an unknown alert, not a number.
    let south = World::dispatcher_token("south");
    assert_error(
        &call(
            &w,
            "POST",
            &res.replace("north", "south"),
            &south,
            Some(&json!({})),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &call(&w, "POST", &res, &south, Some(&json!({}))).await,
        403,
        "forbidden",
    );
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/depots/north/alerts/999999/resolve",
            &k,
            Some(&json!({})),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/depots/north/alerts/x/resolve",
            &k,
            Some(&json!({})),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &call(&w, "GET", "/api/v1/depots/south/alerts", &k, None).await,
        403,
        "forbidden",
    );

    let open = call(&w, "GET", "/api/v1/depots/north/alerts", &k, None)
        .await
        .json();
    assert!(
        !open["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id),
        "{open}"
    );
    let resolved = call(
        &w,
        "GET",
        "/api/v1/depots/north/alerts?state=resolved",
        &k,
        None,
    )
    .await
    .json();
    assert_eq!(resolved["items"][0]["id"], id);
    // The handling is folded from the log into the history: a restart keeps it.
    let t =
        w.t.restart_with(|c| c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))))
            .await;
    let auth = format!("Bearer {k}");
    let r = request(
        t.gw.web_addr.unwrap(),
        "GET",
        "/api/v1/depots/north/alerts?state=all",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    let v = r.json();
    let a = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(
        (a["state"].clone(), a["note"].clone()),
        (json!("resolved"), json!("re-attempt tomorrow"))
    );
}

#[tokio::test]
async fn webhook_endpoints_are_added_listed_and_removed_at_run_time() {
    let w =
        World::with_web(|c| c.feed.webhooks = vec!["http://127.0.0.1:9/configured".into()]).await;
    let k = w.key_with("ops", &["backoffice:*"]);
    let narrow = w.key_with("orders", &["backoffice:north"]);
    let got: Hooked = Default::default();
    let url = hook_receiver(got.clone()).await;

    assert_error(
        &call(&w, "GET", "/api/v1/webhooks", &narrow, None).await,
        403,
        "forbidden",
    );
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/webhooks",
            &k,
            Some(&json!({"url": "ftp://x"})),
        )
        .await,
        422,
        "unprocessable",
    );
    let added = call(
        &w,
        "POST",
        "/api/v1/webhooks",
        &k,
        Some(&json!({"url": url})),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text());
    let v = added.json();
    let (id, secret) = (
        v["webhook"]["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    );
    got.lock().unwrap().0 = secret;
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/webhooks",
            &k,
            Some(&json!({"url": url})),
        )
        .await,
        409,
        "conflict",
    );

    // A milestone reaches it, signed with its own secret.
    let failed = json!({"outcome": "failed", "reason": "refused"});
    assert_eq!(
        post_outcome(&w, &k, "MP100000003", &failed).await.status,
        200
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let failed_body = loop {
        let found = got
            .lock()
            .unwrap()
            .1
            .iter()
            .find(|(_, b)| b.contains("MP100000003") && b.contains("Failed"))
            .cloned();
        if let Some(f) = found {
            break f;
        }
        assert!(std::time::Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failed_body.0, "signature");
    assert!(got.lock().unwrap().1.iter().all(|(ok, _)| *ok));
    let list = call(&w, "GET", "/api/v1/webhooks", &k, None).await.json();
    let mine = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == json!(id))
        .unwrap()
        .clone();
    assert!(mine["delivered"].as_u64().unwrap() >= 1, "{mine}");
    assert_eq!(mine["recent"][0]["ok"], true);
    let configured = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == "config")
        .unwrap()
        .clone();
    assert!(configured.get("secret").is_none());
    let cfg_id = configured["id"].as_str().unwrap().to_owned();
    assert_error(
        &call(
            &w,
            "DELETE",
            &format!("/api/v1/webhooks/{cfg_id}"),
            &k,
            None,
        )
        .await,
        409,
        "conflict",
    );

    // It survives a restart; removed, it is gone for good.
    let t =
        w.t.restart_with(|c| {
            c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        })
        .await;
    let web = t.gw.web_addr.unwrap();
    let auth = format!("Bearer {k}");
    let h = [("Authorization", auth.as_str())];
    let list = request(web, "GET", "/api/v1/webhooks", &h, None)
        .await
        .json();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == json!(id)),
        "{list}"
    );
    let gone = request(web, "DELETE", &format!("/api/v1/webhooks/{id}"), &h, None).await;
    assert_eq!(gone.status, 200, "{}", gone.text());
    assert_error(
        &request(web, "DELETE", &format!("/api/v1/webhooks/{id}"), &h, None).await,
        404,
        "not_found",
    );
    let t = t.restart().await;
    assert!(t
        .gw
        .shared()
        .webhooks
        .get()
        .unwrap()
        .list()
        .iter()
        .all(|i| i.id != id));
}

#[tokio::test]
async fn one_depot_cannot_take_over_or_see_another_depots_routes_and_parcels() {
    let w = World::with_web(|_| {}).await;
    let north = w.key_with("north-orders", &["backoffice:north"]);
    let south = w.key_with("south-orders", &["backoffice:south"]);
    let theirs = route("R-SHARED", "south", "S1", &["SOUTH-P1"]);
    let r = call(
        &w,
        "PUT",
        "/api/v1/routes/R-SHARED",
        &south,
        Some(&serde_json::to_value(&theirs).unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // The same route id, claimed for north: refused, south's route untouched.
    let mine = route("R-SHARED", "north", "N1", &["NORTH-P1"]);
    let e = assert_error(
        &call(
            &w,
            "PUT",
            "/api/v1/routes/R-SHARED",
            &north,
            Some(&serde_json::to_value(&mine).unwrap()),
        )
        .await,
        403,
        "forbidden",
    );
    assert!(!e["message"].as_str().unwrap().contains("S1"), "{e}");
    assert_eq!(
        call(&w, "GET", "/api/v1/routes/R-SHARED", &south, None)
            .await
            .json()["depot"],
        "south"
    );
    // South's parcel on a north route: refused while live, and once in south's history.
    let grab = route("R-GRAB", "north", "N2", &["SOUTH-P1"]);
    let body = serde_json::to_value(&grab).unwrap();
    assert_error(
        &call(&w, "POST", "/api/v1/routes", &north, Some(&body)).await,
        403,
        "forbidden",
    );
    assert_eq!(
        call(&w, "POST", "/api/v1/routes/R-SHARED/cancel", &south, None)
            .await
            .status,
        200
    );
    assert_error(
        &call(&w, "POST", "/api/v1/routes", &north, Some(&body)).await,
        403,
        "forbidden",
    );
    assert_eq!(
        call(&w, "GET", "/api/v1/parcels/SOUTH-P1", &south, None)
            .await
            .json()["depot"],
        "south"
    );
    assert_error(
        &call(&w, "GET", "/api/v1/parcels/SOUTH-P1", &north, None).await,
        404,
        "not_found",
    );
    // A route id of south's history reused live by north: north's list shows north's only.
    let reuse = route("R-SHARED", "north", "N3", &["NORTH-P3"]);
    let r = call(
        &w,
        "PUT",
        "/api/v1/routes/R-SHARED",
        &north,
        Some(&serde_json::to_value(&reuse).unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let list = call(&w, "GET", "/api/v1/routes?depot=south", &south, None)
        .await
        .json();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["depot"] == "south"),
        "{list}"
    );
    // Ids with control characters are refused before they reach an index.
    let sneaky = route("x\u{1}R-SHARED", "north", "N4", &["NORTH-P4"]);
    assert_error(
        &call(
            &w,
            "POST",
            "/api/v1/routes",
            &north,
            Some(&serde_json::to_value(&sneaky).unwrap()),
        )
        .await,
        422,
        "unprocessable",
    );
    // Wrong methods and undecodable paths answer in the API's shape too.
    assert_error(
        &call(&w, "PATCH", &format!("/api/v1/routes/{R1}"), &north, None).await,
        405,
        "method_not_allowed",
    );
    assert_error(
        &call(&w, "GET", "/api/v1/routes/%FF", &north, None).await,
        400,
        "bad_request",
    );
}

#[tokio::test]
async fn concurrent_edits_of_a_route_all_land() {
    let w = World::with_web(|_| {}).await;
    let k = w.key_with("orders", &["backoffice:north"]);
    let r = route("R-EDIT", "north", "E1", &["EDIT-0"]);
    assert_eq!(
        call(
            &w,
            "POST",
            "/api/v1/routes",
            &k,
            Some(&serde_json::to_value(&r).unwrap())
        )
        .await
        .status,
        201
    );
    let adds = (1..=8).map(|i| {
        let mut stop = r.stops[0].clone();
        stop.id = format!("S-{i}").as_str().into();
        stop.parcels[0].tracking = format!("EDIT-{i}").as_str().into();
        let body = serde_json::to_value(&stop).unwrap();
        let (w, k) = (&w, &k);
        async move {
            call(w, "POST", "/api/v1/routes/R-EDIT/stops", k, Some(&body))
                .await
                .status
        }
    });
    let statuses = futures_util::future::join_all(adds).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let v = call(&w, "GET", "/api/v1/routes/R-EDIT", &k, None)
        .await
        .json();
    assert_eq!(v["stops"].as_array().unwrap().len(), 9, "{v}");
}
