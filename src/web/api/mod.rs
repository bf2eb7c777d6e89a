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
//! | `mod.rs` | this map, [`ApiState`], [`router`], the OpenAPI document ([`ApiDoc`]) |
//! | [`error`] | [`error::ApiError`]: one JSON error shape, statuses 400-503 |
//! | [`extract`] | JSON bodies and query strings, refused with the field named |
//! | [`caller`] | who calls (API key or dispatcher token), scopes, rate limits |
//! | [`idempotency`] | `Idempotency-Key` on writes |
//! | [`views`] | the answers' types (route, stop, parcel, driver, lists) and their builders |
//! | [`routes`] | routes: put, get, list, cancel, re-sequence, add and remove stops |
//! | [`parcels`] | parcels: status, bulk status, tracking links, outcomes |
//! | [`drivers`] | drivers: one driver, a depot's drivers |
//! | [`proofs`] | proof files: upload, download |
//! | [`docs`] | the OpenAPI document and its reference page |
//!
//! # Adding an endpoint
//! A handler with `#[utoipa::path(...)]` in the file of its resource, its answer type in
//! [`views`] (`#[derive(Serialize, ToSchema)]`), one line in [`router`] and one in
//! [`ApiDoc`]'s `paths(...)`. Errors are [`error::ApiError`]s; the common error answers and
//! the bearer security requirement are added to every operation of the document by
//! [`docs::Common`]. A write takes an `Idempotency-Key` through
//! [`idempotency::Idempotency::run`].

pub mod caller;
pub mod docs;
pub mod drivers;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod parcels;
pub mod proofs;
pub mod routes;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use utoipa::OpenApi;

use crate::apikeys::KeyStore;
use crate::config::Config;
use crate::proofs::ProofStore;
use crate::web::api::caller::RateLimits;
use crate::web::api::docs::Common;
use crate::web::api::error::ApiError;
use crate::web::api::idempotency::Idempotency;
use crate::web::state::WebState;

/// What the API keeps beside the gateway's shared state.
pub struct ApiState {
    /// The API keys of the data directory.
    pub keys: KeyStore,
    /// Proof files.
    pub proofs: ProofStore,
    /// Answers kept for idempotency keys.
    pub idempotency: Idempotency,
    /// Per-caller rate limits.
    pub limits: RateLimits,
}

impl ApiState {
    /// The API's state for a gateway configured by `cfg`.
    pub fn new(cfg: &Config) -> ApiState {
        let api = &cfg.web.api;
        ApiState {
            keys: KeyStore::new(&cfg.data_dir),
            proofs: ProofStore::new(&cfg.data_dir, api.max_proof_bytes),
            idempotency: Idempotency::new(
                Duration::from_secs(api.idempotency_ttl_s),
                api.idempotency_max,
            ),
            limits: RateLimits::new(api.rate_per_s, api.burst),
        }
    }
}

/// The OpenAPI document of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Milepost back-office API",
        description = "Routes, parcels, outcomes, proof files and drivers of a Milepost \
                       gateway. Authenticate with an API key (`milepost key create`) or a \
                       dispatcher token as `Authorization: Bearer`. Errors are \
                       `{code, message, field}`. Writes take an `Idempotency-Key` header. \
                       Lists are paginated with `cursor` and `limit`."
    ),
    paths(
        routes::put_route,
        routes::create_route,
        routes::list_routes,
        routes::get_route,
        routes::cancel_route,
        routes::resequence,
        routes::add_stop,
        routes::remove_stop,
        parcels::get_parcel,
        parcels::bulk_status,
        parcels::tracking_link,
        parcels::record_outcome,
        drivers::get_driver,
        drivers::depot_drivers,
        proofs::put_proof,
        proofs::get_proof,
    ),
    modifiers(&Common),
    tags(
        (name = "routes", description = "A depot's routes: assign, follow, change, cancel"),
        (name = "parcels", description = "Parcel status, history, tracking links, outcomes"),
        (name = "drivers", description = "Live positions and current routes"),
        (name = "proofs", description = "Proof-of-delivery photos and signatures"),
    )
)]
pub struct ApiDoc;

/// The `/api/v1` routes.
pub fn router(st: &Arc<WebState>) -> Router<Arc<WebState>> {
    let api = &st.cfg().api;
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
        .route("/api/v1/drivers/{driver}", get(drivers::get_driver))
        .route(
            "/api/v1/depots/{depot}/drivers",
            get(drivers::depot_drivers),
        )
        .layer(DefaultBodyLimit::max(api.max_body_bytes));
    let files = Router::new()
        .route(
            "/api/v1/proofs/{sha256}",
            put(proofs::put_proof).get(proofs::get_proof),
        )
        .layer(DefaultBodyLimit::max(api.max_proof_bytes));
    Router::new()
        .merge(json)
        .merge(files)
        .route("/api/v1/openapi.json", get(docs::openapi_json))
        .route("/api/v1/docs", get(docs::reference_page))
        .route(
            "/api/v1/{*rest}",
            axum::routing::any(|| async { ApiError::not_found("no such API endpoint") }),
        )
}
