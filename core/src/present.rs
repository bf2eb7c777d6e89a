//! What people are shown, in one place: the recipient privacy rule (when a recipient may see
//! the driver's position) and the words of every status, milestone and failure reason. The QUIC
//! feed, the web pages and API, `milepost watch` and webhooks all call these, so every surface
//! says the same thing. Dispatcher alerts are worded here too ([`dispatch_text`]).

use chrono_tz::Tz;
use milepost_proto::route::{Delivery, DispatchEvent, ParcelEvent, ParcelState, ParcelStatus};
use milepost_proto::DriverId;

use crate::feed::FeedConfig;
use crate::fleet::engine::FleetCore;

/// The privacy rule: the driver whose position the recipient of a parcel in `status` may see
/// now, if any. Only while the parcel is on its way (not planned, delivered or failed), never
/// while the driver is at another stop, and only
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
    // Never while the driver is at another recipient's stop: where it is is theirs.
    let elsewhere = |s: &crate::fleet::view::StopView| {
        s.phase == crate::fleet::progress::StopPhase::Arrived && s.id != status.stop
    };
    if view.stops.iter().any(elsewhere) {
        return None;
    }
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

/// How a reader's times are written: their zone, and their locale's clock (24-hour `14:05`
/// or 12-hour `2:05 PM`) and date order (`Mon 7 Dec` or `Mon, Dec 7`). A bare zone is read
/// with a 24-hour clock, day before month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalClock {
    /// The zone.
    pub zone: Tz,
    /// A 12-hour clock with AM/PM.
    pub hour12: bool,
    /// The month before the day.
    pub month_first: bool,
}

/// Regions whose everyday clock is the 12-hour one (the locale's region, as in `en-US`).
const HOUR12_REGIONS: &[&str] = &[
    "US", "CA", "AU", "NZ", "IN", "PH", "PK", "BD", "EG", "SA", "MX", "CO",
];

impl LocalClock {
    /// The clock of `locale` (a BCP 47 tag such as `en-GB`, `en-US`, `de`) in `zone`: the
    /// region decides the hour's style and the date's order; without one, 24 hours and day
    /// first.
    pub fn of_locale(zone: Tz, locale: &str) -> LocalClock {
        let region = locale
            .split(['-', '_'])
            .skip(1)
            .find(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase);
        let region = region.as_deref().unwrap_or("");
        LocalClock {
            zone,
            hour12: HOUR12_REGIONS.contains(&region),
            month_first: region == "US",
        }
    }

    fn time_format(&self) -> &'static str {
        if self.hour12 {
            "%-I:%M %p"
        } else {
            "%H:%M"
        }
    }

    fn date_format(&self) -> &'static str {
        if self.month_first {
            "%a, %b %-d"
        } else {
            "%a %-d %b"
        }
    }
}

impl From<Tz> for LocalClock {
    fn from(zone: Tz) -> LocalClock {
        LocalClock {
            zone,
            hour12: false,
            month_first: false,
        }
    }
}

/// Formats a UTC ms timestamp as a time of day on `at`'s clock: `HH:MM` (or `h:MM AM`).
pub fn hhmm_in(ms: i64, at: impl Into<LocalClock>) -> String {
    let at = at.into();
    if at.zone == Tz::UTC && !at.hour12 {
        return hhmm(ms);
    }
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t
            .with_timezone(&at.zone)
            .format(at.time_format())
            .to_string(),
        None => hhmm(ms),
    }
}

/// A time as a person reads it on `now_ms`'s day: `14:05` that day (UTC), `Mon 7 Dec 14:05`
/// on any other.
pub fn clock_text(ms: i64, now_ms: i64) -> String {
    clock_text_in(ms, now_ms, Tz::UTC)
}

/// [`clock_text`] on `at`'s clock: the day is its zone's, and so is the time.
pub fn clock_text_in(ms: i64, now_ms: i64, at: impl Into<LocalClock>) -> String {
    let at = at.into();
    let (Some(t), Some(now)) = (
        chrono::DateTime::from_timestamp_millis(ms),
        chrono::DateTime::from_timestamp_millis(now_ms),
    ) else {
        return hhmm(ms);
    };
    let (t, now) = (t.with_timezone(&at.zone), now.with_timezone(&at.zone));
    if t.date_naive() == now.date_naive() {
        t.format(at.time_format()).to_string()
    } else {
        format!(
            "{} {}",
            t.format(at.date_format()),
            t.format(at.time_format())
        )
    }
}

/// The short name of `at`'s zone at `ms` (`UTC`, `CET`, `CEST`, `EST`...), for "Times are
/// ..." and "(UTC)" beside a time; an offset like `+0530` where the zone has no abbreviation.
pub fn zone_label(at: impl Into<LocalClock>, ms: i64) -> String {
    let zone = at.into().zone;
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&zone).format("%Z").to_string())
        .unwrap_or_else(|| "UTC".into())
}

/// When a status is read: now, and the driver's newest fix with the age past which the
/// view is stale, and the zone times are shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moment {
    /// Now, UTC ms.
    pub now_ms: i64,
    /// The route's newest fix, if any.
    pub last_fix_ms: Option<i64>,
    /// A parcel on its way whose driver has been silent longer than this is shown as stale.
    pub stale_after_ms: i64,
    /// The clock of the times shown (the depot's carrier's zone and locale).
    pub zone: LocalClock,
}

/// The recipient's one-line status, e.g. `3 stops away - arriving 14:05-14:15`, with times of
/// day only (see [`status_line_at`] for what a page shows).
pub fn status_line(s: &ParcelStatus) -> String {
    status_words(s, &hhmm, Tz::UTC.into())
}

/// `a` and `b` fall on one day in `at`'s zone.
fn same_day(a: i64, b: i64, at: LocalClock) -> bool {
    let zone = at.zone;
    if zone == Tz::UTC {
        return a.div_euclid(86_400_000) == b.div_euclid(86_400_000);
    }
    let day = |ms| {
        chrono::DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&zone).date_naive())
    };
    day(a) == day(b)
}

/// The recipient's one-line status as of `at`: times carry a date when not on `at`'s day, and
/// a parcel on its way whose driver has sent no fix for longer than `at.stale_after_ms` says
/// so instead of repeating an estimate made before the silence.
pub fn status_line_at(s: &ParcelStatus, at: &Moment) -> String {
    if let Some(f) = at.last_fix_ms.filter(|_| is_stale(s, at)) {
        let head = match s.state {
            ParcelState::ArrivingSoon => "Arriving soon",
            _ => "Out for delivery",
        };
        return format!(
            "{head} - no news from the driver since {}",
            clock_text_in(f, at.now_ms, at.zone)
        );
    }
    status_words(s, &|ms| clock_text_in(ms, at.now_ms, at.zone), at.zone)
}

/// True when a parcel on its way has had no fix from its driver for longer than
/// `at.stale_after_ms`.
pub fn is_stale(s: &ParcelStatus, at: &Moment) -> bool {
    let on_way = matches!(
        s.state,
        ParcelState::OutForDelivery | ParcelState::ArrivingSoon
    );
    on_way
        && at
            .last_fix_ms
            .is_some_and(|f| at.now_ms.saturating_sub(f) > at.stale_after_ms)
}

/// `time` writes a time with its date when needed, `zone` is the reader's.
fn status_words(s: &ParcelStatus, time: &dyn Fn(i64) -> String, zone: LocalClock) -> String {
    let window = match (s.earliest_ms, s.latest_ms) {
        // The end carries its own date only when it falls on another day than the start.
        (Some(a), Some(b)) if same_day(a, b, zone) => {
            format!(" - arriving {}-{}", time(a), hhmm_in(b, zone))
        }
        (Some(a), Some(b)) => format!(" - arriving {}-{}", time(a), time(b)),
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
            Some(d) => delivered_text(&d, time),
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
        ParcelEvent::NextStep { .. } => "NextStep",
        ParcelEvent::DeliveryChanged { .. } => "DeliveryChanged",
        ParcelEvent::Message { .. } => "Message",
    }
}

/// A recipient's delivery change in words: "Rescheduled to 2026-12-08 09:00-13:00 (UTC)",
/// "Leave with a neighbour: Ana, no. 14", "Safe place: behind the gate".
pub fn change_text(c: &milepost_proto::route::DeliveryChange) -> String {
    use milepost_proto::route::DeliveryChange;
    match c {
        DeliveryChange::Reschedule { window } => format!(
            "Rescheduled to {} {}-{} (UTC)",
            day(window.start_ms),
            hhmm(window.start_ms),
            hhmm(window.end_ms)
        ),
        DeliveryChange::Neighbour { name, address } => {
            format!("Leave with a neighbour: {name}, {address}")
        }
        DeliveryChange::PickupPoint { name, .. } => format!("Take to the pickup point {name}"),
        DeliveryChange::SafePlace { place } => format!("Safe place: {place}"),
    }
}

/// "2026-12-08": the UTC day of a time.
pub fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// What happens after a failed attempt, in words: "We will try again on a later delivery",
/// "Held for you at the depot's pickup counter", "Going back to the sender (3 attempts)".
pub fn next_step_text(next: &milepost_proto::route::NextStep, attempt: u32) -> String {
    use milepost_proto::route::NextStep;
    match next {
        NextStep::Reattempt => "We will try again on a later delivery".into(),
        NextStep::Hold { place } => format!("Held for you at {place}"),
        NextStep::Return if attempt > 1 => {
            format!("Going back to the sender after {attempt} attempts")
        }
        NextStep::Return => "Going back to the sender".into(),
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
fn delivered_text(d: &Delivery<'_>, time: &dyn Fn(i64) -> String) -> String {
    match d.received_by {
        Some(name) => format!("Delivered {} to {name}", time(d.at_ms)),
        None => format!("Delivered {}", time(d.at_ms)),
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
        ParcelEvent::Delivered { .. } | ParcelEvent::DeliveredTo { .. } => e
            .delivery()
            .map(|d| delivered_text(&d, &hhmm))
            .unwrap_or_default(),
        ParcelEvent::Failed { reason, note } => {
            format!("Attempt failed: {} {note}", reason_text(*reason))
        }
        ParcelEvent::Delayed { eta_ms, .. } => format!("Delayed, now expected {}", hhmm(*eta_ms)),
        ParcelEvent::Returned { note } if note.trim().is_empty() => "Returning to sender".into(),
        ParcelEvent::Returned { note } => format!("Returning to sender: {}", note.trim()),
        ParcelEvent::NextStep { next, attempt, .. } => next_step_text(next, *attempt),
        ParcelEvent::DeliveryChanged { change } => change_text(change),
        ParcelEvent::Message {
            from: milepost_proto::route::MessageFrom::Recipient,
            ..
        } => "You wrote to the driver".into(),
        ParcelEvent::Message { .. } => "The driver wrote to you".into(),
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
                format!("Stalled: {why} for {}", duration_text(*idle_s as u64)),
                true,
            )
        }
        DispatchEvent::RunningLate { stop, minutes } => (
            "RunningLate",
            format!(
                "Running {} late for {stop}",
                duration_text(*minutes as u64 * 60)
            ),
            true,
        ),
        DispatchEvent::AttemptFailed { stop, reason } => (
            "AttemptFailed",
            format!("Failed attempt at {stop}: {}", reason_text(*reason)),
            true,
        ),
        DispatchEvent::OffRoute { distance_m } => (
            "OffRoute",
            format!("Off route by {}", distance_text(*distance_m as f64)),
            true,
        ),
        DispatchEvent::BackOnRoute => ("BackOnRoute", "Back on route".into(), false),
        DispatchEvent::StopArrived { stop, .. } => {
            ("StopArrived", format!("Arrived at {stop}"), false)
        }
        DispatchEvent::StopDeparted { stop, dwell_s } => (
            "StopDeparted",
            format!("Left {stop} after {}", duration_text(*dwell_s as u64)),
            false,
        ),
        DispatchEvent::StopPassed { stop } => (
            "StopPassed",
            format!("Passed {stop} without an outcome"),
            true,
        ),
        DispatchEvent::DriverMoving => ("DriverMoving", "Moving again".into(), false),
    }
}

/// A duration as a person writes it: `45 s`, `12 min`, `2 h 5 min`, `3 days`.
pub fn duration_text(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..86_400 => match (secs / 3_600, secs % 3_600 / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        _ => match secs / 86_400 {
            1 => "1 day".into(),
            d => format!("{d} days"),
        },
    }
}

/// A distance as a person writes it: `350 m`, `4.2 km`, `7,880 km`.
pub fn distance_text(m: f64) -> String {
    let m = m.max(0.0);
    if m < 1_000.0 {
        return format!("{} m", m.round() as u64);
    }
    let km = m / 1_000.0;
    if km < 10.0 {
        return format!("{km:.1} km");
    }
    let whole = km.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} km")
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::route::{ParcelStatus, TimeWindow};

    /// A parcel 3 stops away, arriving from `earliest_ms` for 10 minutes.
    fn on_the_way(earliest_ms: i64, window: Option<TimeWindow>) -> ParcelStatus {
        ParcelStatus {
            tracking: "T".into(),
            route_id: "R".into(),
            stop: "S".into(),
            state: ParcelState::OutForDelivery,
            stops_away: Some(3),
            eta_ms: Some(earliest_ms),
            earliest_ms: Some(earliest_ms),
            latest_ms: Some(earliest_ms + 600_000),
            window,
            last_event: None,
        }
    }

    #[test]
    fn times_are_read_in_the_readers_zone_with_its_days() {
        let now = 1_764_079_800_000; // 2025-11-25 14:10 UTC, 15:10 in Zagreb (CET)
        let zg = chrono_tz::Europe::Zagreb;
        assert_eq!(hhmm_in(now, zg), "15:10");
        assert_eq!(clock_text_in(now - 60_000, now, zg), "15:09");
        assert_eq!(zone_label(zg, now), "CET");
        assert_eq!(zone_label(Tz::UTC, now), "UTC");
        // 23:30 UTC is already tomorrow in Zagreb: it carries its date there, not in UTC.
        let late = now + (9 * 60 + 20) * 60_000;
        assert_eq!(clock_text_in(late, now, Tz::UTC), "23:30");
        assert_eq!(clock_text_in(late, now, zg), "Wed 26 Nov 00:30");
        // A US carrier's locale: 12-hour clock, month before day.
        let us = LocalClock::of_locale(zg, "en-US");
        assert_eq!(hhmm_in(now, us), "3:10 PM");
        assert_eq!(clock_text_in(late, now, us), "Wed, Nov 26 12:30 AM");
        assert_eq!(LocalClock::of_locale(zg, "de"), LocalClock::from(zg));
        assert_eq!(LocalClock::of_locale(zg, "en-GB"), LocalClock::from(zg));
        assert!(LocalClock::of_locale(Tz::UTC, "en-AU").hour12);
        let s = on_the_way(now + 3_600_000, None);
        let at = Moment {
            now_ms: now,
            last_fix_ms: Some(now - 30_000),
            stale_after_ms: 180_000,
            zone: zg.into(),
        };
        assert_eq!(
            status_line_at(&s, &at),
            "3 stops away - arriving 16:10-16:20"
        );
    }

    #[test]
    fn pages_put_a_date_on_other_days_and_say_when_the_driver_went_quiet() {
        let now = 1_764_079_800_000; // 2025-11-25 14:10 UTC
        assert_eq!(clock_text(now - 60_000, now), "14:09");
        assert_eq!(clock_text(now + 86_400_000, now), "Wed 26 Nov 14:10");
        let mut s = on_the_way(now + 86_400_000, None);
        let mut at = Moment {
            now_ms: now,
            last_fix_ms: Some(now - 30_000),
            stale_after_ms: 180_000,
            zone: Tz::UTC.into(),
        };
        assert_eq!(
            status_line_at(&s, &at),
            "3 stops away - arriving Wed 26 Nov 14:10-14:20"
        );
        at.last_fix_ms = Some(now - 600_000);
        assert_eq!(
            status_line_at(&s, &at),
            "Out for delivery - no news from the driver since 14:00"
        );
        // Once delivered, silence is no news.
        s.state = ParcelState::Delivered;
        assert_eq!(status_line_at(&s, &at), "Delivered");
    }

    #[test]
    fn alert_figures_read_as_people_write_them() {
        let late = dispatch_text(&DispatchEvent::RunningLate {
            stop: "S1".into(),
            minutes: 421_313,
        });
        assert_eq!(late.1, "Running 292 days late for S1");
        let off = dispatch_text(&DispatchEvent::OffRoute {
            distance_m: 7_879_734.0,
        });
        assert_eq!(off.1, "Off route by 7,880 km");
        assert_eq!(distance_text(349.6), "350 m");
        assert_eq!(distance_text(4_240.0), "4.2 km");
        assert_eq!(duration_text(45), "45 s");
        assert_eq!(duration_text(12 * 60 + 5), "12 min");
        assert_eq!(duration_text(2 * 3_600), "2 h");
        assert_eq!(duration_text(2 * 3_600 + 5 * 60), "2 h 5 min");
        assert_eq!(duration_text(86_400), "1 day");
        let stalled = dispatch_text(&DispatchEvent::DriverStalled {
            idle_s: 360,
            no_fix: true,
        });
        assert_eq!(stalled.1, "Stalled: no GPS fix for 6 min");
    }

    #[test]
    fn status_lines_read_well() {
        let mut s = on_the_way(
            1_764_079_500_000,
            Some(TimeWindow {
                start_ms: 0,
                end_ms: 1,
            }),
        );
        s.eta_ms = Some(1_764_079_800_000);
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
