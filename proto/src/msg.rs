//! Every message of the protocol. Field order here is the order on the wire (see
//! `PROTOCOL.md`). Within protocol version 1 every enum is closed; new variants come only with
//! a new protocol version, and are appended so that the old indices keep their meaning.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, RejectReason};
use crate::route::{
    DriverUpdate, Outcome, ParcelStatus, Route, RouteId, StopId, TrackingNumber, Update,
};
use crate::types::{DriverId, Fix, Seq};

/// The first frame a client sends on the first bidirectional stream it opens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
    pub version: u16,
    /// Bearer token minted by `milepost token`.
    pub token: String,
    /// The identity the client claims: the driver id for a driver, the depot for a dispatcher.
    /// It must equal the token's subject; a driver token cannot speak for another driver.
    pub subject: String,
    /// Device and app information, for logs and support.
    pub device: DeviceInfo,
}

/// What the phone says about itself. Free text, bounded by the frame size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// A stable device identifier (install id), not a hardware id.
    pub device_id: String,
    /// App name and version, e.g. `milepost-driver/3.2.1`.
    pub app: String,
    /// Operating system and version, e.g. `Android 14`.
    pub os: String,
}

/// The server's answer to a valid [`Hello`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The server's clock, UTC ms: lets the phone detect a skewed clock.
    pub server_time_ms: i64,
    /// Limits the server enforces on this connection.
    pub limits: Limits,
    /// For a driver: every seq up to and including this one is durable (0 = none yet). The phone
    /// resends what it holds above it.
    pub watermark: Seq,
}

/// Limits announced in [`Welcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame payload accepted, bytes.
    pub max_frame: u32,
    /// Most fixes in one [`FixBatch`].
    pub max_batch: u32,
    /// Most fixes per second per driver, sustained.
    pub max_fixes_per_s: u32,
}

/// A run of fixes with consecutive sequence numbers, `first_seq`, `first_seq + 1`, ...
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixBatch {
    /// Sequence number of `fixes[0]`.
    pub first_seq: Seq,
    /// The fixes, oldest seq first. Must not be empty.
    pub fixes: Vec<Fix>,
}

/// The server's answer to one [`FixBatch`] or one live-fix datagram: every seq in
/// `first_seq .. first_seq + count` is settled (durable, or rejected for good) and may be
/// dropped by the phone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// First seq the ack covers.
    pub first_seq: Seq,
    /// How many consecutive seqs the ack covers.
    pub count: u32,
    /// How many of them had been stored before (resends): acked again, stored once.
    pub duplicates: u32,
    /// The fixes that were refused, with the reason. They must not be resent.
    pub rejected: Vec<Rejection>,
    /// Every seq up to and including this one is settled for this driver.
    pub watermark: Seq,
}

/// One refused fix in an [`Ack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The refused fix's seq.
    pub seq: Seq,
    /// Why it was refused.
    pub reason: RejectReason,
}

/// A typed refusal. After a connection-level error the server closes the connection with the
/// same code as the QUIC application close code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable detail, for logs; never parse it.
    pub message: String,
}

/// A dispatcher's question about the live fleet of its depot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Chosen by the client, echoed in the [`QueryResult`].
    pub id: u32,
    /// What to look for.
    pub kind: QueryKind,
}

/// The spatial questions a dispatcher can ask. Coordinates in 1e-7 degree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QueryKind {
    /// Drivers inside a latitude/longitude box (inclusive).
    Within {
        /// Southern edge.
        min_lat_e7: i32,
        /// Western edge.
        min_lon_e7: i32,
        /// Northern edge.
        max_lat_e7: i32,
        /// Eastern edge.
        max_lon_e7: i32,
    },
    /// Drivers within `radius_m` metres (great-circle) of a point, nearest first.
    Nearby {
        /// Centre latitude.
        lat_e7: i32,
        /// Centre longitude.
        lon_e7: i32,
        /// Radius in metres.
        radius_m: f32,
    },
    /// The `k` drivers nearest to a point, nearest first.
    Nearest {
        /// Centre latitude.
        lat_e7: i32,
        /// Centre longitude.
        lon_e7: i32,
        /// How many.
        k: u32,
    },
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The query's id.
    pub id: u32,
    /// Matching drivers (nearest first for `Nearby` and `Nearest`; at most the server's result
    /// limit).
    pub drivers: Vec<DriverPosition>,
    /// True if more drivers matched than were returned.
    pub truncated: bool,
}

/// A driver's live position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverPosition {
    /// Which driver.
    pub driver: DriverId,
    /// The seq of the fix.
    pub seq: Seq,
    /// The newest fix (by measurement time).
    pub fix: Fix,
    /// Distance in metres from the query point (0 for `Within`).
    pub distance_m: f32,
}

/// Frames a client sends on a bidirectional stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Opens the session (first frame of the first stream only).
    Hello(Hello),
    /// Fixes to store.
    FixBatch(FixBatch),
    /// A dispatcher query.
    Query(Query),
    /// A command or a status request (routes, outcomes, instructions), answered by
    /// [`ServerMsg::Done`], [`ServerMsg::ParcelStatus`] or [`ServerMsg::Error`].
    Command(Command),
    /// Follow a feed. Only as the first frame of a new bidirectional stream, which from then on
    /// carries the feed (server to client) and nothing else.
    Subscribe(Subscribe),
    /// Upload a proof file (a delivery photo or signature). Only as the first frame of a new
    /// bidirectional stream: exactly `size` raw bytes follow it (not framed), then the client
    /// finishes the stream. Answered by [`ServerMsg::Done`] with the same id, or an
    /// [`ServerMsg::Error`]. Appended last (index 5).
    Upload(Upload),
}

/// The header of a proof-file upload (see [`ClientMsg::Upload`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Chosen by the client, echoed in the [`ServerMsg::Done`].
    pub id: u32,
    /// The SHA-256 of the file's bytes, 64 lower-case hex digits: the digest an outcome's
    /// proof names.
    pub sha256: String,
    /// The file's length in bytes (1 up to the server's limit, 8 MiB by default).
    pub size: u64,
}

/// A subscription request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    /// What to follow.
    pub target: FeedTarget,
    /// Resume after this offset (the last `FeedEvent.offset` the client processed); `None` for
    /// a fresh start (a snapshot, then live events).
    pub after: Option<u64>,
}

/// What a subscription follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeedTarget {
    /// One parcel: its milestones, status, and the driver's position when the privacy rule
    /// allows (recipient of that parcel, or a dispatcher of its depot).
    Parcel(TrackingNumber),
    /// The dispatcher's whole depot: route events and every driver's position.
    Depot,
    /// The dispatcher's depot, positions limited to a box (events are not filtered).
    Area {
        /// Southern edge.
        min_lat_e7: i32,
        /// Western edge.
        min_lon_e7: i32,
        /// Northern edge.
        max_lat_e7: i32,
        /// Eastern edge.
        max_lon_e7: i32,
    },
}

/// The current state a new (or resyncing) subscriber starts from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedSnapshot {
    /// The offset of the last event the snapshot includes (0 = none); events follow from the
    /// next one.
    pub offset: u64,
    /// For a parcel feed: its status.
    pub parcel: Option<ParcelStatus>,
    /// Live positions the subscriber may see.
    pub positions: Vec<DriverPosition>,
}

/// A command, with an id chosen by the client and echoed in the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Echoed in the answer.
    pub id: u32,
    /// What to do.
    pub kind: CommandKind,
}

/// The commands. Each is logged before it takes effect, so it survives a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandKind {
    /// Dispatcher of the route's depot: assign a route to its driver, or replace the route with
    /// the same id.
    AssignRoute(Route),
    /// Dispatcher of the route's depot: a new order for the route's stops.
    Resequence {
        /// The route.
        route_id: RouteId,
        /// Every stop of the route, in the new order.
        order: Vec<StopId>,
    },
    /// Driver: the outcome at a stop, for one parcel or (tracking `None`) every open parcel of
    /// the stop.
    ReportOutcome {
        /// The stop.
        stop: StopId,
        /// One parcel, or all open parcels of the stop.
        tracking: Option<TrackingNumber>,
        /// Delivered with proof, or failed with a reason.
        outcome: Outcome,
    },
    /// Recipient of the parcel: delivery instructions for the driver.
    SetInstructions {
        /// The parcel (must be the token's subject).
        tracking: TrackingNumber,
        /// Free text, e.g. "leave at the door".
        text: String,
    },
    /// Recipient of the parcel, or dispatcher of its depot: the parcel's current status.
    ParcelStatus {
        /// The parcel.
        tracking: TrackingNumber,
    },
    /// Driver: its current route, stops in the current order with the latest instructions
    /// (after a `RouteAssigned` or `Resequenced` push, or on reconnect). Answered by
    /// [`ServerMsg::Route`].
    MyRoute,
    /// Version 2. Recipient of the parcel, or driver of its route: a message for the other
    /// side of the parcel's thread (at most [`crate::service::MAX_MESSAGE`] bytes;
    /// rate-limited per parcel and side).
    SendMessage {
        /// The parcel.
        tracking: TrackingNumber,
        /// The text.
        text: String,
    },
    /// Version 2. Recipient of the parcel: a change to its delivery, among what the server
    /// offers.
    ChangeDelivery {
        /// The parcel (must be the token's subject).
        tracking: TrackingNumber,
        /// The change.
        change: crate::service::DeliveryChange,
    },
    /// Version 2 (added 2026-12-07; an earlier version-2 server cannot decode it and closes
    /// the connection with a protocol error). Dispatcher of the route's depot: the route's
    /// plan as loaded, stops in the current order, without one-time codes (a tool replays a
    /// recorded trace on it). Answered by [`ServerMsg::Route`].
    GetRoute {
        /// The route.
        route_id: RouteId,
    },
}

impl CommandKind {
    /// Whether protocol version 1 has this command (a version-1 session refuses others).
    pub fn in_version_1(&self) -> bool {
        !matches!(
            self,
            CommandKind::SendMessage { .. }
                | CommandKind::ChangeDelivery { .. }
                | CommandKind::GetRoute { .. }
        )
    }
}

/// Frames the server sends on a bidirectional stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// Session accepted.
    Welcome(Welcome),
    /// Fixes settled.
    Ack(Ack),
    /// A refusal.
    Error(ErrorFrame),
    /// Answer to a query.
    QueryResult(QueryResult),
    /// A command was applied.
    Done {
        /// The command's id.
        id: u32,
    },
    /// Answer to [`CommandKind::ParcelStatus`].
    ParcelStatus {
        /// The command's id.
        id: u32,
        /// The status.
        status: ParcelStatus,
    },
    /// Pushed to a driver on the server-opened push stream: a route was assigned or
    /// re-sequenced, or a recipient left instructions.
    Push(DriverUpdate),
    /// Feed: the state to start from (first frame of a feed, and after a resync).
    FeedSnapshot(FeedSnapshot),
    /// Feed: one milestone or route event, in order, never lost; `offset` increases by one per
    /// event of this feed.
    FeedEvent {
        /// The event's offset in its feed.
        offset: u64,
        /// The event.
        update: Update,
    },
    /// Feed: a driver's newest position (coalesced: intermediate positions may be skipped).
    FeedPosition(DriverPosition),
    /// Feed: the subscriber fell further behind than the server keeps events for; a fresh
    /// `FeedSnapshot` follows.
    FeedResync,
    /// Answer to [`CommandKind::MyRoute`] and [`CommandKind::GetRoute`].
    Route {
        /// The command's id.
        id: u32,
        /// The route, stops in the current order.
        route: Route,
    },
}

/// Unreliable QUIC datagrams a client sends: the newest fix, so that it never waits behind a
/// backlog upload. Acked like a batch of one on the *push stream*, a unidirectional stream the
/// server opens; a phone that gets no ack resends the fix in a [`FixBatch`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientDatagram {
    /// The newest fix.
    LiveFix {
        /// Its seq.
        seq: Seq,
        /// The fix.
        fix: Fix,
    },
}
