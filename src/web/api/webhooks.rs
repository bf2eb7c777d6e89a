//! `/api/v1/webhooks`: the gateway's webhook endpoints ([`crate::feed::registry`]): list them
//! with their counters and newest deliveries, add one (its signing secret is answered once),
//! remove one added here. This needs a `backoffice:*` scope. A carrier's key sees and removes
//! only its carrier's endpoints, and those it adds get its carrier's milestones only; a
//! platform key's get every carrier's.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::apikeys::KeyRole;
use crate::feed::registry::{HookError, WebhookInfo, Webhooks};
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiJson, ApiPath};
use crate::web::api::write::write;
use crate::web::respond::json;
use crate::web::state::WebState;

type St = State<Arc<WebState>>;

fn registry(st: &WebState) -> Result<&Arc<Webhooks>, ApiError> {
    st.shared
        .webhooks
        .get()
        .ok_or_else(|| ApiError::busy("webhooks are starting"))
}

fn refused(e: HookError) -> ApiError {
    match e {
        HookError::BadUrl => ApiError::unprocessable(e.to_string()).field("url"),
        HookError::Duplicate(_) => ApiError::conflict(e.to_string()).field("url"),
        HookError::Unknown(_) => ApiError::not_found(e.to_string()),
        HookError::Configured(_) => ApiError::conflict(e.to_string()),
        HookError::Io(e) => ApiError::busy(format!("not stored: {e}")),
    }
}

/// The endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Every endpoint, configured ones first.
    pub items: Vec<WebhookInfo>,
    /// Always absent: the list is short and comes whole.
    pub next_cursor: Option<String>,
}

/// List the webhook endpoints
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    responses((status = 200, description = "The endpoints", body = WebhookList))
)]
pub async fn list_webhooks(State(st): St, caller: Caller) -> Result<Response, ApiError> {
    caller.require_everywhere(KeyRole::Backoffice)?;
    let items = visible(&st, &caller)?;
    Ok(json(WebhookList {
        items,
        next_cursor: None,
    }))
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST every parcel milestone (http or https).
    pub url: String,
}

/// An endpoint just added, with its signing secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The endpoint.
    pub webhook: WebhookInfo,
    /// The HMAC-SHA256 key of its `X-Milepost-Signature` header.
    pub secret: String,
}

/// Add a webhook endpoint
///
/// It receives the milestones emitted from now on, signed with the secret answered here.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe")),
    request_body = NewWebhook,
    responses((status = 201, description = "Added", body = CreatedWebhook))
)]
pub async fn add_webhook(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJson<NewWebhook>,
) -> Response {
    write(
        &st,
        &caller,
        &headers,
        "POST /api/v1/webhooks",
        body.digest,
        |st2, caller| async move {
            caller.require_everywhere(KeyRole::Backoffice)?;
            // Each gateway's milestones are those of its own partitions there: one leader
            // cannot deliver the fleet's (not built yet).
            if st2.shared.owned.folds_owned_only() {
                return Err(ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "not_available",
                    "webhooks are not available with cluster.fold = \"owned\" yet".to_string(),
                ));
            }
            let hooks = registry(&st2)?.clone();
            let now = st2.shared.now_ms();
            let url = body.value.url;
            let carrier = caller.tenant.carrier().map(str::to_owned);
            let (webhook, secret) =
                tokio::task::spawn_blocking(move || hooks.add(&url, now, carrier.as_deref()))
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?
                    .map_err(refused)?;
            serde_json::to_value(CreatedWebhook { webhook, secret })
                .map(|v| (StatusCode::CREATED, v))
                .map_err(|e| ApiError::internal(e.to_string()))
        },
    )
    .await
}

/// Remove a webhook endpoint
///
/// Only endpoints added through the API; configured ones are removed from the configuration.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "Removed: the endpoints left", body = WebhookList))
)]
pub async fn remove_webhook(
    State(st): St,
    ApiPath(id): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require_everywhere(KeyRole::Backoffice)?;
    if !visible(&st, &caller)?.iter().any(|h| h.id == id) {
        return Err(ApiError::not_found(format!("no webhook {id}")));
    }
    let hooks = registry(&st)?.clone();
    tokio::task::spawn_blocking(move || hooks.remove(&id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(refused)?;
    Ok(json(WebhookList {
        items: visible(&st, &caller)?,
        next_cursor: None,
    }))
}

/// The endpoints the caller may see: a carrier's key, its carrier's; a platform key, all.
fn visible(st: &WebState, caller: &Caller) -> Result<Vec<WebhookInfo>, ApiError> {
    let mut items = registry(st)?.list();
    if let Some(mine) = caller.tenant.carrier() {
        items.retain(|h| h.carrier.as_deref() == Some(mine));
    }
    Ok(items)
}
