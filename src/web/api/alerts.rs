//! `/api/v1/depots/{depot}/alerts`: a depot's exceptions (a driver stalled or off route, a
//! stop running late or passed without an outcome, a failed attempt), newest first, each with
//! what was done about it; acknowledging and resolving one is a log record
//! (`AlertHandled`), kept beside the history ([`crate::history::AlertHandling`]).
//!
//! An alert is a route event of the depot's feed, named by its offset there (the id the
//! dispatcher page's event stream shows); the feed keeps the newest `feed.depot_events_kept`.
//! `active` says whether its condition still holds (the driver is still stalled, the stop is
//! still not served...).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use milepost_core::fleet::progress::StopPhase;
use milepost_core::fleet::view::RouteView;
use milepost_core::present::dispatch_text;
use milepost_core::store::record::AlertAction;
use milepost_core::store::LogRecord;
use milepost_proto::route::{DepotId, DispatchEvent, DispatchUpdate, RouteId, Update};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::apikeys::KeyRole;
use crate::history::AlertHandling;
use crate::state::lock;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::web::api::views::{cursor_id, cursor_of, page_limit, Page};
use crate::web::api::write::{commit, write};
use crate::web::respond::json;
use crate::web::state::WebState;

type St = State<Arc<WebState>>;

/// Where an alert is in its handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Nobody has taken it yet.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Dealt with.
    Resolved,
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AlertView {
    /// Its offset in the depot's feed: the alert's id.
    pub id: u64,
    /// The route.
    pub route_id: String,
    /// The driver.
    pub driver: String,
    /// `DriverStalled`, `RunningLate`, `AttemptFailed`, `OffRoute`, `StopPassed`...
    pub kind: String,
    /// In words, as of its newest update.
    pub text: String,
    /// When it was raised, UTC ms.
    pub at_ms: i64,
    /// How many times it was updated since (a route running later and later for the same
    /// stop is one alert, updated; not a new one every few minutes).
    pub updates: u32,
    /// When it was last updated, UTC ms.
    pub updated_ms: Option<i64>,
    /// Its condition still holds.
    pub active: bool,
    /// Its handling.
    pub state: AlertState,
    /// Who acknowledged or resolved it.
    pub handled_by: Option<String>,
    /// When, UTC ms.
    pub handled_ms: Option<i64>,
    /// Their note.
    pub note: Option<String>,
}

/// Alerts of a page.
pub type AlertPage = Page<AlertView>;

/// The query of an alert list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open` (not resolved: open or acknowledged; the default), `acknowledged`, `resolved`
    /// or `all`.
    pub state: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1-1000 (default 100).
    pub limit: Option<u32>,
}

/// One alert: the event that raised it (its offset is the alert's id) and the newest one
/// that updated it.
pub(crate) struct Raised {
    pub(crate) id: u64,
    pub(crate) first: DispatchUpdate,
    pub(crate) latest: DispatchUpdate,
    pub(crate) updates: u32,
}

/// The depot's alerts, newest first, with ids below `before`.
pub(crate) fn alert_events(st: &WebState, depot: &DepotId, before: u64) -> Vec<Raised> {
    let feed = lock(&st.shared.state.feed);
    let last = feed.depot_last(depot);
    let kept = st.shared.cfg.feed.depot_events_kept.max(1) as u64;
    let from = last.saturating_sub(kept);
    let events: Vec<(u64, DispatchUpdate)> = feed
        .depot_after(depot, from, kept as usize)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(o, u)| match u {
            Update::Dispatch(d) if dispatch_text(&d.kind).2 => Some((o, d)),
            _ => None,
        })
        .collect();
    drop(feed);
    // A repeat never folds into an alert already resolved: it raises a new one.
    let late_ids = events
        .iter()
        .filter(|(_, d)| matches!(d.kind, DispatchEvent::RunningLate { .. }))
        .map(|(o, _)| *o);
    let resolved: std::collections::HashSet<u64> = match &st.shared.state.history {
        Some(h) => h
            .alerts(&depot.0, late_ids)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, h)| h.action == AlertAction::Resolved)
            .map(|(o, _)| o)
            .collect(),
        None => Default::default(),
    };
    let mut v = fold_repeats(events, |id| resolved.contains(&id));
    v.retain(|r| r.id < before);
    v.reverse();
    v
}

/// Folds repeats into the alert they update: a `RunningLate` for a route and stop that
/// already has one not yet resolved (the core says it again every few more minutes late).
/// `events` oldest first; so is the result.
fn fold_repeats(events: Vec<(u64, DispatchUpdate)>, resolved: impl Fn(u64) -> bool) -> Vec<Raised> {
    let mut out: Vec<Raised> = Vec::new();
    let mut late: HashMap<(RouteId, milepost_proto::route::StopId), usize> = HashMap::new();
    for (id, d) in events {
        if let DispatchEvent::RunningLate { stop, .. } = &d.kind {
            let key = (d.route_id.clone(), stop.clone());
            if let Some(&i) = late.get(&key).filter(|&&i| !resolved(out[i].id)) {
                out[i].latest = d;
                out[i].updates += 1;
                continue;
            }
            late.insert(key, out.len());
        }
        out.push(Raised {
            id,
            first: d.clone(),
            latest: d,
            updates: 0,
        });
    }
    out
}

/// Whether an alert's condition still holds, given its route's view (none: the route left).
fn active(d: &DispatchUpdate, view: Option<&RouteView>) -> bool {
    let Some(v) = view else { return false };
    let pending = |stop: &milepost_proto::route::StopId| {
        v.stops
            .iter()
            .any(|s| &s.id == stop && s.phase != StopPhase::Done)
    };
    match &d.kind {
        DispatchEvent::DriverStalled { .. } => v.stalled,
        DispatchEvent::OffRoute { .. } => v.off_route,
        DispatchEvent::RunningLate { stop, .. } | DispatchEvent::StopPassed { stop } => {
            pending(stop)
        }
        DispatchEvent::AttemptFailed { .. } => true,
        _ => false,
    }
}

fn state_of(h: Option<&AlertHandling>) -> AlertState {
    match h.map(|h| h.action) {
        None => AlertState::Open,
        Some(AlertAction::Acknowledged) => AlertState::Acknowledged,
        Some(AlertAction::Resolved) => AlertState::Resolved,
    }
}

/// The views of `events`, with their handling and whether they still hold.
pub(crate) fn views(
    st: &WebState,
    depot: &DepotId,
    events: &[Raised],
) -> Result<Vec<AlertView>, ApiError> {
    let handled = match &st.shared.state.history {
        Some(h) => h
            .alerts(&depot.0, events.iter().map(|r| r.id))
            .map_err(|e| ApiError::internal(e.to_string()))?,
        None => Default::default(),
    };
    let mut routes: HashMap<RouteId, Option<RouteView>> = HashMap::new();
    let core = lock(&st.shared.state.core);
    Ok(events
        .iter()
        .map(|r| {
            let d = &r.latest;
            let view = routes
                .entry(d.route_id.clone())
                .or_insert_with(|| core.route_view(&d.route_id));
            let (kind, text, _) = dispatch_text(&d.kind);
            let h = handled.get(&r.id);
            AlertView {
                id: r.id,
                route_id: d.route_id.0.clone(),
                driver: d.driver.0.clone(),
                kind: kind.to_owned(),
                text,
                at_ms: r.first.fix_t_ms,
                updates: r.updates,
                updated_ms: (r.updates > 0).then_some(d.fix_t_ms),
                active: active(d, view.as_ref()),
                state: state_of(h),
                handled_by: h.map(|h| h.by.clone()),
                handled_ms: h.map(|h| h.at_ms),
                note: h.map(|h| h.note.clone()),
            }
        })
        .collect())
}

/// The alert states a `state` query names (`open`: open or acknowledged, the default).
pub fn wanted(state: Option<&str>) -> Result<&'static [AlertState], ApiError> {
    Ok(match state.unwrap_or("open") {
        "open" => &[AlertState::Open, AlertState::Acknowledged],
        "acknowledged" => &[AlertState::Acknowledged],
        "resolved" => &[AlertState::Resolved],
        "all" => &[
            AlertState::Open,
            AlertState::Acknowledged,
            AlertState::Resolved,
        ],
        _ => {
            return Err(
                ApiError::bad_request("state is open, acknowledged, resolved or all")
                    .field("state"),
            )
        }
    })
}

/// List a depot's alerts
///
/// Newest first, with what was done about each.
#[utoipa::path(
    get,
    path = "/api/v1/depots/{depot}/alerts",
    tag = "alerts",
    params(("depot" = String, Path, description = "Depot"), AlertQuery),
    responses((status = 200, description = "A page of alerts", body = Page<AlertView>))
)]
pub async fn list_alerts(
    State(st): St,
    ApiPath(depot): ApiPath<String>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Response, ApiError> {
    if !caller.reads(&depot) {
        return Err(ApiError::forbidden(format!("no scope for depot {depot}")));
    }
    let wanted = wanted(q.state.as_deref())?;
    let limit = page_limit(q.limit)?;
    let before = match q.cursor.as_deref().map(cursor_id).transpose()? {
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::bad_request("not a cursor of this list").field("cursor"))?,
        None => u64::MAX,
    };
    let depot = DepotId(depot);
    let events = alert_events(&st, &depot, before);
    let mut items: Vec<AlertView> = views(&st, &depot, &events)?
        .into_iter()
        .filter(|a| wanted.contains(&a.state))
        .take(limit + 1)
        .collect();
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(cursor_of(&last.id.to_string())),
        _ => None,
    };
    Ok(json(AlertPage { items, next_cursor }))
}

/// What a dispatcher says when handling an alert.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandleBody {
    /// A note for the record, at most 500 bytes.
    #[serde(default)]
    pub note: Option<String>,
}

/// Acknowledges or resolves alert `id` of `depot` for `caller` (a dispatcher of the depot):
/// the `AlertHandled` record, then the alert as it is now.
///
/// # Errors
/// No scope, a note over 500 bytes, no such alert, one already resolved (or acknowledged
/// again), or the log's refusal.
pub async fn handle_alert(
    st: &WebState,
    caller: &Caller,
    depot: &str,
    id: u64,
    action: AlertAction,
    note: String,
) -> Result<AlertView, ApiError> {
    caller.require(KeyRole::Dispatcher, depot)?;
    if note.len() > 500 {
        return Err(ApiError::too_large("note over 500 bytes").field("note"));
    }
    let d = DepotId(depot.to_owned());
    let find = |st: &WebState| -> Result<AlertView, ApiError> {
        let ev: Vec<_> = alert_events(st, &d, id.saturating_add(1))
            .into_iter()
            .filter(|r| r.id == id)
            .collect();
        views(st, &d, &ev)?
            .pop()
            .ok_or_else(|| ApiError::not_found(format!("no alert {id} in depot {depot}")))
    };
    let now = find(st)?;
    match (now.state, action) {
        (AlertState::Resolved, _) => {
            return Err(ApiError::conflict("the alert is resolved already"))
        }
        (AlertState::Acknowledged, AlertAction::Acknowledged) => {
            return Err(ApiError::conflict("the alert is acknowledged already"))
        }
        _ => {}
    }
    let rec = LogRecord::AlertHandled {
        depot: depot.to_owned(),
        offset: id,
        action,
        by: caller.name.clone(),
        note,
        at_ms: st.shared.now_ms(),
    };
    commit(&st.shared, rec, ApiError::conflict).await?;
    find(st)
}

async fn handle(
    st: Arc<WebState>,
    caller: Caller,
    headers: HeaderMap,
    depot: String,
    id: &str,
    action: AlertAction,
    body: ApiJson<HandleBody>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        use axum::response::IntoResponse;
        return ApiError::not_found("an alert's id is a number").into_response();
    };
    let verb = match action {
        AlertAction::Acknowledged => "acknowledge",
        AlertAction::Resolved => "resolve",
    };
    let what = format!("POST /api/v1/depots/{depot}/alerts/{id}/{verb}");
    write(
        &st,
        &caller,
        &headers,
        &what,
        body.digest,
        |st2, caller| async move {
            let note = body.value.note.unwrap_or_default();
            let after = handle_alert(&st2, &caller, &depot, id, action, note).await?;
            serde_json::to_value(&after)
                .map(|v| (StatusCode::OK, v))
                .map_err(|e| ApiError::internal(e.to_string()))
        },
    )
    .await
}

/// Acknowledge an alert
#[utoipa::path(
    post,
    path = "/api/v1/depots/{depot}/alerts/{id}/acknowledge",
    tag = "alerts",
    params(
        ("depot" = String, Path, description = "Depot"),
        ("id" = u64, Path, description = "The alert's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe"),
    ),
    request_body = HandleBody,
    responses((status = 200, description = "The alert now", body = AlertView))
)]
pub async fn acknowledge(
    State(st): St,
    ApiPath((depot, id)): ApiPath<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJson<HandleBody>,
) -> Response {
    handle(
        st,
        caller,
        headers,
        depot,
        &id,
        AlertAction::Acknowledged,
        body,
    )
    .await
}

/// Resolve an alert
#[utoipa::path(
    post,
    path = "/api/v1/depots/{depot}/alerts/{id}/resolve",
    tag = "alerts",
    params(
        ("depot" = String, Path, description = "Depot"),
        ("id" = u64, Path, description = "The alert's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried write safe"),
    ),
    request_body = HandleBody,
    responses((status = 200, description = "The alert now", body = AlertView))
)]
pub async fn resolve(
    State(st): St,
    ApiPath((depot, id)): ApiPath<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJson<HandleBody>,
) -> Response {
    handle(st, caller, headers, depot, &id, AlertAction::Resolved, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn late(route: &str, stop: &str, minutes: u32) -> DispatchUpdate {
        DispatchUpdate {
            route_id: route.into(),
            driver: "d1".into(),
            fix_t_ms: i64::from(minutes) * 60_000,
            kind: DispatchEvent::RunningLate {
                stop: stop.into(),
                minutes,
            },
        }
    }

    #[test]
    fn a_route_running_later_and_later_is_one_alert_updated() {
        let stalled = DispatchUpdate {
            kind: DispatchEvent::DriverStalled {
                idle_s: 400,
                no_fix: true,
            },
            ..late("R1", "S1", 0)
        };
        let events = vec![
            (3, late("R1", "S1", 10)),
            (5, late("R1", "S2", 11)),
            (8, late("R1", "S1", 15)),
            (9, stalled),
            (12, late("R1", "S1", 20)),
            (13, late("R2", "S1", 10)),
        ];
        let raised = fold_repeats(events.clone(), |_| false);
        let ids: Vec<u64> = raised.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![3, 5, 9, 13]);
        let s1 = &raised[0];
        assert_eq!(s1.updates, 2);
        assert_eq!(s1.first.fix_t_ms, 10 * 60_000);
        assert!(matches!(
            s1.latest.kind,
            DispatchEvent::RunningLate { minutes: 20, .. }
        ));
        // Once resolved, a new repeat raises a new alert.
        let raised = fold_repeats(events, |id| id == 3);
        let ids: Vec<u64> = raised.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![3, 5, 8, 9, 13]);
        assert_eq!(raised[2].updates, 1);
    }
}
