//! Configuration, assembled: every part owns its own section (`[limits]` the QUIC server's,
//! `[validation]` and `[core]` the fleet core's, `[feed]` the feeds', `[log]` the store's,
//! `[web]` the web listener's, `[cluster]` the cluster's, `[history]` and `[proofs]` theirs, `[notify]` the notifications'); this file only puts them together with
//! the gateway-wide settings. Sources, later ones winning: the built-in defaults, a TOML file
//! (`serve --config milepost.toml`), environment variables (`MILEPOST_LISTEN`,
//! `MILEPOST_DATA_DIR`, `MILEPOST_SECRET`, `MILEPOST_CLUSTER`...), then command-line flags.

use crate::history::HistoryConfig;
use crate::notify::NotifyConfig;
use crate::proofs::ProofsConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use milepost_core::feed::FeedConfig;
use milepost_core::fleet::config::CoreConfig;
use milepost_core::fleet::validate::ValidationConfig;
use serde::{Deserialize, Serialize};

use crate::cluster::config::ClusterConfig;
use crate::server::limits::LimitsConfig;
use crate::store::LogConfig;
use crate::web::config::WebConfig;

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
    pub core: CoreConfig,
    /// Feeds to recipients and dispatchers, and webhooks.
    pub feed: FeedConfig,
    /// The web listener: recipients' tracking pages and the dispatcher map (off unless
    /// `web.listen` is set).
    pub web: WebConfig,
    /// Scale-out over NATS JetStream (off unless `cluster.url` is set: one box is the default).
    pub cluster: ClusterConfig,
    /// How long closed routes and their parcels' history are kept.
    pub history: HistoryConfig,
    /// Proof-of-delivery files: size limit, uploads at once.
    pub proofs: ProofsConfig,
    /// Messages to recipients (e-mail, SMS, WhatsApp) and dispatchers (off unless
    /// `notify.enabled`).
    pub notify: NotifyConfig,
    /// What recipients may change about a delivery (`[self_service]`).
    pub self_service: crate::selfservice::SelfServiceConfig,
    /// The carriers above the depots (`[carriers.<id>]`): analytics group by them.
    pub carriers: crate::tenancy::Carriers,
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
            core: CoreConfig::default(),
            feed: FeedConfig::default(),
            web: WebConfig::default(),
            cluster: ClusterConfig::default(),
            history: HistoryConfig::default(),
            proofs: ProofsConfig::default(),
            notify: NotifyConfig::default(),
            self_service: Default::default(),
            carriers: Default::default(),
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

/// The smallest `limits.max_frame` a gateway may be configured with (PROTOCOL.md 6.1).
pub const MIN_MAX_FRAME: u32 = 4096;

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
        // A Hello must fit before the client knows the limit (PROTOCOL.md 6.1).
        if l.max_frame < MIN_MAX_FRAME || l.max_frame as usize > milepost_proto::MAX_FRAME_HARD {
            return Err(ConfigError::Invalid(format!(
                "limits.max_frame must be {MIN_MAX_FRAME}..={} (a Hello must fit before the \
                 client knows the limit)",
                milepost_proto::MAX_FRAME_HARD
            )));
        }
        if l.max_batch == 0 || l.max_streams == 0 || l.seq_window == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_batch, max_streams and seq_window must be positive".into(),
            ));
        }
        if l.phone_ack_delay_ms > 10_000 {
            return Err(ConfigError::Invalid(
                "limits.phone_ack_delay_ms must be 0..=10000".into(),
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
        if c.url.is_some()
            && c.fold == crate::cluster::config::FoldMode::Owned
            && !self.feed.webhooks.is_empty()
        {
            return Err(ConfigError::Invalid(
                "webhooks are not available with cluster.fold = \"owned\" yet (each gateway \
                 holds only its partitions' milestones): remove [[feed.webhooks]] or use \
                 cluster.fold = \"all\""
                    .into(),
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(ConfigError::Invalid(
                "cert and key must be given together".into(),
            ));
        }
        self.core.ndr.validate().map_err(ConfigError::Invalid)?;
        self.log.validate().map_err(ConfigError::Invalid)?;
        self.validate_notify()
    }

    /// Notifications: their own values, a base URL for links, a cluster whose gateways fold
    /// everything (the sending gateway reads every parcel's milestones), and every template
    /// compiled and rendered once.
    fn validate_notify(&self) -> Result<(), ConfigError> {
        self.self_service.validate().map_err(ConfigError::Invalid)?;
        self.carriers.validate().map_err(ConfigError::Invalid)?;
        let n = &self.notify;
        n.validate().map_err(ConfigError::Invalid)?;
        if let Some(c) = n.carrier_templates.keys().find(|c| !self.carriers.knows(c)) {
            return Err(ConfigError::Invalid(format!(
                "notify.carrier_templates.{c}: no carrier {c:?} ([carriers.{c}])"
            )));
        }
        if !n.enabled {
            return Ok(());
        }
        if n.public_url.is_none() && self.web.public_url.is_none() {
            return Err(ConfigError::Invalid(
                "notifications need a base URL for their links: notify.public_url or \
                 web.public_url"
                    .into(),
            ));
        }
        if self.cluster.url.is_some()
            && self.cluster.fold == crate::cluster::config::FoldMode::Owned
        {
            return Err(ConfigError::Invalid(
                "notifications need cluster.fold = \"all\": the gateway that sends them reads \
                 every parcel's milestones, and with \"owned\" it holds only its own \
                 partitions'; turn notify.enabled off or fold everything"
                    .into(),
            ));
        }
        crate::notify::templates::Templates::new(n).map_err(ConfigError::Invalid)?;
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
    fn a_frame_limit_too_small_for_a_hello_is_refused() {
        let mut c = Config::default();
        c.limits.max_frame = 1_000;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_frame must be 4096"));
        c.limits.max_frame = MIN_MAX_FRAME;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn notifications_in_a_cluster_need_every_gateway_to_fold_everything() {
        let mut c = Config::default();
        c.notify.enabled = true;
        c.notify.public_url = Some("https://track.example".into());
        c.cluster.url = Some("nats://127.0.0.1:4222".into());
        c.secret = Some("a-fleet-secret-of-enough-length-0123456789".into());
        c.validate().unwrap();
        c.cluster.fold = crate::cluster::config::FoldMode::Owned;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cluster.fold = \"all\""), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lissen = \"1.2.3.4:5\"").is_err());
        let partial: Config = toml::from_str("[limits]\nmax_batch = 7\n").unwrap();
        assert_eq!(partial.limits.max_batch, 7);
        assert_eq!(partial.limits.max_frame, LimitsConfig::default().max_frame);
    }
}
