//! A parcel's self-service and thread for the back office: the choices on offer and the
//! change in force, a change made on the recipient's behalf (a call centre), and the
//! recipient-driver thread, read-only. The same checks and log record as the tracking page's
//! (`crate::server::service`); the record names the key.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use milepost_proto::route::TrackingNumber;

use crate::apikeys::KeyRole;
use crate::server::service;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiJson, ApiPath};
use crate::web::api::parcels::readable;
use crate::web::respond::json;
use crate::web::selfservice::{options, thread_of, ChangeBody, DeliveryOptions, Thread};
use crate::web::state::WebState;

type St = State<Arc<WebState>>;

/// The depot of a parcel the caller may read, or 404.
fn depot_of(st: &WebState, caller: &Caller, tracking: &str) -> Result<String, ApiError> {
    Ok(readable(st, caller, tracking)?
        .ok_or_else(|| ApiError::not_found(format!("no parcel {tracking}")))?
        .depot)
}

/// Get a parcel's delivery options
///
/// The slots, pickup points and choices the carrier's `[self_service]` offers now, and the
/// recipient's change in force.
#[utoipa::path(
    get,
    path = "/api/v1/parcels/{tracking}/delivery",
    tag = "parcels",
    params(("tracking" = String, Path, description = "Tracking number")),
    responses((status = 200, description = "Options", body = DeliveryOptions))
)]
pub async fn get_delivery(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    depot_of(&st, &caller, &tracking)?;
    Ok(json(options(&st.shared, &TrackingNumber(tracking))))
}

/// Change a parcel's delivery for its recipient
///
/// One of `reschedule` (an offered slot), `neighbour`, `pickup_point` (by id) or
/// `safe_place`, as the recipient would choose it on the tracking page. It reaches the
/// driver's app; another slot or a pickup point takes the parcel off its route. After a
/// failed attempt it is kept as the recipient's wish for the next one.
#[utoipa::path(
    post,
    path = "/api/v1/parcels/{tracking}/delivery",
    tag = "parcels",
    params(("tracking" = String, Path, description = "Tracking number")),
    request_body = ChangeBody,
    responses((status = 200, description = "Changed: the options after it", body = DeliveryOptions))
)]
pub async fn post_delivery(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
    body: ApiJson<ChangeBody>,
) -> Result<Response, ApiError> {
    let depot = depot_of(&st, &caller, &tracking)?;
    caller.require(KeyRole::Backoffice, &depot)?;
    let t = TrackingNumber(tracking);
    let change = body.value.clone().into_change(&st.shared);
    service::change_delivery(&st.shared, t.clone(), change, caller.name.clone())
        .await
        .map_err(|(code, why)| match code {
            milepost_proto::ErrorCode::OutcomeRefused => ApiError::unprocessable(why),
            code => ApiError::from_command(code, why),
        })?;
    Ok(json(options(&st.shared, &t)))
}

/// Read a parcel's recipient-driver thread
#[utoipa::path(
    get,
    path = "/api/v1/parcels/{tracking}/messages",
    tag = "parcels",
    params(("tracking" = String, Path, description = "Tracking number")),
    responses((status = 200, description = "Oldest first", body = Thread))
)]
pub async fn get_messages(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    depot_of(&st, &caller, &tracking)?;
    Ok(json(thread_of(&st.shared, &tracking)?))
}
