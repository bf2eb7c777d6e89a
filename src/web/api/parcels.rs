//! `/api/v1/parcels`: a parcel's status and history (live, or from the history database for
//! `history.retention_days` after its route closed), the same for up to 1,000 parcels at once,
//! a signed tracking link for its recipient, and recording its outcome from the back office.
//!
//! Parcels of depots the caller has no scope on are answered as unknown (404, or listed in
//! `not_found`): a caller learns nothing about other depots' parcels. A shipper's key
//! (`shipper:CARRIER`) reads single parcels of the carriers it names, by tracking number.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use milepost_core::store::LogRecord;
use milepost_proto::route::{valid_received_by, Outcome, Proof, TrackingNumber, MAX_RECEIVED_BY};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::apikeys::KeyRole;
use crate::auth::{Claims, Role};
use crate::state::lock;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiJson, ApiPath};
use crate::web::api::views::{parcel_detail, ParcelDetail, ReasonCode};
use crate::web::api::write::{commit, write};
use crate::web::auth::valid_tracking;
use crate::web::respond::json;
use crate::web::state::WebState;

type St = State<Arc<WebState>>;

/// Most tracking numbers in one bulk status request.
pub const BULK_MAX: usize = 1_000;

fn check_tracking(t: &str) -> Result<(), ApiError> {
    if valid_tracking(t) {
        Ok(())
    } else {
        Err(ApiError::not_found("no such parcel"))
    }
}

/// The parcel's detail if the caller may read its depot.
pub(crate) fn readable(
    st: &WebState,
    caller: &Caller,
    t: &str,
) -> Result<Option<ParcelDetail>, ApiError> {
    Ok(followable(st, caller, t)?.filter(|d| caller.reads(&d.depot)))
}

/// The parcel's detail if the caller may read its depot or follows its carrier's parcels (a
/// shipper: its status and history only, never the recipient's messages, contact or wishes).
fn followable(st: &WebState, caller: &Caller, t: &str) -> Result<Option<ParcelDetail>, ApiError> {
    if !valid_tracking(t) {
        return Ok(None);
    }
    Ok(parcel_detail(&st.shared, &TrackingNumber(t.to_owned()))?
        .filter(|d| caller.follows_parcel_in(&d.depot)))
}

/// Get a parcel's status and history
#[utoipa::path(
    get,
    path = "/api/v1/parcels/{tracking}",
    tag = "parcels",
    params(("tracking" = String, Path, description = "Tracking number")),
    responses((status = 200, description = "The parcel", body = ParcelDetail))
)]
pub async fn get_parcel(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    check_tracking(&tracking)?;
    let d = followable(&st, &caller, &tracking)?
        .ok_or_else(|| ApiError::not_found(format!("no parcel {tracking}")))?;
    Ok(json(d))
}

/// A bulk status request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// Tracking numbers, at most 1,000.
    pub tracking: Vec<String>,
}

/// A bulk status answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkAnswer {
    /// The parcels found, in the order asked.
    pub items: Vec<ParcelDetail>,
    /// Tracking numbers not found (or of depots the caller has no scope on).
    pub not_found: Vec<String>,
}

/// Status of many parcels
#[utoipa::path(
    post,
    path = "/api/v1/parcels/status",
    tag = "parcels",
    request_body = BulkRequest,
    responses((status = 200, description = "The parcels", body = BulkAnswer))
)]
pub async fn bulk_status(
    State(st): St,
    caller: Caller,
    body: ApiJson<BulkRequest>,
) -> Result<Response, ApiError> {
    let asked = body.value.tracking;
    if asked.len() > BULK_MAX {
        return Err(ApiError::too_large(format!(
            "at most {BULK_MAX} tracking numbers per request"
        ))
        .field("tracking"));
    }
    let mut answer = BulkAnswer {
        items: Vec::with_capacity(asked.len()),
        not_found: Vec::new(),
    };
    for t in asked {
        match followable(&st, &caller, &t)? {
            Some(d) => answer.items.push(d),
            None => answer.not_found.push(t),
        }
    }
    Ok(json(answer))
}

/// A tracking link request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Lifetime of the link, seconds (default `web.api.link_ttl_s`; at most 90 days).
    #[serde(default)]
    pub ttl_s: Option<u64>,
}

/// A signed tracking link.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackingLink {
    /// The link for the recipient (absolute with `web.public_url`, else a path). It carries
    /// the token once; the page then keeps it in a cookie.
    pub url: String,
    /// The recipient token alone (for an app that calls `/t/{tracking}/status` itself).
    pub token: String,
    /// When the link stops working, UTC ms.
    pub expires_ms: i64,
}

/// Sign a tracking link for the recipient
#[utoipa::path(
    post,
    path = "/api/v1/parcels/{tracking}/link",
    tag = "parcels",
    params(("tracking" = String, Path, description = "Tracking number")),
    request_body = LinkRequest,
    responses((status = 200, description = "The link", body = TrackingLink))
)]
pub async fn tracking_link(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
    body: ApiJson<LinkRequest>,
) -> Result<Response, ApiError> {
    check_tracking(&tracking)?;
    let d = readable(&st, &caller, &tracking)?
        .ok_or_else(|| ApiError::not_found(format!("no parcel {tracking}")))?;
    caller.require(KeyRole::Backoffice, &d.depot)?;
    let ttl = body.value.ttl_s.unwrap_or(st.cfg().api.link_ttl_s);
    if ttl == 0 || ttl > 90 * 86_400 {
        return Err(ApiError::bad_request("ttl_s must be 1 s to 90 days").field("ttl_s"));
    }
    let now_s = st.shared.now_ms().div_euclid(1000);
    let claims = Claims {
        role: Role::Recipient,
        sub: tracking.clone(),
        depot: d.depot.clone(),
        exp: now_s + ttl as i64,
        iat: now_s,
        carrier: Some(st.shared.cfg.carriers.carrier_of(&d.depot).to_owned()),
    };
    let token = st.shared.keys.mint(&claims);
    let base = st
        .cfg()
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/'))
        .unwrap_or("");
    Ok(json(TrackingLink {
        url: format!("{base}/t/{tracking}?token={token}"),
        token,
        expires_ms: claims.exp * 1000,
    }))
}

/// What happened at the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Handed over (proof required: a photo or signature digest, or the one-time code).
    Delivered,
    /// The attempt failed (a reason code required).
    Failed,
    /// Going back to the sender, no more attempts (also after a failed attempt).
    Returned,
}

/// An outcome recorded by the back office.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// What happened.
    pub outcome: OutcomeKind,
    /// Why it failed (failed only).
    #[serde(default)]
    pub reason: Option<ReasonCode>,
    /// A note (failed and returned only), at most 500 bytes.
    #[serde(default)]
    pub note: Option<String>,
    /// SHA-256 of the delivery photo, 64 hex digits (upload the file to
    /// `/api/v1/proofs/{sha256}`).
    #[serde(default)]
    pub photo_sha256: Option<String>,
    /// SHA-256 of the signature image.
    #[serde(default)]
    pub signature_sha256: Option<String>,
    /// The one-time code the recipient gave.
    #[serde(default)]
    pub otp: Option<String>,
    /// Who took the parcel (delivered only), 1 to 100 bytes.
    #[serde(default)]
    pub received_by: Option<String>,
}

fn outcome_of(r: OutcomeRequest) -> Result<Outcome, ApiError> {
    match r.outcome {
        OutcomeKind::Delivered => {
            if r.reason.is_some() || r.note.is_some() {
                return Err(
                    ApiError::bad_request("reason and note are for failed outcomes")
                        .field("reason"),
                );
            }
            if r.received_by
                .as_deref()
                .is_some_and(|n| !valid_received_by(n))
            {
                return Err(ApiError::unprocessable(format!(
                    "received_by must be 1 to {MAX_RECEIVED_BY} bytes of text"
                ))
                .field("received_by"));
            }
            let proof = Proof {
                photo_sha256: r.photo_sha256,
                signature_sha256: r.signature_sha256,
                otp: r.otp,
            };
            Ok(match r.received_by {
                Some(received_by) => Outcome::DeliveredTo { proof, received_by },
                None => Outcome::Delivered { proof },
            })
        }
        OutcomeKind::Returned => {
            if r.reason.is_some() {
                return Err(
                    ApiError::bad_request("a reason code is for failed outcomes").field("reason"),
                );
            }
            if r.photo_sha256.is_some()
                || r.signature_sha256.is_some()
                || r.otp.is_some()
                || r.received_by.is_some()
            {
                return Err(
                    ApiError::bad_request("proof is for delivered outcomes").field("photo_sha256")
                );
            }
            let note = r.note.unwrap_or_default();
            if note.len() > 500 {
                return Err(ApiError::too_large("note over 500 bytes").field("note"));
            }
            Ok(Outcome::Returned { note })
        }
        OutcomeKind::Failed => {
            let reason = r.reason.ok_or_else(|| {
                ApiError::unprocessable("a failed outcome needs a reason code").field("reason")
            })?;
            let note = r.note.unwrap_or_default();
            if note.len() > 500 {
                return Err(ApiError::too_large("note over 500 bytes").field("note"));
            }
            if r.photo_sha256.is_some()
                || r.signature_sha256.is_some()
                || r.otp.is_some()
                || r.received_by.is_some()
            {
                return Err(
                    ApiError::bad_request("proof is for delivered outcomes").field("photo_sha256")
                );
            }
            Ok(Outcome::Failed {
                reason: reason.into(),
                note,
            })
        }
    }
}

/// Record a parcel's outcome
///
/// The same log record and the same checks as a driver's report: the parcel must be on a live
/// route and open (a failed parcel may still be returned); a delivery needs proof (and the right one-time code where the stop asks
/// for one). A refused outcome (409) stays on record in the log as an attempt.
#[utoipa::path(
    post,
    path = "/api/v1/parcels/{tracking}/outcome",
    tag = "parcels",
    params(
        ("tracking" = String, Path, description = "Tracking number"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe"),
    ),
    request_body = OutcomeRequest,
    responses((status = 200, description = "Recorded: the parcel now", body = ParcelDetail))
)]
pub async fn record_outcome(
    State(st): St,
    ApiPath(tracking): ApiPath<String>,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJson<OutcomeRequest>,
) -> Response {
    let what = format!("POST /api/v1/parcels/{tracking}/outcome");
    write(
        &st,
        &caller,
        &headers,
        &what,
        body.digest,
        |st2, caller| async move {
            check_tracking(&tracking)?;
            let t = TrackingNumber(tracking.clone());
            // Where the parcel is now, and whose route it is.
            let (driver, stop, depot) = {
                let core = lock(&st2.shared.state.core);
                let s = core
                    .parcel_status(&t)
                    .ok_or_else(|| ApiError::not_found(format!("no live parcel {tracking}")))?;
                let run = core
                    .run(&s.route_id)
                    .ok_or_else(|| ApiError::not_found(format!("no live parcel {tracking}")))?;
                (run.plan.driver.clone(), s.stop, run.plan.depot.0.clone())
            };
            if !caller.reads(&depot) {
                return Err(ApiError::not_found(format!("no live parcel {tracking}")));
            }
            caller.require(KeyRole::Backoffice, &depot)?;
            let outcome = outcome_of(body.value)?;
            let rec = LogRecord::OutcomeReported {
                driver,
                stop,
                tracking: Some(t.clone()),
                outcome,
                at_ms: st2.shared.now_ms(),
            };
            commit(&st2.shared, rec, ApiError::conflict).await?;
            let d = parcel_detail(&st2.shared, &t)?
                .ok_or_else(|| ApiError::internal("the parcel vanished"))?;
            serde_json::to_value(&d)
                .map(|v| (StatusCode::OK, v))
                .map_err(|e| ApiError::internal(e.to_string()))
        },
    )
    .await
}
