//! Carriers as tenants, end to end on loopback: two carriers on one gateway (Acme owns depot
//! "north", Zeta owns "south"), each trying to reach the other's drivers, routes and parcels
//! through every interface (the HTTP API's reads, lists, writes and exports, webhooks, the
//! recipients' pages and their style sheets, QUIC Hello), expecting 403 or 404 and nothing
//! leaked in lists or counts; a shipper's key across carriers; and bad input (an unknown
//! carrier in a route or a key).

mod common;
mod web_support;

use std::time::Duration;

use milepost::auth::{Claims, Role};
use milepost::tenancy::{BrandConfig, CarrierConfig};
use milepost_proto::ErrorCode;
use serde_json::{json, Value};
use web_support::{api, hook_receiver, request, Hooked, Resp, World};

/// Acme (north, with a brand of its own) and Zeta (south, its name only).
fn two_carriers(c: &mut milepost::config::Config) {
    c.carriers.0.insert(
        "acme".into(),
        CarrierConfig {
            name: "Acme".into(),
            depots: vec!["north".into()],
            brand: Some(BrandConfig {
                name: "Acme Parcels".into(),
                primary: "#aa0011".into(),
                logo_svg: Some("<svg xmlns=\"http://www.w3.org/2000/svg\"/>".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    c.carriers.0.insert(
        "zeta".into(),
        CarrierConfig {
            name: "Zeta Express".into(),
            depots: vec!["south".into()],
            ..Default::default()
        },
    );
}

/// The world (Acme's example route in north, driver D1) with Zeta's route Z1 in south
/// (driver Z9, parcel ZT-1) sent by a platform key; the platform key.
async fn world() -> (World, String) {
    world_with(|_| {}).await
}

/// [`world`], its configuration also edited by `edit`.
async fn world_with(edit: impl FnOnce(&mut milepost::config::Config)) -> (World, String) {
    let w = World::with_web(|c| {
        two_carriers(c);
        edit(c);
    })
    .await;
    let platform = w.key_with("ops", &["backoffice:*"]);
    let mut r = common::example_route();
    r.id = "Z1".into();
    r.depot = "south".into();
    r.driver = "Z9".into();
    r.stops.truncate(1);
    r.stops[0].parcels.truncate(1);
    r.stops[0].parcels[0].tracking = "ZT-1".into();
    let r = api(
        &w,
        "POST",
        "/api/v1/routes",
        &platform,
        Some(&serde_json::to_value(&r).unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    (w, platform)
}

fn refused(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

async fn get(w: &World, key: &str, path: &str) -> Resp {
    api(w, "GET", path, key, None).await
}

/// `key` reports a failed attempt at parcel `tracking`.
async fn fail(w: &World, key: &str, tracking: &str) -> Resp {
    let outcome = json!({"outcome": "failed", "reason": "recipient_absent"});
    let path = format!("/api/v1/parcels/{tracking}/outcome");
    api(w, "POST", &path, key, Some(&outcome)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carriers_key_never_reaches_another_carriers_data_through_the_api() {
    let (w, platform) = world().await;
    let acme = w.key_of("acme", "acme-orders", &["backoffice:*"]);
    let zeta = w.key_of("zeta", "zeta-orders", &["backoffice:*"]);

    // Its own carrier's data, yes.
    assert_eq!(
        get(&w, &acme, "/api/v1/parcels/MP100000001").await.status,
        200
    );
    assert_eq!(get(&w, &zeta, "/api/v1/parcels/ZT-1").await.status, 200);
    assert_eq!(
        get(&w, &acme, "/api/v1/routes?depot=north").await.status,
        200
    );

    // The other carrier's: unknown (404) for things named by id, forbidden (403) for a depot.
    refused(&get(&w, &acme, "/api/v1/parcels/ZT-1").await, 404);
    refused(&get(&w, &zeta, "/api/v1/parcels/MP100000001").await, 404);
    refused(&get(&w, &acme, "/api/v1/drivers/Z9").await, 404);
    for path in [
        "/api/v1/routes?depot=south",
        "/api/v1/depots/south/drivers",
        "/api/v1/depots/south/alerts",
        "/api/v1/depots/south/exceptions",
        "/api/v1/depots/south/notifications/dead",
        "/api/v1/analytics?carrier=zeta",
        "/api/v1/analytics?depot=south",
    ] {
        refused(&get(&w, &acme, path).await, 403);
    }
    let day = chrono::Utc::now().format("%Y-%m-%d");
    refused(
        &get(
            &w,
            &acme,
            &format!("/api/v1/exports/zeta/{day}/routes.parquet"),
        )
        .await,
        403,
    );

    // A bulk status answers the other carrier's parcel as not found: not even its existence.
    let bulk = api(
        &w,
        "POST",
        "/api/v1/parcels/status",
        &acme,
        Some(&json!({"tracking": ["MP100000001", "ZT-1"]})),
    )
    .await;
    assert_eq!(bulk.status, 200, "{}", bulk.text());
    let b = bulk.json();
    assert_eq!(b["not_found"], json!(["ZT-1"]), "{b}");
    assert!(!bulk.text().contains("south"), "{b}");

    // Analytics without a filter count its own carrier's routes only.
    let a = get(&w, &acme, "/api/v1/analytics?by=carrier,depot").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let text = a.text();
    assert!(text.contains("north") && !text.contains("south") && !text.contains("zeta"));
    let p = get(&w, &platform, "/api/v1/analytics?by=carrier,depot")
        .await
        .text();
    assert!(p.contains("north") && p.contains("south"), "{p}");

    // Writes: not into the other carrier's depot, not its parcels' outcomes.
    let mut r = common::example_route();
    r.id = "A2".into();
    r.depot = "south".into();
    let body = serde_json::to_value(&r).unwrap();
    refused(
        &api(&w, "POST", "/api/v1/routes", &acme, Some(&body)).await,
        403,
    );
    refused(&fail(&w, &acme, "ZT-1").await, 404);
    refused(
        &api(
            &w,
            "POST",
            "/api/v1/routes/Z1/cancel",
            &acme,
            Some(&json!({})),
        )
        .await,
        404,
    );
    // Nor a route for the other carrier's driver (busy on Z1 in south): refused without a
    // word about it.
    let mut r = common::example_route();
    r.id = "A3".into();
    r.driver = "Z9".into();
    r.stops.truncate(1);
    r.stops[0].parcels.truncate(1);
    r.stops[0].parcels[0].tracking = "AC-3".into();
    let body = serde_json::to_value(&r).unwrap();
    let resp = api(&w, "POST", "/api/v1/routes", &acme, Some(&body)).await;
    refused(&resp, 403);
    assert!(
        !resp.text().contains("Z1") && !resp.text().contains("south"),
        "{}",
        resp.text()
    );

    // A driver's profile set by one carrier is unknown to the other's key.
    let profile = json!({"first_name": "Ana"});
    let put = api(
        &w,
        "PUT",
        "/api/v1/drivers/NEW1/profile",
        &zeta,
        Some(&profile),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    refused(&get(&w, &acme, "/api/v1/drivers/NEW1/profile").await, 404);
    let put = api(
        &w,
        "PUT",
        "/api/v1/drivers/NEW1/profile",
        &acme,
        Some(&profile),
    )
    .await;
    refused(&put, 404);
    assert_eq!(
        get(&w, &platform, "/api/v1/drivers/NEW1/profile")
            .await
            .status,
        200
    );
    // A profile the platform set is no carrier's to take; another carrier's driver on a route
    // is unknown too.
    let put = api(
        &w,
        "PUT",
        "/api/v1/drivers/OLD1/profile",
        &platform,
        Some(&profile),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    refused(&get(&w, &acme, "/api/v1/drivers/OLD1/profile").await, 404);
    refused(&get(&w, &acme, "/api/v1/drivers/Z9/profile").await, 404);

    // A dispatcher's token speaks for its depot's carrier.
    let north = World::dispatcher_token("north");
    refused(&get(&w, &north, "/api/v1/parcels/ZT-1").await, 404);
    assert_eq!(
        get(&w, &north, "/api/v1/parcels/MP100000001").await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_keys_naming_a_carrier_are_checked() {
    let (w, platform) = world().await;
    let acme = w.key_of("acme", "acme-orders", &["backoffice:*"]);
    let mut r = common::example_route();
    r.id = "C1".into();
    r.driver = "D5".into();
    r.stops.truncate(1);
    r.stops[0].parcels.truncate(1);
    r.stops[0].parcels[0].tracking = "AC-1".into();
    let with = |carrier: &str| {
        let mut v = serde_json::to_value(&r).unwrap();
        v["carrier"] = json!(carrier);
        v
    };
    // The right carrier: taken.
    let ok = api(&w, "POST", "/api/v1/routes", &acme, Some(&with("acme"))).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    // An unknown carrier, or one that does not own the depot: 422 naming the field.
    for (key, carrier) in [(&platform, "nope"), (&platform, "zeta"), (&acme, "zeta")] {
        let mut v = with(carrier);
        v["id"] = json!("C2");
        let resp = api(&w, "POST", "/api/v1/routes", key, Some(&v)).await;
        let e = refused(&resp, 422);
        assert_eq!(e["field"], "carrier", "{e}");
    }
    // A carrier's key learns nothing of other carriers from the message.
    let mut v = with("zeta");
    v["id"] = json!("C3");
    let e = api(&w, "POST", "/api/v1/routes", &acme, Some(&v))
        .await
        .text();
    assert!(!e.contains("south") && !e.contains("Zeta"), "{e}");

    // A key of a carrier this gateway does not know is refused, with a JSON error.
    let ghost = w.key_of("ghost", "ghost", &["backoffice:*"]);
    let e = refused(&get(&w, &ghost, "/api/v1/parcels/MP100000001").await, 403);
    assert_eq!(e["code"], "forbidden", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipper_follows_parcels_of_the_carriers_it_names_and_lists_nothing() {
    let (w, _) = world().await;
    let shipper = w.key_of("*", "shop", &["shipper:zeta"]);
    let d = get(&w, &shipper, "/api/v1/parcels/ZT-1").await;
    assert_eq!(d.status, 200, "{}", d.text());
    refused(&get(&w, &shipper, "/api/v1/parcels/MP100000001").await, 404);
    refused(&get(&w, &shipper, "/api/v1/routes?depot=south").await, 403);
    refused(
        &get(&w, &shipper, "/api/v1/depots/south/drivers").await,
        403,
    );
    refused(&get(&w, &shipper, "/api/v1/webhooks").await, 403);
    // Its status and history, never the recipient's thread, wishes or notifications.
    for what in ["messages", "delivery", "notifications"] {
        let path = format!("/api/v1/parcels/ZT-1/{what}");
        let r = get(&w, &shipper, &path).await;
        assert!(r.status == 404 || r.status == 403, "{path}: {}", r.text());
    }
    refused(&fail(&w, &shipper, "ZT-1").await, 404);
    let a = get(&w, &shipper, "/api/v1/analytics").await;
    assert!(
        a.status == 403 || !a.text().contains("south"),
        "{}",
        a.text()
    );
}

/// Waits until `got` holds a delivery whose body contains `needle`.
async fn delivered(got: &Hooked, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !got
        .lock()
        .unwrap()
        .1
        .iter()
        .any(|(_, b)| b.contains(needle))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery with {needle}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carriers_webhook_gets_its_parcels_only() {
    let (w, platform) = world().await;
    let acme = w.key_of("acme", "acme-orders", &["backoffice:*"]);
    let zeta = w.key_of("zeta", "zeta-orders", &["backoffice:*"]);
    let mut hooks = Vec::new();
    for key in [&acme, &zeta, &platform] {
        let got: Hooked = Default::default();
        let url = hook_receiver(got.clone()).await;
        let added = api(
            &w,
            "POST",
            "/api/v1/webhooks",
            key,
            Some(&json!({"url": url})),
        )
        .await;
        assert_eq!(added.status, 201, "{}", added.text());
        let v = added.json();
        got.lock().unwrap().0 = v["secret"].as_str().unwrap().to_owned();
        hooks.push((got, v["webhook"]["id"].as_str().unwrap().to_owned()));
    }
    let (acme_got, acme_id) = &hooks[0];
    let (zeta_got, zeta_id) = &hooks[1];
    let (all_got, _) = &hooks[2];

    // Each carrier lists its own endpoint only, and cannot remove the other's.
    let list = get(&w, &acme, "/api/v1/webhooks").await.json();
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![acme_id.as_str()], "{list}");
    let gone = api(
        &w,
        "DELETE",
        &format!("/api/v1/webhooks/{zeta_id}"),
        &acme,
        None,
    )
    .await;
    refused(&gone, 404);

    // Milestones of both carriers, interleaved: Acme's, Zeta's, Acme's again. Deliveries are
    // in order, so once each endpoint has its carrier's last one it has passed the other's.
    for (key, t) in [
        (&acme, "MP100000003"),
        (&zeta, "ZT-1"),
        (&acme, "MP100000004"),
    ] {
        let r = fail(&w, key, t).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    delivered(all_got, "MP100000004").await;
    delivered(all_got, "ZT-1").await;
    delivered(acme_got, "MP100000004").await;
    delivered(zeta_got, "ZT-1").await;
    let bodies = |g: &Hooked| -> Vec<String> {
        g.lock()
            .unwrap()
            .1
            .iter()
            .map(|(ok, b)| {
                assert!(ok, "signature");
                b.clone()
            })
            .collect()
    };
    for b in bodies(acme_got) {
        assert!(!b.contains("ZT-1") && !b.contains("south"), "{b}");
        assert!(b.contains("\"carrier\":\"acme\""), "{b}");
    }
    for b in bodies(zeta_got) {
        assert!(!b.contains("MP1000000") && !b.contains("north"), "{b}");
        assert!(b.contains("\"carrier\":\"zeta\""), "{b}");
    }
}

fn token_of_carrier(role: Role, sub: &str, depot: &str, carrier: &str) -> String {
    let now = common::now_s();
    milepost::auth::TokenKey::new(common::SECRET.as_bytes()).mint(&Claims {
        role,
        sub: sub.into(),
        depot: depot.into(),
        exp: now + 600,
        iat: now,
        carrier: Some(carrier.into()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_wear_the_parcels_carrier_and_tokens_keep_to_their_carrier() {
    let (w, _) = world().await;
    let web = w.web();
    let page = |tracking: &str, token: &str| {
        let path = format!("/t/{tracking}?token={token}");
        async move { request(web, "GET", &path, &[], None).await }
    };
    // Acme's parcel: Acme's own brand, its style sheet and logo under its id.
    let north = token_of_carrier(Role::Recipient, "MP100000001", "north", "acme");
    let p = page("MP100000001", &north).await;
    assert_eq!(p.status, 200, "{}", p.text());
    let html = p.text();
    assert!(html.contains("Acme Parcels"), "{html}");
    assert!(html.contains("/brand.css?carrier=acme"), "{html}");
    assert!(html.contains("/brand/logo.svg?carrier=acme"), "{html}");
    let css = request(web, "GET", "/brand.css?carrier=acme", &[], None).await;
    assert!(css.text().contains("#aa0011"), "{}", css.text());
    let plain = request(web, "GET", "/brand.css", &[], None).await;
    assert!(!plain.text().contains("#aa0011"), "{}", plain.text());
    // Zeta's parcel: the gateway's brand under Zeta's name, nothing of Acme's.
    let south = common::token(Role::Recipient, "ZT-1", "south");
    let html = page("ZT-1", &south).await.text();
    assert!(
        html.contains("Zeta Express") && !html.contains("Acme"),
        "{html}"
    );
    assert!(!html.contains("carrier=acme"), "{html}");

    // A token that names a carrier other than its depot's opens nothing: not the page, not
    // the API, not a QUIC session.
    let forged = token_of_carrier(Role::Recipient, "MP100000001", "north", "zeta");
    let e = page("MP100000001", &forged).await;
    assert!(e.status == 401 || e.status == 403, "{}", e.status);
    let forged_dispatcher = token_of_carrier(Role::Dispatcher, "north", "north", "zeta");
    refused(
        &get(&w, &forged_dispatcher, "/api/v1/parcels/MP100000001").await,
        401,
    );
    let forged_driver = token_of_carrier(Role::Driver, "D1", "north", "zeta");
    let err = w.t.open(&forged_driver, "D1").await.err().unwrap();
    assert_eq!(err.code(), Some(ErrorCode::OutOfScope), "{err}");
    // The same token naming the right carrier works.
    let driver = token_of_carrier(Role::Driver, "D1", "north", "acme");
    assert!(w.t.open(&driver, "D1").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_queries_and_the_dispatch_stream_show_one_carrier_only() {
    use milepost_proto::{deg_to_e7, QueryKind, Seq};
    let (mut w, _) = world().await;
    let web = w.web();
    // Zeta's driver stands where Acme's drives.
    let mut z9 = w.t.driver("Z9", "south").await;
    z9.batch(Seq(1), vec![common::fix(1_000, 0)]).await.unwrap();
    let north = World::dispatcher_token("north");
    let auth = format!("Bearer {north}");
    let mut s = web_support::Sse::open(web, "/dispatch/events", &[("Authorization", &auth)]).await;
    assert_eq!(s.status, 200);
    w.drive(0, 1, 30).await;
    z9.batch(Seq(2), vec![common::fix(500, 1)]).await.unwrap();
    let nearest = QueryKind::Nearest {
        lat_e7: deg_to_e7(38.9),
        lon_e7: deg_to_e7(-77.03),
        k: 50,
    };
    let ids = |r: milepost_proto::QueryResult| -> Vec<String> {
        r.drivers.iter().map(|d| d.driver.0.clone()).collect()
    };
    let mut acme = w.t.dispatcher("north").await;
    let seen = ids(acme.query(1, nearest.clone()).await.unwrap());
    assert!(
        seen.contains(&"D1".to_owned()) && !seen.contains(&"Z9".to_owned()),
        "{seen:?}"
    );
    let mut zeta = w.t.dispatcher("south").await;
    assert_eq!(ids(zeta.query(1, nearest).await.unwrap()), vec!["Z9"]);
    // Acme's dispatcher's stream carries Acme's driver, never Zeta's.
    let evs = s.drain(500).await;
    let text: String = evs.iter().map(|e| e.data.clone()).collect();
    assert!(text.contains("\"D1\""), "{evs:#?}");
    assert!(!text.contains("Z9") && !text.contains("ZT-1") && !text.contains("south"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_reads_itself_and_sets_its_brand_through_the_api() {
    let (w, platform) = world().await;
    let web = w.web();
    let acme = w.key_of("acme", "acme-orders", &["backoffice:*"]);
    let zeta = w.key_of("zeta", "zeta-orders", &["backoffice:*"]);
    let me = get(&w, &zeta, "/api/v1/carriers/zeta").await;
    assert_eq!(me.status, 200, "{}", me.text());
    let v = me.json();
    assert_eq!(
        (&v["name"], &v["depots"], &v["brand_source"]),
        (&json!("Zeta Express"), &json!(["south"]), &json!("gateway"))
    );
    assert_eq!(v["brand"]["name"], "Zeta Express");
    // Another carrier is unknown to it; the platform sees both.
    refused(&get(&w, &zeta, "/api/v1/carriers/acme").await, 404);
    assert_eq!(
        get(&w, &platform, "/api/v1/carriers/acme").await.json()["brand_source"],
        "config"
    );
    refused(&get(&w, &platform, "/api/v1/carriers/nope").await, 404);

    // Zeta sets its brand: its page and style sheet wear it.
    let brand = json!({"name": "Zeta", "primary": "#00aa55"});
    let put = api(
        &w,
        "PUT",
        "/api/v1/carriers/zeta/brand",
        &zeta,
        Some(&brand),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["brand_source"], "api");
    let south = common::token(Role::Recipient, "ZT-1", "south");
    let page = request(web, "GET", &format!("/t/ZT-1?token={south}"), &[], None).await;
    assert!(
        page.text().contains("/brand.css?carrier=zeta"),
        "{}",
        page.text()
    );
    let css = request(web, "GET", "/brand.css?carrier=zeta", &[], None).await;
    assert!(css.text().contains("#00aa55"), "{}", css.text());
    // Bad input, another carrier's brand, a reader's key: refused, nothing changed.
    let bad = json!({"primary": "red;}body{display:none"});
    let e = refused(
        &api(&w, "PUT", "/api/v1/carriers/zeta/brand", &zeta, Some(&bad)).await,
        422,
    );
    assert_eq!(e["field"], "primary", "{e}");
    let unknown_field = json!({"carrier": "acme"});
    let r = api(
        &w,
        "PUT",
        "/api/v1/carriers/zeta/brand",
        &zeta,
        Some(&unknown_field),
    )
    .await;
    assert!(r.status == 400 || r.status == 422, "{}", r.text());
    refused(
        &api(
            &w,
            "PUT",
            "/api/v1/carriers/zeta/brand",
            &acme,
            Some(&brand),
        )
        .await,
        404,
    );
    let reader = w.key_of("zeta", "zeta-screen", &["dispatcher:*"]);
    refused(
        &api(
            &w,
            "PUT",
            "/api/v1/carriers/zeta/brand",
            &reader,
            Some(&brand),
        )
        .await,
        403,
    );
    let css = request(web, "GET", "/brand.css?carrier=zeta", &[], None).await;
    assert!(css.text().contains("#00aa55"), "{}", css.text());
    // Removed: the page wears the gateway's brand under Zeta's name again.
    let gone = api(&w, "DELETE", "/api/v1/carriers/zeta/brand", &zeta, None).await;
    assert_eq!(gone.status, 204, "{}", gone.text());
    let html = request(web, "GET", &format!("/t/ZT-1?token={south}"), &[], None)
        .await
        .text();
    assert!(
        html.contains("Zeta Express") && !html.contains("carrier=zeta"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_with_its_own_secret_mints_tokens_for_its_depots_only() {
    const ACME_SECRET: &[u8] = b"acme's own token secret, 32 bytes+";
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("acme.key");
    std::fs::write(&file, ACME_SECRET).unwrap();
    let (w, _) = world_with(move |c| {
        c.carriers.0.get_mut("acme").unwrap().token_secret_file = Some(file);
    })
    .await;
    let acme = milepost::auth::TokenKey::new(ACME_SECRET);
    let now = common::now_s();
    let driver = |sub: &str, depot: &str| Claims {
        role: Role::Driver,
        sub: sub.into(),
        depot: depot.into(),
        exp: now + 600,
        iat: now,
        carrier: None,
    };
    // Acme's own token for its depot opens a session; for Zeta's depot it is forged.
    assert!(w
        .t
        .open(&acme.mint(&driver("D7", "north")), "D7")
        .await
        .is_ok());
    let err =
        w.t.open(&acme.mint(&driver("Z9", "south")), "Z9")
            .await
            .err()
            .unwrap();
    assert_eq!(err.code(), Some(ErrorCode::TokenInvalid), "{err}");
    // The gateway signs Acme's tracking links with Acme's secret, and they open the page.
    let ops = w.key_with("ops", &["backoffice:*"]);
    let link = api(
        &w,
        "POST",
        "/api/v1/parcels/MP100000001/link",
        &ops,
        Some(&json!({})),
    )
    .await;
    assert_eq!(link.status, 200, "{}", link.text());
    let token = link.json()["token"].as_str().unwrap().to_owned();
    assert!(acme.verify(&token, now).is_ok());
    let page = request(
        w.web(),
        "GET",
        &format!("/t/MP100000001?token={token}"),
        &[],
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text());

    // Acme's key vouches for Acme's depots, not for Zeta's parcel or driver named in a token
    // of an Acme depot.
    let as_recipient = Claims {
        role: Role::Recipient,
        ..driver("ZT-1", "north")
    };
    let forged = acme.mint(&as_recipient);
    let page = request(
        w.web(),
        "GET",
        &format!("/t/ZT-1?token={forged}"),
        &[],
        None,
    )
    .await;
    assert!(page.status == 401 || page.status == 403, "{}", page.status);
    let err = w.t.open(&forged, "ZT-1").await.err().unwrap();
    assert_eq!(err.code(), Some(ErrorCode::OutOfScope), "{err}");
    let err =
        w.t.open(&acme.mint(&driver("Z9", "north")), "Z9")
            .await
            .err()
            .unwrap();
    assert_eq!(err.code(), Some(ErrorCode::OutOfScope), "{err}");
    // Its own parcel, yes.
    let own = Claims {
        role: Role::Recipient,
        ..driver("MP100000001", "north")
    };
    assert!(w.t.open(&acme.mint(&own), "MP100000001").await.is_ok());
}
