//! Milepost, the last-mile delivery tracking gateway.
//!
//! Driver phones stream GPS fixes over QUIC; the gateway authenticates each device, validates
//! every fix, appends it to a durable log (group-commit fsync) before acking it, keeps every
//! driver's live position in an R-tree, and answers dispatchers' spatial queries. The wire format
//! lives in the `milepost-proto` crate.
//!
//! # Layout
//! - [`config`]: every knob with a safe default; TOML file, environment and flag overrides.
//! - [`auth`]: signed bearer tokens (HMAC-SHA256) naming a role, subject, depot and expiry;
//!   their fingerprints and the deny list of revoked ones (`milepost revoke`).
//! - [`certs`]: the development CA and server certificate made on first run.
//! - [`cluster`]: several gateways as one fleet over NATS JetStream (`serve --cluster`).
//! - [`store`]: the ingest log (CRC-framed records, segments, group commit, torn-tail
//!   recovery) and the per-driver dedupe state rebuilt from it.
//! - [`feed`]: per-audience event feeds with offsets, the subscription hub, webhooks.
//! - [`state`]: the fleet state (the fold of the log) behind its locks, shared by the shell.
//! - The sans-IO core (fix validation, live positions and the R-tree, routes, stop progress and
//!   ETA, the fold itself) is the `milepost-core` crate: it never awaits, never reads the clock.
//! - [`metrics`]: counters and latency histograms in the Prometheus text format.
//! - [`server`]: the tokio/quinn shell: endpoint, per-connection sessions, dispatcher queries.
//! - [`client`]: the QUIC client used by `drive`, `query` and the load tools.
//! - [`replay`]: recorded trace readers (GPX, CSV, GeoJSON).
//! - [`tools`]: offline tools (ETA evaluation, GTFS conversion).
//! - [`web`]: the HTTP listener for browsers: recipients' tracking pages and the dispatcher
//!   map, fed live by server-sent events from the same feeds as QUIC.
//! - [`wire`]: reading and writing protocol frames on quinn streams.
//! - [`udp`]: UDP socket buffer sizes for the gateway and the load generator.
#![deny(missing_docs)]

pub mod auth;
pub mod certs;
pub mod client;
pub mod cluster;
pub mod config;
pub mod feed;
pub mod metrics;
pub mod replay;
pub mod server;
pub mod state;
pub mod store;
pub mod tools;
pub mod udp;
pub mod web;
pub mod wire;
