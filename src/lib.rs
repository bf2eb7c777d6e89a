//! Milepost, the last-mile delivery tracking gateway.
//!
//! Driver phones stream GPS fixes over QUIC; the gateway authenticates each device, validates
//! every fix, appends it to a durable log (group-commit fsync) before acking it, keeps every
//! driver's live position in an R-tree, and answers dispatchers' spatial queries.
//!
//! # Layers
//! `milepost-proto` (the wire format) <- `milepost-core` (the sans-IO fleet model, the log's
//! records, the feed store, the fold, the words people see) <- this crate, the shell: threads,
//! files, sockets, the clock, listeners. Inside the shell, from the top: `main.rs` and the CLI;
//! the listeners and tools (`server`, `web`, `cluster`, `replay`, `tools`, `client`); the shared
//! machinery (`config`, `state`, `store`, `history`, `analytics`, `proofs`, `apikeys`, `drivers`, `feed`, `notify`, `auth`,
//! `certs`, `metrics`, `wire`, `udp`, `priority`);
//! and each part's own configuration section (`*/config.rs`, `server/limits.rs`) at the
//! bottom. `tests/layers.rs` checks the rule and that no import goes round in a circle.
//!
//! # Layout
//! - [`config`]: every knob with a safe default; TOML file, environment and flag overrides.
//! - [`auth`]: signed bearer tokens (HMAC-SHA256) naming a role, subject, depot and expiry;
//!   their fingerprints and the deny list of revoked ones (`milepost revoke`).
//! - [`apikeys`]: API keys for back-office systems (`milepost key`), stored hashed, scoped to
//!   roles and depots.
//! - [`certs`]: the development CA and server certificate made on first run.
//! - [`cluster`]: several gateways as one fleet over NATS JetStream (`serve --cluster`).
//! - [`store`]: the ingest log's files (CRC-framed records, segments, group commit, torn-tail
//!   recovery) and snapshot files.
//! - [`history`]: closed routes' and their parcels' history in an embedded database (redb),
//!   kept for `history.retention_days`.
//! - [`analytics`]: the numbers carriers are judged by, per carrier, depot, driver and local
//!   day (`[carriers]`), as JSON, CSV, Prometheus gauges and Parquet exports.
//! - [`drivers`]: drivers' profiles recipients see (first name, vehicle, photo), set over the
//!   API.
//! - [`proofs`]: proof-of-delivery files, content-addressed by SHA-256.
//! - [`feed`]: the subscription hub, feed lag, webhooks.
//! - [`notify`]: messages to recipients (e-mail, SMS, WhatsApp) and dispatchers: contacts,
//!   templates, the durable outbox, the providers' adapters.
//! - [`state`]: the fleet state (the core's fold) behind locks, shared by every listener.
//! - [`metrics`]: counters and latency histograms in the Prometheus text format.
//! - [`server`]: the tokio/quinn shell: endpoint, per-connection sessions, dispatcher queries.
//! - [`client`]: the QUIC client used by `drive`, `query` and the load tools.
//! - [`replay`]: recorded traces (one reader per format in `trace/`), `drive`, and the load
//!   generator (`sim/`).
//! - [`tools`]: offline tools (ETA evaluation, GTFS conversion).
//! - [`web`]: the HTTP listener: recipients' tracking pages and the dispatcher map, fed live by
//!   server-sent events from the same feeds as QUIC, and the back-office API (`/api/v1`).
//! - [`wire`]: reading and writing protocol frames on quinn streams.
//! - [`udp`]: UDP socket buffer sizes for the gateway and the load generator.
//! - [`priority`]: lower CPU priority for threads that must not slow ingest.
#![deny(missing_docs)]

pub mod analytics;
pub mod apikeys;
pub mod auth;
pub mod certs;
pub mod client;
pub mod cluster;
pub mod config;
pub mod drivers;
pub mod feed;
pub mod history;
pub mod metrics;
pub mod notify;
pub mod priority;
pub mod proofs;
pub mod replay;
pub mod selfservice;
pub mod server;
pub mod state;
pub mod store;
pub mod tenancy;
pub mod tools;
pub mod udp;
pub mod web;
pub mod wire;
