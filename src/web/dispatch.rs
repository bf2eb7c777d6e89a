//! Everything a depot's dispatcher calls, under `/dispatch`: the map page, the depot's state as
//! JSON, one route's progress, "who is near here", and the depot's event stream
//! ([`DepotStream`]: route events, route summaries and coalesced positions). Every answer is
//! scoped to the depot of the dispatcher's token; views come from `views::depot` and
//! `views::route`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use milepost_core::feed::{FeedKey, TooOld};
use milepost_proto::route::{DepotId, RouteId, Update};
use milepost_proto::DriverId;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::feed::{LagTarget, Mailbox};
use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::api::alerts::wanted;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::exceptions::ExceptionList;
use crate::web::auth::{authorize_dispatcher, check_dispatcher, page_auth, PageQuery};
use crate::web::error::WebError;
use crate::web::pages::{error_page, html, render_dispatch};
use crate::web::respond::json;
use crate::web::sse::{
    self, data, send, start_cursor, Audience, End, Ev, Named, Next, StreamQuery,
};
use crate::web::state::WebState;
use crate::web::views::depot::{depot_state_of, DispatchItem, DriverDot, NearbyAnswer};
use crate::web::views::route::{depot_route, depot_routes};
use milepost_core::store::record::AlertAction;

/// How often a dispatcher stream re-reads the depot's routes to catch changes that emit no
/// route event (a delivery, an ETA moving).
const ROUTE_REFRESH: Duration = Duration::from_secs(3);

/// `GET /dispatch`: the dispatcher map of the token's depot.
pub async fn dispatch(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    dispatcher_page(&st, &headers, q, "/dispatch", |depot| {
        let zone = st.shared.cfg.carriers.clock_of_depot(depot);
        render_dispatch(
            &st.brand_of_depot(depot),
            &st.cfg().map,
            depot,
            &milepost_core::present::zone_label(zone, st.shared.now_ms()),
        )
    })
}

/// A page for a depot's dispatcher at `path`: the link's token (then kept in a cookie for
/// `path`) or the cookie must be a dispatcher's; `render` draws the page of its depot. A bad
/// link or token gets the error page.
pub fn dispatcher_page(
    st: &WebState,
    headers: &HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
    path: &str,
    render: impl FnOnce(&str) -> String,
) -> Response {
    let brand = &st.cfg().brand;
    let Ok(Query(q)) = q else {
        return error_page(Some(brand), &WebError::BadRequest("bad link".into()));
    };
    let auth = match page_auth(st, headers, &q, path)
        .and_then(|a| check_dispatcher(&a.claims).map(|_| a))
    {
        Ok(a) => a,
        Err(e) => return error_page(Some(brand), &e),
    };
    let mut page = html(StatusCode::OK, render(&auth.claims.depot), auth.cookie);
    // Tiles come from the map's source.
    if let Some(csp) = crate::web::map::csp_header(&st.cfg().map, "'none'") {
        page.headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
    }
    page
}

/// `GET /dispatch/state`.
pub async fn depot_state(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    Ok(json(depot_state_of(&st.shared, &DepotId(claims.depot))))
}

/// `GET /dispatch/exceptions`: the depot's open failed deliveries (the exception queue).
pub async fn exceptions(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    let open = wanted(Some("open"))?;
    let items = crate::web::api::exceptions::exceptions(&st, &claims.depot, open, 100)?;
    Ok(json(ExceptionList { items }))
}

/// `POST /dispatch/alerts/{id}/{action}` (`acknowledge` or `resolve`, a JSON body): the
/// dispatcher page's handling of an alert, the same record as the API's.
pub async fn handle_alert(
    State(st): State<Arc<WebState>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (claims, token) = authorize_dispatcher(&st.shared, &headers)?;
    // A cross-site form cannot send JSON: with the cookie's SameSite, no forged click.
    let json_body = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Err(ApiError::bad_request("send Content-Type: application/json"));
    }
    let action = match action.as_str() {
        "acknowledge" => AlertAction::Acknowledged,
        "resolve" => AlertAction::Resolved,
        _ => return Err(ApiError::not_found("acknowledge or resolve")),
    };
    let id = id
        .parse::<u64>()
        .map_err(|_| ApiError::not_found("an alert's id is a number"))?;
    let caller = Caller::dispatcher(st.api.carriers.clone(), &claims.depot, &token);
    let depot = claims.depot.clone();
    let after =
        crate::web::api::alerts::handle_alert(&st, &caller, &depot, id, action, String::new())
            .await?;
    Ok(json(after))
}

/// `GET /dispatch/routes/{route}`: one route's progress and ETAs.
pub async fn route_detail(
    State(st): State<Arc<WebState>>,
    Path(route): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    if route.len() > 200 {
        return Err(WebError::NotFound("no such route".into()));
    }
    Ok(json(depot_route(
        &st.shared,
        &DepotId(claims.depot),
        &RouteId(route),
    )?))
}

/// The query of `GET /dispatch/nearby`.
#[derive(Debug, Deserialize)]
pub struct NearbyQuery {
    /// Latitude of the point, degrees.
    pub lat: f64,
    /// Longitude of the point, degrees.
    pub lon: f64,
    /// Radius, metres.
    pub radius_m: f64,
}

/// `GET /dispatch/nearby?lat=&lon=&radius_m=`: the depot's drivers near a point.
pub async fn nearby(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<NearbyQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    let Query(q) = q.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let max_r = st.cfg().max_nearby_radius_m;
    if !(q.lat.is_finite()
        && (-90.0..=90.0).contains(&q.lat)
        && q.lon.is_finite()
        && (-180.0..=180.0).contains(&q.lon))
    {
        return Err(WebError::BadRequest(
            "lat must be -90..90 and lon -180..180".into(),
        ));
    }
    if !(q.radius_m.is_finite() && q.radius_m > 0.0 && q.radius_m <= max_r) {
        return Err(WebError::BadRequest(format!(
            "radius_m must be in (0, {max_r}]"
        )));
    }
    let limit = st.shared.cfg.limits.max_query_results as usize;
    let answer =
        lock(&st.shared.state.positions).nearby(&claims.depot, q.lat, q.lon, q.radius_m, limit);
    Ok(json(NearbyAnswer {
        drivers: answer
            .drivers
            .iter()
            .map(|p| DriverDot::of(&st.shared, p, true))
            .collect(),
        truncated: answer.truncated,
    }))
}

/// `GET /dispatch/events`: a depot's route events, route summaries and coalesced positions.
pub async fn depot_events(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, QueryRejection>,
    up: sse::Upgrade,
) -> Result<Response, WebError> {
    let (claims, token) = authorize_dispatcher(&st.shared, &headers)?;
    let after = start_cursor(&headers, q)?;
    let stream = DepotStream::new(&st.shared, DepotId(claims.depot.clone()));
    sse::open(st, claims, token, after, stream, up, &headers)
}

/// A stable digest of a route summary, to send only the ones that changed.
fn digest(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A depot's event stream: every route event (id = offset), the summaries of the routes that
/// changed, and the drivers that moved, a few times a second at most. A browser whose cursor
/// is unknown or too old is told to reload its state (`resync`).
pub struct DepotStream {
    depot: DepotId,
    /// Shortest time between two position flushes.
    flush: Duration,
    /// The digest of each route summary last sent.
    sent_routes: HashMap<String, u64>,
    /// Routes that route events touched since the summaries were last sent.
    touched: HashSet<RouteId>,
    /// When every route was last re-read (`None`: not yet).
    last_refresh: Option<Instant>,
    /// When positions were last flushed.
    last_flush: Instant,
}

impl DepotStream {
    /// The stream of `depot`.
    pub fn new(shared: &Shared, depot: DepotId) -> DepotStream {
        DepotStream {
            depot,
            flush: Duration::from_millis(shared.cfg.feed.position_flush_ms.max(50)),
            sent_routes: HashMap::new(),
            touched: HashSet::new(),
            last_refresh: None,
            last_flush: Instant::now(),
        }
    }

    /// The summaries of the routes that changed, each sent once per change.
    async fn send_routes(&mut self, shared: &Shared, tx: &mpsc::Sender<Ev>) -> Result<(), End> {
        // The ones events touched now, all of them now and then.
        let refresh_all = self
            .last_refresh
            .is_none_or(|t| t.elapsed() >= ROUTE_REFRESH);
        if !refresh_all && self.touched.is_empty() {
            return Ok(());
        }
        let routes = if refresh_all {
            self.last_refresh = Some(Instant::now());
            depot_routes(shared, &self.depot)
        } else {
            self.touched
                .iter()
                .filter_map(|r| depot_route(shared, &self.depot, r).ok())
                .collect()
        };
        self.touched.clear();
        for r in routes {
            let json = data(&r);
            let h = digest(&json);
            if self.sent_routes.get(&r.route_id) != Some(&h) {
                self.sent_routes.insert(r.route_id.clone(), h);
                send(tx, Ev::new("route", json)).await?;
            }
        }
        Ok(())
    }
}

impl Audience for DepotStream {
    fn keys(&self) -> Vec<FeedKey> {
        vec![
            FeedKey::Depot(self.depot.clone()),
            FeedKey::DepotPositions(self.depot.clone()),
        ]
    }

    fn lag_target(&self) -> LagTarget {
        LagTarget::Depot(self.depot.clone())
    }

    fn last(&self, shared: &Shared) -> u64 {
        lock(&shared.state.feed).depot_last(&self.depot)
    }

    fn read(&self, shared: &Shared, cursor: u64, max: usize) -> Result<Vec<(u64, Update)>, TooOld> {
        lock(&shared.state.feed).depot_after(&self.depot, cursor, max)
    }

    /// No cursor, one from a store that has since been reset, or one older than the depot's
    /// ring: start from now and tell the page to reload its state.
    fn start_over(&mut self, last: u64) -> (u64, Option<Ev>) {
        self.sent_routes.clear();
        let e = Ev::new("resync", "{}").id(last);
        (last, Some(e))
    }

    /// Every driver once at (re)connection: they are state, not events.
    fn first(&mut self, shared: &Shared, mailbox: &Mailbox) -> Option<Ev> {
        lock(&mailbox.moved).clear();
        let all = lock(&shared.state.positions).of_depot(&self.depot.0);
        let dots: Vec<DriverDot> = all
            .iter()
            .map(|p| DriverDot::of(shared, p, false))
            .collect();
        self.last_flush = Instant::now();
        Some(Ev::new("positions", data(&dots)))
    }

    fn event(&mut self, shared: &Shared, offset: u64, u: &Update) -> Option<Named> {
        let Update::Dispatch(d) = u else {
            return None;
        };
        self.touched.insert(d.route_id.clone());
        let zone = shared.cfg.carriers.clock_of_depot(&self.depot.0);
        Some(("dispatch", data(&DispatchItem::of(shared, offset, d, zone))))
    }

    async fn state(
        &mut self,
        shared: &Shared,
        tx: &mpsc::Sender<Ev>,
        mailbox: &Arc<Mailbox>,
    ) -> Result<Next, End> {
        self.send_routes(shared, tx).await?;
        // Positions, coalesced: a few flushes a second at most, newest position per driver.
        let pending = !lock(&mailbox.moved).is_empty();
        if !pending {
            return Ok(Next::Wait);
        }
        let since = self.last_flush.elapsed();
        if since < self.flush {
            tokio::time::sleep(self.flush - since).await;
        }
        self.last_flush = Instant::now();
        let moved: Vec<DriverId> = lock(&mailbox.moved).drain().collect();
        let dots: Vec<DriverDot> = {
            let pos = lock(&shared.state.positions);
            moved
                .iter()
                .filter_map(|d| pos.position_of(d))
                .map(|(_, p)| DriverDot::of(shared, &p, false))
                .collect()
        };
        if !dots.is_empty() {
            send(tx, Ev::new("positions", data(&dots))).await?;
        }
        // More may have moved while we slept: look again before sleeping.
        Ok(Next::Again)
    }
}
