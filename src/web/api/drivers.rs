//! `/api/v1/drivers` and `/api/v1/depots/{depot}/drivers`: live positions and current routes,
//! for callers with any scope on the driver's depot; and drivers' profiles (first name,
//! vehicle, photo) that recipients see, set by a back office.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use milepost_proto::DriverId;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::apikeys::KeyRole;
use crate::drivers::DriverProfile;
use crate::state::lock;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::web::api::views::{
    cursor_id, cursor_of, page_limit, DriverDetail, DriverPage, Page, PositionDetail,
};
use crate::web::respond::json;
use crate::web::state::WebState;

type St = State<Arc<WebState>>;

/// Get a driver
///
/// The newest position and the current route. Drivers of depots the caller has no scope on
/// are answered as unknown.
#[utoipa::path(
    get,
    path = "/api/v1/drivers/{driver}",
    tag = "drivers",
    params(("driver" = String, Path, description = "Driver id")),
    responses((status = 200, description = "The driver", body = DriverDetail))
)]
pub async fn get_driver(
    State(st): St,
    ApiPath(driver): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let id = DriverId(driver.clone());
    let pos = lock(&st.shared.state.positions)
        .position_of(&id)
        .map(|(depot, p)| (depot.to_owned(), p));
    let route = {
        let core = lock(&st.shared.state.core);
        core.route_of_driver(&id)
            .and_then(|r| core.run(r))
            .map(|r| (r.plan.id.0.clone(), r.plan.depot.0.clone()))
    };
    let depot = match (&pos, &route) {
        (Some((d, _)), _) => d.clone(),
        (None, Some((_, d))) => d.clone(),
        (None, None) => return Err(ApiError::not_found(format!("no driver {driver}"))),
    };
    if !caller.reads(&depot) {
        return Err(ApiError::not_found(format!("no driver {driver}")));
    }
    Ok(json(DriverDetail {
        driver,
        depot,
        position: pos.map(|(_, p)| PositionDetail::of(&p.fix)),
        route_id: route.map(|(r, _)| r),
    }))
}

/// The query of a driver list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1-1000 (default 100).
    pub limit: Option<u32>,
}

/// List a depot's drivers
///
/// Drivers with a live position in the depot, by id, with their current route.
#[utoipa::path(
    get,
    path = "/api/v1/depots/{depot}/drivers",
    tag = "drivers",
    params(("depot" = String, Path, description = "Depot"), PageQuery),
    responses((status = 200, description = "A page of drivers", body = Page<DriverDetail>))
)]
pub async fn depot_drivers(
    State(st): St,
    ApiPath(depot): ApiPath<String>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    if !caller.reads(&depot) {
        return Err(ApiError::forbidden(format!("no scope for depot {depot}")));
    }
    let limit = page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(cursor_id).transpose()?;
    let mut all = lock(&st.shared.state.positions).of_depot(&depot);
    all.sort_by(|a, b| a.driver.cmp(&b.driver));
    let start = match &after {
        Some(a) => all.partition_point(|p| p.driver.0.as_str() <= a.as_str()),
        None => 0,
    };
    let page = &all[start..(start + limit).min(all.len())];
    let items: Vec<DriverDetail> = {
        let core = lock(&st.shared.state.core);
        page.iter()
            .map(|p| DriverDetail {
                driver: p.driver.0.clone(),
                depot: depot.clone(),
                position: Some(PositionDetail::of(&p.fix)),
                route_id: core.route_of_driver(&p.driver).map(|r| r.0.clone()),
            })
            .collect()
    };
    let next_cursor = match (start + page.len() < all.len(), page.last()) {
        (true, Some(last)) => Some(cursor_of(&last.driver.0)),
        _ => None,
    };
    Ok(json(DriverPage { items, next_cursor }))
}

/// The depot of a driver's current route, else of its live position, if any.
fn depot_of_driver(st: &WebState, driver: &str) -> Option<String> {
    let id = DriverId(driver.to_owned());
    let routed = {
        let core = lock(&st.shared.state.core);
        core.route_of_driver(&id)
            .and_then(|r| core.run(r))
            .map(|r| r.plan.depot.0.clone())
    };
    routed.or_else(|| {
        lock(&st.shared.state.positions)
            .position_of(&id)
            .map(|(d, _)| d.to_owned())
    })
}

/// A back-office scope on the driver's depot; for a driver without a route or position, a
/// back-office scope on some depot, and for a carrier's key a profile that is none yet or its
/// carrier's (driver ids are the platform's: the first carrier to set a profile owns it).
/// Another carrier's driver is unknown (404), not forbidden.
fn may_edit(st: &WebState, caller: &Caller, driver: &str) -> Result<(), ApiError> {
    let unknown = || ApiError::not_found(format!("no driver {driver}"));
    match depot_of_driver(st, driver) {
        Some(depot) if !caller.tenant.admits(&caller.carriers, &depot) => Err(unknown()),
        Some(depot) => caller.require(KeyRole::Backoffice, &depot),
        None if caller.any_backoffice() => {
            let Some(mine) = caller.tenant.carrier() else {
                return Ok(());
            };
            let drivers = &st.shared.drivers;
            match drivers.carrier_of(driver) {
                Some(theirs) if theirs == mine => Ok(()),
                None if drivers.get(driver).is_none() => Ok(()),
                _ => Err(unknown()),
            }
        }
        None => Err(ApiError::forbidden("this needs a backoffice scope")),
    }
}

/// Set a driver's profile
///
/// First name, vehicle and photo as recipients see them once the driver is on the way to
/// their stop (instead of the `[web.drivers]` table of the configuration).
#[utoipa::path(
    put,
    path = "/api/v1/drivers/{driver}/profile",
    tag = "drivers",
    params(("driver" = String, Path, description = "Driver id")),
    request_body = DriverProfile,
    responses((status = 200, description = "Stored", body = DriverProfile))
)]
pub async fn put_profile(
    State(st): St,
    ApiPath(driver): ApiPath<String>,
    caller: Caller,
    body: ApiJson<DriverProfile>,
) -> Result<Response, ApiError> {
    may_edit(&st, &caller, &driver)?;
    body.value
        .check()
        .map_err(|(f, why)| ApiError::bad_request(why).field(f))?;
    let mut p = body.value;
    p.first_name = p.first_name.trim().to_owned();
    st.shared
        .drivers
        .put(&driver, Some(p.clone()), caller.tenant.carrier())
        .map_err(|e| ApiError::internal(format!("drivers.json: {e}")))?;
    Ok(json(p))
}

/// Get a driver's profile
#[utoipa::path(
    get,
    path = "/api/v1/drivers/{driver}/profile",
    tag = "drivers",
    params(("driver" = String, Path, description = "Driver id")),
    responses((status = 200, description = "The profile", body = DriverProfile))
)]
pub async fn get_profile(
    State(st): St,
    ApiPath(driver): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    may_edit(&st, &caller, &driver)?;
    let p = st
        .shared
        .drivers
        .get(&driver)
        .ok_or_else(|| ApiError::not_found(format!("no profile for {driver}")))?;
    Ok(json(p))
}

/// Remove a driver's profile
#[utoipa::path(
    delete,
    path = "/api/v1/drivers/{driver}/profile",
    tag = "drivers",
    params(("driver" = String, Path, description = "Driver id")),
    responses((status = 204, description = "Removed"))
)]
pub async fn delete_profile(
    State(st): St,
    ApiPath(driver): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    may_edit(&st, &caller, &driver)?;
    st.shared
        .drivers
        .put(&driver, None, caller.tenant.carrier())
        .map_err(|e| ApiError::internal(format!("drivers.json: {e}")))?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
