//! Recipients' self-service and the recipient-driver thread, as commands: the checks a
//! change or a message meets before it is logged (the carrier's `[self_service]` offer, who
//! may write, the rate limit), then the log record, answered once folded. The QUIC commands
//! (version 2), the tracking page and the HTTP API all come through here.

use milepost_core::fleet::engine::ServiceError;
use milepost_core::store::LogRecord;
use milepost_proto::route::{
    DeliveryChange, DriverEvent, DriverUpdate, MessageFrom, TrackingNumber,
};
use milepost_proto::{DriverId, ErrorCode, ServerMsg};

use crate::server::commit::commit;
use crate::server::shared::Shared;
use crate::state::lock;
use milepost_core::fold::CommandResult;

/// A refusal: the protocol's code and the reason in words.
pub type Refusal = (ErrorCode, String);

/// Logs a recipient's change to a parcel's delivery (`by`: `recipient`, or the API key's name
/// acting for them), once it is on offer; answered once the core applied it.
///
/// # Errors
/// Not on offer or malformed (`OutcomeRefused`), no such live parcel (`NotFound`), or what
/// the core refused (`OutcomeRefused`), or the log's failure.
pub async fn change_delivery(
    shared: &Shared,
    tracking: TrackingNumber,
    change: DeliveryChange,
    by: String,
) -> Result<(), Refusal> {
    let at_ms = shared.now_ms();
    crate::selfservice::check(&shared.cfg.self_service, &change, at_ms)
        .map_err(|why| (ErrorCode::OutcomeRefused, why))?;
    if lock(&shared.state.core).parcel_status(&tracking).is_none() {
        return Err((
            ErrorCode::NotFound,
            format!("parcel {tracking} is not on a live route"),
        ));
    }
    let record = LogRecord::DeliveryChanged {
        tracking,
        change,
        by,
        at_ms,
    };
    applied(commit(shared, record).await)
}

/// Logs a message of a parcel's thread; answered once folded.
///
/// # Errors
/// Bad text or a closed parcel (`OutcomeRefused`), no such live parcel (`NotFound`), the rate
/// limit (`RateLimited`), or the log's failure.
pub async fn send_message(
    shared: &Shared,
    tracking: TrackingNumber,
    from: MessageFrom,
    text: String,
) -> Result<(), Refusal> {
    let at_ms = shared.now_ms();
    let text = text.trim().to_owned();
    lock(&shared.state.core)
        .check_message(&tracking, from, &text, at_ms)
        .map_err(|e| {
            let code = match e {
                ServiceError::UnknownParcel(_) => ErrorCode::NotFound,
                ServiceError::RateLimited { .. } => ErrorCode::RateLimited,
                _ => ErrorCode::OutcomeRefused,
            };
            (code, e.to_string())
        })?;
    let record = LogRecord::MessagePosted {
        tracking,
        from,
        text,
        at_ms,
    };
    applied(commit(shared, record).await)
}

/// Whether `driver` drives the live route `tracking` is on (who may write as its driver).
pub fn drives(shared: &Shared, driver: &DriverId, tracking: &TrackingNumber) -> bool {
    let core = lock(&shared.state.core);
    core.parcel_status(tracking)
        .and_then(|s| core.run(&s.route_id).map(|r| &r.plan.driver == driver))
        .unwrap_or(false)
}

/// A push as a session of protocol `version` receives it: a version-1 app is told a delivery
/// change as the stop's instructions (the whole text the route gives it on `MyRoute`: the
/// recipient's instructions and the change), and does not receive the thread's messages (it
/// cannot answer them).
pub fn push_for(shared: &Shared, version: u16, msg: ServerMsg) -> Option<ServerMsg> {
    let ServerMsg::Push(d) = &msg else {
        return Some(msg);
    };
    if version > 1 || d.kind.in_version_1() {
        return Some(msg);
    }
    let DriverEvent::DeliveryChanged { stop, tracking, .. } = &d.kind else {
        return None;
    };
    // The stop's whole text as `MyRoute` gives it (the recipient's instructions and the
    // change), since a version-1 app replaces the parcel's instructions with it.
    let text = lock(&shared.state.core)
        .route_in_order(&d.route_id)?
        .stops
        .into_iter()
        .find(|s| &s.id == stop)?
        .instructions;
    Some(ServerMsg::Push(DriverUpdate {
        driver: d.driver.clone(),
        route_id: d.route_id.clone(),
        kind: DriverEvent::Instructions {
            stop: stop.clone(),
            tracking: tracking.clone(),
            text,
        },
    }))
}

fn applied(r: Result<CommandResult, Refusal>) -> Result<(), Refusal> {
    match r? {
        CommandResult::Applied => Ok(()),
        CommandResult::Refused(why) => Err((ErrorCode::OutcomeRefused, why)),
    }
}
