//! Recorded GPS traces and their replay.
//!
//! - [`drive`]: one simulated driver replaying a trace against a gateway.
//! - [`load`]: the load generator's command line (`milepost replay`).
//! - [`sim`]: the load generator's engine: thousands of simulated drivers, honest latency
//!   figures ([`sim::replay`]). A folder: the knobs, each driver's plan, the sans-IO driver
//!   state machine (unit tested) and the tokio task and QUIC link that carry it out, the
//!   `/proc` probes and the report; its module doc has the map.
//! - [`metrics`]: what the load generator measures and its report.
//! - [`netreport`]: what the network model did and the phones' radio budget, in the report.
//! - [`playback`]: a trace played back and forth as an endless route.
//! - [`procfs`]: what `/proc` says of a process's CPU and memory and of dropped UDP datagrams.
//! - [`route_source`]: `--route`, a route file or a loaded route's id.
//! - [`trace`]: recorded traces and their readers, one file per format: GPX, CSV (with presets)
//!   and GeoJSON.

pub mod drive;
pub mod load;
pub mod metrics;
pub mod netreport;
pub mod playback;
pub mod procfs;
pub mod route_source;
pub mod sim;
pub mod trace;
