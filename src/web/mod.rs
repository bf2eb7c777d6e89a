//! The web listener: what a browser gets, since a browser cannot speak the raw QUIC protocol.
//! One axum router on its own TCP address (`web.listen`), in the same process as the QUIC
//! endpoint and fed by the same state: the feed store, the fleet core, the live positions and
//! the feed hub's wake-ups. Nothing here keeps a second copy of the truth, and instructions go
//! through [`crate::server::commands::handle`] and the log exactly like the QUIC path. What
//! people are shown (the privacy rule on positions, every status and milestone text) comes
//! from [`milepost_core::present`], as on every other surface.
//!
//! # Where things are
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | this map, [`start`], and [`router`]: the one route table |
//! | [`runtime`] | the listener's own threads, at a lower CPU priority than fix ingest |
//! | [`config`] | [`WebConfig`], the `[web]` section (brand, driver display, limits, the map's tile source) |
//! | [`state`] | [`state::WebState`], what every handler is given |
//! | [`error`] | [`error::WebError`]: status, code, JSON answer |
//! | [`respond`] | the one header helper, the header sets (no-store, page headers), JSON |
//! | [`auth`] | tokens from a request, verification, the audiences' rules, the page cookie |
//! | [`assets`] | embedded scripts and styles (gzip, versioning), brand style sheet and logo |
//! | [`brands`] | carriers' brands set through the API, and which brand a page wears |
//! | [`views`] | the JSON views and their builders: parcel, route, depot |
//! | [`pages`] | the HTML of the tracking page, the dispatcher map and the error page |
//! | [`event`] | one event of a live stream, as SSE or as a WebSocket message |
//! | [`sse`] | live streams: stream slots, the starting cursor, the one producer loop, SSE |
//! | [`ws`] | the same streams over a WebSocket: the origin check, the pump, keep-alives |
//! | [`map`] | the pages' content security policy, with the map's tile source |
//! | [`recipient`] | the recipient's handlers: tracking page, status, instructions, parcel stream |
//! | [`dispatch`] | the dispatcher's handlers: map page, state, route, nearby, depot stream |
//! | [`console`] | the console's lookups: alerts with their handling, search, a route's trail |
//! | [`embed`] | framing by allowed origins, the CORS status widget |
//! | [`dashboard`] | a depot's numbers over the last days (uPlot charts and tables), `/dashboard` |
//! | [`optout`] | the opt-out page of notification messages, `/n/optout/{token}` |
//! | [`api`] | the back-office API `/api/v1`: its own map, errors, keys and OpenAPI document |
//!
//! Imports run one way: the handlers (`recipient`, `dispatch`) use `views`, `pages`, `sse` and
//! `auth`; `pages` uses `assets` and `views`; all of them use `error`, `respond`, `state` and
//! `config`, which use nothing above them. No file of `web/` imports this one, and each item
//! is imported from the file that defines it (the re-exports below are for the rest of the
//! crate).
//!
//! # Adding a page or an endpoint
//!
//! 1. The data: a view struct (`#[derive(Serialize)]`) and the function that builds it from
//!    [`crate::server::shared::Shared`] go in `views/` (`parcel.rs` for what a recipient sees,
//!    `route.rs`/`depot.rs` for a dispatcher's; `common.rs` if both use it). Texts come from
//!    [`milepost_core::present`].
//! 2. The HTML, if it is a page: a `render_*` function in [`pages`], every foreign string
//!    through [`pages::escape`], script state through [`pages::script_json`].
//! 3. The handler: an `async fn` in the audience's file, [`recipient`] or [`dispatch`]. It
//!    checks the path ([`auth::check_tracking`]) and the token ([`auth::authorize_parcel`],
//!    [`auth::authorize_dispatcher`], or [`auth::page_auth`] for a page), then answers with
//!    [`respond::json`] or [`pages::html`]; errors are [`error::WebError`] (pages show them
//!    with [`pages::error_page`]). Live updates: implement [`sse::Audience`] and call
//!    [`sse::open`]. Fixed headers only through [`respond::set_headers`] (or
//!    [`respond::with_headers`]).
//! 4. The route: one line in [`router`], and one row in the table below.
//!
//! # Routes
//!
//! | method and path | who | what |
//! | --- | --- | --- |
//! | `GET /t/{tracking}?token=T` | recipient | stores T in an HttpOnly cookie, renders the page |
//! | `GET /t/{tracking}` | recipient | the tracking page |
//! | `GET /t/{tracking}/status` | recipient | the parcel view as JSON |
//! | `GET /t/{tracking}/events?after=N` | recipient | live (a WebSocket when the request is a handshake, else SSE): `status`, `milestone` (id = offset), `message`, `position` |
//! | `POST /t/{tracking}/instructions` | recipient | `{"text": ...}` for the driver (logged) |
//! | `GET /t/{tracking}/proof/{sha256}` | recipient | the delivery photo or signature (if allowed) |
//! | `GET /dispatch?token=T`, `GET /dispatch` | dispatcher | the console: the depot map and its lists |
//! | `GET /dispatch/state` | dispatcher | drivers, routes and stops, recent alerts, feed offset |
//! | `GET /dispatch/routes/{route}` | dispatcher | one route's progress and ETAs |
//! | `GET /dispatch/nearby?lat=&lon=&radius_m=` | dispatcher | drivers near a point |
//! | `GET /dispatch/alerts?state=open\|all` | dispatcher | the depot's alerts with their handling ([`console`]) |
//! | `POST /dispatch/alerts/{id}/{acknowledge\|resolve}` | dispatcher | handles an alert (a log record) |
//! | `GET /dispatch/search?q=` | dispatcher | drivers, routes and parcels of the depot ([`console`]) |
//! | `GET /dispatch/routes/{route}/trail` | dispatcher | where the route's driver went, for playback ([`console`]) |
//! | `GET /dispatch/events?after=N` | dispatcher | live (WebSocket or SSE): `dispatch` (id = offset), `route`, `positions`, `resync` |
//! | `GET /assets/{file}`, `/brand.css`, `/brand/logo.svg` | anyone | static files, branding |
//! | `/api/v1/...` | back office, dispatcher tools | the API: see [`api`] and `/api/v1/docs` |
//!
//! # Tokens
//!
//! A link carries the token once (`?token=`, as sent by SMS or e-mail). The page then keeps it
//! in an HttpOnly, `SameSite=Lax` cookie scoped to the page's own path (`/t/{tracking}` or
//! `/dispatch`), removes it from the address bar, and every API call and event stream of that
//! page is authenticated by the cookie: scripts never see the token. API clients may send
//! `Authorization: Bearer T` instead. Commands also require a JSON body, which a cross-site
//! form cannot send, so the cookie cannot be used for cross-site request forgery.

pub mod api;
pub mod assets;
pub mod auth;
pub mod brands;
pub mod config;
pub mod console;
pub mod dashboard;
pub mod dispatch;
pub mod embed;
pub mod error;
pub mod event;
pub mod map;
pub mod optout;
pub mod pages;
pub mod recipient;
pub mod respond;
pub mod runtime;
pub mod selfservice;
pub mod sse;
pub mod state;
pub mod views;
pub mod ws;

pub use config::{ApiConfig, DriverDisplay, WebConfig};

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::server::shared::Shared;
use crate::web::error::WebError;
use crate::web::state::WebState;

/// Largest request body accepted (instructions are at most 1,000 bytes of text).
const MAX_BODY: usize = 16 * 1024;

/// Binds `addr` and serves the pages until `stop` fires; returns the bound address and what
/// resolves once the listener has stopped.
pub async fn start(
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, runtime::Served)> {
    shared
        .cfg
        .web
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let shared_cfg = shared.cfg.clone();
    let brands = brands::Brands::open(&shared_cfg.data_dir)?;
    let state = Arc::new(WebState {
        shared,
        stop: stop.clone(),
        streams: AtomicUsize::new(0),
        api: api::state::ApiState::new(&shared_cfg),
        brands,
    });
    let (threads, nice) = (shared_cfg.web.threads, shared_cfg.web.nice);
    // In a cluster, brands set through any gateway's API are kept here too.
    if let Some(c) = state.shared.cluster.clone() {
        let held = state.brands.all();
        let st = state.clone();
        let apply: crate::cluster::brands::ApplyBrand =
            Arc::new(move |carrier, brand| st.brands.put(carrier, brand));
        tokio::spawn(crate::cluster::brands::follow(c, held, apply, stop.clone()));
    }
    // Folding only what it owns, it answers the API calls other gateways relay to it.
    if let Some(c) = state.shared.cluster.clone() {
        if state.shared.owned.folds_owned_only() {
            let handler = api::relay::responder(router(state.clone()), state.shared.owned.clone());
            tokio::spawn(crate::cluster::relay::serve(c, handler, stop.clone()));
        }
    }
    let app = router(state);
    let mut stop = stop;
    // The listener moves to the runtime it is served on (a tokio socket belongs to one).
    let listener = listener.into_std()?;
    let served = runtime::spawn_serving(threads, nice, async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "web listener failed");
                return;
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "web listener failed");
        }
    })?;
    Ok((local_addr, served))
}

/// The router: every route of the listener, in one place (public for tests that want to
/// serve it themselves).
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .merge(api::router(&state))
        .route("/t/{tracking}", get(recipient::tracking))
        .route("/t/{tracking}/status", get(recipient::parcel_status))
        .route(
            "/t/{tracking}/widget",
            get(embed::widget).options(embed::preflight),
        )
        .route("/t/{tracking}/events", get(recipient::parcel_events))
        .route("/t/{tracking}/instructions", post(recipient::instructions))
        .route(
            "/t/{tracking}/delivery",
            get(selfservice::get_delivery).post(selfservice::post_delivery),
        )
        .route(
            "/t/{tracking}/messages",
            get(selfservice::get_messages).post(selfservice::post_message),
        )
        .route("/t/{tracking}/proof/{sha256}", get(recipient::parcel_proof))
        .route("/n/optout/{token}", get(optout::show).post(optout::confirm))
        .route("/dashboard", get(dashboard::dashboard))
        .route("/dashboard/data", get(dashboard::data))
        .route("/dispatch", get(dispatch::dispatch))
        .route("/dispatch/state", get(dispatch::depot_state))
        .route("/dispatch/routes/{route}", get(dispatch::route_detail))
        .route("/dispatch/routes/{route}/trail", get(console::trail))
        .route("/dispatch/alerts", get(console::alerts))
        .route("/dispatch/search", get(console::search))
        .route("/dispatch/nearby", get(dispatch::nearby))
        .route("/dispatch/exceptions", get(dispatch::exceptions))
        .route(
            "/dispatch/alerts/{id}/{action}",
            post(dispatch::handle_alert),
        )
        .route("/dispatch/events", get(dispatch::depot_events))
        .route("/assets/{file}", get(assets::asset))
        .route("/brand.css", get(assets::brand_css))
        .route("/brand/logo.svg", get(assets::brand_logo))
        .fallback(|| async { pages::error_page(None, &WebError::NotFound("no such page".into())) })
        .method_not_allowed_fallback(|| async {
            api::error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
