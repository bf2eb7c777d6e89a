//! Drivers' profiles set by the back office over the API: checked field by field, scoped to
//! the driver's depot, kept across a restart, and shown to a recipient (first name, vehicle,
//! photo) only once the driver is on the way to the recipient's stop.

mod common;
mod web_support;

use serde_json::{json, Value};
use web_support::{get, Resp, World};

async fn call(w: &World, method: &str, path: &str, key: &str, body: Option<&Value>) -> Resp {
    web_support::api(w, method, path, key, body).await
}

/// The driver card a recipient of `tracking` sees now.
async fn card(w: &World, tracking: &str) -> Value {
    let r = get(
        w.web(),
        &format!("/t/{tracking}/status"),
        Some(&World::recipient_token(tracking)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["status"]["driver"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_from_the_api_shows_once_the_driver_is_on_the_way() {
    let mut w = World::with_web(|_| {}).await;
    let k = w.backoffice_key();
    let profile = json!({"first_name": "Marko", "vehicle": "white van ZG-123",
                         "photo_url": "https://cdn.example/marko.jpg"});
    let r = call(&w, "PUT", "/api/v1/drivers/D1/profile", &k, Some(&profile)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for (body, field) in [
        (json!({"first_name": " "}), "first_name"),
        (
            json!({"first_name": "Marko", "photo_url": "javascript:alert(1)"}),
            "photo_url",
        ),
        (
            json!({"first_name": "Marko", "vehicle": "x".repeat(101)}),
            "vehicle",
        ),
    ] {
        let r = call(&w, "PUT", "/api/v1/drivers/D1/profile", &k, Some(&body)).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["field"], field);
    }
    // Another depot's back office may not touch this depot's driver.
    let south = {
        use milepost::apikeys::{KeyFile, Scope, FILE};
        let path = w.t.dir.path().join(FILE);
        let mut f = KeyFile::read(&path).unwrap();
        let (_, key) = f
            .create(
                "south",
                "*",
                vec![Scope::parse("backoffice:south").unwrap()],
                common::now_ms(),
            )
            .unwrap();
        f.write(&path).unwrap();
        key
    };
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = call(
        &w,
        "PUT",
        "/api/v1/drivers/D1/profile",
        &south,
        Some(&profile),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = call(&w, "GET", "/api/v1/drivers/D1/profile", &k, None).await;
    assert_eq!(r.json(), profile);

    // S3's recipient: nothing while the driver serves S1 and S2 first...
    w.drive(0, 1, 60).await;
    assert!(card(&w, "MP100000004").await.is_null());
    w.deliver("S1").await;
    w.drive(1, 2, 60).await;
    common::report(
        &mut w.driver,
        3,
        "S2",
        None,
        milepost_proto::route::Outcome::Failed {
            reason: milepost_proto::route::FailureReason::RecipientAbsent,
            note: String::new(),
        },
    )
    .await
    .unwrap();
    // ...then who is coming, once S3 is next.
    let c = card(&w, "MP100000004").await;
    assert_eq!(c["first_name"], "Marko", "{c}");
    assert_eq!(c["vehicle"], "white van ZG-123");
    assert_eq!(c["photo_url"], "https://cdn.example/marko.jpg");
    // The tracking page draws the photo.
    let page = web_support::get(
        w.web(),
        "/t/MP100000004",
        Some(&World::recipient_token("MP100000004")),
    )
    .await
    .text();
    assert!(
        page.contains("id=\"driver-photo\" alt=\"\" src=\"https://cdn.example/marko.jpg\">"),
        "{page}"
    );

    // Kept across a restart; removed on request.
    let web = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let w = World::on(w.t.restart_with(|c| c.web.listen = Some(web)).await).await;
    let r = call(&w, "GET", "/api/v1/drivers/D1/profile", &k, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&w, "DELETE", "/api/v1/drivers/D1/profile", &k, None).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        call(&w, "GET", "/api/v1/drivers/D1/profile", &k, None)
            .await
            .status,
        404
    );
}
