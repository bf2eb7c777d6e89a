//! The JSON views: what the pages, the API and the event streams send, and the functions that
//! build them from the gateway's state. Views are read from the same state the QUIC path reads
//! (the fleet core, the feed store, the live positions), each under its own short lock, and
//! every answer is bounded (a parcel's newest milestones, a depot's newest alerts). Handlers
//! (`recipient`, `dispatch`) call these; nothing here knows about HTTP.
//!
//! - [`common`]: what both audiences' views use (times, positions, driver names, route plans).
//! - [`parcel`]: the recipient's: a parcel's status, milestones, position and instructions.
//! - [`route`]: one route's progress and ETAs on the dispatcher map.
//! - [`depot`]: the dispatcher's: route events and alerts, drivers, the depot's whole state.

pub mod common;
pub mod depot;
pub mod parcel;
pub mod route;
