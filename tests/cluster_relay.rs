//! Back-office API calls on gateways that fold only the partitions they own, over a real
//! `nats-server -js`: a call about a route or parcel another gateway holds is relayed to it and
//! answered as if made there; what no gateway holds is a plain 404; an owner that keeps its
//! lease but answers nothing gets a retryable error within the deadline, for API calls and for
//! forwarded QUIC commands; one that answers "busy" gets a retryable error naming it.
//!
//! Without nats-server these tests print SKIPPED and pass, unless `MILEPOST_REQUIRE_NATS` is
//! set (CI sets it).

mod common;
mod web_support;

use std::time::{Duration, Instant};

use common::owned::{gateway, shared_key, two_gateways, PARTITIONS};
use common::{example_route, Nats, TestGateway};
use futures_util::StreamExt;
use milepost::cluster::relay::Reply;
use milepost_core::store::record::partition_of_depot;
use milepost_proto::CommandKind;

/// `method path` on `g`'s web listener with `key`, and a JSON body.
async fn api(
    g: &TestGateway,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&serde_json::Value>,
) -> web_support::Resp {
    let auth = format!("Bearer {key}");
    let text = body.map(|b| b.to_string());
    let mut headers = vec![("Authorization", auth.as_str())];
    if text.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let addr = g.gw.web_addr.expect("web listener on");
    web_support::request(addr, method, path, &headers, text.as_deref()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_back_office_api_reaches_the_gateway_that_holds_a_route_from_any_gateway() {
    let Some(nats) = Nats::start() else { return };
    let (owner, other) = two_gateways(&nats).await;
    let owner_node = owner.gw.shared().cluster.as_ref().unwrap().node.clone();
    // One back-office key, in both gateways' key files.
    let key = shared_key(&[&owner, &other], "orders", "backoffice:north").await;

    // Created through the gateway that does not hold the depot: the holder takes it.
    let mut route = example_route();
    route.id = "R-REL-1".into();
    let body = serde_json::to_value(&route).unwrap();
    let created = api(&other, "PUT", "/api/v1/routes/R-REL-1", &key, Some(&body)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(
        created.header("x-milepost-served-by"),
        Some(owner_node.as_str())
    );
    let folds = |g: &TestGateway| {
        let core = g.gw.shared().state.core.lock().unwrap();
        core.route_view(&"R-REL-1".into()).is_some()
    };
    assert!(folds(&owner));
    assert!(!folds(&other));

    // Read, re-sequenced and its parcel read, all through the other gateway.
    let got = api(&other, "GET", "/api/v1/routes/R-REL-1", &key, None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["route_id"], "R-REL-1");
    let order: Vec<String> = route.stops.iter().rev().map(|s| s.id.0.clone()).collect();
    let seq = serde_json::json!({ "order": order });
    let s = api(
        &other,
        "POST",
        "/api/v1/routes/R-REL-1/sequence",
        &key,
        Some(&seq),
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(s.json()["stops"][0]["id"], order[0].as_str());
    let tracking = route.stops[0].parcels[0].tracking.0.clone();
    let parcel = api(
        &other,
        "GET",
        &format!("/api/v1/parcels/{tracking}"),
        &key,
        None,
    )
    .await;
    assert_eq!(parcel.status, 200, "{}", parcel.text());
    assert_eq!(parcel.json()["live"], true);
    assert_eq!(
        parcel.header("x-milepost-served-by"),
        Some(owner_node.as_str())
    );

    // A depot's list, asked of the gateway that does not hold the depot, is the holder's.
    let list = api(&other, "GET", "/api/v1/routes?depot=north", &key, None).await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(
        list.header("x-milepost-served-by"),
        Some(owner_node.as_str())
    );
    let ids: Vec<String> = list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["route_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(ids.contains(&"R-REL-1".to_owned()), "{ids:?}");

    // What no gateway holds is a plain 404, answered once every gateway said so.
    let none = api(&other, "GET", "/api/v1/routes/R-NOWHERE", &key, None).await;
    assert_eq!(none.status, 404, "{}", none.text());
    assert_eq!(none.json()["code"], "not_found");
    assert!(none.header("x-milepost-served-by").is_none());
    // A key that does not cover the depot learns nothing from the holder either.
    let outsider = shared_key(&[&owner, &other], "south", "backoffice:south").await;
    let hidden = api(&other, "GET", "/api/v1/routes/R-REL-1", &outsider, None).await;
    assert_eq!(hidden.status, 404, "{}", hidden.text());

    owner.gw.shutdown().await;
    other.gw.shutdown().await;
}

/// A gateway named "ghost" that keeps its heartbeat and its leases in the lease bucket, taking
/// the partitions `a` gives back, and runs nothing else; once the leases settle, a depot of
/// one of its partitions.
async fn ghost(nats: &Nats, a: &TestGateway) -> (tokio::task::JoinHandle<()>, String) {
    let js = async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    let kv = js.get_key_value("o-leases").await.unwrap();
    let ghost = tokio::spawn(async move {
        let mut mine: Vec<u32> = Vec::new();
        loop {
            let beat = br#"{"node":"ghost","quic":"127.0.0.1:9","web":null}"#;
            let _ = kv.put("node.ghost", beat.to_vec().into()).await;
            for p in &mine {
                let _ = kv.put(format!("part.{p}"), "ghost".into()).await;
            }
            for p in 0..PARTITIONS {
                if mine.len() < 2 && kv.create(format!("part.{p}"), "ghost".into()).await.is_ok() {
                    mine.push(p);
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let ghosts = loop {
        let owned = &a.gw.shared().owned;
        let ghosts: Vec<u32> = (0..PARTITIONS)
            .filter(|&p| owned.owner_of(p).is_some_and(|o| o.node == "ghost"))
            .collect();
        if owned.held().len() == 2 && ghosts.len() == 2 {
            break ghosts;
        }
        assert!(Instant::now() < deadline, "the leases never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let depot = (0..)
        .map(|i| format!("depot-{i}"))
        .find(|d| ghosts.contains(&partition_of_depot(d, PARTITIONS)))
        .unwrap();
    (ghost, depot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_does_not_answer_gets_a_retryable_error_within_the_deadline() {
    let Some(nats) = Nats::start() else { return };
    let a = gateway(&nats, "a", None).await;
    // A gateway that keeps its heartbeat and its leases but answers nothing (hung, or cut off
    // from the others but not from NATS).
    let (ghost, depot) = ghost(&nats, &a).await;

    // A back-office call about what `a` does not hold: the silent gateway may hold it, so the
    // answer is "retry", not a 404.
    let key = shared_key(&[&a], "orders", "backoffice:*").await;
    let asked = Instant::now();
    let r = api(&a, "GET", "/api/v1/routes/R-SOMEWHERE", &key, None).await;
    let waited = asked.elapsed();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "owner_unreachable");
    assert!(
        r.json()["message"].as_str().unwrap().contains("ghost"),
        "{}",
        r.text()
    );
    assert_eq!(r.header("retry-after"), Some("2"));
    // Within the relay's deadline (3 s), with room for a loaded machine.
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // A write the silent gateway may have applied: its outcome is unknown, said so.
    let mut ghost_route = example_route();
    ghost_route.depot = depot.as_str().into();
    ghost_route.id = "R-GHOST".into();
    let body = serde_json::to_value(&ghost_route).unwrap();
    let w = api(&a, "PUT", "/api/v1/routes/R-GHOST", &key, Some(&body)).await;
    assert_eq!(w.status, 504, "{}", w.text());
    assert_eq!(w.json()["code"], "outcome_unknown");
    assert!(w.json()["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    // A caller that does not say who it is is answered here, not relayed.
    let addr = a.gw.web_addr.unwrap();
    let anonymous = web_support::request(addr, "GET", "/api/v1/routes/R-X", &[], None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());

    // A dispatcher's command for a depot of the silent gateway's: forwarded, unanswered, and
    // refused as retryable within the forward deadline (5 s).
    let mut dispatch = a.dispatcher(&depot).await;
    let mut route = example_route();
    route.depot = depot.as_str().into();
    let asked = Instant::now();
    let refused = dispatch.command(1, CommandKind::AssignRoute(route)).await;
    let waited = asked.elapsed();
    let refused = format!("{refused:?}");
    assert!(refused.contains("ServerBusy"), "{refused}");
    assert!(waited < Duration::from_secs(12), "{waited:?}");
    drop(dispatch);
    ghost.abort();
    a.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_answers_busy_gets_a_retryable_error_naming_it() {
    let Some(nats) = Nats::start() else { return };
    let a = gateway(&nats, "a", None).await;
    let (ghost, _) = ghost(&nats, &a).await;
    // The ghost answers every relayed call "busy", as a gateway does while it takes a
    // partition over, runs its fill of relayed calls, or fails (5xx).
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let mut calls = client.subscribe("o-api").await.unwrap();
    let busy = tokio::spawn(async move {
        while let Some(m) = calls.next().await {
            let reply = milepost_proto::codec::encode(&("ghost".to_string(), Reply::Busy)).unwrap();
            if let Some(inbox) = m.reply {
                let _ = client.publish(inbox, reply.into()).await;
            }
        }
    });
    let key = shared_key(&[&a], "orders", "backoffice:*").await;
    let r = api(&a, "GET", "/api/v1/routes/R-SOMEWHERE", &key, None).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "owner_unreachable");
    assert_eq!(r.header("retry-after"), Some("2"));
    let why = r.json()["message"].as_str().unwrap().to_owned();
    // Busy, not silent: the answer says so and names it.
    assert!(
        why.contains("ghost") && why.contains("cannot answer now"),
        "{why}"
    );
    busy.abort();
    ghost.abort();
    a.gw.shutdown().await;
}
