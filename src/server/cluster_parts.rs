//! The cluster's side of starting a gateway: joining it ([`join_cluster`]), the addresses this
//! gateway advertises to the others ([`advertised`]), and the parts that run beside the
//! gateway ([`start_cluster_parts`]: leases, ticks, shared revocations, keys and webhooks, and
//! the responder to forwarded commands), each given only the handles it uses.

use std::net::SocketAddr;
use std::sync::Arc;

use milepost_core::store::record::partition_of_depot;
use milepost_core::store::LogRecord;
use milepost_proto::ErrorCode;
use tokio::sync::watch;

use crate::cluster::forward::{self, ForwardParts};
use crate::cluster::hooks::{self as cluster_hooks, HookParts};
use crate::cluster::keys::{self as cluster_keys, KeyParts};
use crate::cluster::lease::{self, Addresses};
use crate::cluster::nats::Cluster;
use crate::cluster::node::default_node;
use crate::cluster::publish::depot_resolver;
use crate::cluster::revoke::{self, RevokeParts};
use crate::cluster::tick::{self, TickParts};
use crate::config::Config;
use crate::server::commit::{commit_here, Refusal};
use crate::server::error::ServerError;
use crate::server::shared::Shared;

/// Connects to the cluster, when `cluster.url` is set.
pub(super) async fn join_cluster(cfg: &Config) -> Result<Option<Cluster>, ServerError> {
    if cfg.cluster.url.is_none() {
        return Ok(None);
    }
    let node = cfg
        .cluster
        .node
        .clone()
        .unwrap_or_else(|| default_node(cfg.listen.port()));
    Ok(Some(Cluster::connect(&cfg.cluster, node).await?))
}

/// Where this gateway answers, as other gateways tell clients: the addresses to advertise when
/// set, else the bound ones.
pub(super) fn advertised(
    c: &Cluster,
    local_addr: SocketAddr,
    web_addr: Option<SocketAddr>,
) -> Addresses {
    Addresses {
        node: c.node.clone(),
        quic: c
            .cfg
            .advertise_quic
            .clone()
            .unwrap_or_else(|| local_addr.to_string()),
        web: c
            .cfg
            .advertise_web
            .clone()
            .or_else(|| web_addr.map(|a| format!("http://{a}"))),
    }
}

/// What the responder to forwarded commands uses: whether a record's partition is held here
/// (by the depot it names, or the one the fold knows for it), and a commit that never
/// forwards again.
fn forward_parts(cluster: &Cluster, shared: &Arc<Shared>) -> ForwardParts {
    let resolve = depot_resolver(shared.state.core.clone());
    let owned = shared.owned.clone();
    // Commands only (a phone's batch or a tick never travels this way), and only while this
    // gateway both leases and holds the partition: during a hand-over the old holder stops
    // answering before the new one starts, so a command is not committed twice.
    let holds = move |rec: &LogRecord| {
        if matches!(
            rec,
            LogRecord::Batch { .. } | LogRecord::Tick { .. } | LogRecord::DepotTick { .. }
        ) {
            return false;
        }
        let depot = match rec.depot() {
            Some(d) => Some(d.to_owned()),
            None => resolve(rec),
        };
        depot.is_some_and(|d| {
            let p = partition_of_depot(&d, owned.partitions());
            owned.owns(p) && owned.holds(p)
        })
    };
    let here = shared.clone();
    ForwardParts {
        cluster: cluster.clone(),
        holds: Arc::new(holds),
        commit: Arc::new(move |rec| {
            let shared = here.clone();
            Box::pin(async move {
                // The asker could not check an assignment against this partition's routes
                // and parcels: the holder does.
                if let LogRecord::RouteAssigned { route, .. } = &rec {
                    if let Err(why) = crate::server::commands::check_ownership(&shared, route) {
                        return forward::Answer::of(Err((ErrorCode::OutOfScope, why)));
                    }
                }
                let r = match commit_here(&shared, Arc::new(rec)).await {
                    Ok(r) => Ok(r),
                    Err(Refusal::NotOwned(what)) => Err((
                        ErrorCode::ServerBusy,
                        format!("{what} changed hands: retry"),
                    )),
                    Err(Refusal::Failed(code, msg)) => Err((code, msg)),
                };
                forward::Answer::of(r)
            })
        }),
    }
}

/// Spawns the cluster's parts, each with only the handles it uses: partition leases (until
/// the cluster stops), ticks of the owned partitions and shared revocations (until the
/// gateway stops).
pub(super) fn start_cluster_parts(
    cluster: &Cluster,
    shared: &Arc<Shared>,
    addresses: Addresses,
    stop_cluster: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(lease::run(
        cluster.clone(),
        shared.owned.clone(),
        addresses,
        stop_cluster,
    ));
    let ticks = TickParts {
        partitions: shared.cfg.cluster.partitions,
        owned: shared.owned.clone(),
        core: shared.state.core.clone(),
        clock: shared.clock.clone(),
        log: shared.log.clone(),
    };
    tokio::spawn(tick::run(ticks, stop.clone()));
    if shared.owned.folds_owned_only() {
        tokio::spawn(forward::run(forward_parts(cluster, shared), stop.clone()));
    }
    let sessions = shared.clone();
    let revocations = RevokeParts {
        cluster: cluster.clone(),
        deny: shared.deny.clone(),
        close_denied: Box::new(move |deny| sessions.close_denied(deny)),
    };
    tokio::spawn(revoke::run(revocations, stop.clone()));
    let keys = KeyParts {
        cluster: cluster.clone(),
        keys: shared.api_keys.clone(),
    };
    tokio::spawn(cluster_keys::run(keys, stop.clone()));
    if let Some(hooks) = shared.webhooks.get() {
        let parts = HookParts {
            cluster: cluster.clone(),
            hooks: hooks.clone(),
        };
        tokio::spawn(cluster_hooks::run(parts, stop));
    }
}
