//! The tokio/quinn shell around the core: it binds the QUIC endpoint, recovers state from the
//! log, accepts connections and runs one [`session`] per connection. It moves bytes and time in
//! and out; the decisions are made by [`ingest`], [`crate::store`] and [`crate::fleet`].
//!
//! - [`admin`]: the admin HTTP listener: Prometheus metrics, health and readiness.
//! - [`applier`]: folds durable records into the fleet state in log order; snapshots.
//! - [`archive`]: moves long-finished routes out of the live state into an archive file.
//! - [`commands`]: routes, outcomes, instructions and parcel status over QUIC; driver pushes.
//! - [`feed`]: serving one feed subscription on its own stream.
//! - [`guard`]: connection limits per subject, the token deny list, handshake-rate retry.
//! - [`ingest`]: admission of fixes (dedupe, validation, the log record and the ack).
//! - [`keys`]: persistent TLS ticket and QUIC stateless-reset keys (cheap reconnect storms).
//! - [`session`]: one connection: Hello, streams of batches and queries, live-fix datagrams.

pub mod admin;
pub mod applier;
pub mod archive;
pub mod commands;
pub mod feed;
pub mod guard;
pub mod ingest;
pub mod keys;
pub mod limits;
pub mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::TokenKey;
use crate::config::Config;
use crate::state::FleetState;
use crate::store::log::RecoveryStats;
use crate::store::{LogReader, LogWriter, WriterHandle};
use milepost_core::store::Ledger;

/// Receive and send buffer asked for the gateway's UDP socket: about 25,000 handshake
/// Initials (the kernel may cap it, see [`crate::udp`]).
const UDP_BUFFER: usize = 64 << 20;

/// A failure to start the gateway.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Certificates could not be loaded or made.
    #[error(transparent)]
    Cert(#[from] crate::certs::CertError),
    /// The log could not be recovered or opened.
    #[error(transparent)]
    Log(#[from] crate::store::LogError),
    /// The cluster could not be joined.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Another I/O failure (binding the socket, the secret file...).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

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
    pub ack_latency: crate::metrics::Histogram,
    /// Duration of each log fsync.
    pub fsync_latency: Arc<crate::metrics::Histogram>,
}

/// The clock the shell reads: UTC milliseconds. Injected so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

/// State shared by every session.
pub struct Shared {
    /// Configuration in force.
    pub cfg: Config,
    /// Token key.
    pub keys: TokenKey,
    /// Admission dedupe state: runs ahead of the durable ledger in `state` by the batches in
    /// flight.
    pub ledger: Arc<Ledger>,
    /// The fold of the log: durable ledger, live positions, fleet core. Its mutexes are std
    /// mutexes held only for short synchronous work, never across an await.
    pub state: Arc<FleetState>,
    /// How far the applier has got, its command results and its update stream.
    pub applied: applier::ApplierLink,
    /// Applier counters.
    pub applier_stats: Arc<applier::ApplierStats>,
    /// The log writer.
    pub log: WriterHandle,
    /// Counters.
    pub stats: Stats,
    /// Server clock.
    pub clock: Clock,
    /// Live connections per subject.
    pub registry: guard::Registry,
    /// Revoked tokens.
    pub deny: guard::DenyList,
    /// Handshakes per second.
    pub handshakes: guard::HandshakeMeter,
    /// The TLS ticket key (counts resumed sessions).
    pub tickets: Arc<keys::TicketKey>,
    /// Webhook counters (set once the webhook threads start).
    pub webhook_stats: std::sync::OnceLock<Arc<crate::feed::webhook::WebhookStats>>,
    /// Feed subscriptions waiting for changes.
    pub hub: Arc<crate::feed::FeedHub>,
    /// The partitions of drivers whose once-per-fleet work (ticks, webhooks, archiving) this
    /// gateway does: all of them on a single box.
    pub owned: Arc<crate::cluster::lease::Owned>,
    /// The cluster, when this gateway is one of several.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Every live subscriber's cursor (feed lag per subscriber class, in `/metrics`).
    pub lag: Arc<crate::feed::FeedLag>,
    /// Push queues of connected drivers (newest connection wins).
    pub pushes: dashmap::DashMap<
        milepost_proto::DriverId,
        tokio::sync::mpsc::Sender<Box<milepost_proto::ServerMsg>>,
    >,
}

impl Shared {
    /// Current server time, UTC ms.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

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
    endpoint: quinn::Endpoint,
    shutdown: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    backend: Option<Backend>,
    stop_cluster: watch::Sender<bool>,
    applier: Option<std::thread::JoinHandle<()>>,
    webhooks: Vec<std::thread::JoinHandle<()>>,
    webhook_stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Gateway {
    /// Recovers state from the log in `cfg.data_dir`, binds the endpoint and starts serving.
    pub async fn start(cfg: Config) -> Result<Gateway, ServerError> {
        Self::start_with_clock(cfg, system_clock()).await
    }

    /// Like [`Gateway::start`] with an injected clock.
    pub async fn start_with_clock(cfg: Config, clock: Clock) -> Result<Gateway, ServerError> {
        cfg.validate()?;
        // Health first: /healthz answers (and /readyz says "recovering") during recovery.
        let admin = match cfg.admin {
            true => Some(
                admin::AdminServer::start(cfg.admin_listen)
                    .await
                    .map_err(io_err(format!("admin listener {}", cfg.admin_listen)))?,
            ),
            false => None,
        };
        let data = cfg.data_dir.clone();
        std::fs::create_dir_all(&data).map_err(io_err(format!("create {}", data.display())))?;
        let keys = match &cfg.secret {
            Some(s) => TokenKey::new(s.as_bytes()),
            None => TokenKey::load_or_create(&data.join("secret.key"))
                .map_err(io_err("token secret"))?,
        };
        let id = match (&cfg.cert, &cfg.key) {
            (Some(c), Some(k)) => crate::certs::load(c, k)?,
            _ => crate::certs::load_or_create_dev(&data.join("certs"))?,
        };
        let dev_ca = id.dev_ca.clone();

        let log_dir = data.join("log");
        let cluster = match &cfg.cluster.url {
            Some(_) => {
                let node = cfg
                    .cluster
                    .node
                    .clone()
                    .unwrap_or_else(|| crate::cluster::default_node(cfg.listen.port()));
                Some(crate::cluster::Cluster::connect(&cfg.cluster, node).await?)
            }
            None => None,
        };
        // A cluster's snapshots count stream sequences, not local record numbers: they live
        // apart from a single box's.
        let snapshot_dir = match &cluster {
            Some(c) => data.join("cluster").join(&c.names.stream).join("snapshots"),
            None => data.join("snapshots"),
        };
        std::fs::create_dir_all(&log_dir).map_err(io_err("create log dir"))?;
        let stream_bounds = match &cluster {
            Some(c) => Some(c.stream_bounds().await?),
            None => None,
        };
        // Recovery is blocking disk and CPU work: keep it off the async workers.
        let (state, recovery) = {
            let (log_dir, snapshot_dir, core_cfg, feed_cfg) = (
                log_dir.clone(),
                snapshot_dir.clone(),
                cfg.core.clone(),
                cfg.feed.clone(),
            );
            tokio::task::spawn_blocking(move || match stream_bounds {
                Some(bounds) => recover_cluster(&snapshot_dir, bounds, core_cfg, &feed_cfg),
                None => recover(&log_dir, &snapshot_dir, core_cfg, &feed_cfg),
            })
            .await
            .map_err(|e| io_err("recovery task")(std::io::Error::other(e.to_string())))??
        };
        let state = Arc::new(state);
        let stats = Stats::default();
        let (commit_tx, commits) = std::sync::mpsc::sync_channel(1024);
        // Admission starts from the durable state; a record the log refuses withdraws the
        // settlement of its seqs (even if the session that sent it is gone).
        let ledger = Arc::new(Ledger::import(state.ledger.export()));
        let refused_ledger = ledger.clone();
        let on_refused: crate::store::writer::RefusedHook = Box::new(move |rec| {
            if let milepost_core::store::LogRecord::Batch {
                driver, entries, ..
            } = rec
            {
                refused_ledger.with(driver, |l| {
                    for e in entries.iter().rev() {
                        l.unsettle(e.seq());
                    }
                });
            }
        });
        let (stop_cluster, stop_cluster_rx) = watch::channel(false);
        let (backend, log_handle) = match &cluster {
            None => {
                let writer = LogWriter::start(
                    &log_dir,
                    &cfg.log,
                    recovery.next_lsn,
                    Some(commit_tx),
                    stats.fsync_latency.clone(),
                    Some(on_refused),
                )?;
                let handle = writer.handle();
                (Backend::Local(writer), handle)
            }
            Some(c) => {
                let (handle, queue) = crate::store::RequestQueue::new(8192);
                let publisher =
                    tokio::spawn(crate::cluster::run_publisher(c.clone(), queue, on_refused));
                let consumer = crate::cluster::start_consumer(
                    c.clone(),
                    recovery.next_lsn,
                    commit_tx,
                    stop_cluster_rx.clone(),
                )
                .map_err(io_err("cluster consumer thread"))?;
                let backend = Backend::Cluster {
                    handle: handle.clone(),
                    publisher,
                    consumer,
                };
                (backend, handle)
            }
        };
        let applier_stats = Arc::new(applier::ApplierStats::default());
        let hub = Arc::new(crate::feed::FeedHub::default());
        let (applied, applier_join) = applier::spawn(applier::ApplierParts {
            state: state.clone(),
            commits,
            next_lsn: recovery.next_lsn,
            replayed: recovery.records,
            cfg: cfg.log.clone(),
            snapshot_dir,
            log_dir: log_dir.clone(),
            writer: log_handle.clone(),
            clock: clock.clone(),
            stats: applier_stats.clone(),
            hub: hub.clone(),
            tick_locally: cluster.is_none(),
        })
        .map_err(io_err("applier thread"))?;
        if let Some((_, last)) = stream_bounds {
            // Ready only once the stream as it was at start is folded in (the cluster's
            // recovery): a phone's Welcome then carries the watermark its last gateway acked.
            tracing::info!(
                from = crate::cluster::resume_seq(recovery.next_lsn),
                to = last,
                "catching up with the stream"
            );
            if last > 0 {
                applied.applied(crate::cluster::lsn_of(last, 0)).await;
            }
        }
        let owned = Arc::new(match &cluster {
            Some(c) => crate::cluster::lease::Owned::new(c.cfg.partitions),
            None => crate::cluster::lease::Owned::all(1),
        });

        let mut tls = crate::certs::server_tls(id)?;
        // In a cluster every gateway derives the same ticket and reset keys from the shared
        // secret: a phone resumes its TLS session on any gateway, and any gateway's reset is
        // recognised.
        let (ticket_key, reset_key) = match &cluster {
            Some(_) => (
                crate::cluster::derive_key(keys.secret(), "tls tickets"),
                crate::cluster::derive_key(keys.secret(), "stateless reset"),
            ),
            None => (
                keys::load_or_create_key(&data.join("ticket.key")).map_err(io_err("ticket key"))?,
                keys::load_or_create_key(&data.join("reset.key")).map_err(io_err("reset key"))?,
            ),
        };
        let tickets = keys::TicketKey::new(&ticket_key, 24 * 3600);
        tls.ticketer = tickets.clone();
        let mut endpoint_cfg = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &reset_key,
        )));
        // After a restart every phone's old connection must be reset at once (a reset is
        // always smaller than the packet that caused it, so this cannot amplify); quinn's
        // default of one reset per 20 ms would take minutes for 20,000 phones.
        endpoint_cfg.min_reset_interval(Duration::from_micros(20));
        if let Some(c) = &cluster {
            let server_id = match c.cfg.server_id {
                0 => crate::cluster::cid::server_id_for(&c.node),
                id => id,
            };
            tracing::info!(node = %c.node, server_id, "cluster connection IDs (QUIC-LB)");
            endpoint_cfg
                .cid_generator(move || Box::new(crate::cluster::cid::QuicLbCids::new(server_id)));
        }
        let socket = std::net::UdpSocket::bind(cfg.listen)
            .map_err(io_err(format!("bind {}", cfg.listen)))?;
        // One socket takes every phone's packets: room for a reconnect storm's burst of
        // handshakes (see `crate::udp`; a failure just leaves a smaller buffer, logged so an
        // operator sees when the kernel's cap bites).
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
        // Address-validation tokens (QUIC NEW_TOKEN) sealed under a persistent key: a phone
        // reconnecting after a restart presents the token from its last connection, proves its
        // address without a stateless-retry round trip, and so skips the retry that the
        // handshake-rate guard would otherwise impose on the whole reconnect storm. A cluster
        // derives it from the shared secret, so the token is good on every gateway.
        let address_key = match &cluster {
            Some(_) => crate::cluster::derive_key(keys.secret(), "address tokens"),
            None => keys::load_or_create_key(&data.join("address.key"))
                .map_err(io_err("address token key"))?,
        };
        let endpoint = quinn::Endpoint::new(
            endpoint_cfg,
            Some(server_config(&cfg, tls, &address_key)?),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(io_err(format!("endpoint on {}", cfg.listen)))?;
        let local_addr = endpoint.local_addr().map_err(io_err("local address"))?;
        let shared = Arc::new(Shared {
            cfg,
            keys,
            ledger,
            state,
            applied,
            applier_stats,
            log: log_handle,
            stats,
            clock,
            registry: guard::Registry::default(),
            deny: guard::DenyList::new(&data.join("revoked.txt")),
            handshakes: guard::HandshakeMeter::default(),
            tickets,
            pushes: Default::default(),
            hub,
            lag: Default::default(),
            webhook_stats: Default::default(),
            owned: owned.clone(),
            cluster: cluster.clone(),
        });
        let webhook_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let webhook_stats = Arc::new(crate::feed::webhook::WebhookStats::default());
        let webhooks = crate::feed::webhook::start(
            &shared.cfg.feed.webhooks,
            shared
                .cfg
                .feed
                .webhook_secret
                .clone()
                .map(String::into_bytes)
                .unwrap_or_else(|| shared.keys.secret().to_vec()),
            match &shared.cluster {
                Some(c) => Arc::new(crate::cluster::KvCursors::new(c, shared.owned.clone())),
                None => Arc::new(
                    crate::feed::webhook::FileCursors::new(&shared.cfg.data_dir.join("webhooks"))
                        .map_err(io_err("webhook cursor directory"))?,
                ),
            },
            shared.state.clone(),
            webhook_stats.clone(),
            shared.lag.clone(),
            webhook_stop.clone(),
        )
        .map_err(io_err("webhook threads"))?;
        let _ = shared.webhook_stats.set(webhook_stats);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let admin_addr = admin.as_ref().map(|a| a.local_addr);
        if let Some(a) = admin {
            a.ready(shared.clone(), shutdown_rx.clone());
        }
        let web_addr = match shared.cfg.web.listen {
            Some(addr) => Some(
                crate::web::start(addr, shared.clone(), shutdown_rx.clone())
                    .await
                    .map_err(io_err(format!("web listener {addr}")))?,
            ),
            None => None,
        };
        let accept = tokio::spawn(accept_loop(
            endpoint.clone(),
            shared.clone(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(watch_deny_list(shared.clone(), shutdown_rx.clone()));
        tokio::spawn(commands::push_hub(shared.clone(), shutdown_rx.clone()));
        tokio::spawn(archive::run(shared.clone(), shutdown_rx.clone()));
        if let Some(c) = &cluster {
            tokio::spawn(crate::cluster::lease::run(
                c.clone(),
                owned.clone(),
                stop_cluster_rx.clone(),
            ));
            tokio::spawn(crate::cluster::tick::run(
                shared.clone(),
                shutdown_rx.clone(),
            ));
            tokio::spawn(crate::cluster::revoke::run(shared.clone(), shutdown_rx));
        }
        Ok(Gateway {
            local_addr,
            admin_addr,
            web_addr,
            dev_ca,
            recovery,
            shared,
            endpoint,
            shutdown,
            accept,
            backend: Some(backend),
            stop_cluster,
            applier: Some(applier_join),
            webhooks,
            webhook_stop,
        })
    }

    /// The shared state (counters, positions, token key).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Mints a token with this gateway's key (for tests and tools).
    pub fn mint(&self, claims: &crate::auth::Claims) -> String {
        self.shared.keys.mint(claims)
    }

    /// Stops accepting, closes every connection with `ShuttingDown`, flushes the log.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        self.endpoint.close(
            quinn::VarInt::from_u32(milepost_proto::ErrorCode::ShuttingDown.as_u32()),
            b"shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.accept).await;
        // Stopping the writer closes the applier's queue; the applier then writes a final
        // snapshot and exits.
        self.webhook_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let backend = self.backend.take();
        let applier = self.applier.take();
        let webhooks = std::mem::take(&mut self.webhooks);
        let mut consumer = None;
        let mut writer = None;
        match backend {
            Some(Backend::Local(w)) => writer = Some(w),
            Some(Backend::Cluster {
                handle,
                publisher,
                consumer: c,
            }) => {
                // Everything submitted is published (and acked) first; then the consumer
                // stops, which closes the applier's queue: it snapshots and exits.
                handle.close().await;
                let _ = tokio::time::timeout(Duration::from_secs(10), publisher).await;
                let _ = self.stop_cluster.send(true);
                consumer = Some(c);
            }
            None => {}
        }
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(w) = writer {
                w.shutdown();
            }
            if let Some(c) = consumer {
                let _ = c.join();
            }
            if let Some(a) = applier {
                let _ = a.join();
            }
            for w in webhooks {
                let _ = w.join();
            }
        })
        .await;
        // Let the closes go out. Bounded: the log is synced and the snapshot written by now,
        // and connections whose phones have gone (or are still half-way through a handshake
        // after a reconnect storm) would otherwise hold the exit for minutes.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }

    /// Runs until `stop` resolves, then shuts down.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        stop.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Where the log is kept: local segments, or the cluster's stream.
enum Backend {
    /// This box's own log.
    Local(LogWriter),
    /// The cluster's JetStream stream.
    Cluster {
        /// Submits to the publisher.
        handle: WriterHandle,
        /// The publisher task.
        publisher: tokio::task::JoinHandle<()>,
        /// The consumer thread feeding the applier.
        consumer: std::thread::JoinHandle<()>,
    },
}

/// A cluster gateway's recovery: its newest snapshot if the stream still holds what follows
/// it, else nothing; the consumer then folds the stream from there.
fn recover_cluster(
    snapshot_dir: &std::path::Path,
    (first, last): (u64, u64),
    core: milepost_core::fleet::config::CoreConfig,
    feed: &milepost_core::feed::FeedConfig,
) -> Result<(FleetState, RecoveryStats), ServerError> {
    let snap = crate::store::snapshot::newest(snapshot_dir)?;
    let (state, from) = match snap {
        // A snapshot beyond the stream's end is of another (recreated) stream.
        Some(s) if crate::cluster::resume_seq(s.lsn_next) <= last + 1 => {
            let from = s.lsn_next;
            (FleetState::restore(core, s), from)
        }
        Some(s) => {
            tracing::warn!(
                snapshot = s.lsn_next,
                last,
                "snapshot is ahead of the stream: ignored"
            );
            (FleetState::new(core, feed), crate::cluster::lsn_of(1, 0))
        }
        None => (FleetState::new(core, feed), crate::cluster::lsn_of(1, 0)),
    };
    if first > crate::cluster::resume_seq(from) && last > 0 {
        tracing::warn!(
            from,
            first,
            "the stream no longer holds records this gateway has not folded (retention): \
             state older than the stream's first record is missing"
        );
    }
    let stats = RecoveryStats {
        next_lsn: from,
        ..Default::default()
    };
    Ok((state, stats))
}

/// Rebuilds the fleet state: the newest good snapshot, then the log from where it ends.
fn recover(
    log_dir: &std::path::Path,
    snapshot_dir: &std::path::Path,
    core: milepost_core::fleet::config::CoreConfig,
    feed: &milepost_core::feed::FeedConfig,
) -> Result<(FleetState, RecoveryStats), ServerError> {
    let started = std::time::Instant::now();
    let (state, from) = match crate::store::snapshot::newest(snapshot_dir)? {
        Some(snap) => {
            let from = snap.lsn_next;
            (FleetState::restore(core, snap), from)
        }
        None => (FleetState::new(core, feed), 0),
    };
    let (mut out, mut touched) = (Vec::new(), Vec::new());
    let stats = LogReader::new(log_dir).replay_from(from, |_, rec| {
        out.clear();
        touched.clear();
        state.apply(&rec, &mut out, &mut touched);
    })?;
    tracing::info!(
        snapshot_lsn = from,
        records = stats.records,
        segments = stats.segments,
        drivers = state.ledger.len(),
        torn_bytes = stats.torn_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    Ok((state, stats))
}

/// The quinn server configuration: TLS, stream limits (quinn allocates state for every stream
/// a peer may open, so these stay small), datagrams for live fixes, idle timeout.
fn server_config(
    cfg: &Config,
    tls: rustls::ServerConfig,
    address_key: &[u8; 32],
) -> Result<quinn::ServerConfig, ServerError> {
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| ServerError::Io {
            what: "QUIC TLS config".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let token_key = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"milepost address tokens")
        .extract(address_key);
    // Retry and NEW_TOKEN tokens are sealed with keys derived from `token_key`; NEW_TOKEN
    // tokens are valid two weeks, their reuse detected by a bounded Bloom filter (which starts
    // empty after a restart). Like TLS tickets, a token is used up by an attempt that fails:
    // as many tokens as tickets.
    let mut server = quinn::ServerConfig::new(Arc::new(crypto), Arc::new(token_key));
    let mut tokens = quinn::ValidationTokenConfig::default();
    tokens
        .sent(crate::certs::TICKETS_PER_HANDSHAKE as u32)
        .lifetime(TOKEN_LIFETIME)
        .log(Arc::new(primed_token_log()));
    server.validation_token_config(tokens);
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(cfg.limits.max_streams))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .datagram_receive_buffer_size(Some(16 * 1024))
        .datagram_send_buffer_size(0)
        .stream_receive_window(quinn::VarInt::from_u32(
            cfg.limits.max_frame.max(64 * 1024) * 2,
        ))
        .receive_window(quinn::VarInt::from_u32(
            cfg.limits.max_frame.max(64 * 1024) * 4,
        ))
        .send_window(256 * 1024)
        // No path MTU probes: eight datagrams per connection that tiny fixes do not need
        // (PROTOCOL.md, "No path MTU discovery").
        .mtu_discovery_config(None)
        .ack_frequency_config(Some(immediate_acks()))
        .max_idle_timeout(Some(
            Duration::from_secs(cfg.limits.idle_timeout_s)
                .try_into()
                .map_err(|_| {
                    ServerError::Config(crate::config::ConfigError::Invalid(
                        "limits.idle_timeout_s too large".into(),
                    ))
                })?,
        ));
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// What the gateway asks of phones whose QUIC stack has the ACK frequency extension (quinn's
/// has; others ignore it): acknowledge every packet at once, instead of up to 25 ms later.
///
/// A phone sends a fix a second, so its ACK of our ack never rides on data anyway: one
/// datagram either way, but it arrives while the gateway's state for that connection is
/// still in cache (our guess at why), and the gateway's probe timer (RTT estimate plus 25 ms)
/// keeps its whole margin over a phone that is a few milliseconds late. Measured: 10% less
/// gateway CPU per fix at 10,000 drivers. The cost is in bursts (the backlog phones resend
/// after a restart), where every packet now gets an ACK instead of every other one: a
/// 10,000-phone reconnect storm took about 1.5 s longer (README, Benchmarks).
fn immediate_acks() -> quinn::AckFrequencyConfig {
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(quinn::VarInt::from_u32(0));
    ack
}

/// How long a QUIC address-validation token stays valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

/// quinn's Bloom-filter token log, primed to accept every token still valid. Left empty, it
/// takes its time window from the first token it sees and refuses every token issued before
/// that one as "too far in past": after a restart, phones present tokens issued by the previous
/// gateway in no particular order, and those refused got a stateless retry (6,134 retries in
/// a 10k storm). Priming it with a token that expires now opens the window at now.
fn primed_token_log() -> quinn::BloomTokenLog {
    use quinn::TokenLog;
    let log = quinn::BloomTokenLog::default();
    if let Some(issued) = std::time::SystemTime::now().checked_sub(TOKEN_LIFETIME) {
        // Nonce 0: real nonces are random 128-bit values (a clash only costs one retry).
        let _ = log.check_and_insert(0, issued, TOKEN_LIFETIME);
    }
    log
}

/// Re-reads the token deny list every second and closes the live sessions it now denies.
async fn watch_deny_list(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Some(deny) = shared.deny.reload() {
            let n = shared.registry.close_denied(&deny);
            shared.stats.revoked.fetch_add(n as u64, Ordering::Relaxed);
            if n > 0 {
                tracing::info!(closed = n, "closed sessions of revoked tokens");
            }
        }
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    // Handshakes in progress hold a slot until their Welcome (or failure): the next phone is
    // taken from quinn's accept queue only when a slot is free.
    let slots = Arc::new(tokio::sync::Semaphore::new(
        shared.cfg.limits.max_handshakes_in_flight as usize,
    ));
    let next = || {
        let slots = slots.clone();
        let endpoint = endpoint.clone();
        async move {
            let slot = slots.acquire_owned().await.ok()?;
            Some((slot, endpoint.accept().await?))
        }
    };
    loop {
        tokio::select! {
            incoming = next() => {
                let Some((slot, incoming)) = incoming else { break };
                if sessions.len() >= shared.cfg.limits.max_connections as usize {
                    incoming.refuse();
                    continue;
                }
                let now_s = shared.now_ms().max(0) as u64 / 1000;
                let rate = shared.handshakes.tick(now_s);
                if !incoming.remote_address_validated()
                    && rate > shared.cfg.limits.retry_above_handshakes_per_s
                {
                    // Make the client prove its address before we spend a handshake on it.
                    if incoming.may_retry() {
                        shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                        let _ = incoming.retry();
                        continue;
                    }
                }
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                sessions.spawn(session::run(incoming, shared.clone(), stop.clone(), slot));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    sessions.shutdown().await;
}
