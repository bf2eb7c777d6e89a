//! The rules of what a recipient is told and when, without I/O: which parcel events are
//! milestones worth a message, the key that lets each go out once per parcel and route, which
//! ones are timely (worthless when late), quiet hours in the carrier's time zone, and the
//! retry schedule.

use chrono::{TimeZone, Timelike};
use milepost_proto::route::{MessageFrom, ParcelEvent};

pub use crate::notify::config::Milestone;
use crate::notify::config::QuietHours;

/// The milestone a parcel event is, if any (`stops_away_at`: the "N stops away" threshold).
pub fn milestone_of(e: &ParcelEvent, stops_away_at: u32) -> Option<Milestone> {
    Some(match e {
        ParcelEvent::OutForDelivery => Milestone::OutForDelivery,
        ParcelEvent::StopsAway { n } if *n >= 1 && *n <= stops_away_at => Milestone::StopsAway,
        ParcelEvent::ArrivingSoon => Milestone::ArrivingSoon,
        ParcelEvent::Delivered { .. } | ParcelEvent::DeliveredTo { .. } => Milestone::Delivered,
        // A failed attempt is told with its next step (the NDR policy's decision, which
        // follows it in the same fold).
        ParcelEvent::NextStep { .. } => Milestone::AttemptFailed,
        ParcelEvent::Returned { .. } => Milestone::Returned,
        ParcelEvent::Delayed { .. } => Milestone::Delayed,
        ParcelEvent::Message {
            from: MessageFrom::Driver,
            ..
        } => Milestone::DriverMessage,
        ParcelEvent::StopsAway { .. }
        | ParcelEvent::EtaChanged { .. }
        | ParcelEvent::Arrived
        | ParcelEvent::Failed { .. }
        | ParcelEvent::DeliveryChanged { .. }
        | ParcelEvent::Message { .. } => return None,
    })
}

/// The key under which a milestone goes out once: per parcel, per route (a re-attempt on a
/// later route is told again), per milestone. Failed attempts and deliveries are keyed by
/// their time too, so a second attempt on the same route is told as well.
pub fn once_key(tracking: &str, route: &str, m: Milestone, e: &ParcelEvent, at_ms: i64) -> String {
    let sep = '\u{1}';
    match e {
        // Each failed attempt, return and driver's message of a route once.
        ParcelEvent::NextStep { .. }
        | ParcelEvent::Returned { .. }
        | ParcelEvent::Message { .. } => {
            format!("p{sep}{tracking}{sep}{route}{sep}{}{sep}{at_ms}", m.name())
        }
        _ => format!("p{sep}{tracking}{sep}{route}{sep}{}", m.name()),
    }
}

/// Delay before attempt `attempt + 1` (attempt counts from 1): `base * 2^(attempt-1)`, at most
/// `max`.
pub fn backoff_ms(attempt: u32, base_ms: u64, max_ms: u64) -> u64 {
    let shift = attempt.saturating_sub(1).min(30);
    base_ms.saturating_mul(1u64 << shift).min(max_ms)
}

/// Quiet hours as minutes of the local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quiet {
    start: u32,
    end: u32,
}

impl Quiet {
    /// From `HH:MM` texts; `start == end` is refused (use no quiet hours instead).
    pub fn parse(start: &str, end: &str) -> Result<Quiet, String> {
        let (start, end) = QuietHours {
            start: start.into(),
            end: end.into(),
        }
        .minutes()?;
        Ok(Quiet { start, end })
    }

    fn contains(&self, minute: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// When `now_ms` falls in quiet hours in `tz`, the UTC ms at which they end.
    pub fn ends_after(&self, tz: chrono_tz::Tz, now_ms: i64) -> Option<i64> {
        let now = tz.timestamp_millis_opt(now_ms).single()?;
        let minute = now.hour() * 60 + now.minute();
        if !self.contains(minute) {
            return None;
        }
        let mut wait = (self.end + 24 * 60 - minute) % (24 * 60);
        if wait == 0 {
            wait = 24 * 60;
        }
        // Whole minutes from the start of this minute; a DST change inside the wait moves the
        // end by its hour, which the next check corrects.
        let start_of_minute = now_ms - i64::from(now.second()) * 1000 - now_ms.rem_euclid(1000);
        Some(start_of_minute + i64::from(wait) * 60_000)
    }
}

/// A time as a message reads it on `clock` (a zone, or a carrier's zone and locale): `14:05`
/// on `now_ms`'s local day, `Mon 7 Dec 14:05` on another (`2:05 PM`, `Mon, Dec 7 2:05 PM` in
/// `en-US`).
pub fn local_time(
    clock: impl Into<milepost_core::present::LocalClock>,
    ms: i64,
    now_ms: i64,
) -> String {
    milepost_core::present::clock_text_in(ms, now_ms, clock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::route::FailureReason;

    #[test]
    fn only_news_is_a_milestone() {
        assert_eq!(milestone_of(&ParcelEvent::StopsAway { n: 5 }, 3), None);
        assert_eq!(
            milestone_of(&ParcelEvent::StopsAway { n: 3 }, 3),
            Some(Milestone::StopsAway)
        );
        assert_eq!(milestone_of(&ParcelEvent::StopsAway { n: 0 }, 3), None);
        assert_eq!(milestone_of(&ParcelEvent::Arrived, 3), None);
        let eta = ParcelEvent::EtaChanged {
            eta_ms: 1,
            earliest_ms: 0,
            latest_ms: 2,
        };
        assert_eq!(milestone_of(&eta, 3), None);
    }

    #[test]
    fn a_milestone_is_told_once_per_route_and_failures_each_time() {
        let soon = ParcelEvent::ArrivingSoon;
        assert_eq!(
            once_key("T", "R1", Milestone::ArrivingSoon, &soon, 1),
            once_key("T", "R1", Milestone::ArrivingSoon, &soon, 2)
        );
        assert_ne!(
            once_key("T", "R1", Milestone::ArrivingSoon, &soon, 1),
            once_key("T", "R2", Milestone::ArrivingSoon, &soon, 1)
        );
        let f = ParcelEvent::NextStep {
            reason: FailureReason::RecipientAbsent,
            attempt: 1,
            next: milepost_proto::route::NextStep::Reattempt,
        };
        let first = once_key("T", "R1", Milestone::AttemptFailed, &f, 1);
        assert_ne!(first, once_key("T", "R1", Milestone::AttemptFailed, &f, 2));
        assert!(!first.contains("driver"));
    }

    #[test]
    fn the_drivers_messages_are_told_each_once_and_the_recipients_never() {
        let said = |from, at_ms| ParcelEvent::Message {
            from,
            text: "at the gate".into(),
            at_ms,
        };
        let m = milestone_of(&said(MessageFrom::Driver, 5), 3);
        assert_eq!(m, Some(Milestone::DriverMessage));
        // What the recipient wrote goes to the driver, not back to the recipient.
        assert_eq!(milestone_of(&said(MessageFrom::Recipient, 5), 3), None);
        let dm = Milestone::DriverMessage;
        let first = once_key("T", "R1", dm, &said(MessageFrom::Driver, 5), 5);
        assert_ne!(
            first,
            once_key("T", "R1", dm, &said(MessageFrom::Driver, 6), 6)
        );
        // Stale once old (or once the stop is served), and not an outcome: news before it goes.
        assert!(dm.timely() && !dm.is_outcome());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let d: Vec<u64> = (1..=6).map(|a| backoff_ms(a, 1000, 10_000)).collect();
        assert_eq!(d, vec![1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(backoff_ms(200, 1000, 300_000), 300_000);
    }

    #[test]
    fn quiet_hours_span_midnight_in_local_time() {
        let q = Quiet::parse("21:00", "08:00").unwrap();
        let tz: chrono_tz::Tz = "Europe/Zagreb".parse().unwrap();
        // 2026-12-06 20:30 UTC is 21:30 in Zagreb (CET): quiet until 08:00 local, 07:00 UTC.
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 12, 6, 20, 30, 0)
            .unwrap()
            .timestamp_millis();
        let end = chrono::Utc
            .with_ymd_and_hms(2026, 12, 7, 7, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(q.ends_after(tz, t), Some(end));
        // 12:00 UTC is 13:00 local: not quiet.
        assert_eq!(q.ends_after(tz, t - 8 * 3_600_000 - 30 * 60_000), None);
        // A daytime span.
        let lunch = Quiet::parse("12:00", "13:00").unwrap();
        assert!(lunch
            .ends_after(chrono_tz::UTC, 12 * 3_600_000 + 5)
            .is_some());
        assert!(lunch.ends_after(chrono_tz::UTC, 13 * 3_600_000).is_none());
        assert!(Quiet::parse("25:00", "08:00").is_err());
        assert!(Quiet::parse("08:00", "08:00").is_err());
    }

    #[test]
    fn local_times_carry_a_date_when_not_today() {
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 12, 6, 15, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(local_time(tz, now + 3_600_000, now), "11:00");
        assert_eq!(local_time(tz, now + 86_400_000, now), "Mon 7 Dec 10:00");
    }
}
