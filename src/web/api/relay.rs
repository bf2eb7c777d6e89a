//! The API's side of [`crate::cluster::relay`], on gateways that fold only the partitions they
//! own: [`to_owner`] is a layer on `/api/v1` that relays a call answered 404 or 421 here to the
//! other gateways and answers with the holder's response (header `x-milepost-served-by` names it);
//! [`responder`] runs the other gateways' relayed calls through this gateway's router.
//!
//! A call the holder cannot be found for in time answers 503 `owner_unreachable` with
//! `Retry-After` (504 `outcome_unknown` for a write, which the silent gateway may have
//! applied), never a false 404. A request body over [`MAX_BODY`] (or without a length) is
//! not relayed; a response over it answers 421 `held_elsewhere` naming the gateway to call.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::cluster::relay::{self, Call, Outcome, Reply, MAX_BODY};
use crate::web::api::error::ApiError;
use crate::web::state::WebState;

/// Marks a call relayed from another gateway (a request extension, which a client cannot
/// set): it is answered here, never relayed again, and not charged to the caller's rate limit
/// again.
#[derive(Clone, Copy, Debug)]
pub struct Relayed;
/// Names the gateway that answered a relayed call.
const SERVED_BY: &str = "x-milepost-served-by";

/// Headers that belong to one hop, not to the call.
fn end_to_end(name: &str) -> bool {
    !matches!(
        name,
        "host" | "content-length" | "transfer-encoding" | "connection" | "keep-alive"
    )
}

/// The depot a call names: `/api/v1/depots/{depot}/...`, or a `depot` query parameter.
fn depot_named(uri: &axum::http::Uri) -> Option<String> {
    let decoded = |s: &str| {
        form_urlencoded::parse(format!("d={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    if let Some(rest) = uri.path().strip_prefix("/api/v1/depots/") {
        let d = rest.split('/').next().unwrap_or_default();
        return decoded(d).filter(|d| !d.is_empty());
    }
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "depot")
        .map(|(_, v)| v.into_owned())
}

/// Not answered here: not found (an id of a partition held elsewhere), or misdirected (a
/// route whose depot is held elsewhere).
fn elsewhere(status: StatusCode) -> bool {
    status == StatusCode::NOT_FOUND || status == StatusCode::MISDIRECTED_REQUEST
}

/// Relays a call answered 404 or 421 here to the gateway that holds what it names.
pub async fn to_owner(State(st): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let cluster = match &st.shared.cluster {
        Some(c) if st.shared.owned.folds_owned_only() => c.clone(),
        _ => return next.run(req).await,
    };
    let length = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let bodyless = matches!(req.method().as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS");
    let relayable = length.is_some_and(|n| n <= MAX_BODY) || (length.is_none() && bodyless);
    // A call about a depot (`/api/v1/depots/{depot}/...`, `?depot=`) is answered only by the
    // gateway that holds it: anywhere else its lists would be empty, not missing.
    let held_elsewhere = depot_named(req.uri())
        .and_then(|d| st.shared.serves(&d).err())
        .map(|h| ApiError::from(crate::web::error::WebError::HeldElsewhere(h)));
    if req.extensions().get::<Relayed>().is_some() {
        return match held_elsewhere {
            Some(e) => e.into_response(),
            None => next.run(req).await,
        };
    }
    // Only a caller that says who it is (each gateway checks it again): an anonymous 404 is
    // answered here.
    let authenticated = req.headers().contains_key("authorization");
    if !relayable || !authenticated {
        return next.run(req).await;
    }
    let writes = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is larger than its Content-Length said",
        )
        .into_response();
    };
    let call = Call {
        from: cluster.node.clone(),
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .filter(|(k, _)| end_to_end(k.as_str()))
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: body.to_vec(),
    };
    let local = match held_elsewhere {
        Some(e) => e.into_response(),
        None => next.run(Request::from_parts(parts, Body::from(body))).await,
    };
    if !elsewhere(local.status()) {
        return local;
    }
    match relay::ask(&cluster, &st.shared.owned, &call).await {
        Outcome::Missed => local,
        Outcome::Hit {
            node,
            status,
            headers,
            body,
        } => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::from_bytes(&v)) {
                    if end_to_end(k.as_str()) {
                        resp.headers_mut().append(k, v);
                    }
                }
            }
            if let Ok(v) = HeaderValue::from_str(&node) {
                resp.headers_mut().insert(SERVED_BY, v);
            }
            resp
        }
        Outcome::TooLarge { node } => {
            let web = (0..st.shared.owned.partitions())
                .filter_map(|p| st.shared.owned.owner_of(p))
                .find(|a| a.node == node)
                .and_then(|a| a.web)
                .unwrap_or_default();
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "held_elsewhere",
                format!(
                    "gateway {node} ({web}) holds this, and its answer is too large to relay: \
                     call it directly"
                ),
            )
            .into_response()
        }
        // A write may have been applied by the gateway that did not answer in time.
        Outcome::Unreachable { why } if writes => {
            let mut resp = ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "outcome_unknown",
                format!(
                    "{why}; the write may or may not have been applied: retry with the same \
                     Idempotency-Key, or read before writing again"
                ),
            )
            .into_response();
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("2"));
            resp
        }
        Outcome::Unreachable { why } => {
            let mut resp = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "owner_unreachable", why)
                .into_response();
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("2"));
            resp
        }
    }
}

/// Runs the other gateways' relayed calls through `router` (this gateway's own, whole): API
/// calls only, a few at a time, each within the relay's deadline. A call not answered here
/// (404, 421) is a miss; one that cannot be answered now (a 5xx, or a miss while this gateway
/// is taking a partition over, which may hold it) is "busy", so that the asker says "retry"
/// rather than a false 404.
pub fn responder(router: axum::Router, owned: Arc<crate::cluster::lease::Owned>) -> relay::Handler {
    let permits = Arc::new(tokio::sync::Semaphore::new(32));
    Arc::new(move |call: Call| {
        let (router, owned, permits) = (router.clone(), owned.clone(), permits.clone());
        Box::pin(async move {
            if !call.uri.starts_with("/api/v1/") {
                return Reply::Miss;
            }
            let Ok(_permit) = permits.try_acquire() else {
                return Reply::Busy;
            };
            let mut req = Request::builder()
                .method(call.method.as_str())
                .uri(&call.uri);
            for (k, v) in &call.headers {
                req = req.header(k.as_str(), v.as_slice());
            }
            let Ok(mut req) = req.body(Body::from(call.body)) else {
                return Reply::Miss;
            };
            req.extensions_mut().insert(Relayed);
            let Ok(Ok(resp)) = tokio::time::timeout(relay::DEADLINE, router.oneshot(req)).await
            else {
                return Reply::Busy;
            };
            if resp.status().is_server_error() {
                return Reply::Busy;
            }
            if elsewhere(resp.status()) {
                return match owned.taking_over().is_empty() {
                    true => Reply::Miss,
                    false => Reply::Busy,
                };
            }
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            match to_bytes(resp.into_body(), MAX_BODY).await {
                Ok(body) => Reply::Hit {
                    status,
                    headers,
                    body: body.to_vec(),
                },
                Err(_) => Reply::TooLarge,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::get;

    use super::*;
    use crate::cluster::lease::Owned;

    fn call(uri: &str) -> Call {
        Call {
            from: "other".into(),
            method: "GET".into(),
            uri: uri.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `/api/v1/ok` 200, `/api/v1/broken` 500, anything else 404.
    fn router() -> axum::Router {
        axum::Router::new()
            .route("/api/v1/ok", get(|| async { "here" }))
            .route(
                "/api/v1/broken",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
    }

    #[tokio::test]
    async fn a_peer_answers_hit_miss_or_busy() {
        let owned = Arc::new(Owned::folding_owned(4));
        let answer = responder(router(), owned.clone());
        match answer(call("/api/v1/ok")).await {
            Reply::Hit { status, body, .. } => {
                assert_eq!((status, body.as_slice()), (200, b"here".as_slice()))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(answer(call("/api/v1/gone")).await, Reply::Miss));
        // Not the API: never answered for another gateway.
        assert!(matches!(answer(call("/t/X")).await, Reply::Miss));
        // Failing here is not "not here": the asker must say retry, not 404.
        assert!(matches!(answer(call("/api/v1/broken")).await, Reply::Busy));
        // Leased but not caught up yet: what it misses may be in the partition it takes over.
        owned.set(2, true);
        assert_eq!(owned.taking_over(), vec![2]);
        assert!(matches!(answer(call("/api/v1/gone")).await, Reply::Busy));
        owned.set_held(2, true);
        assert!(matches!(answer(call("/api/v1/gone")).await, Reply::Miss));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_running_its_fill_of_calls_answers_busy() {
        let (inside, release) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(tokio::sync::Semaphore::new(0)),
        );
        let (i, r) = (inside.clone(), release.clone());
        let slow = axum::Router::new().route(
            "/api/v1/slow",
            get(move || {
                let (i, r) = (i.clone(), r.clone());
                async move {
                    i.fetch_add(1, Ordering::SeqCst);
                    let _ = r.acquire().await.map(|p| p.forget());
                    "done"
                }
            }),
        );
        let answer = responder(slow, Arc::new(Owned::new(4)));
        let running: Vec<_> = (0..32)
            .map(|_| tokio::spawn(answer(call("/api/v1/slow"))))
            .collect();
        while inside.load(Ordering::SeqCst) < 32 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // The 33rd is not queued behind the others: "busy", at once.
        assert!(matches!(answer(call("/api/v1/slow")).await, Reply::Busy));
        release.add_permits(32);
        for r in running {
            assert!(matches!(r.await.unwrap(), Reply::Hit { status: 200, .. }));
        }
    }

    #[test]
    fn the_depot_a_call_names() {
        let d = |u: &str| depot_named(&u.parse::<axum::http::Uri>().unwrap());
        assert_eq!(d("/api/v1/depots/north/alerts").as_deref(), Some("north"));
        assert_eq!(d("/api/v1/depots/dc%2D7/drivers").as_deref(), Some("dc-7"));
        assert_eq!(
            d("/api/v1/routes?limit=5&depot=south").as_deref(),
            Some("south")
        );
        assert_eq!(d("/api/v1/routes/R-1"), None);
        assert_eq!(d("/api/v1/depots/"), None);
        assert_eq!(d("/api/v1/routes?depotx=a"), None);
    }
}
