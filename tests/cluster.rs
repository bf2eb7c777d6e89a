//! Several gateways as one fleet over a real `nats-server -js` (started by each test on a
//! random loopback port; `.ci/run` installs it): a recipient on one gateway follows a driver
//! connected to another with the same feed offsets, dispatcher queries cover every gateway's
//! drivers, a phone that moves to another gateway resumes from its watermark and its resend is
//! stored once. The `kill -9` test with three real binaries is in `tests/cluster_kill.rs`.
//!
//! Without nats-server these tests print SKIPPED and pass, unless `MILEPOST_REQUIRE_NATS` is
//! set (CI sets it).

mod common;

use std::time::Duration;

use common::{example_route, leg, now_ms, route_point, Nats, TestGateway};
use milepost::auth::Role;
use milepost::client::{FeedStream, Session};
use milepost_proto::route::ParcelEvent;
use milepost_proto::{deg_to_e7, CommandKind, FeedTarget, QueryKind, Seq, ServerMsg};

/// A cluster gateway named `node`; every gateway after the first uses the first one's
/// certificate (a cluster serves one name with one certificate).
async fn gateway(nats: &Nats, node: &str, first: Option<&TestGateway>) -> TestGateway {
    gateway_with(nats, node, first, |_| {}).await
}

async fn gateway_with(
    nats: &Nats,
    node: &str,
    first: Option<&TestGateway>,
    edit: impl FnOnce(&mut milepost::config::Config),
) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    edit(&mut cfg);
    cfg.cluster.url = Some(nats.url.clone());
    cfg.cluster.node = Some(node.into());
    cfg.cluster.prefix = "t".into();
    cfg.cluster.partitions = 4;
    cfg.cluster.lease_ttl_s = 2;
    if let Some(f) = first {
        cfg.cert = Some(f.dir.path().join("certs/server.pem"));
        cfg.key = Some(f.dir.path().join("certs/server.key"));
    }
    common::launch(dir, cfg, first.map(|f| f.ca.clone())).await
}

/// Parcel events read from `f` until `want` is among them (or 10 s pass).
async fn events_until(
    f: &mut FeedStream,
    want: fn(&ParcelEvent) -> bool,
) -> Vec<(u64, ParcelEvent)> {
    common::parcel_events_until(f, want, 10, "parcel feed").await
}

fn is_delivered(e: &ParcelEvent) -> bool {
    matches!(e, ParcelEvent::Delivered { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_are_one_fleet() {
    let Some(nats) = Nats::start() else { return };
    let a = gateway(&nats, "a", None).await;
    let b = gateway(&nats, "b", Some(&a)).await;

    // A dispatcher on A assigns the route; a recipient on B follows parcel 1.
    let mut dispatch_a = a.dispatcher("north").await;
    let r = dispatch_a
        .command(1, CommandKind::AssignRoute(example_route()))
        .await
        .unwrap();
    assert!(matches!(r, ServerMsg::Done { .. }), "{r:?}");
    let rb = b.recipient("MP100000001").await;
    let mut feed_b = rb
        .subscribe(FeedTarget::Parcel("MP100000001".into()), None)
        .await
        .unwrap();

    // The driver is connected to A and drives to stop 1.
    let mut driver = a.driver("D1", "north").await;
    let mut clock = now_ms() - 3_000_000;
    let mut seq = 1u64;
    let mut last_batch = Vec::new();
    for chunk in leg(route_point(0), route_point(1), &mut clock, 120).chunks(8) {
        let ack = driver.batch(Seq(seq), chunk.to_vec()).await.unwrap();
        assert_eq!(ack.duplicates, 0);
        last_batch = chunk.to_vec();
        seq += chunk.len() as u64;
    }
    let acked = seq - 1;

    // B saw it all: the recipient's milestones, in order, offsets from the shared fold.
    let seen_b = events_until(&mut feed_b, |e| *e == ParcelEvent::Arrived).await;
    assert!(
        seen_b
            .iter()
            .any(|(_, e)| *e == ParcelEvent::OutForDelivery),
        "{seen_b:?}"
    );
    // The same parcel's feed on A, resumed from its start, has the same events at the same
    // offsets.
    let ra = a.recipient("MP100000001").await;
    let mut feed_a = ra
        .subscribe(FeedTarget::Parcel("MP100000001".into()), Some(0))
        .await
        .unwrap();
    let seen_a = events_until(&mut feed_a, |e| *e == ParcelEvent::Arrived).await;
    assert_eq!(seen_a, seen_b);

    // A dispatcher on B finds the driver connected to A.
    let mut dispatch_b = b.dispatcher("north").await;
    let (lat, lon) = route_point(1);
    let found = dispatch_b
        .query(
            7,
            QueryKind::Nearby {
                lat_e7: deg_to_e7(lat),
                lon_e7: deg_to_e7(lon),
                radius_m: 500.0,
            },
        )
        .await
        .unwrap();
    assert_eq!(found.drivers.len(), 1, "{found:?}");

    // The phone moves to B: B's Welcome carries what A acked, a resend is stored once, and
    // driving on through B moves the parcel's feed on A.
    driver.close();
    let mut driver = b.driver("D1", "north").await;
    assert_eq!(driver.welcome.watermark, Seq(acked));
    let first = acked + 1 - last_batch.len() as u64;
    let ack = driver.batch(Seq(first), last_batch.clone()).await.unwrap();
    assert_eq!(ack.duplicates as usize, last_batch.len());
    assert_eq!(ack.watermark, Seq(acked));
    let delivered = common::report(&mut driver, 2, "S1", None, common::delivered("cd"))
        .await
        .unwrap();
    assert!(matches!(delivered, ServerMsg::Done { .. }), "{delivered:?}");
    let more_a = events_until(&mut feed_a, is_delivered).await;
    let more_b = events_until(&mut feed_b, is_delivered).await;
    let delivered_at =
        |v: &[(u64, ParcelEvent)]| v.iter().find(|(_, e)| is_delivered(e)).map(|(o, _)| *o);
    assert_eq!(delivered_at(&more_a), delivered_at(&more_b));
    // Offsets only grow: nothing twice.
    for v in [&more_a, &more_b] {
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0), "{v:?}");
    }
    drop((feed_a, feed_b, ra, rb, dispatch_a, dispatch_b, driver));
    b.gw.shutdown().await;
    a.gw.shutdown().await;
}

/// A webhook receiver on 127.0.0.1:0 recording the `offset` of every milestone POSTed.
async fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<u64>>>) {
    use axum::{routing::post, Json, Router};
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |Json(body): Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body["offset"].as_u64().unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Waits until the receiver holds at least `n` posts, then a little more for stragglers.
async fn posts_at_least(got: &std::sync::Mutex<Vec<u64>>, n: usize) -> Vec<u64> {
    for _ in 0..200 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    got.lock().unwrap().clone()
}

/// Drives from `from` to `to` in batches of 8 fixes, 120 fixes in all.
async fn drive_leg(
    driver: &mut Session,
    from: (f64, f64),
    to: (f64, f64),
    clock: &mut i64,
    seq: &mut u64,
) {
    common::send_in_batches(driver, seq, &leg(from, to, clock, 120), 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gateway_sends_the_webhooks_and_another_takes_over() {
    let Some(nats) = Nats::start() else { return };
    let (url, got) = webhook_receiver().await;
    let hooks = |c: &mut milepost::config::Config| c.feed.webhooks = vec![url.clone()];
    let a = gateway_with(&nats, "a", None, hooks).await;
    let b = gateway_with(&nats, "b", Some(&a), hooks).await;
    // Partition 0 (webhooks) is leased to exactly one of them.
    let mut leader = None;
    for _ in 0..100 {
        let (la, lb) = (
            a.gw.shared().owned.is_leader(),
            b.gw.shared().owned.is_leader(),
        );
        assert!(!(la && lb), "two leaders");
        if la || lb {
            leader = Some(lb);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b_leads = leader.expect("a webhook leader");
    // Ownership is visible to the operator.
    let admin = a.gw.admin_addr.unwrap();
    let metrics = ureq::get(&format!("http://{admin}/metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("milepost_cluster_partitions_owned"),
        "{metrics}"
    );
    // The leader's sender is running once it has saved its starting cursor.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    let state = js.get_key_value("t-state").await.unwrap();
    for _ in 0..100 {
        let keys = state.keys().await.unwrap();
        let names: Vec<String> = futures_util::StreamExt::collect::<Vec<_>>(keys)
            .await
            .into_iter()
            .flatten()
            .collect();
        if names.iter().any(|k| k.starts_with("webhook.")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (lead, other) = if b_leads { (b, a) } else { (a, b) };

    let dispatch = other.assign_route().await;
    let mut driver = other.driver("D1", "north").await;
    let mut clock = now_ms() - 3_000_000;
    let mut seq = 1u64;
    drive_leg(
        &mut driver,
        route_point(0),
        route_point(1),
        &mut clock,
        &mut seq,
    )
    .await;
    let last = other.milestones_last();
    assert!(last > 0);
    // Sent once each, in order, by the leader alone.
    let first_round = posts_at_least(&got, last as usize).await;
    assert_eq!(first_round, (1..=last).collect::<Vec<_>>());

    // The leader goes away; the other gateway takes partition 0 over and goes on from the
    // shared cursor.
    lead.gw.shutdown().await;
    for _ in 0..200 {
        if other.gw.shared().owned.is_leader() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(other.gw.shared().owned.is_leader(), "no takeover");
    drive_leg(
        &mut driver,
        route_point(1),
        route_point(2),
        &mut clock,
        &mut seq,
    )
    .await;
    let now_last = other.milestones_last();
    assert!(now_last > last, "no new milestones");
    let all = posts_at_least(&got, now_last as usize).await;
    let mut distinct = all.clone();
    distinct.dedup();
    // Nothing skipped; at most the one in flight at the handover repeated.
    assert_eq!(distinct, (1..=now_last).collect::<Vec<_>>(), "{all:?}");
    assert!(all.len() <= distinct.len() + 1, "{all:?}");
    drop((dispatch, driver));
    other.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_gateway_is_refused_by_all() {
    let Some(nats) = Nats::start() else { return };
    let a = gateway(&nats, "a", None).await;
    let b = gateway(&nats, "b", Some(&a)).await;
    let d9 = b.driver("D9", "north").await;
    // `milepost revoke` appends to the deny list file of the gateway it runs beside: A's.
    std::fs::write(a.dir.path().join("revoked.txt"), "driver:D9\n").unwrap();
    // B closes the live session and refuses new ones.
    tokio::time::timeout(Duration::from_secs(15), d9.conn.closed())
        .await
        .expect("B closed the revoked driver's session");
    let again = b.session_as(Role::Driver, "D9", "D9", "north").await;
    assert!(again.is_err(), "B still admits a revoked token");
    // Other drivers are untouched.
    b.driver("D10", "north").await;
    b.gw.shutdown().await;
    a.gw.shutdown().await;
}

/// A cluster gateway's records come from the stream and it has no log bytes of its own to
/// weigh snapshots against: `log.snapshot_log_ratio` must not hold its snapshots back.
#[tokio::test]
async fn a_cluster_gateway_goes_on_taking_snapshots() {
    let Some(nats) = Nats::start() else { return };
    let a = gateway_with(&nats, "a", None, |c| {
        c.log.snapshot_every_records = 4;
        c.log.snapshot_log_ratio = 1.0;
    })
    .await;
    let mut d = a.driver("D1", "north").await;
    let taken = a.snapshots_after_batches(&mut d, 40, |n| n > 1).await;
    assert!(taken > 1, "{taken} snapshots");
    d.close();
    a.gw.shutdown().await;
}

#[tokio::test]
async fn an_api_key_created_beside_one_gateway_works_on_all_until_revoked() {
    use milepost::apikeys::{KeyFile, Scope, FILE};
    let Some(nats) = Nats::start() else { return };
    // Two carriers, the same on every gateway: a carrier's key is held to its depots on all.
    let web = |c: &mut milepost::config::Config| {
        c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        for (id, depot) in [("acme", "north"), ("zeta", "south")] {
            c.carriers.0.insert(
                id.into(),
                milepost::tenancy::CarrierConfig {
                    depots: vec![depot.into()],
                    ..Default::default()
                },
            );
        }
    };
    let a = gateway_with(&nats, "a", None, web).await;
    let b = gateway_with(&nats, "b", Some(&a), web).await;
    // `milepost key create` beside A.
    let path = a.dir.path().join(FILE);
    let mut keys = KeyFile::default();
    let scopes = vec![Scope::parse("dispatcher:north").unwrap()];
    let (k, key) = keys.create("orders", "*", scopes, now_ms()).unwrap();
    let zeta_scopes = vec![Scope::parse("dispatcher:*").unwrap()];
    let (_, zeta) = keys.create("zeta", "zeta", zeta_scopes, now_ms()).unwrap();
    keys.write(&path).unwrap();
    let status_of = |gw: &TestGateway, key: &str, depot: &'static str| {
        let addr = gw.gw.web_addr.unwrap();
        let auth = format!("Bearer {key}");
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let req = format!(
                "GET /api/v1/depots/{depot}/drivers HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf)
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned()
        }
    };
    let status = |gw| status_of(gw, &key, "north");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while status(&b).await != "200" {
        assert!(std::time::Instant::now() < deadline, "B never took A's key");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Zeta's key, shared with it, reads Zeta's depot on B and not Acme's.
    assert_eq!(status_of(&b, &zeta, "south").await, "200");
    assert_eq!(status_of(&b, &zeta, "north").await, "403");
    // `milepost key revoke` beside A: B refuses it too.
    keys.revoke(&k.id, now_ms()).unwrap();
    keys.write(&path).unwrap();
    std::fs::write(
        a.dir.path().join("revoked.txt"),
        format!("{}\n", k.deny_entry()),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while status(&b).await != "401" {
        assert!(
            std::time::Instant::now() < deadline,
            "B still takes the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.gw.shutdown().await;
    a.gw.shutdown().await;
}

#[tokio::test]
async fn a_webhook_added_on_one_gateway_is_known_to_all_and_removed_from_all() {
    use milepost::apikeys::{KeyFile, Scope, FILE};
    let Some(nats) = Nats::start() else { return };
    let web = |c: &mut milepost::config::Config| {
        c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    };
    let a = gateway_with(&nats, "a", None, web).await;
    let b = gateway_with(&nats, "b", Some(&a), web).await;
    let mut keys = KeyFile::default();
    let (_, key) = keys
        .create(
            "ops",
            "*",
            vec![Scope::parse("backoffice:*").unwrap()],
            now_ms(),
        )
        .unwrap();
    // The same key beside both gateways (sharing keys has its own test).
    keys.write(&a.dir.path().join(FILE)).unwrap();
    keys.write(&b.dir.path().join(FILE)).unwrap();
    let call = |gw: &TestGateway, method: &'static str, path: String, body: Option<String>| {
        let addr = gw.gw.web_addr.unwrap();
        let auth = format!("Bearer {key}");
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let body = body.unwrap_or_default();
            let req = format!(
                "{method} {path} HTTP/1.0\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf).to_string();
            let json = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
            serde_json::from_str::<serde_json::Value>(&json).unwrap_or_default()
        }
    };
    let added = call(
        &a,
        "POST",
        "/api/v1/webhooks".into(),
        Some(r#"{"url":"http://127.0.0.1:9/hook"}"#.into()),
    )
    .await;
    let id = added["webhook"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{added}"))
        .to_owned();
    let lists = |v: &serde_json::Value, id: &str| {
        v["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|h| h["id"] == id))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !lists(&call(&b, "GET", "/api/v1/webhooks".into(), None).await, &id) {
        assert!(
            std::time::Instant::now() < deadline,
            "B never learned A's webhook"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Removed on B: gone from A too, and it does not come back.
    let left = call(&b, "DELETE", format!("/api/v1/webhooks/{id}"), None).await;
    assert!(!lists(&left, &id), "{left}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while lists(&call(&a, "GET", "/api/v1/webhooks".into(), None).await, &id) {
        assert!(
            std::time::Instant::now() < deadline,
            "A still has the removed webhook"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!lists(
        &call(&a, "GET", "/api/v1/webhooks".into(), None).await,
        &id
    ));
    assert!(!lists(
        &call(&b, "GET", "/api/v1/webhooks".into(), None).await,
        &id
    ));
    b.gw.shutdown().await;
    a.gw.shutdown().await;
}

/// A carrier's brand set through one gateway's API is worn by the pages of every gateway;
/// removed through another, it is gone from all.
#[tokio::test]
async fn a_brand_set_on_one_gateway_is_worn_by_all_and_removed_from_all() {
    use milepost::apikeys::{KeyFile, Scope, FILE};
    let Some(nats) = Nats::start() else { return };
    let web = |c: &mut milepost::config::Config| {
        c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        c.carriers.0.insert(
            "zeta".into(),
            milepost::tenancy::CarrierConfig {
                name: "Zeta Express".into(),
                depots: vec!["south".into()],
                ..Default::default()
            },
        );
    };
    let a = gateway_with(&nats, "a", None, web).await;
    let b = gateway_with(&nats, "b", Some(&a), web).await;
    let mut keys = KeyFile::default();
    let scopes = vec![Scope::parse("backoffice:*").unwrap()];
    let (_, key) = keys.create("ops", "*", scopes, now_ms()).unwrap();
    keys.write(&a.dir.path().join(FILE)).unwrap();
    keys.write(&b.dir.path().join(FILE)).unwrap();
    let call = |gw: &TestGateway, method: &'static str, path: &'static str, body: &str| {
        let addr = gw.gw.web_addr.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.0\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf).to_string()
        }
    };
    let css = |gw: &TestGateway| call(gw, "GET", "/brand.css?carrier=zeta", "");
    let set = call(
        &a,
        "PUT",
        "/api/v1/carriers/zeta/brand",
        r##"{"name":"Zeta","primary":"#00aa55"}"##,
    )
    .await;
    assert!(
        set.starts_with("HTTP/1.0 200") || set.starts_with("HTTP/1.1 200"),
        "{set}"
    );
    assert!(css(&a).await.contains("#00aa55"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !css(&b).await.contains("#00aa55") {
        assert!(
            std::time::Instant::now() < deadline,
            "B never wore A's brand"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = call(&b, "DELETE", "/api/v1/carriers/zeta/brand", "").await;
    assert!(gone.contains(" 204 "), "{gone}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while css(&a).await.contains("#00aa55") {
        assert!(
            std::time::Instant::now() < deadline,
            "A still wears the removed brand"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!css(&b).await.contains("#00aa55"));
    b.gw.shutdown().await;
    a.gw.shutdown().await;
}

/// Every gateway of a fleet must have the same token secret of a carrier (or none): one whose
/// `[carriers.<id>] token_secret_file` differs is refused at start, naming the carrier.
#[tokio::test]
async fn a_gateway_with_another_carriers_secret_is_refused() {
    let Some(nats) = Nats::start() else { return };
    let secrets = tempfile::tempdir().unwrap();
    let (one, two) = (
        secrets.path().join("one.key"),
        secrets.path().join("two.key"),
    );
    std::fs::write(&one, [1u8; 32]).unwrap();
    std::fs::write(&two, [2u8; 32]).unwrap();
    let acme = |file: Option<std::path::PathBuf>| {
        move |c: &mut milepost::config::Config| {
            c.carriers.0.insert(
                "acme".into(),
                milepost::tenancy::CarrierConfig {
                    depots: vec!["north".into()],
                    token_secret_file: file,
                    ..Default::default()
                },
            );
        }
    };
    let a = gateway_with(&nats, "a", None, acme(Some(one.clone()))).await;
    for (node, file) in [("b", Some(two)), ("c", None)] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = common::config(dir.path());
        acme(file)(&mut cfg);
        cfg.cluster.url = Some(nats.url.clone());
        cfg.cluster.node = Some(node.into());
        cfg.cluster.prefix = "t".into();
        cfg.cluster.partitions = 4;
        match milepost::server::Gateway::start(cfg).await {
            Ok(_) => panic!("gateway {node} joined with another secret of carrier acme"),
            Err(e) => assert!(e.to_string().contains("carrier acme's token secret"), "{e}"),
        }
    }
    // The same file joins.
    let d = gateway_with(&nats, "d", Some(&a), acme(Some(one))).await;
    d.gw.shutdown().await;
    a.gw.shutdown().await;
}
