//! The API's side of [`crate::cluster::relay`], on gateways that fold only the partitions they
//! own: [`to_owner`] is a layer on `/api/v1` that relays a call answered 404 or 421 here to the
//! other gateways and answers with the holder's response (header `x-milepost-served-by` names it);
//! [`responder`] runs the other gateways' relayed calls through this gateway's router.
//!
//! A call the holder cannot be found for in time answers 503 `owner_unreachable` with
//! `Retry-After`, never a false 404. A request body over [`MAX_BODY`] (or without a length) is
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

/// Marks a relayed call: it is answered here and never relayed again.
const RELAYED: &str = "x-milepost-relayed";
/// Names the gateway that answered a relayed call.
const SERVED_BY: &str = "x-milepost-served-by";

/// Headers that belong to one hop, not to the call.
fn end_to_end(name: &str) -> bool {
    !matches!(
        name,
        "host" | "content-length" | "transfer-encoding" | "connection" | "keep-alive"
    )
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
    if req.headers().contains_key(RELAYED) || !relayable {
        return next.run(req).await;
    }
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
    let local = next.run(Request::from_parts(parts, Body::from(body))).await;
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
        Outcome::Unreachable { why } => {
            let mut resp = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "owner_unreachable", why)
                .into_response();
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("2"));
            resp
        }
    }
}

/// Runs the other gateways' relayed calls through `router` (this gateway's own, whole).
pub fn responder(router: axum::Router) -> relay::Handler {
    Arc::new(move |call: Call| {
        let router = router.clone();
        Box::pin(async move {
            let mut req = Request::builder()
                .method(call.method.as_str())
                .uri(&call.uri);
            for (k, v) in &call.headers {
                req = req.header(k.as_str(), v.as_slice());
            }
            let Ok(req) = req
                .header(RELAYED, call.from.as_str())
                .body(Body::from(call.body))
            else {
                return Reply::Miss;
            };
            let Ok(resp) = router.oneshot(req).await;
            if elsewhere(resp.status()) {
                return Reply::Miss;
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
