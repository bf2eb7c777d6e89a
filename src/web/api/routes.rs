//! `/api/v1/routes`: a depot's routes. Create or replace (the route JSON of docs/ROUTES.md),
//! get with live progress (or from the history once archived or cancelled), list by depot and
//! day, cancel, re-sequence, add a stop, remove a stop. Every write needs a `backoffice` scope
//! on the route's depot and becomes one log record, folded by the core before the answer.
//! Every write holds [`crate::web::api::state::ApiState::route_edits`] from reading the route
//! to its answer, so two edits never start from the same version; an edit starts from the
//! plan as assigned (`plan_in_order`), so recipients' instructions stay theirs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use milepost_core::store::LogRecord;
use milepost_proto::route::{DepotId, Route, RouteId, Stop, StopId};
use milepost_proto::{Command, CommandKind, ServerMsg};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::apikeys::KeyRole;
use crate::auth::{Claims, Role};
use crate::server::commands::handle;
use crate::state::lock;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::web::api::recipients::store_contacts;
use crate::web::api::route_body::{check_recipients, check_route_carrier, route_body, RouteBody};
use crate::web::api::views::{
    cursor_id, cursor_of, page_limit, route_detail, Page, RouteDetail, RoutePage,
};
use crate::web::api::write::{commit, write};
use crate::web::respond::json;
use crate::web::state::WebState;

type St = State<Arc<WebState>>;

/// Runs a route command as a dispatcher of `depot` would over QUIC (same checks, same record).
async fn run_command(
    st: &WebState,
    caller: &Caller,
    depot: &str,
    kind: CommandKind,
) -> Result<(), ApiError> {
    let claims = Claims {
        role: Role::Dispatcher,
        sub: caller.name.clone(),
        depot: depot.to_owned(),
        exp: i64::MAX,
        iat: 0,
        carrier: None,
    };
    match handle(&claims, &st.shared, Command { id: 0, kind }).await {
        ServerMsg::Done { .. } => Ok(()),
        ServerMsg::Error(e) => Err(ApiError::from_command(e.code, e.message)),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

/// The live route `id` (its plan in the current order), 404 if not live, 403 if another
/// depot's and the caller may not write there.
fn live_route(st: &WebState, caller: &Caller, id: &RouteId) -> Result<Route, ApiError> {
    let route = lock(&st.shared.state.core)
        .plan_in_order(id)
        .ok_or_else(|| match st.shared.owned.folds_owned_only() {
            false => ApiError::not_found(format!("no live route {id}")),
            // The gateway holds only its partitions' routes.
            true => ApiError::not_found(format!(
                "no live route {id} on this gateway (cluster.fold = \"owned\": ask the \
                 gateway that holds its depot)"
            )),
        })?;
    // Another carrier's route is unknown here, as one that does not exist.
    if !caller.tenant.admits(&caller.carriers, &route.depot.0) {
        return Err(ApiError::not_found(format!("no live route {id}")));
    }
    caller.require(KeyRole::Backoffice, &route.depot.0)?;
    Ok(route)
}

/// Assigns (or replaces) `route` and answers its detail.
async fn assign(
    st: &WebState,
    caller: &Caller,
    body: RouteBody,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let RouteBody {
        route,
        recipients,
        carrier,
        addresses,
    } = body;
    if let Some(c) = &carrier {
        check_route_carrier(caller, c, &route.depot.0)?;
    }
    caller.require(KeyRole::Backoffice, &route.depot.0)?;
    // Folding only what it owns, a gateway takes the routes of the depots it holds (their
    // answer, the route as folded, is there).
    st.shared.serves(&route.depot.0).map_err(|e| {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "held_elsewhere",
            e.to_string(),
        )
    })?;
    milepost_core::fleet::route::validate(&route)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    crate::server::commands::check_ids(&route).map_err(ApiError::unprocessable)?;
    let existed = lock(&st.shared.state.core).run(&route.id).is_some();
    let id = route.id.clone();
    let depot = route.depot.0.clone();
    run_command(st, caller, &depot, CommandKind::AssignRoute(route)).await?;
    store_contacts(st, &depot, &recipients).await?;
    if !addresses.is_empty() {
        crate::web::api::addresses::record(st, &id, &depot, addresses).await?;
    }
    let detail = route_detail(&st.shared, &id)?
        .ok_or_else(|| ApiError::internal("the route vanished after it was assigned"))?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, to_json(&detail)?))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

/// Create or replace a route
///
/// The body is the route JSON of docs/ROUTES.md; its `id` must be the path's. Replacing a
/// live route keeps the outcomes of parcels still on it. Each stop may carry `address` (at
/// most 200 characters), shown to the depot's dispatchers and never sent to phones.
#[utoipa::path(
    put,
    path = "/api/v1/routes/{route_id}",
    tag = "routes",
    params(
        ("route_id" = String, Path, description = "The route's id (the body's `id`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe"),
    ),
    request_body = RouteBody,
    responses(
        (status = 200, description = "Replaced", body = RouteDetail),
        (status = 201, description = "Created", body = RouteDetail),
    )
)]
pub async fn put_route(
    State(st): St,
    ApiPath(route_id): ApiPath<String>,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJson<Route>,
) -> Response {
    let what = format!("PUT /api/v1/routes/{route_id}");
    write(
        &st,
        &caller,
        &headers,
        &what,
        body.digest,
        |st2, caller| async move {
            let _edit = st2.api.route_edits.lock().await;
            let body = route_body(body)?;
            if body.route.id.0 != route_id {
                return Err(
                    ApiError::bad_request("the body's id is not the path's route id").field("id"),
                );
            }
            check_recipients(&body)?;
            assign(&st2, &caller, body).await
        },
    )
    .await
}

/// Create a route
///
/// The body is the route JSON of docs/ROUTES.md. A route whose id is live already is
/// refused (409): replace it with `PUT /api/v1/routes/{route_id}`. Each stop may carry
/// `address` (at most 200 characters), shown to the depot's dispatchers.
#[utoipa::path(
    post,
    path = "/api/v1/routes",
    tag = "routes",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe")),
    request_body = RouteBody,
    responses((status = 201, description = "Created", body = RouteDetail))
)]
pub async fn create_route(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJson<Route>,
) -> Response {
    write(
        &st,
        &caller,
        &headers,
        "POST /api/v1/routes",
        body.digest,
        |st2, caller| async move {
            let _edit = st2.api.route_edits.lock().await;
            let body = route_body(body)?;
            let id = &body.route.id;
            if lock(&st2.shared.state.core).run(id).is_some() {
                return Err(ApiError::conflict(format!(
                    "route {id} exists: PUT /api/v1/routes/{id} replaces it"
                ))
                .field("id"));
            }
            check_recipients(&body)?;
            assign(&st2, &caller, body).await
        },
    )
    .await
}

/// The query of a route list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The depot (required).
    pub depot: String,
    /// Only routes planned to start on this UTC day, `YYYY-MM-DD`.
    pub day: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1-1000 (default 100).
    pub limit: Option<u32>,
}

/// List a depot's routes
///
/// Live routes and closed ones still in the history, by id.
#[utoipa::path(
    get,
    path = "/api/v1/routes",
    tag = "routes",
    params(ListQuery),
    responses((status = 200, description = "A page of routes", body = Page<RouteDetail>))
)]
pub async fn list_routes(
    State(st): St,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    if !caller.reads(&q.depot) {
        return Err(ApiError::forbidden(format!("no scope for depot {}", q.depot)).field("depot"));
    }
    if let Some(d) = &q.day {
        if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
            return Err(ApiError::bad_request("day must be YYYY-MM-DD").field("day"));
        }
    }
    let limit = page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(cursor_id).transpose()?;
    let depot = DepotId(q.depot.clone());
    let mut ids: Vec<RouteId> = {
        let core = lock(&st.shared.state.core);
        core.routes_of_depot(&depot)
            .into_iter()
            .filter(|id| match &q.day {
                Some(d) => core
                    .run(id)
                    .is_some_and(|r| &crate::history::day_of(r.plan.planned_start_ms) == d),
                None => true,
            })
            .collect()
    };
    if let Some(h) = &st.shared.state.history {
        let closed = h
            .route_ids(&depot, q.day.as_deref(), usize::MAX)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        ids.extend(closed);
    }
    ids.sort();
    ids.dedup();
    let start = match &after {
        Some(a) => ids.partition_point(|id| id.0.as_str() <= a.as_str()),
        None => 0,
    };
    let page: Vec<&RouteId> = ids[start..].iter().take(limit).collect();
    let mut items = Vec::with_capacity(page.len());
    for id in &page {
        // The depot is checked again: an id of this depot's history may be live elsewhere.
        if let Some(d) = route_detail(&st.shared, id)?.filter(|d| d.depot == q.depot) {
            items.push(d);
        }
    }
    let more = start + page.len() < ids.len();
    let next_cursor = match (more, page.last()) {
        (true, Some(last)) => Some(cursor_of(&last.0)),
        _ => None,
    };
    Ok(json(RoutePage { items, next_cursor }))
}

/// Get a route
///
/// Live progress and ETAs, or the final view once archived or cancelled.
#[utoipa::path(
    get,
    path = "/api/v1/routes/{route_id}",
    tag = "routes",
    params(("route_id" = String, Path, description = "Route id")),
    responses((status = 200, description = "The route", body = RouteDetail))
)]
pub async fn get_route(
    State(st): St,
    ApiPath(route_id): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let d = route_detail(&st.shared, &RouteId(route_id.clone()))?
        .ok_or_else(|| ApiError::not_found(format!("no route {route_id}")))?;
    if !caller.reads(&d.depot) {
        // Another depot's route: as if it did not exist.
        return Err(ApiError::not_found(format!("no route {route_id}")));
    }
    Ok(json(d))
}

/// Cancel a route
///
/// The route leaves the live state at once; its parcels keep their history. A parcel of a
/// cancelled route can be put on a new route.
#[utoipa::path(
    post,
    path = "/api/v1/routes/{route_id}/cancel",
    tag = "routes",
    params(
        ("route_id" = String, Path, description = "Route id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe"),
    ),
    responses((status = 200, description = "Cancelled: the route's final view", body = RouteDetail))
)]
pub async fn cancel_route(
    State(st): St,
    ApiPath(route_id): ApiPath<String>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    let what = format!("POST /api/v1/routes/{route_id}/cancel");
    write(
        &st,
        &caller,
        &headers,
        &what,
        [0; 32],
        |st2, caller| async move {
            let _edit = st2.api.route_edits.lock().await;
            let id = RouteId(route_id);
            live_route(&st2, &caller, &id)?;
            let rec = LogRecord::RouteCancelled {
                route_id: id.clone(),
                by: caller.name.clone(),
                at_ms: st2.shared.now_ms(),
            };
            commit(&st2.shared, rec, ApiError::not_found).await?;
            let d = route_detail(&st2.shared, &id)?
                .ok_or_else(|| ApiError::internal("the cancelled route has no history"))?;
            Ok((StatusCode::OK, to_json(&d)?))
        },
    )
    .await
}

/// A new order of a route's stops.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    /// Every stop of the route, each once, in the new order.
    pub order: Vec<String>,
}

/// Re-sequence a route
#[utoipa::path(
    post,
    path = "/api/v1/routes/{route_id}/sequence",
    tag = "routes",
    params(
        ("route_id" = String, Path, description = "Route id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe"),
    ),
    request_body = Sequence,
    responses((status = 200, description = "The route in its new order", body = RouteDetail))
)]
pub async fn resequence(
    State(st): St,
    ApiPath(route_id): ApiPath<String>,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJson<Sequence>,
) -> Response {
    let what = format!("POST /api/v1/routes/{route_id}/sequence");
    write(
        &st,
        &caller,
        &headers,
        &what,
        body.digest,
        |st2, caller| async move {
            let _edit = st2.api.route_edits.lock().await;
            let id = RouteId(route_id);
            let route = live_route(&st2, &caller, &id)?;
            let order: Vec<StopId> = body.value.order.into_iter().map(StopId).collect();
            let kind = CommandKind::Resequence {
                route_id: id.clone(),
                order,
            };
            run_command(&st2, &caller, &route.depot.0, kind).await?;
            let d = route_detail(&st2.shared, &id)?
                .ok_or_else(|| ApiError::not_found(format!("no route {id}")))?;
            Ok((StatusCode::OK, to_json(&d)?))
        },
    )
    .await
}

/// Add a stop to a live route
///
/// The stop (as in the route JSON) is added at the end of the current order; re-sequence to
/// move it.
#[utoipa::path(
    post,
    path = "/api/v1/routes/{route_id}/stops",
    tag = "routes",
    params(
        ("route_id" = String, Path, description = "Route id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe"),
    ),
    request_body = Stop,
    responses((status = 200, description = "The route with the new stop", body = RouteDetail))
)]
pub async fn add_stop(
    State(st): St,
    ApiPath(route_id): ApiPath<String>,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJson<Stop>,
) -> Response {
    let what = format!("POST /api/v1/routes/{route_id}/stops");
    write(
        &st,
        &caller,
        &headers,
        &what,
        body.digest,
        |st2, caller| async move {
            let _edit = st2.api.route_edits.lock().await;
            let mut route = live_route(&st2, &caller, &RouteId(route_id))?;
            if route.stops.iter().any(|s| s.id == body.value.id) {
                return Err(ApiError::conflict(format!(
                    "the route has a stop {} already",
                    body.value.id
                ))
                .field("id"));
            }
            route.stops.push(body.value);
            assign(&st2, &caller, RouteBody::plain(route))
                .await
                .map(|(_, v)| (StatusCode::OK, v))
        },
    )
    .await
}

/// Remove a stop from a live route
///
/// Refused (409) once the driver reached the stop or any of its parcels has an outcome.
#[utoipa::path(
    delete,
    path = "/api/v1/routes/{route_id}/stops/{stop_id}",
    tag = "routes",
    params(
        ("route_id" = String, Path, description = "Route id"),
        ("stop_id" = String, Path, description = "Stop id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe"),
    ),
    responses((status = 200, description = "The route without the stop", body = RouteDetail))
)]
pub async fn remove_stop(
    State(st): St,
    ApiPath((route_id, stop_id)): ApiPath<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    let what = format!("DELETE /api/v1/routes/{route_id}/stops/{stop_id}");
    write(
        &st,
        &caller,
        &headers,
        &what,
        [0; 32],
        |st2, caller| async move {
            let _edit = st2.api.route_edits.lock().await;
            let id = RouteId(route_id);
            let mut route = live_route(&st2, &caller, &id)?;
            let Some(k) = route.stops.iter().position(|s| s.id.0 == stop_id) else {
                return Err(ApiError::not_found(format!(
                    "route {id} has no stop {stop_id}"
                )));
            };
            let touched = lock(&st2.shared.state.core)
                .route_view(&id)
                .is_some_and(|v| {
                    v.stops.iter().any(|s| {
                        s.id.0 == stop_id
                            && (s.arrived_ms.is_some()
                                || s.parcels.iter().any(|(_, p)| {
                                    matches!(
                                        p,
                                        milepost_proto::route::ParcelState::Delivered
                                            | milepost_proto::route::ParcelState::Failed
                                            | milepost_proto::route::ParcelState::Returned
                                    )
                                }))
                    })
                });
            if touched {
                return Err(ApiError::conflict(format!(
                    "stop {stop_id} was reached or has outcomes: it stays on the route"
                )));
            }
            if route.stops.len() == 1 {
                return Err(ApiError::conflict(
                    "a route keeps at least one stop: cancel the route instead",
                ));
            }
            route.stops.remove(k);
            assign(&st2, &caller, RouteBody::plain(route))
                .await
                .map(|(_, v)| (StatusCode::OK, v))
        },
    )
    .await
}
