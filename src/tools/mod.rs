//! Tools run from the CLI.
//!
//! - [`demo`]: a delivery day on a real trace, driven through a gateway it starts, to watch.
//! - [`watch`]: follow a feed in the terminal (recipient status line, dispatcher table).
//!
//! - [`gtfs`]: GTFS + recorded GTFS-realtime to Milepost route files and traces.
//! - [`eval_eta`]: replays recorded trips through the fleet core and scores its ETAs against
//!   observed arrivals, next to the timetable; [`eval_published`] scores what recipients
//!   were sent on the same replay, and [`eval_targets`] checks both against the targets.

pub mod demo;
pub mod eval_eta;
pub mod eval_published;
pub mod eval_targets;
pub mod gtfs;
pub mod watch;
