//! The fleet model: plain synchronous Rust that takes `now` and events and returns state or
//! updates. The shell (the `milepost` crate's server) moves bytes and time in and out.
//!
//! - [`validate`]: is a fix plausible (ranges, accuracy, clock, jumps)?
//! - [`positions`]: newest fix per driver and a per-depot R-tree for spatial queries.
//! - [`geo_util`]: small geodesy helpers shared by the core.
//! - [`route`]: route validation (typed errors) and JSON loading.
//! - [`path`]: a route's polyline in the current stop order, and locating a fix on it.
//! - [`progress`]: the per-stop arrival/departure state machine (geofence, dwell, hysteresis).
//! - [`eta`]: the ETA model: online speed/detour/pace/service learners and the estimate.
//! - [`run`]: one route under way: the per-fix step and the updates it emits.
//! - [`outcome`]: delivery outcomes (proof, one-time code) reported by drivers.
//! - [`view`]: dispatcher route views and recipient parcel status.
//! - [`engine`]: [`engine::FleetCore`], the routes of the fleet behind one API.
//! - [`config`]: [`config::CoreConfig`], every knob of the above.

pub mod calibrate;
pub mod config;
pub mod engine;
pub mod eta;
pub mod geo_util;
pub mod ndr;
pub mod outcome;
pub mod path;
pub mod positions;
pub mod progress;
pub mod route;
pub mod run;
pub mod validate;
pub mod view;
