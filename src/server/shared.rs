//! [`Shared`]: the state every session, listener and background task of a running gateway
//! shares (configuration, keys, the fold's state, the log handle, guards, feeds), and its
//! [`Stats`] counters. Built once by [`crate::server::boot`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use milepost_core::store::Ledger;

use crate::apikeys::KeyStore;
use crate::auth::{DenyList, TokenKeys};
use crate::cluster::lease::Owned;
use crate::cluster::nats::Cluster;
use crate::config::Config;
use crate::feed::hub::FeedHub;
use crate::feed::lag::FeedLag;
use crate::feed::registry::Webhooks;
use crate::feed::webhook::WebhookStats;
use crate::metrics::Histogram;
use crate::notify::handle::Notify;
use crate::proofs::ProofStore;
use crate::server::applier::{ApplierLink, ApplierStats};
use crate::server::clock::Clock;
use crate::server::guard::{HandshakeMeter, Registry};
use crate::server::keys::TicketKey;
use crate::state::FleetState;
use crate::store::writer::queue::WriterHandle;

/// Counters an operator (and a test) can read.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Fixes stored.
    pub fixes_accepted: AtomicU64,
    /// Fixes refused, all reasons.
    pub fixes_rejected: AtomicU64,
    /// Fixes resent and acked again.
    pub fixes_duplicate: AtomicU64,
    /// Connections closed for a protocol violation or auth failure.
    pub refusals: AtomicU64,
    /// Batches refused by the per-driver rate limit.
    pub rate_limited: AtomicU64,
    /// Handshakes answered with a stateless retry.
    pub retries: AtomicU64,
    /// Connections closed because their token was revoked.
    pub revoked: AtomicU64,
    /// Feed subscriptions open now.
    pub subscriptions: AtomicU64,
    /// Fixes refused, by reason (index = `RejectReason as usize`).
    pub rejected_by_reason: [AtomicU64; milepost_proto::RejectReason::ALL.len()],
    /// Time from a batch's admission to its durability (the server's share of ack latency).
    pub ack_latency: Histogram,
    /// Duration of each log fsync.
    pub fsync_latency: Arc<Histogram>,
}

/// State shared by every session.
pub struct Shared {
    /// Configuration in force.
    pub cfg: Config,
    /// Token key.
    pub keys: TokenKeys,
    /// API keys of back-office systems (the data directory's, and a cluster's).
    pub api_keys: Arc<KeyStore>,
    /// Proof-of-delivery files (photos, signatures), uploaded over QUIC or HTTP.
    pub proofs: ProofStore,
    /// Drivers' profiles set over the API (the `[web.drivers]` table is their fallback).
    pub drivers: Arc<crate::drivers::DriverProfiles>,
    /// Notifications: recipients' contacts, the outbox, its counters (threads running only
    /// with `notify.enabled`).
    pub notify: Arc<Notify>,
    /// Admission dedupe state: runs ahead of the durable ledger in `state` by the batches in
    /// flight.
    pub ledger: Arc<Ledger>,
    /// The fold of the log: durable ledger, live positions, fleet core. Its mutexes are std
    /// mutexes held only for short synchronous work, never across an await.
    pub state: Arc<FleetState>,
    /// How far the applier has got, its command results and its update stream.
    pub applied: ApplierLink,
    /// Applier counters.
    pub applier_stats: Arc<ApplierStats>,
    /// The log writer.
    pub log: WriterHandle,
    /// Counters.
    pub stats: Stats,
    /// Server clock.
    pub clock: Clock,
    /// Live connections per subject.
    pub registry: Registry,
    /// Revoked tokens (shared with the cluster's revocation task).
    pub deny: Arc<DenyList>,
    /// Handshakes per second.
    pub handshakes: HandshakeMeter,
    /// The TLS ticket key (counts resumed sessions).
    pub tickets: Arc<TicketKey>,
    /// Webhook counters (set once the webhook threads start).
    pub webhook_stats: OnceLock<Arc<WebhookStats>>,
    /// The webhook endpoints (set once they start).
    pub webhooks: OnceLock<Arc<Webhooks>>,
    /// Feed subscriptions waiting for changes.
    pub hub: Arc<FeedHub>,
    /// The partitions of drivers whose once-per-fleet work (ticks, webhooks, archiving) this
    /// gateway does: all of them on a single box.
    pub owned: Arc<Owned>,
    /// The cluster, when this gateway is one of several.
    pub cluster: Option<Cluster>,
    /// Every live subscriber's cursor (feed lag per subscriber class, in `/metrics`).
    pub lag: Arc<FeedLag>,
    /// Push queues of connected drivers (newest connection wins).
    pub pushes: dashmap::DashMap<
        milepost_proto::DriverId,
        tokio::sync::mpsc::Sender<Box<milepost_proto::ServerMsg>>,
    >,
}

/// What a gateway that folds only the partitions it owns says when asked about a depot held
/// elsewhere: the partition and, when known, the gateway that holds it.
#[derive(Clone, Debug)]
pub struct HeldElsewhere {
    /// The depot's partition.
    pub partition: u32,
    /// Its owner, as last read from the lease bucket (`None` while it changes hands).
    pub owner: Option<crate::cluster::lease::Addresses>,
}

impl std::fmt::Display for HeldElsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "this gateway does not hold partition {}", self.partition)?;
        match &self.owner {
            Some(o) if !o.quic.is_empty() => write!(
                f,
                "; gateway {} does (QUIC {}{}): connect there",
                o.node,
                o.quic,
                o.web
                    .as_deref()
                    .map(|w| format!(", web {w}"))
                    .unwrap_or_default()
            ),
            Some(o) => write!(f, "; gateway {} does: connect there", o.node),
            None => write!(f, "; it is changing hands: retry in a few seconds"),
        }
    }
}

impl Shared {
    /// A token signed by `carrier`'s own key speaks for that carrier's subjects only: a
    /// recipient's parcel (live or in the history) must be in one of its depots; a driver
    /// must not be on a route of, or last seen in, another carrier's depot; a dispatcher's
    /// depot is its own already (its key was chosen by the depot).
    pub fn subject_is_carriers(&self, claims: &crate::auth::Claims, carrier: &str) -> bool {
        use crate::auth::Role;
        let carriers = &self.cfg.carriers;
        let ours = |depot: &str| carriers.carrier_of(depot) == carrier;
        match claims.role {
            Role::Dispatcher => ours(&claims.depot),
            Role::Recipient => {
                let t = milepost_proto::route::TrackingNumber(claims.sub.clone());
                matches!(self.state.depot_of_parcel(&t), Ok(Some(d)) if ours(&d.0))
            }
            Role::Driver => {
                let d = milepost_proto::DriverId(claims.sub.clone());
                let seen = crate::state::lock(&self.state.positions)
                    .position_of(&d)
                    .map(|(depot, _)| depot.to_owned());
                let routed = {
                    let core = crate::state::lock(&self.state.core);
                    core.route_of_driver(&d)
                        .and_then(|r| core.run(r))
                        .map(|r| r.plan.depot.0.clone())
                };
                seen.iter().chain(routed.iter()).all(|depot| ours(depot))
            }
        }
    }

    /// `Err` when this gateway folds only the partitions it owns and `depot`'s is held by
    /// another: reads about the depot (feeds, queries, pages) are served by its owner.
    pub fn serves(&self, depot: &str) -> Result<(), HeldElsewhere> {
        if !self.owned.folds_owned_only() {
            return Ok(());
        }
        let partition =
            milepost_core::store::record::partition_of_depot(depot, self.owned.partitions());
        if self.owned.holds(partition) {
            return Ok(());
        }
        Err(HeldElsewhere {
            partition,
            owner: self.owned.owner_of(partition),
        })
    }

    /// Current server time, UTC ms.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// Closes the live sessions whose tokens `deny` now denies and counts them as revoked.
    /// Returns how many it closed.
    pub fn close_denied(&self, deny: &HashSet<String>) -> usize {
        let n = self.registry.close_denied(deny);
        self.stats.revoked.fetch_add(n as u64, Ordering::Relaxed);
        n
    }
}
