//! `[self_service]`: what a recipient may change about a delivery, and the slots and pickup
//! points on offer. Checked at start-up.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

/// The section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfServiceConfig {
    /// Recipients may choose another slot.
    pub reschedule: bool,
    /// Slots are offered on this many days after today (today's later slots too).
    pub days_ahead: u32,
    /// The slots of a day, local time, `"HH:MM-HH:MM"`.
    pub slots: Vec<String>,
    /// The IANA time zone the slots are in.
    pub time_zone: String,
    /// A slot must start at least this many minutes from now to be offered.
    pub min_notice_min: u32,
    /// Recipients may name a neighbour.
    pub neighbour: bool,
    /// Recipients may authorise a safe place.
    pub safe_place: bool,
    /// Pickup points a recipient may redirect to (none: not offered).
    pub pickup_points: Vec<PickupPoint>,
}

/// A pickup point on offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupPoint {
    /// The carrier's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its address, in words.
    #[serde(default)]
    pub address: String,
}

impl Default for SelfServiceConfig {
    fn default() -> Self {
        SelfServiceConfig {
            reschedule: true,
            days_ahead: 5,
            slots: vec!["09:00-13:00".into(), "13:00-18:00".into()],
            time_zone: "UTC".into(),
            min_notice_min: 60,
            neighbour: true,
            safe_place: true,
            pickup_points: Vec::new(),
        }
    }
}

impl SelfServiceConfig {
    /// The zone, parsed.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// The slots as (start, end) local times.
    pub fn slot_times(&self) -> Vec<(NaiveTime, NaiveTime)> {
        self.slots.iter().filter_map(|s| parse_slot(s)).collect()
    }

    /// Checks the section.
    ///
    /// # Errors
    /// What is wrong, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        self.time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
            format!(
                "self_service.time_zone {:?} is not an IANA zone",
                self.time_zone
            )
        })?;
        for s in &self.slots {
            if parse_slot(s).is_none() {
                return Err(format!(
                    "self_service.slots: {s:?} is not \"HH:MM-HH:MM\" with the end after the start"
                ));
            }
        }
        if self.days_ahead > 60 {
            return Err("self_service.days_ahead must be at most 60".into());
        }
        for p in &self.pickup_points {
            if p.id.trim().is_empty() || p.name.trim().is_empty() {
                return Err(
                    "self_service.pickup_points: every point needs an id and a name".into(),
                );
            }
        }
        Ok(())
    }
}

/// `"09:00-13:00"` as its two times, if the end is after the start.
fn parse_slot(s: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (a, b) = s.split_once('-')?;
    let a = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
    let b = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
    (b > a).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_slots_and_zones() {
        assert!(SelfServiceConfig::default().validate().is_ok());
        let bad = SelfServiceConfig {
            slots: vec!["13:00-09:00".into()],
            ..SelfServiceConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("13:00-09:00"));
        let zone = SelfServiceConfig {
            time_zone: "Mars/Olympus".into(),
            ..SelfServiceConfig::default()
        };
        assert!(zone.validate().is_err());
    }
}
