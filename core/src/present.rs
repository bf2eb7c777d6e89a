//! What people are shown, in one place: the recipient privacy rule (when a recipient may see
//! the driver's position) and the words of every status, milestone and failure reason. The QUIC
//! feed, the web pages and API, `milepost watch` and webhooks all call these, so every surface
//! says the same thing. Dispatcher alerts are worded here too ([`dispatch_text`]).

use milepost_proto::route::{Delivery, DispatchEvent, ParcelEvent, ParcelState, ParcelStatus};
use milepost_proto::DriverId;

use crate::feed::FeedConfig;
use crate::fleet::engine::FleetCore;

/// The privacy rule: the driver whose position the recipient of a parcel in `status` may see
/// now, if any. Only while the parcel is on its way (not planned, delivered or failed), and only
/// once the stop is near, by stops (`feed.position_stops`) or by ETA (`feed.position_minutes`,
/// counted from the driver's newest fix, the time the ETA was made at, or `now_ms` before the
/// first fix).
pub fn visible_driver(
    core: &FleetCore,
    rule: &FeedConfig,
    status: &ParcelStatus,
    now_ms: i64,
) -> Option<DriverId> {
    if matches!(
        status.state,
        ParcelState::Delivered | ParcelState::Failed | ParcelState::Planned
    ) {
        return None;
    }
    let view = core.route_view(&status.route_id)?;
    let base_ms = view.last_fix_t_ms.unwrap_or(now_ms);
    let near_stops = status.stops_away.is_some_and(|n| n <= rule.position_stops);
    let near_time = status
        .eta_ms
        .is_some_and(|eta| eta - base_ms <= rule.position_minutes as i64 * 60_000);
    if !(near_stops || near_time) {
        return None;
    }
    Some(view.driver)
}

/// Formats a UTC ms timestamp as `HH:MM` (UTC).
pub fn hhmm(ms: i64) -> String {
    let minute_of_day = ms.div_euclid(60_000).rem_euclid(24 * 60);
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// The recipient's one-line status, e.g. `3 stops away - arriving 14:05-14:15`.
pub fn status_line(s: &ParcelStatus) -> String {
    let window = match (s.earliest_ms, s.latest_ms) {
        (Some(a), Some(b)) => format!(" - arriving {}-{}", hhmm(a), hhmm(b)),
        _ => String::new(),
    };
    match s.state {
        ParcelState::Planned => "Planned for delivery".to_string(),
        ParcelState::OutForDelivery => match s.stops_away {
            Some(0) => format!("Next stop{window}"),
            Some(1) => format!("1 stop away{window}"),
            Some(n) => format!("{n} stops away{window}"),
            None => format!("Out for delivery{window}"),
        },
        ParcelState::ArrivingSoon => format!("Arriving soon{window}"),
        ParcelState::Arrived => "The driver is at your door".to_string(),
        ParcelState::Delivered => match s.last_event.as_ref().and_then(|u| u.kind.delivery()) {
            Some(d) => delivered_text(&d),
            None => "Delivered".to_string(),
        },
        ParcelState::Returned => "Returning to sender".to_string(),
        ParcelState::Failed => match &s.last_event {
            Some(u) => match &u.kind {
                ParcelEvent::Failed { reason, .. } => {
                    format!("Attempt failed: {}", reason_text(*reason))
                }
                _ => "Attempt failed".to_string(),
            },
            None => "Attempt failed".to_string(),
        },
    }
}

/// A failure reason in words.
pub fn reason_text(r: milepost_proto::route::FailureReason) -> &'static str {
    use milepost_proto::route::FailureReason::*;
    match r {
        RecipientAbsent => "recipient absent",
        AddressNotFound => "address not found",
        AccessProblem => "no access",
        Refused => "refused",
        Damaged => "damaged",
        Other => "other",
    }
}

/// A parcel event's kind, as pages and API clients name it (`OutForDelivery`, `StopsAway`...).
pub fn event_kind(e: &ParcelEvent) -> &'static str {
    match e {
        ParcelEvent::OutForDelivery => "OutForDelivery",
        ParcelEvent::StopsAway { .. } => "StopsAway",
        ParcelEvent::EtaChanged { .. } => "EtaChanged",
        ParcelEvent::ArrivingSoon => "ArrivingSoon",
        ParcelEvent::Arrived => "Arrived",
        ParcelEvent::Delivered { .. } | ParcelEvent::DeliveredTo { .. } => "Delivered",
        ParcelEvent::Failed { .. } => "Failed",
        ParcelEvent::Delayed { .. } => "Delayed",
        ParcelEvent::Returned { .. } => "Returned",
    }
}

/// When a milestone happened: a delivery at its own time, anything else at its fix's.
pub fn event_time(p: &milepost_proto::route::ParcelUpdate) -> i64 {
    p.kind.delivery().map_or(p.fix_t_ms, |d| d.at_ms)
}

/// The outcome a status shows: the delivery (proof, receiver) once delivered, the reason and
/// note once failed.
pub fn shown_outcome(
    s: &ParcelStatus,
) -> (
    Option<Delivery<'_>>,
    Option<(milepost_proto::route::FailureReason, &str)>,
) {
    let Some(kind) = s.last_event.as_ref().map(|u| &u.kind) else {
        return (None, None);
    };
    match (s.state, kind) {
        (ParcelState::Delivered, k) => (k.delivery(), None),
        (ParcelState::Failed, ParcelEvent::Failed { reason, note }) => {
            (None, Some((*reason, note.as_str())))
        }
        _ => (None, None),
    }
}

/// "Delivered 14:07", with the receiver's name when one was taken.
fn delivered_text(d: &Delivery<'_>) -> String {
    match d.received_by {
        Some(name) => format!("Delivered {} to {name}", hhmm(d.at_ms)),
        None => format!("Delivered {}", hhmm(d.at_ms)),
    }
}

/// One parcel milestone in words.
pub fn event_text(e: &ParcelEvent) -> String {
    match e {
        ParcelEvent::OutForDelivery => "Out for delivery".into(),
        ParcelEvent::StopsAway { n } => format!("{n} stops away"),
        ParcelEvent::EtaChanged {
            earliest_ms,
            latest_ms,
            ..
        } => {
            format!("Arriving {}-{}", hhmm(*earliest_ms), hhmm(*latest_ms))
        }
        ParcelEvent::ArrivingSoon => "Arriving soon".into(),
        ParcelEvent::Arrived => "Driver arrived".into(),
        ParcelEvent::Delivered { .. } | ParcelEvent::DeliveredTo { .. } => {
            e.delivery().map(|d| delivered_text(&d)).unwrap_or_default()
        }
        ParcelEvent::Failed { reason, note } => {
            format!("Attempt failed: {} {note}", reason_text(*reason))
        }
        ParcelEvent::Delayed { eta_ms, .. } => format!("Delayed, now expected {}", hhmm(*eta_ms)),
        ParcelEvent::Returned { note } if note.trim().is_empty() => "Returning to sender".into(),
        ParcelEvent::Returned { note } => format!("Returning to sender: {}", note.trim()),
    }
}

/// A route event as a dispatcher reads it: its kind's name, the text, and whether it is an
/// alert (worth a dispatcher's attention: stalled, late, failed attempt, off route, passed).
/// A new alert is a new `DispatchEvent` the core emits, and its words here.
pub fn dispatch_text(e: &DispatchEvent) -> (&'static str, String, bool) {
    match e {
        DispatchEvent::RouteStarted => ("RouteStarted", "Route started".into(), false),
        DispatchEvent::RouteFinished { delivered, failed } => (
            "RouteFinished",
            format!("Route finished: {delivered} delivered, {failed} not delivered"),
            false,
        ),
        DispatchEvent::DriverStalled { idle_s, no_fix } => {
            let why = if *no_fix { "no GPS fix" } else { "not moving" };
            (
                "DriverStalled",
                format!("Stalled: {why} for {} min", idle_s / 60),
                true,
            )
        }
        DispatchEvent::RunningLate { stop, minutes } => (
            "RunningLate",
            format!("Running {minutes} min late for {stop}"),
            true,
        ),
        DispatchEvent::AttemptFailed { stop, reason } => (
            "AttemptFailed",
            format!("Failed attempt at {stop}: {}", reason_text(*reason)),
            true,
        ),
        DispatchEvent::OffRoute { distance_m } => (
            "OffRoute",
            format!("Off route by {} m", distance_m.round() as i64),
            true,
        ),
        DispatchEvent::BackOnRoute => ("BackOnRoute", "Back on route".into(), false),
        DispatchEvent::StopArrived { stop, .. } => {
            ("StopArrived", format!("Arrived at {stop}"), false)
        }
        DispatchEvent::StopDeparted { stop, dwell_s } => (
            "StopDeparted",
            format!("Left {stop} after {} min", dwell_s / 60),
            false,
        ),
        DispatchEvent::StopPassed { stop } => (
            "StopPassed",
            format!("Passed {stop} without stopping"),
            true,
        ),
        DispatchEvent::DriverMoving => ("DriverMoving", "Moving again".into(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::route::{ParcelStatus, TimeWindow};

    #[test]
    fn status_lines_read_well() {
        let mut s = ParcelStatus {
            tracking: "T".into(),
            route_id: "R".into(),
            stop: "S".into(),
            state: ParcelState::OutForDelivery,
            stops_away: Some(3),
            eta_ms: Some(1_764_079_800_000),
            earliest_ms: Some(1_764_079_500_000),
            latest_ms: Some(1_764_080_100_000),
            window: Some(TimeWindow {
                start_ms: 0,
                end_ms: 1,
            }),
            last_event: None,
        };
        assert_eq!(status_line(&s), "3 stops away - arriving 14:05-14:15");
        s.state = ParcelState::ArrivingSoon;
        assert_eq!(status_line(&s), "Arriving soon - arriving 14:05-14:15");
        s.state = ParcelState::Planned;
        assert_eq!(status_line(&s), "Planned for delivery");
    }

    #[test]
    fn times_are_utc_hours_and_minutes() {
        assert_eq!(hhmm(0), "00:00");
        assert_eq!(hhmm(1_764_079_500_000), "14:05");
        assert_eq!(hhmm(-60_000), "23:59");
    }
}
