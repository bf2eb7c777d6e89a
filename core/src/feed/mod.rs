//! The feed's data: every event the core emits, kept per audience with offsets, so that
//! subscribers get it in order and resume after a reconnect with exactly what they missed.
//! Waking subscribers and delivering webhooks is the shell's (`milepost::feed`).
//!
//! - [`store`]: the event store, part of the snapshotted fleet state: every milestone of every
//!   parcel, a bounded ring of route events per depot, and a global ring of milestones for
//!   webhooks.
//! - [`pace`]: [`PositionPace`], at most one driver position a second to a recipient.
//! - [`FeedKey`]: names one feed (what an applied record touched).
//! - [`FeedConfig`]: the `[feed]` section.

use milepost_proto::route::{DepotId, TrackingNumber};
use milepost_proto::DriverId;
use serde::{Deserialize, Serialize};

pub mod pace;
pub mod store;

pub use pace::PositionPace;
pub use store::{FeedStore, Ring, TooOld};

/// A feed (or position source) that changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FeedKey {
    /// A parcel's milestones.
    Parcel(TrackingNumber),
    /// A depot's route events.
    Depot(DepotId),
    /// A depot's driver positions (the driver that moved is put in the mailbox).
    DepotPositions(DepotId),
    /// One driver's position.
    Driver(DriverId),
    /// The global milestone ring (webhooks).
    Milestones,
}

/// Feed settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Route events kept per depot for resuming dispatchers (older: resync from a snapshot).
    pub depot_events_kept: usize,
    /// Milestones kept for webhook delivery while a notifier is down.
    pub milestones_kept: usize,
    /// A recipient sees the driver's position once at most this many stops are before theirs
    /// (0 = only when their stop is next)...
    pub position_stops: u32,
    /// ... or once the ETA is at most this many minutes away.
    pub position_minutes: u32,
    /// Dispatcher position updates are coalesced to at most one flush per this many ms.
    pub position_flush_ms: u64,
    /// A recipient is sent the driver's position (when the rule above lets it see it) at most
    /// once per this many ms, the newest (0: every fix).
    pub recipient_position_ms: u64,
    /// A parcel on its way whose driver has sent no fix for this many seconds is shown as
    /// "no news from the driver since 14:02" instead of an estimate made before the silence.
    pub stale_after_s: u64,
    /// Webhook endpoints receiving parcel milestones as signed JSON.
    pub webhooks: Vec<String>,
    /// Secret for the webhook signature (HMAC-SHA256 in `X-Milepost-Signature`); defaults to
    /// the token secret.
    pub webhook_secret: Option<String>,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            depot_events_kept: 10_000,
            milestones_kept: 100_000,
            position_stops: 0,
            position_minutes: 10,
            position_flush_ms: 250,
            recipient_position_ms: 1000,
            stale_after_s: 180,
            webhooks: Vec::new(),
            webhook_secret: None,
        }
    }
}
