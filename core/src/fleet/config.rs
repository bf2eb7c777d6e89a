//! [`CoreConfig`]: every knob of the fleet core (arrival detection, ETA, alerts), with
//! defaults for delivery vans in a city. The shell's configuration file embeds it as `[core]`;
//! the core only reads it.

use serde::{Deserialize, Serialize};

use crate::fleet::engine::MessageLimits;
use crate::fleet::eta::EtaConfig;
use crate::fleet::ndr::NdrPolicy;

/// Every knob of the core, with defaults for delivery vans in a city (1 Hz fixes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoreConfig {
    /// Geofence enter radius of stops that do not set one, metres.
    pub default_radius_m: f64,
    /// Exit radius = enter radius x this (hysteresis against jitter at the fence edge).
    pub exit_factor: f64,
    /// Time the driver must stay at a stop before an arrival is declared, ms.
    pub dwell_ms: i64,
    /// Weight of the fix accuracy in the inside test (1 = `distance + accuracy <= radius`).
    pub accuracy_factor: f64,
    /// Fixes less accurate than this never count for arrivals, metres.
    pub max_arrival_accuracy_m: f64,
    /// The route starts when the driver is first seen this far from its start point, metres.
    pub depot_radius_m: f64,
    /// Per fix, the polyline is searched from this far behind the previous position, metres.
    pub window_back_m: f64,
    /// ... to this far ahead (or max speed x time since the last fix, if more), metres.
    pub window_ahead_m: f64,
    /// Further than this (plus accuracy) from the windowed match, the whole route is searched.
    pub relocate_m: f64,
    /// A backwards move along the route up to this is noise; more is a real turn-back, metres.
    pub backtrack_m: f64,
    /// Distance from the planned path that counts as off route (plus accuracy), metres.
    pub off_route_m: f64,
    /// On straight legs (no planned path) a further share of the leg's length is allowed.
    pub straight_leg_allowance: f64,
    /// `StopsAway` is only sent for N up to this.
    pub stops_away_horizon: u32,
    /// `EtaChanged` is sent when the ETA moved more than this, seconds...
    pub eta_threshold_s: f64,
    /// ... or more than this share of the time to go, if larger.
    pub eta_threshold_rel: f64,
    /// ETAs of this many stops ahead are re-checked every `eta_near_interval_ms`...
    pub eta_near_stops: usize,
    /// ... (and on the first fix after a stop event), ms.
    pub eta_near_interval_ms: i64,
    /// ... and of all stops at most this often, ms.
    pub eta_far_interval_ms: i64,
    /// `ArrivingSoon` when the ETA is this close, seconds...
    pub arriving_soon_s: f64,
    /// ... or the stop this close along the route, metres; and in either case only once at
    /// most `arriving_soon_stops` stops are still to be served before it (a fast driver five
    /// stops away is not "arriving soon").
    pub arriving_soon_m: f64,
    /// See `arriving_soon_m`.
    pub arriving_soon_stops: u32,
    /// `Delayed` is re-armed once the ETA is back this far inside the window, ms.
    pub delayed_rearm_ms: i64,
    /// `RunningLate` when the next stop's ETA is this many minutes past its planned arrival
    /// (or window end)...
    pub late_threshold_min: u32,
    /// ... and again each time it grows by this many minutes.
    pub late_step_min: u32,
    /// `DriverStalled` when no fix came for this long on an active route, ms.
    pub stall_no_fix_ms: i64,
    /// `DriverStalled` when the driver did not move for this long away from a stop, ms.
    pub stall_no_move_ms: i64,
    /// Moving less than this is not movement (GPS jitter), metres.
    pub move_m: f64,
    /// The ETA model.
    pub eta: EtaConfig,
    /// What happens after a failed attempt (`[core.ndr]`).
    pub ndr: NdrPolicy,
    /// How often a recipient and a driver may write to each other (`[core.messages]`).
    pub messages: MessageLimits,
    /// Tally analytics as the fold goes (`docs/ANALYTICS.md`): distance driven, stall and late
    /// alerts, the ETAs recipients were shown, failure reasons, earlier attempts, outcome
    /// times. Off saves that work (4 % of the core's per-fix time); reports then lack those:
    /// every failure reads `other`, every outcome a first attempt, and a stop is reached only
    /// at a detected arrival.
    pub analytics: bool,
    /// ETA windows are calibrated per partition of depots when this is above 1 (one calibration
    /// per [`crate::store::record::partition_of_depot`] modulo this), else fleet-wide. Not a
    /// setting: a cluster whose gateways fold only the partitions they own sets it to its
    /// partition count, so that what a partition's recipients are shown depends on that
    /// partition's records alone, whichever gateway folds it.
    #[serde(skip)]
    pub calibration_groups: u32,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_radius_m: 40.0,
            exit_factor: 1.5,
            dwell_ms: 20_000,
            accuracy_factor: 1.0,
            max_arrival_accuracy_m: 100.0,
            depot_radius_m: 150.0,
            window_back_m: 50.0,
            window_ahead_m: 150.0,
            relocate_m: 60.0,
            backtrack_m: 100.0,
            off_route_m: 150.0,
            straight_leg_allowance: 0.35,
            stops_away_horizon: 10,
            eta_threshold_s: 120.0,
            eta_threshold_rel: 0.1,
            eta_near_stops: 10,
            eta_near_interval_ms: 5_000,
            eta_far_interval_ms: 30_000,
            arriving_soon_s: 300.0,
            arriving_soon_m: 500.0,
            arriving_soon_stops: 1,
            delayed_rearm_ms: 300_000,
            late_threshold_min: 10,
            late_step_min: 5,
            stall_no_fix_ms: 300_000,
            stall_no_move_ms: 600_000,
            move_m: 30.0,
            eta: EtaConfig::default(),
            ndr: NdrPolicy::default(),
            analytics: true,
            messages: MessageLimits::default(),
            calibration_groups: 0,
        }
    }
}
