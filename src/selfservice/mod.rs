//! Self-service: what a parcel's recipient may change about its delivery (another slot, a
//! neighbour, a pickup point, a safe place) under the carrier's `[self_service]` policy, and
//! the checks a change or a message meets before it is logged. The change itself is folded by
//! the core (`FleetCore::change_delivery`), which also takes a parcel off its route and tells
//! the driver; the message thread is the core's too (`FleetCore::post_message`).

pub mod config;

use chrono::{Duration, TimeZone};
use milepost_proto::route::{DeliveryChange, TimeWindow};
use serde::Serialize;

pub use config::{PickupPoint, SelfServiceConfig};

/// What a recipient may choose now.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Offers {
    /// Slots to move the delivery to, soonest first (empty: rescheduling is not offered).
    pub slots: Vec<SlotOffer>,
    /// A neighbour may be named.
    pub neighbour: bool,
    /// A safe place may be authorised.
    pub safe_place: bool,
    /// Pickup points to redirect to.
    pub pickup_points: Vec<PickupPoint>,
}

/// One slot on offer.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlotOffer {
    /// Start, UTC ms.
    pub start_ms: i64,
    /// End, UTC ms.
    pub end_ms: i64,
    /// As the recipient reads it, in the policy's zone: "Tue 8 Dec 09:00-13:00".
    pub label: String,
}

/// The slots and choices on offer at `now_ms`.
pub fn offers(cfg: &SelfServiceConfig, now_ms: i64) -> Offers {
    let tz = cfg.tz();
    let mut slots = Vec::new();
    let earliest = now_ms + i64::from(cfg.min_notice_min) * 60_000;
    if cfg.reschedule {
        let today = tz
            .timestamp_millis_opt(now_ms)
            .single()
            .map(|t| t.date_naive());
        for d in 0..=i64::from(cfg.days_ahead) {
            let Some(day) = today.map(|t| t + Duration::days(d)) else {
                break;
            };
            for (a, b) in cfg.slot_times() {
                let (Some(start), Some(end)) = (
                    tz.from_local_datetime(&day.and_time(a)).earliest(),
                    tz.from_local_datetime(&day.and_time(b)).latest(),
                ) else {
                    continue;
                };
                let (start_ms, end_ms) = (start.timestamp_millis(), end.timestamp_millis());
                if start_ms < earliest {
                    continue;
                }
                let label = format!(
                    "{}-{}",
                    start.format("%a %-d %b %H:%M"),
                    end.format("%H:%M")
                );
                slots.push(SlotOffer {
                    start_ms,
                    end_ms,
                    label,
                });
            }
        }
    }
    Offers {
        slots,
        neighbour: cfg.neighbour,
        safe_place: cfg.safe_place,
        pickup_points: cfg.pickup_points.clone(),
    }
}

/// Checks a change against the policy at `now_ms`: its own fields, and that what it chooses is
/// on offer (the slot among [`offers`], the pickup point by id and name).
///
/// # Errors
/// Why, in words for the recipient.
pub fn check(cfg: &SelfServiceConfig, change: &DeliveryChange, now_ms: i64) -> Result<(), String> {
    change.check()?;
    match change {
        DeliveryChange::Reschedule { window } => {
            let on_offer = offers(cfg, now_ms)
                .slots
                .iter()
                .any(|s| s.start_ms == window.start_ms && s.end_ms == window.end_ms);
            match on_offer {
                true => Ok(()),
                false => Err("that slot is not on offer".into()),
            }
        }
        DeliveryChange::Neighbour { .. } if !cfg.neighbour => {
            Err("leaving parcels with a neighbour is not offered".into())
        }
        DeliveryChange::SafePlace { .. } if !cfg.safe_place => {
            Err("safe places are not offered".into())
        }
        DeliveryChange::PickupPoint { id, name } => {
            match cfg
                .pickup_points
                .iter()
                .any(|p| &p.id == id && &p.name == name)
            {
                true => Ok(()),
                false => Err(format!("no pickup point {id:?}")),
            }
        }
        _ => Ok(()),
    }
}

/// A slot chosen by its start and end, as the change that moves the delivery there.
pub fn reschedule(start_ms: i64, end_ms: i64) -> DeliveryChange {
    DeliveryChange::Reschedule {
        window: TimeWindow { start_ms, end_ms },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn offers_later_slots_in_the_zone() {
        let cfg = SelfServiceConfig {
            time_zone: "Europe/Zagreb".into(),
            days_ahead: 1,
            ..SelfServiceConfig::default()
        };
        // 2026-12-07 10:00 UTC = 11:00 in Zagreb: today's morning slot has begun.
        let now = 20_794 * DAY + 10 * 3_600_000;
        let o = offers(&cfg, now);
        assert_eq!(o.slots.len(), 3, "{:?}", o.slots);
        assert_eq!(o.slots[0].label, "Mon 7 Dec 13:00-18:00");
        assert_eq!(o.slots[0].start_ms, 20_794 * DAY + 12 * 3_600_000);
        let first = &o.slots[0];
        assert!(check(&cfg, &reschedule(first.start_ms, first.end_ms), now).is_ok());
        let off = reschedule(first.start_ms + 1, first.end_ms);
        assert_eq!(
            check(&cfg, &off, now).unwrap_err(),
            "that slot is not on offer"
        );
    }

    #[test]
    fn pickup_points_and_switched_off_choices() {
        let cfg = SelfServiceConfig {
            safe_place: false,
            pickup_points: vec![PickupPoint {
                id: "PP1".into(),
                name: "Kiosk".into(),
                address: String::new(),
            }],
            ..SelfServiceConfig::default()
        };
        let pp = |id: &str| DeliveryChange::PickupPoint {
            id: id.into(),
            name: "Kiosk".into(),
        };
        assert!(check(&cfg, &pp("PP1"), 0).is_ok());
        assert!(check(&cfg, &pp("PP2"), 0).is_err());
        let safe = DeliveryChange::SafePlace {
            place: "porch".into(),
        };
        assert!(check(&cfg, &safe, 0).is_err());
    }
}
