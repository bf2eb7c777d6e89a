//! The sans-IO fleet core: plain synchronous Rust that takes `now` and events and returns
//! state or updates. The tokio/quinn shell in [`crate::server`] moves bytes and time in and out.
//!
//! - [`validate`]: is a fix plausible (ranges, accuracy, clock, jumps)?
//! - [`positions`]: newest fix per driver and a per-depot R-tree for spatial queries.
//! - [`geo_util`]: small geodesy helpers shared by the core.

pub mod geo_util;
pub mod positions;
pub mod validate;
