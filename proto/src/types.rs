//! Value types of the protocol. Units are in the names (`t_ms`, `accuracy_m`, `speed_mps`);
//! identifiers are newtypes so that a driver id cannot be passed where a stop id is meant.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A driver's identifier, as named in the driver's token (`subject`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct DriverId(pub String);

impl fmt::Display for DriverId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl From<&str> for DriverId {
    fn from(s: &str) -> Self {
        DriverId(s.to_owned())
    }
}

/// Sequence number of a fix, assigned by the phone: dense, starting at 1, per driver. A fix is
/// identified by (driver, seq); a resend with the same seq is stored once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What the phone's activity recogniser says the driver is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Activity {
    /// Not known.
    Unknown,
    /// Not moving.
    Still,
    /// On foot, walking.
    Walking,
    /// On foot, running.
    Running,
    /// On a bicycle.
    Cycling,
    /// In a car, van or truck.
    InVehicle,
}

/// One GPS fix as the phone measured it. Holding a `Fix` does not mean it is plausible: the
/// gateway's validator decides that (see `RejectReason`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// UTC time of the measurement, milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// Latitude in units of 1e-7 degree (WGS-84), -900_000_000..=900_000_000.
    pub lat_e7: i32,
    /// Longitude in units of 1e-7 degree (WGS-84), -1_800_000_000..=1_800_000_000.
    pub lon_e7: i32,
    /// Horizontal accuracy: radius in metres of the 68% confidence circle. Must be > 0.
    pub accuracy_m: f32,
    /// Ground speed in metres per second, if the phone measured it.
    pub speed_mps: Option<f32>,
    /// Course over ground in degrees clockwise from true north, 0..360, if measured.
    pub heading_deg: Option<f32>,
    /// Altitude above the WGS-84 ellipsoid in metres, if measured.
    pub altitude_m: Option<f32>,
    /// Battery level in percent 0..=100, if known.
    pub battery_pct: Option<u8>,
    /// Motion activity, if known.
    pub activity: Option<Activity>,
    /// The OS flagged this fix as coming from a mock-location provider.
    pub mock: bool,
}

impl Fix {
    /// A fix with only the mandatory fields set.
    pub fn new(t_ms: i64, lat_e7: i32, lon_e7: i32, accuracy_m: f32) -> Self {
        Fix {
            t_ms,
            lat_e7,
            lon_e7,
            accuracy_m,
            speed_mps: None,
            heading_deg: None,
            altitude_m: None,
            battery_pct: None,
            activity: None,
            mock: false,
        }
    }

    /// Builds a fix from degrees (rounded to the 1e-7 degree grid).
    pub fn from_degrees(t_ms: i64, lat: f64, lon: f64, accuracy_m: f32) -> Self {
        Fix::new(t_ms, deg_to_e7(lat), deg_to_e7(lon), accuracy_m)
    }

    /// The same fix measured at another time.
    pub fn with_time(mut self, t_ms: i64) -> Self {
        self.t_ms = t_ms;
        self
    }

    /// Latitude in degrees.
    pub fn lat(&self) -> f64 {
        self.lat_e7 as f64 * 1e-7
    }

    /// Longitude in degrees.
    pub fn lon(&self) -> f64 {
        self.lon_e7 as f64 * 1e-7
    }
}

/// Converts degrees to the wire's 1e-7 degree units, saturating at the i32 range.
pub fn deg_to_e7(deg: f64) -> i32 {
    let v = (deg * 1e7).round();
    if v.is_nan() {
        0
    } else {
        v.clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }
}
