//! What a parcel's recipient and driver do beside the delivery itself: the recipient's changes
//! (another slot, a neighbour, a pickup point, a safe place) and the short message thread
//! between recipient and driver, folded from their log records so every gateway and every
//! replay decides the same (the rate limit included).
//!
//! The [`ServiceBook`] is the core's record of both, per live parcel; it is its own section of
//! a snapshot (older snapshots have none), and a change that takes a parcel off its route sets
//! the parcel's `withdrawn` flag again on restore.

use std::collections::BTreeMap;

use milepost_proto::route::{
    DeliveryChange, DepotId, DriverEvent, MessageFrom, ParcelEvent, ParcelState, ParcelUpdate,
    RouteId, TrackingNumber, Update,
};
use milepost_proto::service::{valid_text, MAX_MESSAGE};
use serde::{Deserialize, Serialize};

use super::FleetCore;

/// How often each side of a thread may write (`[core.messages]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageLimits {
    /// Messages per side and parcel in any hour.
    pub per_hour: u32,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits { per_hour: 10 }
    }
}

/// The recipients' changes and the threads' recent messages, per live parcel; and the failed
/// attempts of every parcel that failed in the last [`ATTEMPTS_KEPT_MS`], whatever route it is
/// on now (the NDR policy counts attempts across a parcel's routes, also once a failed route
/// was archived or cancelled).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceBook {
    pub(super) parcels: BTreeMap<TrackingNumber, ParcelService>,
    /// Failed attempts so far, and the time of the newest.
    pub(super) attempts: BTreeMap<TrackingNumber, (u32, i64)>,
    /// When `attempts` was last pruned.
    pruned_ms: i64,
    /// The depot each failed attempt was made for: a partition's image carries the attempts
    /// of its depots, also of parcels whose route is gone. Not in the single box's snapshot
    /// (it has one partition).
    #[serde(skip)]
    pub(super) depots: BTreeMap<TrackingNumber, DepotId>,
}

impl ServiceBook {
    /// The failed attempts remembered for a parcel.
    pub fn failed_attempts(&self, tracking: &TrackingNumber) -> u32 {
        self.attempts.get(tracking).map_or(0, |a| a.0)
    }
}

/// How long a parcel's failed attempts are remembered after its last one, ms (90 days).
pub const ATTEMPTS_KEPT_MS: i64 = 90 * 86_400_000;

/// One parcel's entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParcelService {
    /// The recipient's latest change, and when it was made (UTC ms).
    pub change: Option<(DeliveryChange, i64)>,
    /// The route the change took the parcel off, if it did (a later route for it, assigned
    /// by the back office, delivers it).
    pub(super) withdrew: Option<RouteId>,
    /// Times of the messages of the last hour, per side (for the rate limit).
    sent: Vec<(MessageFrom, i64)>,
}

/// Why a change or a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The parcel is on no live route.
    #[error("parcel {0} is not on a live route")]
    UnknownParcel(TrackingNumber),
    /// Delivered, returned, or already taken off the route.
    #[error("parcel {0} is past changing")]
    Closed(TrackingNumber),
    /// The driver is at the door: too late to change the delivery.
    #[error("the driver is at the door: too late to change the delivery")]
    DriverAtDoor,
    /// The change itself is malformed.
    #[error("{0}")]
    BadChange(String),
    /// The text is empty, too long or holds control characters.
    #[error("a message is 1 to {MAX_MESSAGE} bytes of text")]
    BadText,
    /// This side of the thread wrote too often.
    #[error("at most {per_hour} messages an hour: try again in {retry_after_s} s")]
    RateLimited {
        /// The limit.
        per_hour: u32,
        /// When the oldest message of the hour leaves it.
        retry_after_s: u32,
    },
}

const HOUR_MS: i64 = 3_600_000;

impl FleetCore {
    /// A recipient's change to a parcel's delivery, at `at_ms`. On a parcel still to be
    /// delivered it reaches the driver (and one that [`DeliveryChange::withdraws`] takes the
    /// parcel off the route); after a failed attempt it is a request for the next attempt,
    /// kept in the parcel's feed for the back office.
    ///
    /// # Errors
    /// [`ServiceError`]: unknown or closed parcel, the driver at the door, a malformed change.
    pub fn change_delivery(
        &mut self,
        tracking: &TrackingNumber,
        change: &DeliveryChange,
        at_ms: i64,
    ) -> Result<Vec<Update>, ServiceError> {
        change.check().map_err(ServiceError::BadChange)?;
        let unknown = || ServiceError::UnknownParcel(tracking.clone());
        let (id, k) = self.locate(tracking).ok_or_else(unknown)?;
        let run = self.routes.get_mut(&id).ok_or_else(unknown)?;
        let p = &run.parcels[k];
        let after_failure = p.state == ParcelState::Failed && !p.withdrawn;
        if p.closed() && !after_failure {
            return Err(ServiceError::Closed(tracking.clone()));
        }
        if p.state == ParcelState::Arrived {
            return Err(ServiceError::DriverAtDoor);
        }
        let mut out = vec![Update::Parcel(ParcelUpdate {
            tracking: tracking.clone(),
            fix_t_ms: at_ms,
            kind: ParcelEvent::DeliveryChanged {
                change: change.clone(),
            },
        })];
        if !after_failure {
            let stop = p.stop;
            out.push(run.driver_update(DriverEvent::DeliveryChanged {
                stop: run.plan.stops[stop].id.clone(),
                tracking: tracking.clone(),
                change: change.clone(),
            }));
            if change.withdraws() {
                run.parcels[k].withdrawn = true;
                run.after_close(&self.cfg, stop, at_ms, &mut out);
            }
        }
        let withdrew = (!after_failure && change.withdraws()).then(|| run.plan.id.clone());
        let entry = self.service.parcels.entry(tracking.clone()).or_default();
        entry.change = Some((change.clone(), at_ms));
        entry.withdrew = withdrew;
        Ok(out)
    }

    /// A message of a parcel's thread, from its recipient or its route's driver (who may
    /// write is the caller's check), at `at_ms`. The recipient's reaches the driver's app; both
    /// go to the parcel's feed (the tracking page shows the thread).
    ///
    /// # Errors
    /// [`ServiceError`]: unknown or closed parcel, bad text, the rate limit.
    pub fn post_message(
        &mut self,
        tracking: &TrackingNumber,
        from: MessageFrom,
        text: &str,
        at_ms: i64,
    ) -> Result<Vec<Update>, ServiceError> {
        self.check_message(tracking, from, text, at_ms)?;
        let unknown = || ServiceError::UnknownParcel(tracking.clone());
        let (id, k) = self.locate(tracking).ok_or_else(unknown)?;
        let run = self.routes.get(&id).ok_or_else(unknown)?;
        let p = &run.parcels[k];
        let entry = self.service.parcels.entry(tracking.clone()).or_default();
        entry.sent.retain(|&(_, t)| t > at_ms - HOUR_MS);
        entry.sent.push((from, at_ms));
        let mut out = vec![Update::Parcel(ParcelUpdate {
            tracking: tracking.clone(),
            fix_t_ms: at_ms,
            kind: ParcelEvent::Message {
                from,
                text: text.to_owned(),
                at_ms,
            },
        })];
        if from == MessageFrom::Recipient {
            out.push(run.driver_update(DriverEvent::Message {
                stop: run.plan.stops[p.stop].id.clone(),
                tracking: tracking.clone(),
                text: text.to_owned(),
                at_ms,
            }));
        }
        Ok(out)
    }

    /// Whether a message may be posted now: a live, open parcel, valid text, within the rate
    /// limit. [`FleetCore::post_message`] checks the same.
    ///
    /// # Errors
    /// [`ServiceError`]: unknown or closed parcel, bad text, the rate limit.
    pub fn check_message(
        &self,
        tracking: &TrackingNumber,
        from: MessageFrom,
        text: &str,
        at_ms: i64,
    ) -> Result<(), ServiceError> {
        if !valid_text(text, MAX_MESSAGE) {
            return Err(ServiceError::BadText);
        }
        let (id, k) = self
            .locate(tracking)
            .ok_or_else(|| ServiceError::UnknownParcel(tracking.clone()))?;
        let p = &self.routes[&id].parcels[k];
        if p.closed() {
            return Err(ServiceError::Closed(tracking.clone()));
        }
        let per_hour = self.cfg.messages.per_hour;
        let mine: Vec<i64> = self
            .service
            .parcels
            .get(tracking)
            .map(|e| {
                e.sent
                    .iter()
                    .filter(|&&(f, t)| f == from && t > at_ms - HOUR_MS)
                    .map(|&(_, t)| t)
                    .collect()
            })
            .unwrap_or_default();
        if mine.len() >= per_hour as usize {
            let oldest = mine.iter().min().copied().unwrap_or(at_ms);
            let retry_after_s = ((oldest + HOUR_MS - at_ms).max(0) / 1000) as u32 + 1;
            return Err(ServiceError::RateLimited {
                per_hour,
                retry_after_s,
            });
        }
        Ok(())
    }

    /// The recipient's latest change to a live parcel's delivery, and when it was made.
    pub fn delivery_change(&self, tracking: &TrackingNumber) -> Option<&(DeliveryChange, i64)> {
        self.service.parcels.get(tracking)?.change.as_ref()
    }

    /// Whether a live parcel was taken off the route it is on now by its recipient's change.
    pub fn is_withdrawn(&self, tracking: &TrackingNumber) -> bool {
        self.locate(tracking)
            .is_some_and(|(id, k)| self.routes[&id].parcels[k].withdrawn)
    }

    /// The service book, for a snapshot.
    pub fn service_book(&self) -> &ServiceBook {
        &self.service
    }

    /// Puts back a snapshot's service book: the entries of live parcels, with the parcels
    /// their changes took off a route marked so again.
    pub fn restore_service(&mut self, book: ServiceBook) {
        self.service.attempts = book.attempts;
        self.service.pruned_ms = book.pruned_ms;
        for (tracking, entry) in book.parcels {
            let run = self
                .by_tracking
                .get(&tracking)
                .and_then(|id| self.routes.get_mut(id));
            if let Some(run) = run.filter(|r| entry.withdrew.as_ref() == Some(&r.plan.id)) {
                if let Some(p) = run.parcels.iter_mut().find(|p| p.tracking == tracking) {
                    p.withdrawn = true;
                }
            }
            self.service.parcels.insert(tracking, entry);
        }
    }

    /// What the driver should read about a parcel's change, for its stop's instructions: none
    /// once the parcel is on a later route than the one a change took it off.
    pub fn driver_note(&self, route: &RouteId, tracking: &TrackingNumber) -> Option<String> {
        let entry = self.service.parcels.get(tracking)?;
        let (change, _) = entry.change.as_ref()?;
        Some(match change {
            // Taken off another route, or asked for after a failed attempt: the back office
            // put it on this route for it.
            _ if change.withdraws() && entry.withdrew.as_ref() != Some(route) => return None,
            DeliveryChange::Reschedule { .. } => {
                format!("{tracking}: do not deliver today, the recipient chose another slot")
            }
            DeliveryChange::PickupPoint { name, .. } => {
                format!(
                    "{tracking}: do not deliver at the door, it goes to the pickup point {name}"
                )
            }
            DeliveryChange::Neighbour { name, address } => {
                format!("{tracking}: the recipient asks to leave it with {name}, {address}")
            }
            DeliveryChange::SafePlace { place } => {
                format!("{tracking}: the recipient authorises leaving it at: {place}")
            }
        })
    }

    /// The failed attempts remembered for a parcel.
    pub fn failed_attempts(&self, tracking: &TrackingNumber) -> u32 {
        self.service.failed_attempts(tracking)
    }

    /// Remembers that a parcel's attempt failed at `at_ms` (now `attempt` failures in all).
    pub fn count_failure(&mut self, tracking: &TrackingNumber, attempt: u32, at_ms: i64) {
        let depot = self.depot_of_parcel(tracking).cloned();
        let book = &mut self.service;
        book.attempts.insert(tracking.clone(), (attempt, at_ms));
        if let Some(depot) = depot {
            book.depots.insert(tracking.clone(), depot);
        }
        if at_ms - book.pruned_ms > 86_400_000 {
            book.attempts
                .retain(|_, (_, last)| *last > at_ms - ATTEMPTS_KEPT_MS);
            let attempts = &book.attempts;
            book.depots.retain(|t, _| attempts.contains_key(t));
            book.parcels.retain(|_, e| {
                e.change
                    .as_ref()
                    .is_none_or(|(_, made)| *made > at_ms - ATTEMPTS_KEPT_MS)
            });
            book.pruned_ms = at_ms;
        }
    }

    /// Forgets everything the book keeps of a route's parcels, failed attempts and wishes
    /// included (its partition passed to another gateway, which folds them again).
    pub(super) fn drop_service(&mut self, route: &milepost_proto::route::Route) {
        for p in route.stops.iter().flat_map(|s| &s.parcels) {
            self.service.parcels.remove(&p.tracking);
            self.service.attempts.remove(&p.tracking);
            self.service.depots.remove(&p.tracking);
        }
    }

    /// Forgets the service entries of a route's parcels (the route left the live state; what
    /// was said and changed stays in the parcels' feeds and history).
    /// A parcel whose attempt failed keeps its recipient's wish for the next one (and the
    /// wish is forgotten [`ATTEMPTS_KEPT_MS`] after it was made, if no route takes it).
    pub(super) fn forget_service(
        &mut self,
        route: &milepost_proto::route::Route,
        failed: &[TrackingNumber],
    ) {
        for p in route.stops.iter().flat_map(|s| &s.parcels) {
            if self.by_tracking.contains_key(&p.tracking) {
                continue;
            }
            match self.service.parcels.get_mut(&p.tracking) {
                Some(e) if failed.contains(&p.tracking) && e.change.is_some() => {
                    e.sent.clear();
                    e.withdrew = None;
                }
                _ => {
                    self.service.parcels.remove(&p.tracking);
                }
            }
        }
    }
}
