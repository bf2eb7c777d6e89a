//! What a snapshot holds: the fold of every log record before `lsn_next` (the durable dedupe
//! ledger, the live positions, the fleet core and the feeds), as serde types; and what the
//! image of one partition of depots holds ([`PartImageRef`]). The file around
//! it (magic, length, CRC, fsync and rename) is the shell's `milepost::store::snapshot`.

use milepost_proto::route::RouteId;
use milepost_proto::{DriverId, Fix, Seq};
use serde::{Deserialize, Serialize};

use crate::analytics::{RouteTally, Tally};
use crate::feed::FeedStore;
use crate::fleet::calibrate::Calibration;
use crate::fleet::engine::{CorePart, CorePartRef, CoreSnapshot, CoreSnapshotRef, ServiceBook};
use crate::store::ledger::LedgerEntry;

/// One driver's live position in a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionEntry {
    /// The driver.
    pub driver: DriverId,
    /// The driver's depot.
    pub depot: String,
    /// Seq of the live fix.
    pub seq: Seq,
    /// The live fix.
    pub fix: Fix,
}

/// The serializing side of a snapshot (borrows the core).
#[derive(Serialize)]
pub struct SnapshotRef<'a> {
    /// First log record not folded into this snapshot.
    pub lsn_next: u64,
    /// When it was taken, UTC ms.
    pub taken_ms: i64,
    /// Durable dedupe state.
    pub ledger: Vec<LedgerEntry>,
    /// Live positions.
    pub positions: Vec<PositionEntry>,
    /// Routes and their progress.
    pub core: CoreSnapshotRef<'a>,
    /// The feeds.
    pub feed: &'a FeedStore,
    /// The recipients' changes and threads: a section of its own after the rest (older
    /// snapshots end before it), written and read by the shell's snapshot file.
    #[serde(skip)]
    pub service: Option<&'a ServiceBook>,
    /// The fleet's ETA calibration: a section after the service book (likewise).
    #[serde(skip)]
    pub calibration: Option<&'a Calibration>,
    /// The analytics tally of the live routes: a section after the calibration (likewise).
    #[serde(skip)]
    pub tally: Option<Vec<(&'a RouteId, &'a RouteTally)>>,
}

/// A snapshot read back.
#[derive(Deserialize)]
pub struct Snapshot {
    /// First log record not folded into this snapshot.
    pub lsn_next: u64,
    /// When it was taken, UTC ms.
    pub taken_ms: i64,
    /// Durable dedupe state.
    pub ledger: Vec<LedgerEntry>,
    /// Live positions.
    pub positions: Vec<PositionEntry>,
    /// Routes and their progress.
    pub core: CoreSnapshot,
    /// The feeds.
    pub feed: FeedStore,
    /// The recipients' changes and threads (see [`SnapshotRef::service`]).
    #[serde(skip)]
    pub service: ServiceBook,
    /// The fleet's ETA calibration (see [`SnapshotRef::calibration`]).
    #[serde(skip)]
    pub calibration: Calibration,
    /// The analytics tally (see [`SnapshotRef::tally`]).
    #[serde(skip)]
    pub tally: Tally,
}

/// The image of one partition of depots (a cluster gateway that folds only the partitions it
/// owns keeps one per partition it holds): the fold of every record of the partition before
/// `lsn_next`, and nothing of any other partition.
#[derive(Serialize)]
pub struct PartImageRef<'a> {
    /// The partition.
    pub partition: u32,
    /// Of how many.
    pub partitions: u32,
    /// First record of the partition not folded into this image.
    pub lsn_next: u64,
    /// When it was taken, UTC ms.
    pub taken_ms: i64,
    /// The durable dedupe state of the partition's drivers.
    pub ledger: Vec<LedgerEntry>,
    /// Their live positions.
    pub positions: Vec<PositionEntry>,
    /// The partition's routes and what the core keeps of their parcels.
    pub core: CorePartRef<'a>,
    /// The feeds of the partition's depots and parcels.
    pub feed: FeedStore,
}

/// A partition's image read back.
#[derive(Debug, Deserialize)]
pub struct PartImage {
    /// The partition.
    pub partition: u32,
    /// Of how many.
    pub partitions: u32,
    /// First record of the partition not folded into this image.
    pub lsn_next: u64,
    /// When it was taken, UTC ms.
    pub taken_ms: i64,
    /// See [`PartImageRef::ledger`].
    pub ledger: Vec<LedgerEntry>,
    /// See [`PartImageRef::positions`].
    pub positions: Vec<PositionEntry>,
    /// See [`PartImageRef::core`].
    pub core: CorePart,
    /// See [`PartImageRef::feed`].
    pub feed: FeedStore,
}
