//! Commands over QUIC: dispatchers assign and re-sequence routes, drivers report outcomes,
//! recipients leave instructions (and, in version 2, change the delivery and write to the
//! driver, who writes back: [`crate::server::service`]), and recipients or dispatchers ask a
//! parcel's status.
//!
//! Every command is checked against the token (role and scope) and statically (a route is
//! validated before it is logged), then appended to the log, and answered only once the applier
//! has folded it into the fleet state: the answer says what the core made of it (a wrong
//! one-time code is refused there, and the attempt stays on record in the log).

use std::sync::Arc;

use milepost_proto::route::{DriverUpdate, MessageFrom, Update};
use milepost_proto::{Command, CommandKind, DriverId, ErrorCode, ErrorFrame, ServerMsg};

use crate::auth::{Claims, Role};
pub use crate::server::commit::commit;
use crate::server::service;
use crate::server::shared::Shared;
use crate::state::lock;
use milepost_core::fold::CommandResult;
use milepost_core::store::LogRecord;

/// Longest delivery instructions accepted, bytes.
const MAX_INSTRUCTIONS: usize = 1_000;

fn refuse(code: ErrorCode, message: impl Into<String>) -> ServerMsg {
    ServerMsg::Error(ErrorFrame {
        code,
        message: message.into(),
    })
}

/// Ids may not carry control characters: they end up in index keys, paths and pages.
pub fn check_ids(route: &milepost_proto::route::Route) -> Result<(), String> {
    let bad = |s: &str| s.chars().any(char::is_control);
    if bad(&route.id.0) || bad(&route.depot.0) || bad(&route.driver.0) {
        return Err("ids may not contain control characters".into());
    }
    for stop in &route.stops {
        if bad(&stop.id.0) || stop.parcels.iter().any(|p| bad(&p.tracking.0)) {
            return Err("ids may not contain control characters".into());
        }
    }
    Ok(())
}

/// A depot may not take over what belongs to another: a live route with the same id, a
/// parcel (live on another depot's route, or in another depot's history), or a driver of
/// another carrier (on a live route of, or last seen in, another carrier's depot: driver ids
/// are the platform's, and a carrier's route must not reach another carrier's phone).
/// Checked before the record is logged, with the same answer whatever the other depot has, so
/// that the refusal says nothing about it.
pub(crate) fn check_ownership(
    shared: &Shared,
    route: &milepost_proto::route::Route,
) -> Result<(), String> {
    let other =
        || "the route, its driver or one of its parcels belongs to another depot".to_string();
    let carriers = &shared.cfg.carriers;
    let mine = carriers.carrier_of(&route.depot.0);
    let foreign = |depot: &str| carriers.carrier_of(depot) != mine;
    if lock(&shared.state.positions)
        .position_of(&route.driver)
        .is_some_and(|(depot, _)| foreign(depot))
    {
        return Err(other());
    }
    {
        let core = lock(&shared.state.core);
        if core
            .run(&route.id)
            .is_some_and(|r| r.plan.depot != route.depot)
        {
            return Err(other());
        }
        let drives_elsewhere = core
            .route_of_driver(&route.driver)
            .and_then(|r| core.run(r))
            .is_some_and(|r| foreign(&r.plan.depot.0));
        if drives_elsewhere {
            return Err(other());
        }
        for p in route.stops.iter().flat_map(|s| &s.parcels) {
            let theirs = core
                .parcel_status(&p.tracking)
                .and_then(|s| core.run(&s.route_id).map(|r| r.plan.depot != route.depot));
            if theirs == Some(true) {
                return Err(other());
            }
        }
    }
    if let Some(h) = &shared.state.history {
        for p in route.stops.iter().flat_map(|s| &s.parcels) {
            if let Ok(Some(old)) = h.parcel(&p.tracking) {
                if old.depot != route.depot {
                    return Err(other());
                }
            }
        }
    }
    Ok(())
}

/// Runs one command for the holder of `claims`.
pub async fn handle(claims: &Claims, shared: &Shared, cmd: Command) -> ServerMsg {
    let id = cmd.id;
    let at_ms = shared.now_ms();
    // `Err` carries the refusal to send; boxed because a `ServerMsg` is large.
    let role = |r: Role, what: &str| {
        if claims.role == r {
            Ok(())
        } else {
            Err(Box::new(refuse(
                ErrorCode::WrongRole,
                format!("{what} needs a {r:?} token").to_lowercase(),
            )))
        }
    };
    // Folding only what it owns, a gateway answers the commands that read its fold first only
    // for the depots it holds; elsewhere the client is told which gateway holds the depot
    // (those that only write are forwarded to it when committed).
    let reads_first = matches!(
        cmd.kind,
        CommandKind::Resequence { .. }
            | CommandKind::ParcelStatus { .. }
            | CommandKind::ChangeDelivery { .. }
            | CommandKind::SendMessage { .. }
            | CommandKind::MyRoute
            | CommandKind::GetRoute { .. }
    );
    if reads_first {
        if let Err(elsewhere) = shared.serves(&claims.depot) {
            return refuse(ErrorCode::ServerBusy, elsewhere.to_string());
        }
    }
    let (record, refusal_code) = match cmd.kind {
        CommandKind::AssignRoute(mut route) => {
            if let Err(e) = role(Role::Dispatcher, "assigning a route") {
                return *e;
            }
            if route.depot.0 != claims.depot {
                return refuse(ErrorCode::OutOfScope, "the route belongs to another depot");
            }
            // A replacement read back without its codes (GetRoute) keeps the live ones.
            if route
                .stops
                .iter()
                .flat_map(|s| &s.parcels)
                .any(|p| p.otp.is_none())
            {
                let core = lock(&shared.state.core);
                if let Some(live) = core.run(&route.id).map(|r| &r.plan) {
                    if live.depot == route.depot {
                        milepost_core::fleet::route::keep_codes(&mut route, live);
                    }
                }
            }
            if let Err(e) = milepost_core::fleet::route::validate(&route) {
                return refuse(ErrorCode::RouteRefused, e.to_string());
            }
            if let Err(why) = check_ids(&route) {
                return refuse(ErrorCode::RouteRefused, why);
            }
            if let Err(why) = check_ownership(shared, &route) {
                return refuse(ErrorCode::OutOfScope, why);
            }
            (
                LogRecord::RouteAssigned { route, at_ms },
                ErrorCode::RouteRefused,
            )
        }
        CommandKind::Resequence { route_id, order } => {
            if let Err(e) = role(Role::Dispatcher, "re-sequencing a route") {
                return *e;
            }
            let depot = lock(&shared.state.core)
                .route_view(&route_id)
                .map(|v| v.depot.0);
            match depot {
                None => return refuse(ErrorCode::NotFound, format!("no route {route_id}")),
                Some(d) if d != claims.depot => {
                    return refuse(ErrorCode::OutOfScope, "the route belongs to another depot")
                }
                Some(_) => {}
            }
            (
                LogRecord::RouteResequenced {
                    route_id,
                    order,
                    at_ms,
                },
                ErrorCode::RouteRefused,
            )
        }
        CommandKind::ReportOutcome {
            stop,
            tracking,
            outcome,
        } => {
            if let Err(e) = role(Role::Driver, "reporting an outcome") {
                return *e;
            }
            let driver = DriverId(claims.sub.clone());
            (
                LogRecord::OutcomeReported {
                    driver,
                    stop,
                    tracking,
                    outcome,
                    at_ms,
                },
                ErrorCode::OutcomeRefused,
            )
        }
        CommandKind::SetInstructions { tracking, text } => {
            if let Err(e) = role(Role::Recipient, "leaving instructions") {
                return *e;
            }
            if tracking.0 != claims.sub {
                return refuse(ErrorCode::OutOfScope, "a recipient token covers one parcel");
            }
            if text.len() > MAX_INSTRUCTIONS {
                return refuse(
                    ErrorCode::OutcomeRefused,
                    format!("instructions over {MAX_INSTRUCTIONS} bytes"),
                );
            }
            (
                LogRecord::InstructionsSet {
                    tracking,
                    text,
                    at_ms,
                },
                ErrorCode::OutcomeRefused,
            )
        }
        CommandKind::SendMessage { tracking, text } => {
            let from = match claims.role {
                Role::Recipient if claims.sub == tracking.0 => MessageFrom::Recipient,
                Role::Recipient => {
                    return refuse(ErrorCode::OutOfScope, "a recipient token covers one parcel")
                }
                Role::Driver
                    if service::drives(shared, &DriverId(claims.sub.clone()), &tracking) =>
                {
                    MessageFrom::Driver
                }
                Role::Driver => return refuse(ErrorCode::OutOfScope, "not a parcel of your route"),
                Role::Dispatcher => {
                    return refuse(
                        ErrorCode::WrongRole,
                        "the thread is the recipient's and the driver's",
                    )
                }
            };
            return answer(
                id,
                service::send_message(shared, tracking, from, text).await,
            );
        }
        CommandKind::ChangeDelivery { tracking, change } => {
            if let Err(e) = role(Role::Recipient, "changing a delivery") {
                return *e;
            }
            if tracking.0 != claims.sub {
                return refuse(ErrorCode::OutOfScope, "a recipient token covers one parcel");
            }
            let by = "recipient".to_owned();
            return answer(
                id,
                service::change_delivery(shared, tracking, change, by).await,
            );
        }
        CommandKind::MyRoute => {
            if let Err(e) = role(Role::Driver, "asking for one's route") {
                return *e;
            }
            let core = lock(&shared.state.core);
            // Only a route of the token's carrier (driver ids are the platform's).
            let carriers = &shared.cfg.carriers;
            let route = core
                .route_of_driver(&DriverId(claims.sub.clone()))
                .and_then(|id| core.route_in_order(id))
                .filter(|r| carriers.carrier_of(&r.depot.0) == carriers.carrier_of(&claims.depot));
            return match route {
                Some(route) => ServerMsg::Route {
                    id,
                    route: milepost_core::fleet::route::without_codes(route),
                },
                None => refuse(ErrorCode::NotFound, "no route assigned"),
            };
        }
        CommandKind::GetRoute { route_id } => {
            if let Err(e) = role(Role::Dispatcher, "reading a route's plan") {
                return *e;
            }
            // Another depot's route is answered as if it did not exist.
            let route = lock(&shared.state.core)
                .plan_in_order(&route_id)
                .filter(|r| r.depot.0 == claims.depot);
            return match route {
                Some(route) => ServerMsg::Route {
                    id,
                    route: milepost_core::fleet::route::without_codes(route),
                },
                None => refuse(ErrorCode::NotFound, format!("no route {route_id}")),
            };
        }
        CommandKind::ParcelStatus { tracking } => {
            // Scope before lookup: a refused caller learns nothing about which parcels exist.
            match claims.role {
                Role::Recipient if claims.sub != tracking.0 => {
                    return refuse(ErrorCode::OutOfScope, "a recipient token covers one parcel")
                }
                Role::Driver => {
                    return refuse(
                        ErrorCode::WrongRole,
                        "parcel status is for recipients and dispatchers",
                    )
                }
                _ => {}
            }
            // Live, or from the history once its route has closed.
            let live = {
                let core = lock(&shared.state.core);
                core.parcel_status(&tracking).map(|s| {
                    let depot = core.run(&s.route_id).map(|r| r.plan.depot.0.clone());
                    (s, depot)
                })
            };
            let found = match live {
                Some(found) => Some(found),
                None => shared
                    .state
                    .history
                    .as_ref()
                    .and_then(|h| h.parcel(&tracking).ok().flatten())
                    .map(|h| (h.status, Some(h.depot.0))),
            };
            let Some((status, depot)) = found else {
                return refuse(ErrorCode::NotFound, format!("no parcel {tracking}"));
            };
            let allowed = match claims.role {
                Role::Recipient => claims.sub == tracking.0,
                Role::Dispatcher => depot.as_deref() == Some(claims.depot.as_str()),
                Role::Driver => false,
            };
            if !allowed {
                return refuse(ErrorCode::OutOfScope, "not your parcel");
            }
            return ServerMsg::ParcelStatus { id, status };
        }
    };
    match commit(shared, record).await {
        Ok(CommandResult::Applied) => ServerMsg::Done { id },
        Ok(CommandResult::Refused(why)) => refuse(refusal_code, why),
        Err((code, message)) => refuse(code, message),
    }
}

/// `Done`, or the refusal as an `Error` frame.
fn answer(id: u32, r: Result<(), service::Refusal>) -> ServerMsg {
    match r {
        Ok(()) => ServerMsg::Done { id },
        Err((code, message)) => refuse(code, message),
    }
}

/// Routes driver updates from the applier to the driver's live session, if any. Best effort:
/// a driver that was offline (or whose queue was full: the push is dropped rather than slow
/// the applier) asks `MyRoute` when it reconnects.
pub async fn push_hub(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut rx = shared.applied.updates.subscribe();
    loop {
        let update = tokio::select! {
            u = rx.recv() => u,
            _ = stop.changed() => return,
        };
        match update {
            Ok(u) => {
                if let Update::Driver(d) = &*u {
                    push(&shared, d);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "driver push hub lagged");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn push(shared: &Shared, d: &DriverUpdate) {
    if let Some(tx) = shared.pushes.get(&d.driver) {
        let _ = tx.try_send(Box::new(ServerMsg::Push(d.clone())));
    }
}
