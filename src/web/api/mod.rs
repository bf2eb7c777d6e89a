//! The back-office API, `/api/v1` on the web listener: JSON in and out, for the order,
//! routing and warehouse systems of a carrier and for dispatchers' tools. Its OpenAPI 3.1
//! document is generated from the handlers and their types ([utoipa]) and served at
//! `/api/v1/openapi.json`, with a reference page rendered from it at `/api/v1/docs`.
//!
//! Writes go through the same command path and log records as the QUIC commands
//! ([`crate::server::commands`]): a route assigned here is the same `RouteAssigned` record, an
//! outcome recorded here the same `OutcomeReported` one, checked by the same core.
//!
//! # Where things are
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | this map and [`router`] |
//! | [`state`] | [`state::ApiState`]: keys, proof files, idempotency answers, rate limits |
//! | [`error`] | [`error::ApiError`]: one JSON error shape, statuses 400-503 |
//! | [`extract`] | JSON bodies and query strings, refused with the field named |
//! | [`caller`] | who calls (API key or dispatcher token) and their scopes |
//! | [`limits`] | a token bucket per caller |
//! | [`idempotency`] | `Idempotency-Key` on writes |
//! | [`write`] | how a write handler runs: under its key, in a task of its own |
//! | [`views`] | the answers' types (route, stop, parcel, driver, lists) and their builders |
//! | [`routes`] | routes: put, get, list, cancel, re-sequence, add and remove stops |
//! | [`route_body`] | a route as the API takes it, with contacts, addresses, carrier; their checks |
//! | [`parcels`] | parcels: status, bulk status, tracking links, outcomes |
//! | [`drivers`] | drivers: one driver, a depot's drivers |
//! | [`proofs`] | proof files: upload, download |
//! | [`alerts`] | a depot's alerts: list, acknowledge, resolve |
//! | [`webhooks`] | webhook endpoints: list with recent deliveries, add, remove |
//! | [`carriers`] | a carrier: its settings, its brand set through the API |
//! | [`docs`] | the OpenAPI document ([`docs::ApiDoc`]) and its reference page |
//!
//! Imports run one way: `mod.rs` uses the handlers; the handlers (`routes`, `parcels`,
//! `drivers`, `proofs`, `alerts`, `webhooks`) use `write`, `caller`, `views`, `extract`,
//! `error` and the web listener's `state`, which holds [`state::ApiState`]; `state` uses
//! `limits` and `idempotency`, which use nothing above them.
//!
//! # Adding an endpoint
//! A handler with `#[utoipa::path(...)]` in the file of its resource, its answer type in
//! [`views`] (`#[derive(Serialize, ToSchema)]`), one line in [`router`] and one in
//! [`docs::ApiDoc`]'s `paths(...)`. Errors are [`error::ApiError`]s; the common error answers and
//! the bearer security requirement are added to every operation of the document by
//! [`docs::Common`]. A write runs through [`write::write`] (its `Idempotency-Key`, its own
//! task).

pub mod addresses;
pub mod alerts;
pub mod analytics;
pub mod caller;
pub mod carriers;
pub mod docs;
pub mod drivers;
pub mod error;
pub mod exceptions;
pub mod extract;
pub mod idempotency;
pub mod limits;
pub mod parcels;
pub mod proofs;
pub mod recipients;
pub mod relay;
pub mod route_body;
pub mod routes;
pub mod service;
pub mod state;
pub mod views;
pub mod webhooks;
pub mod write;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

use crate::web::api::error::ApiError;
use crate::web::state::WebState;

/// The `/api/v1` routes.
pub fn router(st: &Arc<WebState>) -> Router<Arc<WebState>> {
    let api = &st.cfg().api;
    // Proof files have their own limit (`[proofs] max_bytes`); body_bytes answers 413 in
    // the API's error shape when a body is over it.
    let proof_limit = st.shared.proofs.max_bytes();
    let json = Router::new()
        .route(
            "/api/v1/routes",
            post(routes::create_route).get(routes::list_routes),
        )
        .route(
            "/api/v1/routes/{route_id}",
            put(routes::put_route).get(routes::get_route),
        )
        .route(
            "/api/v1/routes/{route_id}/cancel",
            post(routes::cancel_route),
        )
        .route(
            "/api/v1/routes/{route_id}/sequence",
            post(routes::resequence),
        )
        .route("/api/v1/routes/{route_id}/stops", post(routes::add_stop))
        .route(
            "/api/v1/routes/{route_id}/stops/{stop_id}",
            axum::routing::delete(routes::remove_stop),
        )
        .route("/api/v1/parcels/status", post(parcels::bulk_status))
        .route("/api/v1/parcels/{tracking}", get(parcels::get_parcel))
        .route(
            "/api/v1/parcels/{tracking}/link",
            post(parcels::tracking_link),
        )
        .route(
            "/api/v1/parcels/{tracking}/outcome",
            post(parcels::record_outcome),
        )
        .route(
            "/api/v1/parcels/{tracking}/delivery",
            get(service::get_delivery).post(service::post_delivery),
        )
        .route(
            "/api/v1/parcels/{tracking}/messages",
            get(service::get_messages),
        )
        .route(
            "/api/v1/depots/{depot}/exceptions",
            get(exceptions::list_exceptions),
        )
        .route(
            "/api/v1/parcels/{tracking}/recipient",
            put(recipients::put_recipient)
                .get(recipients::get_recipient)
                .delete(recipients::delete_recipient),
        )
        .route(
            "/api/v1/parcels/{tracking}/notifications",
            get(recipients::parcel_notifications),
        )
        .route(
            "/api/v1/depots/{depot}/notifications/dead",
            get(recipients::list_dead),
        )
        .route(
            "/api/v1/depots/{depot}/notifications/dead/{id}/retry",
            post(recipients::retry_dead),
        )
        .route(
            "/api/v1/depots/{depot}/notifications/dead/{id}",
            axum::routing::delete(recipients::dismiss_dead),
        )
        .route("/api/v1/analytics", get(analytics::get_analytics))
        .route(
            "/api/v1/exports/{carrier}/{day}/{file}",
            get(analytics::get_export),
        )
        .route("/api/v1/drivers/{driver}", get(drivers::get_driver))
        .route(
            "/api/v1/drivers/{driver}/profile",
            put(drivers::put_profile)
                .get(drivers::get_profile)
                .delete(drivers::delete_profile),
        )
        .route(
            "/api/v1/depots/{depot}/drivers",
            get(drivers::depot_drivers),
        )
        .route("/api/v1/depots/{depot}/alerts", get(alerts::list_alerts))
        .route(
            "/api/v1/depots/{depot}/alerts/{id}/acknowledge",
            post(alerts::acknowledge),
        )
        .route(
            "/api/v1/depots/{depot}/alerts/{id}/resolve",
            post(alerts::resolve),
        )
        .route(
            "/api/v1/webhooks",
            get(webhooks::list_webhooks).post(webhooks::add_webhook),
        )
        .route(
            "/api/v1/webhooks/{id}",
            axum::routing::delete(webhooks::remove_webhook),
        )
        .route("/api/v1/carriers/{carrier}", get(carriers::get_carrier))
        .route(
            "/api/v1/carriers/{carrier}/brand",
            put(carriers::put_brand).delete(carriers::delete_brand),
        )
        .layer(DefaultBodyLimit::max(api.max_body_bytes));
    let files = Router::new()
        .route(
            "/api/v1/proofs/{sha256}",
            put(proofs::put_proof).get(proofs::get_proof),
        )
        .layer(DefaultBodyLimit::max(proof_limit));
    Router::new()
        .merge(json)
        .merge(files)
        .route("/api/v1/openapi.json", get(docs::openapi_json))
        .route("/api/v1/docs", get(docs::reference_page))
        .route(
            "/api/v1/{*rest}",
            axum::routing::any(|| async { ApiError::not_found("no such API endpoint") }),
        )
        // Folding only what it owns, a call about what another gateway holds goes there.
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            relay::to_owner,
        ))
}
