//! Routes, stops, outcomes and the updates the fleet core emits (wire-visible types).
//!
//! These types travel two ways: as bincode 2 (serde, non-self-describing) on QUIC streams, and
//! as JSON (route files loaded by `milepost route load`, feeds read by web pages). That is why
//! nothing here uses `#[serde(tag)]`, `untagged`, `flatten` or `skip_serializing_if`: those need a
//! self-describing format. `#[serde(default)]` is used only to keep route files short; bincode
//! still writes every field. New enum variants are only ever appended.
//!
//! Times are UTC milliseconds since the Unix epoch (`_ms`); coordinates are f64 degrees (`lat`,
//! `lon`) so that a route file is written and read by people and spreadsheets as it is.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::service::{DeliveryChange, MessageFrom};

use crate::types::DriverId;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A route's identifier, unique in the fleet (e.g. `R-2026-02-16-017`).
    RouteId
);
string_id!(
    /// A stop's identifier, unique within its route.
    StopId
);
string_id!(
    /// A parcel's tracking number, unique in the fleet: what a recipient knows.
    TrackingNumber
);
string_id!(
    /// A depot's identifier: the unit a dispatcher watches.
    DepotId
);

/// A point in WGS-84 degrees.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Latitude in degrees, -90..=90.
    pub lat: f64,
    /// Longitude in degrees, -180..=180.
    pub lon: f64,
}

/// One driver's planned day: an ordered list of stops starting from a depot.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Unique route identifier.
    pub id: RouteId,
    /// The depot the route belongs to (dispatchers see their depot's routes).
    pub depot: DepotId,
    /// The driver who drives it.
    pub driver: DriverId,
    /// Planned start of the route, UTC ms.
    pub planned_start_ms: i64,
    /// Where the route starts (the depot's loading bay), if known. The route counts as started
    /// when the driver first leaves its neighbourhood.
    #[serde(default)]
    pub start: Option<Point>,
    /// The stops in planned order.
    pub stops: Vec<Stop>,
}

/// One stop of a route: a place where one or more parcels are handed over.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// Identifier, unique in the route.
    pub id: StopId,
    /// Latitude of the drop point, degrees.
    pub lat: f64,
    /// Longitude of the drop point, degrees.
    pub lon: f64,
    /// Arrival geofence radius in metres (> 0); `None` means "use the configured default".
    #[serde(default)]
    pub radius_m: Option<f64>,
    /// The parcels handed over here.
    pub parcels: Vec<Parcel>,
    /// The delivery time window promised to the recipient, if any.
    #[serde(default)]
    pub window: Option<TimeWindow>,
    /// Planned service (dwell) time at the stop in seconds; `None` means "learn it".
    #[serde(default)]
    pub service_s: Option<u32>,
    /// Planned arrival time, UTC ms, from the route planner or a timetable.
    #[serde(default)]
    pub planned_arrival_ms: Option<i64>,
    /// Planned path from the previous stop (or from `start`) to this stop; empty if unknown.
    #[serde(default)]
    pub path: Vec<Point>,
    /// Delivery instructions for the driver (gate code, "leave with neighbour" ...).
    #[serde(default)]
    pub instructions: String,
    /// Whether a delivery here must be proved with the parcel's one-time code.
    #[serde(default)]
    pub otp_required: bool,
}

/// A parcel on a stop.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    /// The parcel's tracking number.
    pub tracking: TrackingNumber,
    /// The one-time code issued to the recipient with the route (checked when the stop has
    /// `otp_required`). Never sent to recipients or echoed in updates.
    #[serde(default)]
    pub otp: Option<String>,
}

/// A promised time window, UTC ms, `start_ms <= end_ms`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Earliest promised arrival.
    pub start_ms: i64,
    /// Latest promised arrival.
    pub end_ms: i64,
}

/// What the driver reports at a stop or for one parcel.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Handed over, with proof.
    Delivered {
        /// The proof collected.
        proof: Proof,
    },
    /// Not handed over.
    Failed {
        /// Why.
        reason: FailureReason,
        /// Free text from the driver.
        note: String,
    },
    /// Going back to the sender (after failed attempts, or refused): no more attempts. Appended
    /// last, so records and frames written before it still decode.
    Returned {
        /// Why, in words.
        note: String,
    },
    /// Handed over to a named person, with proof. `Delivered` stays for deliveries where no
    /// name was taken (left at the door, in a locker). Appended last, like `Returned`.
    DeliveredTo {
        /// The proof collected.
        proof: Proof,
        /// Who took the parcel, as they gave their name: 1 to [`MAX_RECEIVED_BY`] bytes, no
        /// control characters.
        received_by: String,
    },
}

/// Longest `received_by` name, bytes.
pub const MAX_RECEIVED_BY: usize = 100;

/// True for a receiver's name the gateway takes: 1 to [`MAX_RECEIVED_BY`] bytes once trimmed,
/// no control characters.
pub fn valid_received_by(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty() && name.len() <= MAX_RECEIVED_BY && !name.chars().any(char::is_control)
}

impl Outcome {
    /// The proof and the receiver's name of a delivery (either delivered variant).
    pub fn delivery(&self) -> Option<(&Proof, Option<&str>)> {
        match self {
            Outcome::Delivered { proof } => Some((proof, None)),
            Outcome::DeliveredTo { proof, received_by } => Some((proof, Some(received_by))),
            Outcome::Failed { .. } | Outcome::Returned { .. } => None,
        }
    }
}

/// Proof of delivery as the driver app sends it. Digests are lowercase hex SHA-256 (64 chars) of
/// the photo / signature image, which are uploaded out of band.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// SHA-256 of the doorstep photo, hex.
    #[serde(default)]
    pub photo_sha256: Option<String>,
    /// SHA-256 of the recipient's signature image, hex.
    #[serde(default)]
    pub signature_sha256: Option<String>,
    /// The one-time code the recipient showed.
    #[serde(default)]
    pub otp: Option<String>,
}

/// Proof of delivery as recipients and dispatchers see it: the code itself is never echoed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofSummary {
    /// SHA-256 of the doorstep photo, hex.
    pub photo_sha256: Option<String>,
    /// SHA-256 of the signature image, hex.
    pub signature_sha256: Option<String>,
    /// A one-time code was checked and matched.
    pub otp_verified: bool,
}

/// Why a delivery attempt failed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureReason {
    /// Nobody there to receive it.
    RecipientAbsent,
    /// The address could not be found.
    AddressNotFound,
    /// Gate, door or building could not be accessed.
    AccessProblem,
    /// The recipient refused the parcel.
    Refused,
    /// The parcel is damaged.
    Damaged,
    /// Anything else (see the note).
    Other,
}

impl FailureReason {
    /// Every reason, in declaration order.
    pub const ALL: [FailureReason; 6] = [
        FailureReason::RecipientAbsent,
        FailureReason::AddressNotFound,
        FailureReason::AccessProblem,
        FailureReason::Refused,
        FailureReason::Damaged,
        FailureReason::Other,
    ];
}

/// What happens to a parcel after a failed attempt, by the carrier's policy (`core.ndr`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextStep {
    /// Another attempt, on a later route.
    Reattempt,
    /// Held for collection.
    Hold {
        /// Where, in words (a pickup point, the depot's counter).
        place: String,
    },
    /// Back to the sender.
    Return,
}

/// An update the fleet core emits: for a recipient, a dispatcher or a driver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Update {
    /// About one parcel, for its recipient.
    Parcel(ParcelUpdate),
    /// About a route, for its depot's dispatchers.
    Dispatch(DispatchUpdate),
    /// For the driver's app.
    Driver(DriverUpdate),
}

/// An update about one parcel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParcelUpdate {
    /// The parcel.
    pub tracking: TrackingNumber,
    /// Time of the fix (or report) this was derived from, UTC ms.
    pub fix_t_ms: i64,
    /// What happened.
    pub kind: ParcelEvent,
}

/// What a recipient is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ParcelEvent {
    /// The parcel's route has started.
    OutForDelivery,
    /// `n` stops the driver has still to reach come before this parcel's stop (the stop the
    /// driver is at does not count).
    StopsAway {
        /// Stops before this one.
        n: u32,
    },
    /// The estimated arrival moved.
    EtaChanged {
        /// Best estimate, UTC ms.
        eta_ms: i64,
        /// Earliest likely arrival.
        earliest_ms: i64,
        /// Latest likely arrival.
        latest_ms: i64,
    },
    /// The driver is a few minutes away.
    ArrivingSoon,
    /// The driver has arrived at the stop.
    Arrived,
    /// Delivered.
    Delivered {
        /// The proof collected.
        proof: ProofSummary,
        /// When, UTC ms.
        at_ms: i64,
    },
    /// The attempt failed.
    Failed {
        /// Why.
        reason: FailureReason,
        /// The driver's note.
        note: String,
    },
    /// The estimate is past the promised window's end.
    Delayed {
        /// Best estimate, UTC ms.
        eta_ms: i64,
        /// The promised window's end, UTC ms.
        window_end_ms: i64,
    },
    /// Going back to the sender: no more attempts.
    Returned {
        /// Why, in words.
        note: String,
    },
    /// Delivered, handed to a named person. Appended last, so frames and snapshots written
    /// before it still decode.
    DeliveredTo {
        /// The proof collected.
        proof: ProofSummary,
        /// When, UTC ms.
        at_ms: i64,
        /// Who took the parcel.
        received_by: String,
    },
    /// What happens after a failed attempt (follows its `Failed`), by the carrier's policy.
    /// Not part of protocol version 1 (every version-1 enum is closed, PROTOCOL.md): never sent
    /// on a version-1 QUIC feed ([`ParcelEvent::in_version_1`]); the JSON surfaces (web pages,
    /// the API, webhooks) carry it. Declared last, so a later version appends it as index 10.
    NextStep {
        /// Why the attempt failed.
        reason: FailureReason,
        /// Failed attempts so far, this one included.
        attempt: u32,
        /// What happens now.
        next: NextStep,
    },
    /// The recipient changed the delivery (version 2).
    DeliveryChanged {
        /// The change.
        change: DeliveryChange,
    },
    /// A message of the recipient-driver thread (version 2).
    Message {
        /// Who wrote it.
        from: MessageFrom,
        /// The text.
        text: String,
        /// When it was posted, UTC ms.
        at_ms: i64,
    },
}

impl ParcelEvent {
    /// Whether protocol version 1 has this event (a version-1 server sends no other).
    pub fn in_version_1(&self) -> bool {
        !matches!(
            self,
            ParcelEvent::NextStep { .. }
                | ParcelEvent::DeliveryChanged { .. }
                | ParcelEvent::Message { .. }
        )
    }
}

/// A delivery as a recipient or dispatcher is told of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delivery<'a> {
    /// The proof collected.
    pub proof: &'a ProofSummary,
    /// When, UTC ms.
    pub at_ms: i64,
    /// Who took the parcel, if a name was taken.
    pub received_by: Option<&'a str>,
}

impl ParcelEvent {
    /// The delivery this event reports (either delivered variant).
    pub fn delivery(&self) -> Option<Delivery<'_>> {
        match self {
            ParcelEvent::Delivered { proof, at_ms } => Some(Delivery {
                proof,
                at_ms: *at_ms,
                received_by: None,
            }),
            ParcelEvent::DeliveredTo {
                proof,
                at_ms,
                received_by,
            } => Some(Delivery {
                proof,
                at_ms: *at_ms,
                received_by: Some(received_by),
            }),
            _ => None,
        }
    }
}

/// An update about a route, for dispatchers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DispatchUpdate {
    /// The route.
    pub route_id: RouteId,
    /// Its driver.
    pub driver: DriverId,
    /// Time of the fix (or report) this was derived from, UTC ms.
    pub fix_t_ms: i64,
    /// What happened.
    pub kind: DispatchEvent,
}

/// What a dispatcher is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DispatchEvent {
    /// The driver left the depot.
    RouteStarted,
    /// Every stop has an outcome.
    RouteFinished {
        /// Parcels delivered.
        delivered: u32,
        /// Parcels not delivered.
        failed: u32,
    },
    /// No movement, or no fix, for too long on an active route.
    DriverStalled {
        /// Seconds since the last movement or fix.
        idle_s: u32,
        /// True when fixes stopped coming (phone off, no signal), false when the driver is still.
        no_fix: bool,
    },
    /// The estimate for a stop is later than its planned arrival or window end.
    RunningLate {
        /// The stop.
        stop: StopId,
        /// Minutes late.
        minutes: u32,
    },
    /// A delivery attempt failed.
    AttemptFailed {
        /// The stop.
        stop: StopId,
        /// Why.
        reason: FailureReason,
    },
    /// The driver is far from the planned path (or the straight leg).
    OffRoute {
        /// Distance from the path, metres.
        distance_m: f32,
    },
    /// The driver is back on the planned path.
    BackOnRoute,
    /// Arrival at a stop was detected.
    StopArrived {
        /// The stop.
        stop: StopId,
        /// Time of the first fix inside the geofence, UTC ms.
        at_ms: i64,
    },
    /// Departure from a stop was detected.
    StopDeparted {
        /// The stop.
        stop: StopId,
        /// Observed dwell, seconds.
        dwell_s: u32,
    },
    /// The driver went past a pending stop without an arrival being detected (it stays pending
    /// until an outcome is reported).
    StopPassed {
        /// The stop.
        stop: StopId,
    },
    /// The driver moved again after a stall.
    DriverMoving,
}

/// An update for the driver's app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverUpdate {
    /// The driver.
    pub driver: DriverId,
    /// The route concerned.
    pub route_id: RouteId,
    /// What changed.
    pub kind: DriverEvent,
}

/// What a driver's app is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DriverEvent {
    /// A route was assigned (or replaced); the app should fetch it.
    RouteAssigned,
    /// The stop order changed.
    Resequenced {
        /// The new order.
        order: Vec<StopId>,
    },
    /// A recipient set delivery instructions for a parcel.
    Instructions {
        /// The stop.
        stop: StopId,
        /// The parcel.
        tracking: TrackingNumber,
        /// The text.
        text: String,
    },
    /// The recipient wrote to the driver (version 2).
    Message {
        /// The stop.
        stop: StopId,
        /// The parcel.
        tracking: TrackingNumber,
        /// The text.
        text: String,
        /// When it was posted, UTC ms.
        at_ms: i64,
    },
    /// The recipient changed the parcel's delivery (version 2). A change that
    /// [`DeliveryChange::withdraws`] the parcel means: do not deliver it at the door today.
    DeliveryChanged {
        /// The stop.
        stop: StopId,
        /// The parcel.
        tracking: TrackingNumber,
        /// The change.
        change: DeliveryChange,
    },
}

impl DriverEvent {
    /// Whether protocol version 1 has this event (a version-1 server sends no other).
    pub fn in_version_1(&self) -> bool {
        !matches!(
            self,
            DriverEvent::Message { .. } | DriverEvent::DeliveryChanged { .. }
        )
    }
}

/// Where a parcel is in its journey, as its recipient sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParcelState {
    /// On a route that has not started.
    Planned,
    /// The route is under way.
    OutForDelivery,
    /// The driver is a few minutes away.
    ArrivingSoon,
    /// The driver is at the stop.
    Arrived,
    /// Delivered.
    Delivered,
    /// The attempt failed.
    Failed,
    /// Going back to the sender.
    Returned,
}

/// A recipient's "current state" of a parcel: what a tracking page shows on first load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParcelStatus {
    /// The parcel.
    pub tracking: TrackingNumber,
    /// Its route.
    pub route_id: RouteId,
    /// Its stop.
    pub stop: StopId,
    /// Where it is.
    pub state: ParcelState,
    /// Not-yet-served stops before its stop (None once served).
    pub stops_away: Option<u32>,
    /// Best arrival estimate, UTC ms (None once served or before the first fix).
    pub eta_ms: Option<i64>,
    /// Earliest likely arrival, UTC ms.
    pub earliest_ms: Option<i64>,
    /// Latest likely arrival, UTC ms.
    pub latest_ms: Option<i64>,
    /// The promised window, if any.
    pub window: Option<TimeWindow>,
    /// The last update emitted for this parcel.
    pub last_event: Option<ParcelUpdate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_updates() -> Vec<Update> {
        vec![
            Update::Parcel(ParcelUpdate {
                tracking: "T1".into(),
                fix_t_ms: 5,
                kind: ParcelEvent::EtaChanged {
                    eta_ms: 10,
                    earliest_ms: 8,
                    latest_ms: 12,
                },
            }),
            Update::Parcel(ParcelUpdate {
                tracking: "T1".into(),
                fix_t_ms: 6,
                kind: ParcelEvent::Delivered {
                    proof: ProofSummary {
                        photo_sha256: Some("ab".repeat(32)),
                        signature_sha256: None,
                        otp_verified: true,
                    },
                    at_ms: 6,
                },
            }),
            Update::Dispatch(DispatchUpdate {
                route_id: "R1".into(),
                driver: "d1".into(),
                fix_t_ms: 7,
                kind: DispatchEvent::AttemptFailed {
                    stop: "S1".into(),
                    reason: FailureReason::Refused,
                },
            }),
            Update::Driver(DriverUpdate {
                driver: "d1".into(),
                route_id: "R1".into(),
                kind: DriverEvent::Instructions {
                    stop: "S1".into(),
                    tracking: "T1".into(),
                    text: "gate 42".into(),
                },
            }),
        ]
    }

    #[test]
    fn updates_roundtrip_bincode() {
        for u in sample_updates() {
            let bytes = crate::encode(&u).unwrap();
            let back: Update = crate::decode(&bytes).unwrap();
            assert_eq!(back, u);
        }
    }

    #[test]
    fn route_roundtrips_bincode() {
        let r = Route {
            id: "R1".into(),
            depot: "D1".into(),
            driver: "d1".into(),
            planned_start_ms: 1,
            start: Some(Point { lat: 1.0, lon: 2.0 }),
            stops: vec![Stop {
                id: "S1".into(),
                lat: 1.0,
                lon: 2.0,
                radius_m: Some(30.0),
                parcels: vec![Parcel {
                    tracking: "T1".into(),
                    otp: Some("1234".into()),
                }],
                window: Some(TimeWindow {
                    start_ms: 1,
                    end_ms: 2,
                }),
                service_s: Some(60),
                planned_arrival_ms: None,
                path: vec![Point { lat: 1.0, lon: 2.0 }],
                instructions: String::new(),
                otp_required: true,
            }],
        };
        let bytes = crate::encode(&r).unwrap();
        let back: Route = crate::decode(&bytes).unwrap();
        assert_eq!(back, r);
    }
}
