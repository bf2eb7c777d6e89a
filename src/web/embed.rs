//! Embedding the tracking page in a carrier's or a shop's own site: the origins of
//! `web.embed_origins` may frame it (its CSP's `frame-ancestors`) and read a small status
//! widget, `GET /t/{tracking}/widget?token=...`, across origins (CORS, with its preflight).
//! Other origins are refused both (no `Access-Control-Allow-Origin`, `frame-ancestors`
//! without them).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use milepost_proto::route::TrackingNumber;
use serde::Serialize;

use crate::web::auth::{authorize_parcel, check_tracking, PageQuery};
use crate::web::config::WebConfig;
use crate::web::error::WebError;
use crate::web::respond::json;
use crate::web::state::WebState;
use crate::web::views::parcel::parcel_view;

/// The tracking page's content security policy: framed by `web.embed_origins` only (none by
/// default), tiles from the map's source.
pub fn tracking_csp(cfg: &WebConfig) -> Option<HeaderValue> {
    let frame = match cfg.embed_origins.is_empty() {
        true => "'none'".to_owned(),
        false => cfg.embed_origins.join(" "),
    };
    crate::web::map::csp_header(&cfg.map, &frame)
}

/// The request's `Origin`, if it is one of `web.embed_origins`.
fn allowed_origin(cfg: &WebConfig, headers: &HeaderMap) -> Option<HeaderValue> {
    let o = headers.get(header::ORIGIN)?;
    let s = o.to_str().ok()?;
    cfg.embed_origins.iter().any(|a| a == s).then(|| o.clone())
}

/// Adds the CORS answer for an allowed origin (and `Vary: Origin` always).
fn cors(cfg: &WebConfig, headers: &HeaderMap, r: &mut Response) {
    let h = r.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = allowed_origin(cfg, headers) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
}

/// What a widget shows.
#[derive(Debug, Serialize)]
pub struct Widget {
    /// The parcel.
    pub tracking: String,
    /// Its state (`OutForDelivery`, `Delivered`...).
    pub state: milepost_proto::route::ParcelState,
    /// In words, as the tracking page's first line.
    pub status_line: String,
    /// The window, in words, if any.
    pub window_text: Option<String>,
    /// Best arrival estimate, UTC ms.
    pub eta_ms: Option<i64>,
    /// Stops before this one.
    pub stops_away: Option<u32>,
}

/// `GET /t/{tracking}/widget`: the parcel's status in a few fields, for a widget on an allowed
/// origin's page (the token in the query or as a bearer; no cookie across sites).
pub async fn widget(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let answer = (|| {
        check_tracking(&tracking)?;
        let Ok(Query(q)) = q else {
            return Err(WebError::BadRequest("bad query".into()));
        };
        // The query's token, as a bearer would bring it.
        let mut auth = headers.clone();
        if let Some(t) = q.token.as_deref() {
            let v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| WebError::BadToken("token refused"))?;
            auth.insert(header::AUTHORIZATION, v);
        }
        authorize_parcel(&st.shared, &auth, &tracking)?;
        let view = parcel_view(&st.shared, &TrackingNumber(tracking.clone()))
            .ok_or_else(|| WebError::NotFound(format!("no parcel {tracking}")))?;
        let s = view.status;
        Ok(json(Widget {
            tracking: s.tracking,
            state: s.state,
            status_line: s.status_line,
            window_text: s.window_text,
            eta_ms: s.eta_ms,
            stops_away: s.stops_away,
        }))
    })();
    let mut r = answer.unwrap_or_else(IntoResponse::into_response);
    cors(st.cfg(), &headers, &mut r);
    r
}

/// `OPTIONS /t/{tracking}/widget`: the CORS preflight (for a widget sending the token as a
/// bearer): allowed origins may `GET` with `Authorization`.
pub async fn preflight(State(st): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    cors(st.cfg(), &headers, &mut r);
    if allowed_origin(st.cfg(), &headers).is_some() {
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    r
}
