//! Configuration: every knob with a safe default. Sources, later ones winning: the built-in
//! defaults, a TOML file (`serve --config milepost.toml`), environment variables
//! (`MILEPOST_LISTEN`, `MILEPOST_DATA_DIR`, `MILEPOST_SECRET`, `MILEPOST_CLUSTER`...), then
//! command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole gateway configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// UDP address the QUIC endpoint binds. Loopback by default: expose it on purpose.
    pub listen: SocketAddr,
    /// Where the log, the token secret and the development certificates live.
    pub data_dir: PathBuf,
    /// PEM certificate chain for production; when absent a development CA and certificate are
    /// created in `data_dir/certs`.
    pub cert: Option<PathBuf>,
    /// PEM private key matching `cert`.
    pub key: Option<PathBuf>,
    /// TCP address of the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`). Loopback
    /// by default: exposing it publicly is a deliberate choice.
    pub admin_listen: SocketAddr,
    /// Serve the admin listener at all.
    pub admin: bool,
    /// Token signing secret (at least 32 characters). When absent, a random secret is created
    /// in `data_dir/secret.key`.
    pub secret: Option<String>,
    /// Connection and message limits.
    pub limits: LimitsConfig,
    /// Fix validation rules.
    pub validation: ValidationConfig,
    /// Ingest log settings.
    pub log: LogConfig,
    /// The fleet core: arrival detection, ETA, alerts.
    pub core: crate::fleet::engine::CoreConfig,
    /// Feeds to recipients and dispatchers, and webhooks.
    pub feed: FeedConfig,
    /// The web listener: recipients' tracking pages and the dispatcher map (off unless
    /// `web.listen` is set).
    pub web: crate::web::WebConfig,
    /// Scale-out over NATS JetStream (off unless `cluster.url` is set: one box is the default).
    pub cluster: ClusterConfig,
}

/// Several gateways as one fleet over NATS JetStream (see `docs/CLUSTER.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma separated (`nats://127.0.0.1:4222`). Unset: single box.
    pub url: Option<String>,
    /// This gateway's name in the cluster: unique, stable across restarts, 1 to 32 characters
    /// of `[A-Za-z0-9_-]`. Unset: the host name and the UDP port.
    pub node: Option<String>,
    /// QUIC-LB server id of this gateway, written into every connection ID it issues so that a
    /// load balancer can route a phone's packets to it (1..=65535; 0: derived from `node`).
    pub server_id: u16,
    /// Prefix of every subject, stream and bucket name, so that several fleets can share one
    /// NATS deployment.
    pub prefix: String,
    /// Partitions of drivers (the fixes of a driver go to subject `PREFIX.fix.PARTITION`;
    /// ownership of side effects is by partition). Fixed for the life of the stream.
    pub partitions: u32,
    /// JetStream replicas of the stream and the lease bucket (3 on a 3-node NATS cluster).
    pub replicas: usize,
    /// A lease not renewed for this long passes to another gateway, seconds.
    pub lease_ttl_s: u64,
    /// Records older than this are dropped from the stream, seconds (0: kept until
    /// `max_bytes`).
    pub max_age_s: u64,
    /// Bytes the stream may hold (older records dropped first; -1: no limit).
    pub max_bytes: i64,
    /// After the first record of a group, wait this long for more before publishing, µs (group
    /// commit: one JetStream message, store and ack per subject for every record waiting).
    pub group_linger_us: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            url: None,
            node: None,
            server_id: 0,
            prefix: "milepost".into(),
            partitions: 8,
            replicas: 1,
            lease_ttl_s: 6,
            max_age_s: 7 * 24 * 3600,
            max_bytes: -1,
            group_linger_us: 1000,
        }
    }
}

/// Feed settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Route events kept per depot for resuming dispatchers (older: resync from a snapshot).
    pub depot_events_kept: usize,
    /// Milestones kept for webhook delivery while a notifier is down.
    pub milestones_kept: usize,
    /// A recipient sees the driver's position once at most this many stops are before theirs
    /// (0 = only when their stop is next)...
    pub position_stops: u32,
    /// ... or once the ETA is at most this many minutes away.
    pub position_minutes: u32,
    /// Dispatcher position updates are coalesced to at most one flush per this many ms.
    pub position_flush_ms: u64,
    /// Webhook endpoints receiving parcel milestones as signed JSON.
    pub webhooks: Vec<String>,
    /// Secret for the webhook signature (HMAC-SHA256 in `X-Milepost-Signature`); defaults to
    /// the token secret.
    pub webhook_secret: Option<String>,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            depot_events_kept: 10_000,
            milestones_kept: 100_000,
            position_stops: 0,
            position_minutes: 10,
            position_flush_ms: 250,
            webhooks: Vec::new(),
            webhook_secret: None,
        }
    }
}

/// Limits on connections and messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest frame payload accepted, bytes (hard cap 1 MiB).
    pub max_frame: u32,
    /// Most fixes in one batch.
    pub max_batch: u32,
    /// Bidirectional streams a client may have open at once (quinn allocates state for each
    /// stream a peer may open, so this is also a memory bound).
    pub max_streams: u32,
    /// Fixes per second per driver, sustained (token bucket refill rate).
    pub max_fixes_per_s: u32,
    /// Token bucket size per driver: how many fixes a driver may send at once (a backlog upload
    /// after an offline period) before the sustained rate applies.
    pub burst_fixes: u32,
    /// Concurrent connections per token subject (a reconnecting phone may overlap its old,
    /// not yet timed-out connection).
    pub max_connections_per_subject: u32,
    /// Above this many new handshakes per second, unvalidated clients must first complete a
    /// QUIC stateless retry (proving their address) before the gateway spends a handshake on
    /// them. 0 = always retry.
    pub retry_above_handshakes_per_s: u32,
    /// Handshakes (TLS, then Hello/Welcome) the gateway works on at once; further phones wait
    /// in the QUIC accept queue. In a reconnect storm this makes handshakes finish in arrival
    /// order, each quickly, instead of all of them slowly together (when phones give up on
    /// slow handshakes and try again, the gateway's work on the first attempt is wasted). It
    /// must cover the handshakes/s wanted times the phones' round trips (1,000 = 4,000/s at
    /// 250 ms).
    pub max_handshakes_in_flight: u32,
    /// Seconds a client has to complete the TLS handshake and send its Hello.
    pub handshake_timeout_s: u64,
    /// Seconds of silence after which a connection is dropped (phones send keep-alives).
    pub idle_timeout_s: u64,
    /// Most concurrent connections to the gateway.
    pub max_connections: u32,
    /// How far above a driver's watermark a seq may be (bounds dedupe state per driver).
    pub seq_window: u64,
    /// Most drivers returned by one query.
    pub max_query_results: u32,
}

/// Fix validation rules (see `proto/PROTOCOL.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Fixes whose accuracy radius exceeds this many metres are refused.
    pub max_accuracy_m: f32,
    /// Fixes more than this many ms ahead of the server clock are refused.
    pub max_future_ms: i64,
    /// Fixes older than this many ms are refused (backlog bound).
    pub max_age_ms: i64,
    /// Implied speed between neighbouring fixes above this is a jump.
    pub max_speed_mps: f32,
    /// Refuse mock-location fixes (otherwise they are stored, flagged).
    pub reject_mock: bool,
}

/// Ingest log settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A segment file is closed and a new one started past this many bytes.
    pub segment_bytes: u64,
    /// Most bytes written by one group commit.
    pub group_commit_bytes: usize,
    /// fsync before acking. Turning this off breaks the durability promise: tests only.
    pub fsync: bool,
    /// Microseconds the log writer waits for more records before a group commit: fewer
    /// fsyncs under load, at that much added ack latency. 0 = commit at once.
    pub group_commit_linger_us: u64,
    /// Take a snapshot after this many log records...
    pub snapshot_every_records: u64,
    /// ... or this many seconds, whichever comes first (and at shutdown).
    pub snapshot_every_s: u64,
    /// Log segments older than this many seconds are deleted once a snapshot covers them.
    pub retention_s: u64,
    /// Routes finished longer ago than this many seconds leave the live state: their final
    /// view is appended to `DATA_DIR/archive/routes.jsonl` and their parcels' feeds are dropped.
    pub archive_routes_after_s: u64,
    /// The log never grows past this many bytes: beyond it, fixes are refused with `DiskFull`
    /// (phones keep them) until retention frees space. Running out of real disk space is
    /// handled the same way.
    pub max_disk_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4433)),
            data_dir: PathBuf::from("milepost-data"),
            cert: None,
            key: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            admin: true,
            secret: None,
            limits: LimitsConfig::default(),
            validation: ValidationConfig::default(),
            log: LogConfig::default(),
            core: crate::fleet::engine::CoreConfig::default(),
            feed: FeedConfig::default(),
            web: crate::web::WebConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_frame: milepost_proto::DEFAULT_MAX_FRAME,
            max_batch: milepost_proto::DEFAULT_MAX_BATCH,
            max_streams: 4,
            max_fixes_per_s: 20,
            burst_fixes: 20_000,
            max_connections_per_subject: 4,
            retry_above_handshakes_per_s: 1_000,
            max_handshakes_in_flight: 1_000,
            handshake_timeout_s: 10,
            idle_timeout_s: 60,
            max_connections: 100_000,
            seq_window: 1 << 20,
            max_query_results: 1000,
        }
    }
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            max_accuracy_m: 500.0,
            max_future_ms: 60_000,
            max_age_ms: 7 * 24 * 3600 * 1000,
            max_speed_mps: 80.0,
            reject_mock: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            group_commit_bytes: 1 << 20,
            fsync: true,
            group_commit_linger_us: 1_500,
            snapshot_every_records: 100_000,
            snapshot_every_s: 300,
            retention_s: 7 * 24 * 3600,
            archive_routes_after_s: 24 * 3600,
            max_disk_bytes: 64 << 30,
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of its allowed range.
    #[error("invalid config value: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file on top of the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Checks the values that would make the gateway misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_frame == 0 || l.max_frame as usize > milepost_proto::MAX_FRAME_HARD {
            return Err(ConfigError::Invalid(format!(
                "limits.max_frame must be 1..={}",
                milepost_proto::MAX_FRAME_HARD
            )));
        }
        if l.max_batch == 0 || l.max_streams == 0 || l.seq_window == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_batch, max_streams and seq_window must be positive".into(),
            ));
        }
        if l.max_handshakes_in_flight == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_handshakes_in_flight must be positive".into(),
            ));
        }
        if let Some(s) = &self.secret {
            if s.len() < 32 {
                return Err(ConfigError::Invalid(
                    "secret must be at least 32 characters".into(),
                ));
            }
        }
        let c = &self.cluster;
        if c.partitions == 0 || c.partitions > 4096 {
            return Err(ConfigError::Invalid(
                "cluster.partitions must be 1..=4096".into(),
            ));
        }
        if c.lease_ttl_s < 2 || c.replicas == 0 || c.replicas > 5 {
            return Err(ConfigError::Invalid(
                "cluster.lease_ttl_s must be at least 2 and cluster.replicas 1..=5".into(),
            ));
        }
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 32
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !name_ok(&c.prefix) || c.node.as_deref().is_some_and(|n| !name_ok(n)) {
            return Err(ConfigError::Invalid(
                "cluster.prefix and cluster.node must be 1..=32 characters of [A-Za-z0-9_-]".into(),
            ));
        }
        if c.url.is_some() && self.secret.is_none() {
            return Err(ConfigError::Invalid(
                "a cluster needs `secret` (the same on every gateway: tokens, TLS tickets and \
                 stateless resets are shared)"
                    .into(),
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(ConfigError::Invalid(
                "cert and key must be given together".into(),
            ));
        }
        Ok(())
    }

    /// The example configuration file: every knob at its default, as TOML.
    pub fn example_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips() {
        let text = Config::example_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, Config::default());
        back.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lissen = \"1.2.3.4:5\"").is_err());
        let partial: Config = toml::from_str("[limits]\nmax_batch = 7\n").unwrap();
        assert_eq!(partial.limits.max_batch, 7);
        assert_eq!(partial.limits.max_frame, LimitsConfig::default().max_frame);
    }
}
