//! The tokio/quinn shell around the core: it binds the QUIC endpoint, recovers state from the
//! log, accepts connections and runs one [`session`] per connection. It moves bytes and time in
//! and out; the decisions are made by [`ingest`], [`crate::store`] and [`crate::fleet`].
//!
//! - [`ingest`]: admission of fixes (dedupe, validation, the log record and the ack).
//! - [`session`]: one connection: Hello, streams of batches and queries, live-fix datagrams.

pub mod ingest;
pub mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::TokenKey;
use crate::config::Config;
use crate::fleet::positions::Positions;
use crate::store::log::RecoveryStats;
use crate::store::{BatchEntry, Ledger, LogReader, LogRecord, LogWriter, WriterHandle};

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
    /// Dedupe state.
    pub ledger: Ledger,
    /// Live positions. A std mutex: held only for short synchronous updates and queries,
    /// never across an await.
    pub positions: Mutex<Positions>,
    /// The log writer.
    pub log: WriterHandle,
    /// Counters.
    pub stats: Stats,
    /// Server clock.
    pub clock: Clock,
}

impl Shared {
    /// Current server time, UTC ms.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// Applies durable accepted fixes to the live positions.
    pub fn apply_fixes(
        &self,
        driver: &milepost_proto::DriverId,
        depot: &str,
        fixes: &[(milepost_proto::Seq, milepost_proto::Fix)],
    ) {
        if fixes.is_empty() {
            return;
        }
        let mut pos = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        for (seq, fix) in fixes {
            pos.update(driver, depot, *seq, fix);
        }
    }
}

/// A running gateway.
pub struct Gateway {
    /// The address the endpoint is bound to.
    pub local_addr: SocketAddr,
    /// The development CA clients should trust, when one was made.
    pub dev_ca: Option<PathBuf>,
    /// What recovery found.
    pub recovery: RecoveryStats,
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    shutdown: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    writer: Option<LogWriter>,
}

impl Gateway {
    /// Recovers state from the log in `cfg.data_dir`, binds the endpoint and starts serving.
    pub async fn start(cfg: Config) -> Result<Gateway, ServerError> {
        Self::start_with_clock(cfg, system_clock()).await
    }

    /// Like [`Gateway::start`] with an injected clock.
    pub async fn start_with_clock(cfg: Config, clock: Clock) -> Result<Gateway, ServerError> {
        cfg.validate()?;
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
        std::fs::create_dir_all(&log_dir).map_err(io_err("create log dir"))?;
        let ledger = Ledger::new();
        let mut positions = Positions::new();
        let started = std::time::Instant::now();
        let mut next_lsn = 0;
        let recovery = LogReader::new(&log_dir).replay(|lsn, rec| {
            next_lsn = lsn + 1;
            ledger.apply(&rec);
            let LogRecord::Batch {
                driver,
                depot,
                entries,
                ..
            } = &rec;
            for e in entries {
                if let BatchEntry::Accepted { seq, fix } = e {
                    positions.update(driver, depot, *seq, fix);
                }
            }
        })?;
        tracing::info!(
            records = recovery.records,
            segments = recovery.segments,
            drivers = ledger.len(),
            torn_bytes = recovery.torn_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recovered from the log"
        );
        let writer = LogWriter::start(&log_dir, &cfg.log, next_lsn, None)?;

        let tls = crate::certs::server_tls(id)?;
        let endpoint = quinn::Endpoint::server(server_config(&cfg, tls)?, cfg.listen)
            .map_err(io_err(format!("bind {}", cfg.listen)))?;
        let local_addr = endpoint.local_addr().map_err(io_err("local address"))?;
        let shared = Arc::new(Shared {
            cfg,
            keys,
            ledger,
            positions: Mutex::new(positions),
            log: writer.handle(),
            stats: Stats::default(),
            clock,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared.clone(), shutdown_rx));
        Ok(Gateway {
            local_addr,
            dev_ca,
            recovery,
            shared,
            endpoint,
            shutdown,
            accept,
            writer: Some(writer),
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
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.shutdown()).await;
        }
        self.endpoint.wait_idle().await;
    }

    /// Runs until `stop` resolves, then shuts down.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        stop.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// The quinn server configuration: TLS, stream limits (quinn allocates state for every stream
/// a peer may open, so these stay small), datagrams for live fixes, idle timeout.
fn server_config(
    cfg: &Config,
    tls: rustls::ServerConfig,
) -> Result<quinn::ServerConfig, ServerError> {
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| ServerError::Io {
            what: "QUIC TLS config".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
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

async fn accept_loop(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if sessions.len() >= shared.cfg.limits.max_connections as usize {
                    incoming.refuse();
                    continue;
                }
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                sessions.spawn(session::run(incoming, shared.clone(), stop.clone()));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    sessions.shutdown().await;
}
