//! The tokio/quinn shell around the core: it binds the QUIC endpoint, recovers state from the
//! log, accepts connections and runs one [`session`] per connection. It moves bytes and time in
//! and out; the decisions are made by [`ingest`], [`crate::store`] and the `milepost_core` fold.
//!
//! This file holds [`Gateway`], the running gateway's public face. The rest:
//!
//! - [`boot`]: starting a gateway as named steps (data dir, recovery, log, applier, endpoint,
//!   listeners, tasks, cluster parts) and stopping it.
//! - [`cluster_parts`]: joining a cluster, the addresses advertised, and the parts that run
//!   beside a cluster gateway (leases, ticks, shared state, forwarded commands).
//! - [`shared`]: [`Shared`], the state every session and task shares, and its [`Stats`].
//! - [`clock`]: [`Clock`], the injectable clock the server reads.
//! - [`recover`]: the fleet state from snapshot and log tail (or the cluster's stream).
//! - [`backend`]: the log (this box's writer, or the cluster's publisher and consumer) and
//!   the applier behind it, started and closed in order.
//! - [`tls`]: persistent keys, the endpoint and the quinn/rustls server configuration.
//! - [`accept`]: the accept loop and its handshake slots; the deny-list watcher.
//! - [`session`]: one connection: Hello, streams of batches and queries, live-fix datagrams.
//! - [`ingest`]: admission of fixes (dedupe, validation, the log record and the ack).
//! - [`commands`]: routes, outcomes, instructions and parcel status over QUIC; driver pushes.
//! - [`feed`]: serving one feed subscription on its own stream.
//! - [`applier`]: folds durable records into the fleet state in log order; snapshots.
//! - [`archive`]: moves long-finished routes out of the live state into an archive file.
//! - [`admin`]: the admin HTTP listener: Prometheus metrics, health and readiness.
//! - [`guard`]: connection limits per subject, handshake-rate retry.
//! - [`keys`]: persistent TLS ticket and QUIC stateless-reset keys (cheap reconnect storms).
//! - [`limits`]: the `[limits]` configuration section.
//! - [`error`]: [`ServerError`], why a gateway could not start.

pub mod accept;
pub mod admin;
pub mod applier;
pub mod archive;
pub mod backend;
pub mod boot;
pub mod cids;
pub mod clock;
pub mod cluster_parts;
pub mod commands;
pub mod commit;
pub mod error;
pub mod feed;
pub mod guard;
pub mod ingest;
pub mod keys;
pub mod limits;
pub mod part_images;
pub mod recover;
pub mod service;
pub mod session;
pub mod shared;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::Claims;
use crate::config::Config;
use crate::server::boot::{start, Running};
use crate::store::log::RecoveryStats;

pub use crate::server::clock::{system_clock, Clock};
pub use crate::server::error::ServerError;
pub use crate::server::shared::{Shared, Stats};

/// A running gateway.
pub struct Gateway {
    /// The address the endpoint is bound to.
    pub local_addr: SocketAddr,
    /// The admin HTTP listener's address, when it runs.
    pub admin_addr: Option<SocketAddr>,
    /// The web listener's address (tracking pages, dispatcher map), when it runs.
    pub web_addr: Option<SocketAddr>,
    /// The development CA clients should trust, when one was made.
    pub dev_ca: Option<PathBuf>,
    /// What recovery found.
    pub recovery: RecoveryStats,
    shared: Arc<Shared>,
    running: Running,
}

impl Gateway {
    /// Recovers state from the log in `cfg.data_dir`, binds the endpoint and starts serving.
    pub async fn start(cfg: Config) -> Result<Gateway, ServerError> {
        Self::start_with_clock(cfg, system_clock()).await
    }

    /// Like [`Gateway::start`] with an injected clock.
    pub async fn start_with_clock(cfg: Config, clock: Clock) -> Result<Gateway, ServerError> {
        let s = start(cfg, clock).await?;
        Ok(Gateway {
            local_addr: s.local_addr,
            admin_addr: s.admin_addr,
            web_addr: s.web_addr,
            dev_ca: s.dev_ca,
            recovery: s.recovery,
            shared: s.shared,
            running: s.running,
        })
    }

    /// The shared state (counters, positions, token key).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Mints a token with this gateway's key (for tests and tools).
    pub fn mint(&self, claims: &Claims) -> String {
        self.shared.keys.mint(claims)
    }

    /// Stops accepting, closes every connection with `ShuttingDown`, flushes the log.
    pub async fn shutdown(self) {
        self.running.stop().await;
    }

    /// Runs until `stop` resolves, then shuts down.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        stop.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}
