//! The `milepost` command's subcommands, one module per command group; `main.rs` parses the
//! command line and dispatches here.
//!
//! - [`serve`]: the gateway.
//! - [`demo`]: a gateway, a delivery day on a real trace driven through it, the links to watch.
//! - [`token`]: minting and revoking tokens.
//! - [`key`]: API keys for back-office systems.
//! - [`office`]: outcomes and route cancels through the back-office API.
//! - [`drive`]: one recorded trace driven as one driver.
//! - [`query`]: a dispatcher's spatial queries.
//! - [`route`]: checking, loading and cancelling routes.
//! - [`watch`]: following a feed in the terminal.
//! - [`export`]: a day's Parquet exports from a data directory, by carrier and day.
//! - [`connect`]: what the client commands share (gateway address, CA, token).
//!
//! `replay`, `gtfs-to-route` and `eval-eta` live in the library (`milepost::replay::load`,
//! `milepost::tools`), their arguments with them.

pub(crate) mod connect;
pub(crate) mod demo;
pub(crate) mod drive;
pub(crate) mod export;
pub(crate) mod key;
pub(crate) mod office;
pub(crate) mod query;
pub(crate) mod route;
pub(crate) mod serve;
pub(crate) mod token;
pub(crate) mod watch;
