//! Recipients and their messages: a parcel's contact (set, read, erase: personal data, kept
//! only in the notification store), the messages a parcel's recipient was sent, and a depot's
//! dead letters (messages the providers never took), which a dispatcher can retry or dismiss.
//! Addresses in dead letters are masked.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::apikeys::KeyRole;
use crate::notify::contact::{Channel, Contact};
use crate::notify::journal::Op;
use crate::notify::plan::Milestone;
use crate::notify::store::{MessageLog, StoredContact};
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiJson, ApiPath};
use crate::web::api::parcels::readable;
use crate::web::respond::json;
use crate::web::state::WebState;

type St = State<Arc<WebState>>;

fn store_err(e: crate::notify::store::StoreError) -> ApiError {
    use crate::notify::store::StoreError;
    match e {
        // A cluster's journal slow or away, or the gateway stopping: worth trying again.
        StoreError::Journal(_) | StoreError::Closed => ApiError::busy(e.to_string()),
        e => ApiError::internal(e.to_string()),
    }
}

/// The depot of a parcel the caller may read, or 404.
fn depot_of(st: &WebState, caller: &Caller, tracking: &str) -> Result<String, ApiError> {
    Ok(readable(st, caller, tracking)?
        .ok_or_else(|| ApiError::not_found(format!("no parcel {tracking}")))?
        .depot)
}

/// The stored contact of a parcel of `depot` (one stored by another depot, for a tracking
/// number it used before, is not this parcel's: none).
fn contact_of(
    st: &WebState,
    tracking: &str,
    depot: &str,
) -> Result<Option<StoredContact>, ApiError> {
    Ok(st
        .shared
        .notify
        .store
        .contact(tracking)
        .map_err(store_err)?
        .filter(|c| c.depot == depot))
}

/// Checks a contact; the error names the field.
pub fn check_contact(c: &Contact, field: &str) -> Result<(), ApiError> {
    c.check()
        .map_err(|(f, why)| ApiError::bad_request(why).field(format!("{field}{f}")))
}

/// Stores the contacts of a route's parcels (after the route was assigned); in a cluster,
/// through the journal every gateway applies.
pub async fn store_contacts(
    st: &WebState,
    depot: &str,
    contacts: &std::collections::BTreeMap<String, Contact>,
) -> Result<(), ApiError> {
    let now = st.shared.now_ms();
    if contacts.is_empty() {
        return Ok(());
    }
    let stored: Vec<(String, StoredContact)> = contacts
        .iter()
        .map(|(t, c)| {
            let s = StoredContact {
                contact: c.clone(),
                depot: depot.to_owned(),
                set_ms: now,
                touched_ms: now,
            };
            (t.clone(), s)
        })
        .collect();
    st.shared
        .notify
        .write(Op::Contacts(stored))
        .await
        .map_err(store_err)
}

/// Set a parcel's recipient contact
///
/// E-mail and/or phone (E.164), the channels wanted and the language. Personal data: kept
/// only for messages, never in the log, erased with the parcel's history or by `DELETE`.
#[utoipa::path(
    put,
    path = "/api/v1/parcels/{tracking}/recipient",
    tag = "recipients",
    params(("tracking" = String, Path, description = "Tracking number")),
    request_body = Contact,
    responses((status = 200, description = "Stored", body = Contact))
)]
pub async fn put_recipient(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
    body: ApiJson<Contact>,
) -> Result<Response, ApiError> {
    let depot = depot_of(&st, &caller, &tracking)?;
    caller.require(KeyRole::Backoffice, &depot)?;
    check_contact(&body.value, "")?;
    let one = std::iter::once((tracking, body.value.clone())).collect();
    store_contacts(&st, &depot, &one).await?;
    Ok(json(body.value))
}

/// Get a parcel's recipient contact
#[utoipa::path(
    get,
    path = "/api/v1/parcels/{tracking}/recipient",
    tag = "recipients",
    params(("tracking" = String, Path, description = "Tracking number")),
    responses((status = 200, description = "The contact", body = Contact))
)]
pub async fn get_recipient(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let depot = depot_of(&st, &caller, &tracking)?;
    caller.require(KeyRole::Backoffice, &depot)?;
    let c = contact_of(&st, &tracking, &depot)?
        .ok_or_else(|| ApiError::not_found(format!("no contact for {tracking}")))?;
    Ok(json(c.contact))
}

/// Erase a parcel's recipient contact
///
/// The contact and the parcel's message log are removed; messages still queued are dropped.
#[utoipa::path(
    delete,
    path = "/api/v1/parcels/{tracking}/recipient",
    tag = "recipients",
    params(("tracking" = String, Path, description = "Tracking number")),
    responses((status = 204, description = "Erased"))
)]
pub async fn delete_recipient(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let depot = depot_of(&st, &caller, &tracking)?;
    caller.require(KeyRole::Backoffice, &depot)?;
    // Written even with no contact here: a retry after a failure still erases everywhere (in
    // a cluster, the journal's copy of the contact too).
    st.shared
        .notify
        .write(Op::Erase(tracking))
        .await
        .map_err(store_err)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// List the messages sent about a parcel
#[utoipa::path(
    get,
    path = "/api/v1/parcels/{tracking}/notifications",
    tag = "recipients",
    params(("tracking" = String, Path, description = "Tracking number")),
    responses((status = 200, description = "Oldest first", body = [MessageLog]))
)]
pub async fn parcel_notifications(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let depot = depot_of(&st, &caller, &tracking)?;
    if contact_of(&st, &tracking, &depot)?.is_none() {
        return Ok(json(Vec::<MessageLog>::new()));
    }
    let v = st
        .shared
        .notify
        .store
        .messages(&tracking)
        .map_err(store_err)?;
    Ok(json(v))
}

/// A message the providers never took.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    /// Its id (retry or dismiss with it).
    pub id: u64,
    /// The parcel, for a recipient's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking: Option<String>,
    /// The route.
    pub route: String,
    /// The milestone, for a recipient's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milestone: Option<Milestone>,
    /// The alert kind, for a dispatcher's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The channel.
    pub channel: Channel,
    /// The address, masked.
    pub to: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it was given up, UTC ms.
    pub at_ms: i64,
}

/// List a depot's dead letters
#[utoipa::path(
    get,
    path = "/api/v1/depots/{depot}/notifications/dead",
    tag = "recipients",
    params(("depot" = String, Path, description = "Depot")),
    responses((status = 200, description = "Oldest first", body = [DeadLetter]))
)]
pub async fn list_dead(
    State(st): St,
    ApiPath(depot): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(KeyRole::Dispatcher, &depot)?;
    let v: Vec<DeadLetter> = st
        .shared
        .notify
        .store
        .dead()
        .map_err(store_err)?
        .into_iter()
        .filter(|d| d.message.depot == depot)
        .map(|d| DeadLetter {
            id: d.message.id,
            tracking: d.message.tracking,
            route: d.message.route,
            milestone: d.message.milestone,
            alert: d.message.alert,
            channel: d.message.channel,
            to: d.to_masked,
            attempts: d.message.attempts,
            error: d.message.last_error.unwrap_or_default(),
            at_ms: d.at_ms,
        })
        .collect();
    Ok(json(v))
}

fn find_dead(
    st: &WebState,
    caller: &Caller,
    depot: &str,
    id: u64,
) -> Result<crate::notify::store::Dead, ApiError> {
    caller.require(KeyRole::Dispatcher, depot)?;
    st.shared
        .notify
        .store
        .dead()
        .map_err(store_err)?
        .into_iter()
        .find(|d| d.message.id == id && d.message.depot == depot)
        .ok_or_else(|| ApiError::not_found(format!("no dead letter {id} in depot {depot}")))
}

/// Retry a dead letter
///
/// The message is queued again with its attempts reset (the rules still apply: an opted-out
/// address or an erased contact drops it).
#[utoipa::path(
    post,
    path = "/api/v1/depots/{depot}/notifications/dead/{id}/retry",
    tag = "recipients",
    params(
        ("depot" = String, Path, description = "Depot"),
        ("id" = u64, Path, description = "The dead letter's id"),
    ),
    responses((status = 202, description = "Queued again"))
)]
pub async fn retry_dead(
    State(st): St,
    ApiPath((depot, id)): ApiPath<(String, u64)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if !st.shared.cfg.notify.enabled {
        return Err(ApiError::conflict("notifications are off on this gateway"));
    }
    let d = find_dead(&st, &caller, &depot, id)?;
    // The sending gateway's outbox moves it back to the queue in one transaction.
    st.shared
        .notify
        .write(Op::Retry(d.message.id))
        .await
        .map_err(store_err)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Dismiss a dead letter
#[utoipa::path(
    delete,
    path = "/api/v1/depots/{depot}/notifications/dead/{id}",
    tag = "recipients",
    params(
        ("depot" = String, Path, description = "Depot"),
        ("id" = u64, Path, description = "The dead letter's id"),
    ),
    responses((status = 204, description = "Dismissed"))
)]
pub async fn dismiss_dead(
    State(st): St,
    ApiPath((depot, id)): ApiPath<(String, u64)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    find_dead(&st, &caller, &depot, id)?;
    st.shared
        .notify
        .write(Op::Dismiss(id))
        .await
        .map_err(store_err)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
