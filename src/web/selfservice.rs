//! What a parcel's recipient does from the tracking page beside instructions: change the
//! delivery (`/t/{tracking}/delivery`: the choices on offer, and the change) and write to the
//! driver (`/t/{tracking}/messages`: the thread, and a new message). Same token check as the
//! rest of `/t/{tracking}`; the checks and the log record are `crate::server::service`'s.
//! Bodies are JSON, which a cross-site form cannot send; the page's cookie is `SameSite`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use milepost_core::fleet::engine::ServiceError;
use milepost_proto::route::{DeliveryChange, MessageFrom, TrackingNumber};
use milepost_proto::service::{valid_text, MAX_MESSAGE};
use serde::{Deserialize, Serialize};

use crate::selfservice::{offers, Offers};
use crate::server::service;
use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::auth::{authorize_parcel, check_tracking};
use crate::web::error::WebError;
use crate::web::respond::json;
use crate::web::state::WebState;
use crate::web::views::parcel::{parcel_view, MessageView};

/// A change as a page or the API sends it: one of the choices, by name.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeBody {
    /// Another slot, one of the offered ones (by its start and end).
    Reschedule {
        /// Start, UTC ms.
        start_ms: i64,
        /// End, UTC ms.
        end_ms: i64,
    },
    /// A neighbour.
    Neighbour {
        /// Their name.
        name: String,
        /// Where they live.
        address: String,
    },
    /// A pickup point, by id.
    PickupPoint {
        /// Its id.
        id: String,
    },
    /// A safe place.
    SafePlace {
        /// Where.
        place: String,
    },
}

impl ChangeBody {
    /// The change, with a pickup point's name from the policy (an unknown id keeps none, and
    /// the policy check refuses it).
    pub fn into_change(self, shared: &Shared) -> DeliveryChange {
        let clean = |s: String| s.trim().to_owned();
        match self {
            ChangeBody::Reschedule { start_ms, end_ms } => {
                crate::selfservice::reschedule(start_ms, end_ms)
            }
            ChangeBody::Neighbour { name, address } => DeliveryChange::Neighbour {
                name: clean(name),
                address: clean(address),
            },
            ChangeBody::PickupPoint { id } => {
                let name = shared
                    .cfg
                    .self_service
                    .pickup_points
                    .iter()
                    .find(|p| p.id == id)
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                DeliveryChange::PickupPoint { id, name }
            }
            ChangeBody::SafePlace { place } => DeliveryChange::SafePlace {
                place: clean(place),
            },
        }
    }
}

/// What `GET .../delivery` answers: the choices on offer now, and the change made, if any.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOptions {
    /// What may be chosen.
    pub offers: Offers,
    /// The change in force, in words.
    pub change: Option<String>,
    /// The change in force.
    #[schema(value_type = Option<Object>)]
    pub current: Option<DeliveryChange>,
}

/// The options of a parcel (whether it may still change is the command's answer).
pub fn options(shared: &Shared, t: &TrackingNumber) -> DeliveryOptions {
    let current = lock(&shared.state.core)
        .delivery_change(t)
        .map(|(c, _)| c.clone());
    DeliveryOptions {
        offers: offers(&shared.cfg.self_service, shared.now_ms()),
        change: current.as_ref().map(milepost_core::present::change_text),
        current,
    }
}

/// Only the recipient changes their delivery or writes as the recipient (a dispatcher, whose
/// token also opens the page, reads; the back office acts through the API, by name).
fn recipient_only(claims: &crate::auth::Claims) -> Result<(), WebError> {
    match claims.role {
        crate::auth::Role::Recipient => Ok(()),
        _ => Err(WebError::WrongRole(
            "only the parcel's recipient does this here".into(),
        )),
    }
}

/// `GET /t/{tracking}/delivery`: the choices on offer and the change in force.
pub async fn get_delivery(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    check_tracking(&tracking)?;
    authorize_parcel(&st.shared, &headers, &tracking)?;
    Ok(json(options(&st.shared, &TrackingNumber(tracking))))
}

/// `POST /t/{tracking}/delivery`: changes the delivery; answers the options after it.
pub async fn post_delivery(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ChangeBody>, JsonRejection>,
) -> Result<Response, WebError> {
    check_tracking(&tracking)?;
    recipient_only(&authorize_parcel(&st.shared, &headers, &tracking)?.0)?;
    let Json(body) = body.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let t = TrackingNumber(tracking);
    let change = body.into_change(&st.shared);
    service::change_delivery(&st.shared, t.clone(), change, "recipient".into())
        .await
        .map_err(|(code, why)| WebError::from_code(code, why))?;
    Ok(json(options(&st.shared, &t)))
}

/// The body of `POST /t/{tracking}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// The text, at most 500 bytes.
    pub text: String,
}

/// The thread, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Thread {
    /// The messages.
    pub messages: Vec<MessageView>,
}

/// `GET /t/{tracking}/messages`: the thread.
pub async fn get_messages(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    check_tracking(&tracking)?;
    authorize_parcel(&st.shared, &headers, &tracking)?;
    Ok(json(thread_of(&st.shared, &tracking)?))
}

/// The thread of a parcel, live or from its history.
pub fn thread_of(shared: &Shared, tracking: &str) -> Result<Thread, WebError> {
    let view = parcel_view(shared, &TrackingNumber(tracking.to_owned()))
        .ok_or_else(|| WebError::NotFound(format!("no parcel {tracking}")))?;
    Ok(Thread {
        messages: view.messages,
    })
}

/// `POST /t/{tracking}/messages`: writes to the driver; answers the thread.
pub async fn post_message(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
    body: Result<Json<MessageBody>, JsonRejection>,
) -> Result<Response, WebError> {
    check_tracking(&tracking)?;
    recipient_only(&authorize_parcel(&st.shared, &headers, &tracking)?.0)?;
    let Json(body) = body.map_err(|e| WebError::BadRequest(e.body_text()))?;
    // A message that is not text is the request's fault, not the state's.
    if !valid_text(body.text.trim(), MAX_MESSAGE) {
        return Err(WebError::BadRequest(ServiceError::BadText.to_string()));
    }
    let t = TrackingNumber(tracking.clone());
    service::send_message(&st.shared, t, MessageFrom::Recipient, body.text)
        .await
        .map_err(|(code, why)| WebError::from_code(code, why))?;
    Ok(json(thread_of(&st.shared, &tracking)?))
}
