//! Recorded GPS traces and their replay.
//!
//! - [`drive`]: one simulated driver replaying a trace against a gateway.
//! - [`trace`]: readers for GPX, CSV (with presets) and GeoJSON traces.

pub mod drive;
pub mod trace;
