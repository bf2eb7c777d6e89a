//! `/api/v1/depots/{depot}/exceptions`: the depot's failed deliveries, one per parcel, as an
//! exception queue: the attempt (reason, driver's note), what the carrier's NDR policy decided
//! (re-attempt, hold, return; which attempt it was), what the recipient asked for since (another
//! slot, a neighbour...), and the handling of the failed-attempt alert it belongs to (open,
//! acknowledged, resolved; acknowledging and resolving is the alert's). The dispatcher page
//! shows the same queue (`/dispatch/exceptions`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use milepost_core::fleet::view::RouteView;
use milepost_core::present::{change_text, next_step_text, reason_text};
use milepost_proto::route::{
    DepotId, DispatchEvent, ParcelEvent, ParcelState, ParcelUpdate, RouteId, TrackingNumber, Update,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::api::alerts::{alert_events, views, wanted, AlertQuery, AlertState};
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiPath, ApiQuery};
use crate::web::respond::json;
use crate::web::state::WebState;

/// One failed delivery.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ExceptionView {
    /// The failed-attempt alert it belongs to (acknowledge and resolve it there).
    pub alert_id: u64,
    /// The parcel.
    pub tracking: String,
    /// The route of the attempt.
    pub route_id: String,
    /// The stop.
    pub stop: String,
    /// The driver.
    pub driver: String,
    /// Why, in words.
    pub reason: String,
    /// Which attempt it was (1 for the first), once the policy decided.
    pub attempt: Option<u32>,
    /// What happens now, by the carrier's policy.
    pub next_step: Option<String>,
    /// What the recipient asked for since, in words.
    pub wish: Option<String>,
    /// When it failed, UTC ms.
    pub at_ms: i64,
    /// The alert's handling.
    pub state: AlertState,
    /// Who acknowledged or resolved it.
    pub handled_by: Option<String>,
    /// Their note.
    pub note: Option<String>,
}

/// Exceptions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionList {
    /// The exceptions.
    pub items: Vec<ExceptionView>,
}

/// The parcel's milestones: its feed while it is live, else its history.
fn milestones(shared: &Shared, t: &TrackingNumber) -> Vec<ParcelUpdate> {
    let live: Vec<ParcelUpdate> = lock(&shared.state.feed)
        .parcel_after(t, 0, usize::MAX)
        .into_iter()
        .filter_map(|(_, u)| match u {
            Update::Parcel(p) => Some(p),
            _ => None,
        })
        .collect();
    if !live.is_empty() {
        return live;
    }
    shared
        .state
        .history
        .as_ref()
        .and_then(|h| h.parcel(t).ok().flatten())
        .map(|h| h.milestones)
        .unwrap_or_default()
}

/// The depot's failed deliveries whose alert is in `wanted`, newest first (at most `limit`).
pub fn exceptions(
    st: &WebState,
    depot: &str,
    wanted: &[AlertState],
    limit: usize,
) -> Result<Vec<ExceptionView>, ApiError> {
    let d = DepotId(depot.to_owned());
    let raised: Vec<_> = alert_events(st, &d, u64::MAX)
        .into_iter()
        .filter(|r| matches!(r.first.kind, DispatchEvent::AttemptFailed { .. }))
        .collect();
    let alerts = views(st, &d, &raised)?;
    let shared = &st.shared;
    let mut routes: HashMap<RouteId, Option<RouteView>> = HashMap::new();
    let mut out = Vec::new();
    for (r, a) in raised.iter().zip(alerts) {
        if !wanted.contains(&a.state) {
            continue;
        }
        let DispatchEvent::AttemptFailed { stop, reason } = &r.first.kind else {
            continue;
        };
        // One view per route, however many of its stops failed (live, else from the history).
        let view = routes.entry(r.first.route_id.clone()).or_insert_with(|| {
            lock(&shared.state.core)
                .route_view(&r.first.route_id)
                .or_else(|| {
                    let h = shared.state.history.as_ref()?;
                    h.route(&r.first.route_id).ok().flatten().map(|h| h.view)
                })
        });
        let failed: Vec<TrackingNumber> = view
            .iter()
            .flat_map(|v| v.stops.iter().filter(|s| &s.id == stop))
            .flat_map(|s| s.parcels.iter())
            .filter(|(_, state)| *state == ParcelState::Failed)
            .map(|(t, _)| t.clone())
            .collect();
        for t in failed {
            let ms = milestones(shared, &t);
            // The decision that followed this attempt (the first after it), and the newest wish
            // made since.
            let at = r.first.fix_t_ms;
            let decided = ms.iter().find_map(|m| match &m.kind {
                ParcelEvent::NextStep { next, attempt, .. } if m.fix_t_ms >= at => {
                    Some((*attempt, next_step_text(next, *attempt)))
                }
                _ => None,
            });
            let wish = ms.iter().rev().find_map(|m| match &m.kind {
                ParcelEvent::DeliveryChanged { change } if m.fix_t_ms >= at => {
                    Some(change_text(change))
                }
                _ => None,
            });
            out.push(ExceptionView {
                alert_id: a.id,
                tracking: t.0.clone(),
                route_id: a.route_id.clone(),
                stop: stop.0.clone(),
                driver: a.driver.clone(),
                reason: reason_text(*reason).to_owned(),
                attempt: decided.as_ref().map(|d| d.0),
                next_step: decided.map(|d| d.1),
                wish,
                at_ms: a.at_ms,
                state: a.state,
                handled_by: a.handled_by.clone(),
                note: a.note.clone(),
            });
            if out.len() >= limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// List a depot's failed deliveries
///
/// One per parcel, newest first: the attempt, the policy's next step, the recipient's wish
/// since, and the handling of its failed-attempt alert (`state`: `open` (the default: open
/// or acknowledged), `acknowledged`, `resolved` or `all`). At most `limit` (default 100).
#[utoipa::path(
    get,
    path = "/api/v1/depots/{depot}/exceptions",
    tag = "alerts",
    params(("depot" = String, Path, description = "Depot"), AlertQuery),
    responses((status = 200, description = "Failed deliveries", body = ExceptionList))
)]
pub async fn list_exceptions(
    State(st): State<Arc<WebState>>,
    ApiPath(depot): ApiPath<String>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Response, ApiError> {
    if !caller.reads(&depot) {
        return Err(ApiError::forbidden(format!("no scope for depot {depot}")));
    }
    let limit = crate::web::api::views::page_limit(q.limit)?;
    let items = exceptions(&st, &depot, wanted(q.state.as_deref())?, limit)?;
    Ok(json(ExceptionList { items }))
}
