//! Milepost's core: the fleet model and the fold of the log, sans-IO.
//!
//! Everything here is plain synchronous Rust over `milepost-proto`'s types: it takes records,
//! fixes and `now` and returns state and updates. It never awaits, never reads the clock, never
//! touches a file, socket or configuration file; Cargo enforces that much (no tokio, quinn or
//! axum among its dependencies). The shell, the `milepost` crate, moves bytes and time in and
//! out and owns locks, threads, files and listeners.
//!
//! # Layout
//! - [`fleet`]: fix validation, live positions and the R-tree, routes, stop progress, ETA, the
//!   updates each audience hears ([`fleet::engine::FleetCore`]).
//! - [`store`]: the log's records, the dedupe ledger folded from them, the snapshot image.
//! - [`feed`]: the feeds' event store, per audience with offsets.
//! - [`fold`]: applies one record to the whole state; recovery, the applier and ticks share it.
//! - [`present`]: what a recipient may see (the driver's position rule) and the words every
//!   surface shows (status lines, event and reason texts).
//! - [`history`]: what a parcel and a route leave behind when the route is archived or
//!   cancelled (kept by the shell for months).
//! - [`analytics`]: the numbers a carrier is judged by (on time, first attempts, failures,
//!   time per stop, distance, published-ETA accuracy), folded from the log.
//! - [`hash`]: the hash maps of the per-fix path.
//!
//! # Layers
//! `milepost-proto` (wire types) <- `milepost-core` (this crate) <- `milepost` (the shell:
//! server, web, cluster, replay, tools). Arrows only point down.
#![deny(missing_docs)]

pub mod analytics;
pub mod feed;
pub mod fleet;
pub mod fold;
pub mod hash;
pub mod history;
pub mod present;
pub mod store;
