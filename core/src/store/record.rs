//! The records of the ingest log. A record's payload is its [`milepost_proto::codec`]
//! encoding; the framing around it (length, CRC) is in [`crate::store::log`]. Variants are only
//! ever appended, so old logs stay readable.

use milepost_proto::route::{
    DeliveryChange, MessageFrom, Outcome, Route, RouteId, StopId, TrackingNumber,
};
use milepost_proto::{DriverId, Fix, RejectReason, Seq};
use serde::{Deserialize, Serialize};

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogRecord {
    /// The settled fixes of one admitted batch (or live-fix datagram) of one driver.
    Batch {
        /// The driver.
        driver: DriverId,
        /// The driver's depot, from its token.
        depot: String,
        /// Server time the batch was admitted, UTC ms.
        received_ms: i64,
        /// What became of each new seq. Duplicates are not logged again.
        entries: Vec<BatchEntry>,
    },
    /// A dispatcher assigned (or replaced) a route.
    RouteAssigned {
        /// The route as assigned.
        route: Route,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// A dispatcher re-sequenced a route's remaining stops.
    RouteResequenced {
        /// The route.
        route_id: RouteId,
        /// The new order of its stops.
        order: Vec<StopId>,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// A driver reported a delivery outcome (logged before it is checked, so failed attempts,
    /// e.g. a wrong one-time code, are on record too).
    OutcomeReported {
        /// The driver.
        driver: DriverId,
        /// The stop.
        stop: StopId,
        /// One parcel of the stop, or all of its open parcels.
        tracking: Option<TrackingNumber>,
        /// What happened.
        outcome: Outcome,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// Finished routes moved out of the live state (their final view went to the archive).
    RoutesArchived {
        /// The routes.
        routes: Vec<RouteId>,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// A recipient left delivery instructions.
    InstructionsSet {
        /// The parcel.
        tracking: TrackingNumber,
        /// The instructions.
        text: String,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// The clock moved on for one partition of drivers (cluster mode: the partition's owner
    /// logs it once a second, so that every gateway's fold runs stall detection at the same
    /// point of the stream and reaches the same state).
    Tick {
        /// The partitions of drivers it ticks (those its gateway owns), ascending.
        owned: Vec<u32>,
        /// The number of partitions (`partition_of` a driver, modulo this).
        partitions: u32,
        /// The owner's time, UTC ms.
        now_ms: i64,
    },
    /// The back office cancelled a live route: it leaves the live state at once, and its
    /// parcels' history (what they went through on it) is kept.
    RouteCancelled {
        /// The route.
        route_id: RouteId,
        /// Who cancelled it (an API key's name, or `cli`), for the record.
        by: String,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// A dispatcher or the back office acknowledged or resolved an alert: the route event at
    /// `offset` of `depot`'s feed.
    AlertHandled {
        /// The depot.
        depot: String,
        /// The alert's offset in the depot's feed.
        offset: u64,
        /// Acknowledged or resolved.
        action: AlertAction,
        /// Who (an API key's name, or a dispatcher token's depot).
        by: String,
        /// A note, at most 500 bytes.
        note: String,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// A parcel's recipient (or the back office on their behalf) changed its delivery.
    DeliveryChanged {
        /// The parcel.
        tracking: TrackingNumber,
        /// The change.
        change: DeliveryChange,
        /// Who: `recipient`, or an API key's name.
        by: String,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// A message of a parcel's recipient-driver thread.
    MessagePosted {
        /// The parcel.
        tracking: TrackingNumber,
        /// Who wrote it.
        from: MessageFrom,
        /// The text.
        text: String,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// The back office named the street addresses of a route's stops (with the route, or
    /// later), for the dispatcher's map and lists. Kept beside the history, like
    /// `AlertHandled`; a stop not named keeps the address it had.
    StopAddresses {
        /// The route.
        route_id: RouteId,
        /// Its depot.
        depot: String,
        /// The stops and their addresses (an empty address removes one).
        addresses: Vec<(StopId, String)>,
        /// Server time, UTC ms.
        at_ms: i64,
    },
    /// The clock moved on for the routes of one partition of depots (a cluster whose gateways
    /// fold only the partitions they own: the partition's owner logs it once a second on the
    /// partition's subject, so that whoever folds the partition, now or after a takeover, runs
    /// stall detection at the same point).
    DepotTick {
        /// The partition of depots ([`partition_of_depot`]).
        partition: u32,
        /// The number of partitions.
        partitions: u32,
        /// The owner's time, UTC ms.
        now_ms: i64,
    },
}

impl LogRecord {
    /// The depot the record is about, when it names one (a fix batch, an assignment, an alert,
    /// addresses). Commands that name only a route, a parcel or a driver return `None`: the
    /// fold knows their depot.
    pub fn depot(&self) -> Option<&str> {
        match self {
            LogRecord::Batch { depot, .. } => Some(depot),
            LogRecord::RouteAssigned { route, .. } => Some(&route.depot.0),
            LogRecord::AlertHandled { depot, .. } | LogRecord::StopAddresses { depot, .. } => {
                Some(depot)
            }
            _ => None,
        }
    }
}

/// What was done about an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    /// Someone is on it.
    Acknowledged,
    /// Dealt with.
    Resolved,
}

/// The partition a driver belongs to when drivers are spread over `partitions` (FNV-1a of its
/// id; stable across versions and machines, since it decides subjects and ownership).
pub fn partition_of(driver: &DriverId, partitions: u32) -> u32 {
    fnv1a(driver.0.as_bytes()) % partitions.max(1)
}

/// The partition a depot belongs to when depots are spread over `partitions` (FNV-1a of its
/// name, like [`partition_of`]). A cluster whose gateways fold only what they own partitions
/// by depot: a depot's drivers, routes, parcels and feed then live in one partition, so a
/// dispatcher's view of a depot is whole on its owner and feed offsets never depend on how
/// partitions are spread.
pub fn partition_of_depot(depot: &str, partitions: u32) -> u32 {
    fnv1a(depot.as_bytes()) % partitions.max(1)
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// One seq of a [`LogRecord::Batch`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BatchEntry {
    /// A stored fix.
    Accepted {
        /// Its seq.
        seq: Seq,
        /// The fix.
        fix: Fix,
    },
    /// A refused fix: logged so that the dedupe state, a fold of the log, settles it too.
    Rejected {
        /// Its seq.
        seq: Seq,
        /// Why.
        reason: RejectReason,
    },
}

impl BatchEntry {
    /// The entry's seq.
    pub fn seq(&self) -> Seq {
        match self {
            BatchEntry::Accepted { seq, .. } | BatchEntry::Rejected { seq, .. } => *seq,
        }
    }
}
