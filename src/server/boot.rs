//! Starting a gateway, one named step after another, and stopping what was started.
//!
//! `start` runs, in this order: `start_admin` (health first), `open_data_dir` (token secret,
//! certificates), `join_cluster`, `recover_state` ([`crate::server::recover`]: snapshot and log
//! tail, or the cluster's stream), `start_log` and `start_applier` ([`crate::server::backend`]:
//! this box's writer or the cluster's publisher and consumer, then the applier) and, in a
//! cluster, `catch_up` with the stream, `bind_endpoint` ([`crate::server::tls`]), then, with
//! the [`Shared`] state built, `start_webhooks`, `start_listeners` (admin ready, web),
//! `start_tasks` (accept loop, deny list, pushes, archiving) and `start_cluster_parts`
//! ([`crate::server::cluster_parts`]: leases, ticks, revocations, forwarded commands, each
//! given only the handles it uses). `Running::stop` undoes
//! it in the order that keeps every acked fix durable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use milepost_core::store::Ledger;
use tokio::sync::watch;

use crate::apikeys::KeyStore;
use crate::auth::{DenyList, TokenKey, TokenKeys};
use crate::certs::{load, load_or_create_dev, server_tls, ServerIdentity};
use crate::cluster::config::FoldMode;
use crate::cluster::cursors::KvCursors;
use crate::cluster::handover::Positions;
use crate::cluster::lease::Owned;
use crate::cluster::nats::Cluster;
use crate::cluster::notify_apply::{run_applier, Progress};
use crate::cluster::notify_journal;
use crate::cluster::notify_seed;
use crate::config::Config;
use crate::config::ConfigError;
use crate::feed::registry::Webhooks;
use crate::feed::webhook::{self, FileCursors, WebhookStats};
use crate::notify::adapters::set::Adapters;
use crate::notify::compose::Composer;
use crate::notify::handle::Notify;
use crate::notify::templates::Templates;
use crate::proofs::ProofStore;
use crate::server::accept::{accept_loop, watch_deny_list};
use crate::server::admin::AdminServer;
use crate::server::archive;
use crate::server::backend::{
    catch_up, refused_hook, start_applier, start_log, Backend, ClusterLog, FoldOwned,
};
use crate::server::clock::Clock;
use crate::server::cluster_parts::{advertised, join_cluster, start_cluster_parts};
use crate::server::commands::push_hub;
use crate::server::error::{io_err, ServerError};
use crate::server::guard::{HandshakeMeter, Registry};
use crate::server::keys::TicketKey;
use crate::server::recover::recover_state;
use crate::server::shared::{Shared, Stats};
use crate::server::tls::{endpoint_config, persistent_key, server_config};
use crate::server::tls::{ADDRESS_KEY, RESET_KEY, TICKET_KEY};
use crate::store::log::RecoveryStats;
use crate::web::runtime::Served;

/// Receive and send buffer asked for the gateway's UDP socket: about 25,000 handshake
/// Initials (the kernel may cap it, see [`crate::udp`]).
const UDP_BUFFER: usize = 64 << 20;

/// What [`start`] started: the gateway's public facts and the parts to stop.
pub(super) struct Started {
    /// The address the endpoint is bound to.
    pub(super) local_addr: SocketAddr,
    /// The admin listener's address, when it runs.
    pub(super) admin_addr: Option<SocketAddr>,
    /// The web listener's address, when it runs.
    pub(super) web_addr: Option<SocketAddr>,
    /// The development CA, when one was made.
    pub(super) dev_ca: Option<PathBuf>,
    /// What recovery found.
    pub(super) recovery: RecoveryStats,
    /// The shared state.
    pub(super) shared: Arc<Shared>,
    /// The running parts.
    pub(super) running: Running,
}

/// The running parts of a gateway, in the order they are dropped.
pub(super) struct Running {
    endpoint: quinn::Endpoint,
    shutdown: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    backend: Backend,
    stop_cluster: watch::Sender<bool>,
    applier: JoinHandle<()>,
    webhooks: Arc<Webhooks>,
    webhook_stop: Arc<AtomicBool>,
    notify: Arc<Notify>,
    /// Resolves once the web listener has stopped serving.
    web_served: Option<Served>,
}

/// Recovers state from the log in `cfg.data_dir`, binds the endpoint and starts serving.
pub(super) async fn start(cfg: Config, clock: Clock) -> Result<Started, ServerError> {
    cfg.validate()?;
    let admin = start_admin(&cfg).await?;
    let (platform_key, id) = open_data_dir(&cfg)?;
    // Carriers with token secrets of their own sign (and may mint) their depots' tokens.
    let keys =
        TokenKeys::load(platform_key, &cfg.carriers).map_err(io_err("carrier token secret"))?;
    let dev_ca = id.dev_ca.clone();
    let cluster = join_cluster(&cfg).await?;
    if let Some(c) = &cluster {
        c.check_secret(keys.secret()).await?;
        c.check_carrier_secrets(&keys.carrier_secrets()).await?;
    }
    let recovered = recover_state(&cfg, cluster.as_ref()).await?;
    let stats = Stats::default();
    let (commit_tx, commits) = sync_channel(1024);
    // Admission starts from the durable state.
    let ledger = Arc::new(Ledger::import(recovered.state.ledger.export()));
    let (stop_cluster, stop_cluster_rx) = watch::channel(false);
    let owned = Arc::new(match &cluster {
        Some(c) if c.cfg.fold == FoldMode::Owned => Owned::folding_owned(c.cfg.partitions),
        Some(c) => Owned::new(c.cfg.partitions),
        None => Owned::all(1),
    });
    let positions = owned
        .folds_owned_only()
        .then(|| Arc::new(Positions::new(owned.partitions())));
    let (backend, log) = start_log(
        &cfg,
        cluster.as_ref().map(|cluster| ClusterLog {
            cluster,
            owned: &owned,
            positions: positions.as_ref(),
        }),
        &recovered,
        commit_tx,
        stats.fsync_latency.clone(),
        refused_hook(ledger.clone()),
        stop_cluster_rx.clone(),
    )?;
    let applier = start_applier(
        &cfg,
        &recovered,
        commits,
        &log,
        &clock,
        cluster.is_none(),
        positions.clone().map(|positions| FoldOwned {
            positions,
            snapshots: part_snapshots(cluster.as_ref(), &owned),
        }),
    )?;
    catch_up(&applier.link, &recovered).await;
    let (endpoint, tickets) = bind_endpoint(&cfg, id, keys.platform(), cluster.as_ref())?;
    let local_addr = endpoint.local_addr().map_err(io_err("local address"))?;
    let deny = Arc::new(DenyList::new(&cfg.data_dir.join("revoked.txt")));
    let api_keys = Arc::new(KeyStore::new(&cfg.data_dir));
    let proofs = ProofStore::new(&cfg.data_dir, &cfg.proofs);
    // Opt-outs and their links are keyed with a secret of their own, so rotating the token
    // secret lifts no opt-out.
    let notify_key =
        TokenKey::load_or_create(&cfg.data_dir.join("notify.key")).map_err(io_err("notify.key"))?;
    // In a cluster every gateway signs with the same one.
    let (notify_secret, notify_key_mine) = match &cluster {
        Some(c) => notify_seed::shared_secret(c, notify_key.secret()).await?,
        None => (notify_key.secret().to_vec(), true),
    };
    let notify = Arc::new(
        Notify::open(&cfg.data_dir, &notify_secret)
            .map_err(|e| ServerError::Config(ConfigError::Invalid(e)))?,
    );
    let drivers = Arc::new(
        crate::drivers::DriverProfiles::open(&cfg.data_dir).map_err(io_err("drivers.json"))?,
    );
    let shared = Arc::new(Shared {
        cfg,
        keys,
        api_keys,
        proofs,
        drivers,
        notify,
        ledger,
        state: recovered.state,
        applied: applier.link,
        applier_stats: applier.stats,
        log,
        stats,
        clock,
        registry: Registry::default(),
        deny,
        handshakes: HandshakeMeter::default(),
        tickets,
        pushes: Default::default(),
        hub: applier.hub,
        lag: Default::default(),
        webhook_stats: Default::default(),
        webhooks: Default::default(),
        owned,
        cluster: cluster.clone(),
    });
    let (webhooks, webhook_stop) = start_webhooks(&shared)?;
    if let Some(c) = &cluster {
        start_notify_journal(c, &shared, notify_key_mine).await?;
    }
    start_notify(&shared)?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (admin_addr, web) = start_listeners(admin, &shared, &shutdown_rx).await?;
    let (web_addr, web_served) = web.unzip();
    let accept = start_tasks(&endpoint, &shared, &shutdown_rx);
    if let Some(c) = &cluster {
        let addresses = advertised(c, local_addr, web_addr);
        start_cluster_parts(c, &shared, addresses, stop_cluster_rx, shutdown_rx);
    }
    let notify = shared.notify.clone();
    Ok(Started {
        local_addr,
        admin_addr,
        web_addr,
        dev_ca,
        recovery: recovered.stats,
        shared,
        running: Running {
            endpoint,
            shutdown,
            accept,
            backend,
            stop_cluster,
            applier: applier.join,
            webhooks,
            webhook_stop,
            notify,
            web_served,
        },
    })
}

/// Health first: the admin listener binds before recovery, so `/healthz` answers (and
/// `/readyz` says "recovering") while it runs.
async fn start_admin(cfg: &Config) -> Result<Option<AdminServer>, ServerError> {
    if !cfg.admin {
        return Ok(None);
    }
    let admin = AdminServer::start(cfg.admin_listen)
        .await
        .map_err(io_err(format!("admin listener {}", cfg.admin_listen)))?;
    Ok(Some(admin))
}

/// Creates the data directory; reads (or makes) the token secret and the certificates.
fn open_data_dir(cfg: &Config) -> Result<(TokenKey, ServerIdentity), ServerError> {
    let data = &cfg.data_dir;
    std::fs::create_dir_all(data).map_err(io_err(format!("create {}", data.display())))?;
    let keys = match &cfg.secret {
        Some(s) => TokenKey::new(s.as_bytes()),
        None => {
            TokenKey::load_or_create(&data.join("secret.key")).map_err(io_err("token secret"))?
        }
    };
    let id = match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => load(c, k)?,
        _ => load_or_create_dev(&data.join("certs"))?,
    };
    Ok((keys, id))
}

/// Binds the QUIC endpoint (see [`crate::server::tls`]): TLS resumable under the ticket key,
/// stateless resets under the reset key, the UDP socket, address tokens under the address key.
fn bind_endpoint(
    cfg: &Config,
    id: ServerIdentity,
    keys: &TokenKey,
    cluster: Option<&Cluster>,
) -> Result<(quinn::Endpoint, Arc<TicketKey>), ServerError> {
    let data = &cfg.data_dir;
    let mut tls = server_tls(id)?;
    // In a cluster every gateway derives the same ticket and reset keys from the shared
    // secret: a phone resumes its TLS session on any gateway, and any gateway's reset is
    // recognised.
    let ticket_key = persistent_key(&TICKET_KEY, cluster, keys, data)?;
    let reset_key = persistent_key(&RESET_KEY, cluster, keys, data)?;
    let tickets = TicketKey::new(&ticket_key, 24 * 3600);
    tls.ticketer = tickets.clone();
    let endpoint_cfg = endpoint_config(&reset_key, cluster);
    let socket = bind_socket(cfg.listen)?;
    // Address-validation tokens (QUIC NEW_TOKEN) sealed under a persistent key: a phone
    // reconnecting after a restart presents the token from its last connection, proves its
    // address without a stateless-retry round trip, and so skips the retry that the
    // handshake-rate guard would otherwise impose on the whole reconnect storm. A cluster
    // derives it from the shared secret, so the token is good on every gateway.
    let address_key = persistent_key(&ADDRESS_KEY, cluster, keys, data)?;
    let endpoint = quinn::Endpoint::new(
        endpoint_cfg,
        Some(server_config(cfg, tls, &address_key)?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(io_err(format!("endpoint on {}", cfg.listen)))?;
    Ok((endpoint, tickets))
}

/// Binds the UDP socket every phone's packets arrive on, with room for a reconnect storm's
/// burst of handshakes (see `crate::udp`; a failure just leaves a smaller buffer, logged so
/// an operator sees when the kernel's cap bites).
fn bind_socket(listen: SocketAddr) -> Result<std::net::UdpSocket, ServerError> {
    let socket = std::net::UdpSocket::bind(listen).map_err(io_err(format!("bind {listen}")))?;
    let rcvbuf = crate::udp::size_buffers(&socket, UDP_BUFFER);
    match rcvbuf {
        Some(n) if n >= UDP_BUFFER => tracing::info!(recv_buffer = n, "UDP socket buffers"),
        other => tracing::warn!(
            recv_buffer = ?other,
            asked = UDP_BUFFER,
            "UDP receive buffer smaller than asked: raise net.core.rmem_max (or run with \
             CAP_NET_ADMIN), or bursts will drop packets"
        ),
    }
    Ok(socket)
}

/// Starts the webhook endpoints (configured and added at run time), one delivery thread
/// each; their cursors are files on a single box and in the KV bucket in a cluster. Returns
/// the registry and the flag that stops them.
fn start_webhooks(shared: &Shared) -> Result<(Arc<Webhooks>, Arc<AtomicBool>), ServerError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(WebhookStats::default());
    let secret = shared
        .cfg
        .feed
        .webhook_secret
        .clone()
        .map(String::into_bytes)
        .unwrap_or_else(|| shared.keys.secret().to_vec());
    let cursors: Arc<dyn webhook::Cursors> = match &shared.cluster {
        Some(c) => Arc::new(KvCursors::new(c, shared.owned.clone())),
        None => Arc::new(
            FileCursors::new(&shared.cfg.data_dir.join("webhooks"))
                .map_err(io_err("webhook cursor directory"))?,
        ),
    };
    let common = webhook::Common {
        cursors,
        state: shared.state.clone(),
        stats: stats.clone(),
        lag: shared.lag.clone(),
        stop: stop.clone(),
        carriers: Arc::new(shared.cfg.carriers.clone()),
    };
    let hooks = Webhooks::start(
        &shared.cfg.feed.webhooks,
        &secret,
        &shared.cfg.data_dir,
        common,
    )
    .map_err(io_err("webhook threads"))?;
    let _ = shared.webhook_stats.set(stats);
    let _ = shared.webhooks.set(hooks.clone());
    Ok((hooks, stop))
}

/// In a cluster, the notification store is written through the journal every gateway applies
/// (see [`crate::cluster::notify_journal`]); its reader starts here, before the outbox.
async fn start_notify_journal(
    cluster: &Cluster,
    shared: &Arc<Shared>,
    key_is_mine: bool,
) -> Result<(), ServerError> {
    let days = u64::from(shared.cfg.history.retention_days) + 1;
    notify_journal::open_stream(cluster, Duration::from_secs(days * 86_400)).await?;
    let seeded = notify_seed::seed(cluster, &shared.notify, key_is_mine).await?;
    if seeded > 0 {
        tracing::info!(
            operations = seeded,
            "the cluster's notification journal was seeded from this gateway's store"
        );
    }
    // Opt-outs older than the journal's retention live only in the state bucket.
    notify_seed::import_opt_outs(cluster, &shared.notify).await?;
    let progress = Progress::new();
    let journal = notify_journal::NatsJournal::new(cluster, shared.owned.clone(), progress.clone());
    shared.notify.set_journal(Arc::new(journal));
    tokio::spawn(run_applier(
        cluster.clone(),
        shared.notify.clone(),
        progress,
    ));
    Ok(())
}

/// Starts the notification threads when `notify.enabled` (the templates were checked with
/// the configuration).
fn start_notify(shared: &Shared) -> Result<(), ServerError> {
    let cfg = &shared.cfg;
    let invalid = |e: String| ServerError::Config(ConfigError::Invalid(e));
    let retention_ms = i64::from(cfg.history.retention_days) * 86_400_000;
    if !cfg.notify.enabled {
        return crate::notify::run::start_sweeper(
            &shared.notify,
            retention_ms,
            shared.clock.clone(),
        )
        .map_err(invalid);
    }
    let n = &cfg.notify;
    let public_url = n
        .public_url
        .clone()
        .or_else(|| cfg.web.public_url.clone())
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let composer = Composer {
        templates: Templates::new(n).map_err(invalid)?,
        tz: n
            .time_zone
            .parse()
            .map_err(|_| invalid("notify.time_zone".into()))?,
        carrier: n
            .carrier
            .clone()
            .unwrap_or_else(|| cfg.web.brand.name.clone()),
        carriers: cfg.carriers.clone(),
        public_url,
        drivers: cfg
            .web
            .drivers
            .iter()
            .map(|(id, d)| (id.clone(), d.first_name.clone()))
            .collect(),
        profiles: shared.drivers.clone(),
        keys: shared.keys.clone(),
        optout_secret: shared.notify.secret().to_vec(),
        state: shared.state.clone(),
        store: shared.notify.store.clone(),
        clock: shared.clock.clone(),
        retention_ms,
        cfg: n.clone(),
    };
    let adapters = Adapters::new(n).map_err(invalid)?;
    crate::notify::run::start(&shared.notify, composer, adapters).map_err(invalid)
}

/// Tells the admin listener the gateway is ready, and starts the web listener when
/// `web.listen` is set. Returns their addresses.
async fn start_listeners(
    admin: Option<AdminServer>,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
) -> Result<(Option<SocketAddr>, Option<(SocketAddr, Served)>), ServerError> {
    let admin_addr = admin.as_ref().map(|a| a.local_addr);
    if let Some(a) = admin {
        a.ready(shared.clone(), stop.clone());
    }
    let web = match shared.cfg.web.listen {
        Some(addr) => Some(
            crate::web::start(addr, shared.clone(), stop.clone())
                .await
                .map_err(io_err(format!("web listener {addr}")))?,
        ),
        None => None,
    };
    Ok((admin_addr, web))
}

/// Spawns the gateway's tasks: the accept loop (returned), the deny-list watcher, the driver
/// push hub and the route archiver.
fn start_tasks(
    endpoint: &quinn::Endpoint,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let accept = tokio::spawn(accept_loop(endpoint.clone(), shared.clone(), stop.clone()));
    tokio::spawn(watch_deny_list(shared.clone(), stop.clone()));
    tokio::spawn(push_hub(shared.clone(), stop.clone()));
    tokio::spawn(archive::run(shared.clone(), stop.clone()));
    accept
}

impl Running {
    /// Stops accepting, closes every connection with `ShuttingDown`, flushes the log, and
    /// waits for the applier's final snapshot and the webhook threads.
    pub(super) async fn stop(self) {
        let Running {
            endpoint,
            shutdown,
            mut accept,
            backend,
            stop_cluster,
            applier,
            webhooks,
            webhook_stop,
            notify,
            web_served,
        } = self;
        let _ = shutdown.send(true);
        endpoint.close(
            quinn::VarInt::from_u32(milepost_proto::ErrorCode::ShuttingDown.as_u32()),
            b"shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut accept).await;
        // The web listener lets its requests finish (event streams end on the same signal);
        // bounded, like the rest.
        if let Some(served) = web_served {
            let _ = tokio::time::timeout(Duration::from_secs(5), served).await;
        }
        // Stopping the writer closes the applier's queue; the applier then writes a final
        // snapshot and exits.
        webhook_stop.store(true, Ordering::Relaxed);
        // Notifications stop before the backend gives the leases back: in a cluster, the
        // outbox's last round (the answers of the messages in flight) is written while this
        // gateway still leads, so the next one does not send those messages again.
        let _ = tokio::task::spawn_blocking({
            let notify = notify.clone();
            move || notify.shutdown()
        })
        .await;
        let closing = backend.close(&stop_cluster).await;
        let _ = tokio::task::spawn_blocking(move || {
            closing.join();
            let _ = applier.join();
            webhooks.join();
        })
        .await;
        // Let the closes go out, and the closed connections drain (the endpoint's socket is
        // released only then: a gateway started again in the same process binds the same
        // port). Bounded: the log is synced and the snapshot written by now, and connections
        // whose phones have gone (or are still half-way through a handshake after a reconnect
        // storm) would otherwise hold the exit for minutes.
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        drop((shutdown, stop_cluster));
    }
}

/// Where the applier hands partition images, when the gateway folds only what it owns and
/// `cluster.partition_snapshot_s` is set: the uploader task, started here.
fn part_snapshots(
    cluster: Option<&crate::cluster::nats::Cluster>,
    owned: &Arc<Owned>,
) -> Option<crate::server::part_images::PartSnapshots> {
    let c = cluster.filter(|c| c.snaps.is_some() && c.cfg.partition_snapshot_s > 0)?;
    // Room for an image of every partition: a round never leaves one out for lack of room.
    let (images, rx) = tokio::sync::mpsc::channel(c.cfg.partitions.max(1) as usize);
    crate::cluster::snapshots::spawn_uploader(c.clone(), owned.clone(), rx);
    Some(crate::server::part_images::PartSnapshots {
        partitions: c.cfg.partitions,
        every: std::time::Duration::from_secs(c.cfg.partition_snapshot_s),
        images,
        owned: owned.clone(),
    })
}
