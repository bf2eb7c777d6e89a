//! [`write`]: how every write handler runs its work: under the request's `Idempotency-Key`
//! ([`crate::web::api::idempotency`]), in a task of its own, with the gateway's state and the
//! caller handed in (the task outlives a client that gives up); and [`commit`], a record
//! logged and folded, its refusal as the caller's error.

use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use milepost_core::fold::CommandResult;
use milepost_core::store::LogRecord;

use crate::server::shared::Shared;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::state::WebState;

/// Runs write `f` of `caller`, named `what` (method and path) with body digest `digest`.
pub async fn write<F, Fut>(
    st: &Arc<WebState>,
    caller: &Caller,
    headers: &HeaderMap,
    what: &str,
    digest: [u8; 32],
    f: F,
) -> Response
where
    F: FnOnce(Arc<WebState>, Caller) -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>> + Send + 'static,
{
    let (state, who) = (st.clone(), caller.clone());
    st.api
        .idempotency
        .run(&caller.id, headers, what, digest, move || f(state, who))
        .await
}

/// Logs `rec` through the command path and waits until it is folded; a refusal by the core
/// becomes `refused(why)`, a storage failure its API error.
pub async fn commit(
    shared: &Shared,
    rec: LogRecord,
    refused: fn(String) -> ApiError,
) -> Result<(), ApiError> {
    match crate::server::commands::commit(shared, rec).await {
        Ok(CommandResult::Applied) => Ok(()),
        Ok(CommandResult::Refused(why)) => Err(refused(why)),
        Err((code, message)) => Err(ApiError::from_command(code, message)),
    }
}
