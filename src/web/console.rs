//! The dispatcher console's lookups, beside the map (`dispatch`): the depot's alerts with
//! their handling, for the page to group per driver and acknowledge or resolve
//! (`GET /dispatch/alerts`); search by driver, route or tracking number
//! (`GET /dispatch/search?q=`); and a route's trail, to play it back on the map
//! (`GET /dispatch/routes/{route}/trail`). Every answer is scoped to the depot of the
//! dispatcher's token: another depot's routes, parcels and drivers are not found, not even
//! counted.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use milepost_proto::route::{DepotId, RouteId, TrackingNumber};
use serde::{Deserialize, Serialize};

use crate::state::lock;
use crate::web::api::alerts::{alert_events, views, wanted, AlertView};
use crate::web::api::error::ApiError;
use crate::web::auth::authorize_dispatcher;
use crate::web::error::WebError;
use crate::web::respond::json;
use crate::web::state::WebState;
use crate::web::views::common::driver_name;

/// Alerts listed at most.
const ALERTS_MAX: usize = 200;
/// The newest alerts looked at for that list (resolved ones among them are left out).
const ALERTS_SCAN: usize = 1_000;
/// Search results at most.
const RESULTS_MAX: usize = 20;
/// Closed routes of the depot a search looks through, newest days first.
const CLOSED_SCAN: usize = 5_000;

/// An alert as the console shows it.
#[derive(Debug, Serialize)]
pub struct ConsoleAlert {
    /// The alert, with its handling.
    #[serde(flatten)]
    pub alert: AlertView,
    /// The driver's display name.
    pub driver_name: String,
    /// When it was raised, `HH:MM` in the depot's zone.
    pub time: String,
}

/// `GET /dispatch/alerts?state=open|all`: the depot's alerts, newest first (open ones:
/// neither resolved; `all`: resolved ones too).
pub async fn alerts(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let wanted = wanted(q.get("state").map(String::as_str))?;
    let depot = DepotId(claims.depot);
    let zone = st.shared.cfg.carriers.clock_of_depot(&depot.0);
    // The newest alerts only: each page reloads this list when an alert comes, and a view
    // costs a history read and a route view.
    let mut events = alert_events(&st, &depot, u64::MAX);
    events.truncate(ALERTS_SCAN);
    let items: Vec<ConsoleAlert> = views(&st, &depot, &events)?
        .into_iter()
        .filter(|a| wanted.contains(&a.state))
        .take(ALERTS_MAX)
        .map(|a| ConsoleAlert {
            driver_name: driver_name(&st.shared, &milepost_proto::DriverId(a.driver.clone())),
            time: milepost_core::present::hhmm_in(a.at_ms, zone),
            alert: a,
        })
        .collect();
    Ok(json(serde_json::json!({ "items": items })))
}

/// One search result.
#[derive(Debug, PartialEq, Serialize)]
pub struct Found {
    /// `driver`, `route` or `parcel`.
    pub kind: &'static str,
    /// The driver's, route's or parcel's id.
    pub id: String,
    /// In words.
    pub label: String,
    /// The route to show (a driver's current one, a parcel's newest).
    pub route_id: Option<String>,
    /// The route is live (else closed: only its trail can be played back).
    pub live: bool,
}

/// The query of a search.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    /// 2 to 64 characters: part of a driver's id or name, of a route id, or a tracking
    /// number's start.
    pub q: String,
}

/// `GET /dispatch/search?q=`: drivers, routes and parcels of the depot matching `q`.
pub async fn search(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    let Query(q) = q.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let needle = q.q.trim().to_lowercase();
    if !(2..=64).contains(&needle.chars().count()) {
        return Err(WebError::BadRequest("q is 2 to 64 characters".into()));
    }
    let depot = DepotId(claims.depot);
    let mut found = live_matches(&st, &depot, &needle);
    if found.len() < RESULTS_MAX {
        found.extend(closed_matches(&st, &depot, &needle, &found));
    }
    found.truncate(RESULTS_MAX);
    Ok(json(serde_json::json!({ "items": found })))
}

/// Matches among the depot's live routes, their drivers and parcels, and its drivers on the
/// map.
fn live_matches(st: &WebState, depot: &DepotId, needle: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let mut drivers: BTreeMap<String, Option<String>> = lock(&st.shared.state.positions)
        .of_depot(&depot.0)
        .into_iter()
        .map(|p| (p.driver.0, None))
        .collect();
    {
        let core = lock(&st.shared.state.core);
        for id in core.routes_of_depot(depot) {
            let Some(run) = core.run(&id) else { continue };
            drivers.insert(run.plan.driver.0.clone(), Some(id.0.clone()));
            if contains_ci(&id.0, needle) {
                out.push(Found {
                    kind: "route",
                    id: id.0.clone(),
                    label: format!("Route {id} ({} stops)", run.plan.stops.len()),
                    route_id: Some(id.0.clone()),
                    live: true,
                });
            }
            for s in &run.plan.stops {
                for p in &s.parcels {
                    if starts_with_ci(&p.tracking.0, needle) {
                        out.push(Found {
                            kind: "parcel",
                            id: p.tracking.0.clone(),
                            label: format!("Parcel {} (route {id}, stop {})", p.tracking, s.id),
                            route_id: Some(id.0.clone()),
                            live: true,
                        });
                    }
                }
            }
        }
    }
    for (d, route) in drivers {
        let name = driver_name(&st.shared, &milepost_proto::DriverId(d.clone()));
        if d.to_lowercase().contains(needle) || name.to_lowercase().contains(needle) {
            let label = match &route {
                Some(r) => format!("{name} ({d}, route {r})"),
                None => format!("{name} ({d})"),
            };
            out.push(Found {
                kind: "driver",
                id: d,
                label,
                live: route.is_some(),
                route_id: route,
            });
        }
    }
    out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    out
}

/// Matches among the depot's closed routes, and a closed parcel by its whole tracking number.
fn closed_matches(st: &WebState, depot: &DepotId, needle: &str, live: &[Found]) -> Vec<Found> {
    let Some(h) = &st.shared.state.history else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let known = |kind: &str, id: &str| live.iter().any(|f| f.kind == kind && f.id == id);
    let mut seen = std::collections::HashSet::new();
    for id in h.route_ids_newest(depot, CLOSED_SCAN).unwrap_or_default() {
        if contains_ci(&id.0, needle) && !known("route", &id.0) && seen.insert(id.0.clone()) {
            out.push(Found {
                kind: "route",
                label: format!("Route {id} (closed)"),
                id: id.0.clone(),
                route_id: Some(id.0),
                live: false,
            });
        }
    }
    let t = TrackingNumber(needle.to_uppercase());
    if let Ok(Some(p)) = h.parcel(&t) {
        if &p.depot == depot && !known("parcel", &t.0) {
            let route = p.routes.last().map(|r| r.0.clone());
            out.push(Found {
                kind: "parcel",
                label: format!("Parcel {} (closed)", t.0),
                id: t.0,
                route_id: route,
                live: false,
            });
        }
    }
    out
}

/// `hay` contains `needle` (lower case), ignoring case; no allocation for ASCII text (it runs
/// under the core's lock for every parcel of the depot).
fn contains_ci(hay: &str, needle: &str) -> bool {
    if hay.is_ascii() && needle.is_ascii() {
        let n = needle.len();
        return n == 0
            || hay
                .as_bytes()
                .windows(n)
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    }
    hay.to_lowercase().contains(needle)
}

/// `hay` starts with `needle` (lower case), ignoring case.
fn starts_with_ci(hay: &str, needle: &str) -> bool {
    match hay.get(..needle.len()) {
        Some(head) if hay.is_ascii() => head.eq_ignore_ascii_case(needle),
        _ => hay.to_lowercase().starts_with(needle),
    }
}

/// A route's trail.
#[derive(Debug, Serialize)]
pub struct Trail {
    /// The route.
    pub route_id: String,
    /// Its driver.
    pub driver: String,
    /// The route is live.
    pub live: bool,
    /// `[t_ms, lat, lon]`, oldest first.
    pub points: Vec<(i64, f64, f64)>,
}

/// `GET /dispatch/routes/{route}/trail`: where the route's driver went while it was under
/// way, live or closed (within the history's retention).
pub async fn trail(
    State(st): State<Arc<WebState>>,
    Path(route): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (claims, _) = authorize_dispatcher(&st.shared, &headers)?;
    let missing = || WebError::NotFound("no such route".into());
    let h = st.shared.state.history.as_ref().ok_or_else(missing)?;
    if route.len() > 200 {
        return Err(missing());
    }
    let id = RouteId(route);
    // The run's span: a route id may be used again, and its trail is this run's only.
    let live = lock(&st.shared.state.core).run(&id).map(|r| {
        let span = (r.started_ms.unwrap_or(i64::MAX), i64::MAX);
        (r.plan.depot.clone(), r.plan.driver.0.clone(), span)
    });
    let (depot, driver, is_live, (from_ms, to_ms)) = match live {
        Some((d, driver, span)) => (d, driver, true, span),
        None => {
            let r = h
                .route(&id)
                .map_err(|e| WebError::Internal(e.to_string()))?
                .ok_or_else(missing)?;
            let span = (r.view.started_ms.unwrap_or(i64::MAX), r.closed_ms);
            (r.view.depot, r.view.driver.0, false, span)
        }
    };
    // Another depot's route is not found, as if it did not exist.
    if depot.0 != claims.depot {
        return Err(missing());
    }
    let points = h
        .trail(&id, from_ms, to_ms)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(json(Trail {
        route_id: id.0,
        driver,
        live: is_live,
        points,
    }))
}
