//! Scale-out: several gateways as one fleet over NATS JetStream (`serve --cluster URL`).
//!
//! The single-box gateway folds its own log into the fleet state. A cluster keeps that shape
//! and swaps the log: every record (fix batches, route commands, outcomes, ticks) is published
//! to one JetStream stream, and a phone is acked only once JetStream has acked the write. Every
//! gateway reads the whole stream, in stream order, and folds it with the very same function a
//! single box uses ([`milepost_core::fold::Parts::apply`]). So every gateway holds the same
//! state: a recipient connected to gateway B sees the milestones of a driver connected to A,
//! with the same feed offsets on every gateway (a subscriber may resume anywhere), and a
//! dispatcher's query covers the whole depot wherever its drivers are connected.
//!
//! - Subjects: `PREFIX.fix.P` for the fix batches of the drivers of partition `P`
//!   ([`milepost_core::store::record::partition_of`]); `PREFIX.cmd` for commands; `PREFIX.tick` for
//!   ticks. A message holds the records waiting when the publisher woke, for one subject (group
//!   commit); one holding a single batch carries the `Nats-Msg-Id` `driver:first-last`. The
//!   fold drops any seq it already holds, so a resend that reached two gateways is folded once.
//! - Ownership ([`lease`]): partitions are leased to gateways through a JetStream KV bucket,
//!   spread evenly over the live gateways. What happens *once* for the whole fleet is done by
//!   the owner: ticks (stall detection) of its partitions are logged as records so every
//!   gateway folds them at the same point; the owner of partition 0 sends the webhooks (their
//!   cursor is in the KV bucket) and archives finished routes. Revocations written on one
//!   gateway reach the others through the same bucket ([`revoke`]). A dead gateway's leases expire
//!   after `cluster.lease_ttl_s` and the others take them over; its state needs no rebuilding,
//!   every gateway already holds it (a restarted gateway rebuilds from its snapshot plus the
//!   stream).
//! - QUIC ([`cid`]): connection IDs carry this gateway's QUIC-LB server id, so a load balancer
//!   routes a phone's packets to it; TLS ticket and stateless-reset keys derive from the shared
//!   secret, so a phone that lands on another gateway resumes its TLS session and a reset from
//!   any gateway is recognised.
//!
//! `docs/CLUSTER.md` tells how to deploy it.

pub mod cid;
pub mod config;
mod consume;
pub mod lease;
mod publish;
pub mod revoke;
pub mod tick;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::cluster::config::ClusterConfig;
use milepost_core::store::record::partition_of;
use milepost_core::store::LogRecord;

pub use consume::start_consumer;
pub use publish::run_publisher;

/// Bits of a cluster record number that number the records within one stream message: record
/// `i` of the message at stream sequence `s` is record number `s << GROUP_BITS | i`. Record
/// numbers thus grow in stream order, as the applier, snapshots and acks expect.
pub const GROUP_BITS: u32 = 16;

/// The record number of record `index` of the message at stream sequence `seq`.
pub fn lsn_of(seq: u64, index: usize) -> u64 {
    (seq << GROUP_BITS) | index as u64
}

/// The stream sequence to read from when everything below record number `lsn_next` is folded
/// (the state only ever stops between whole messages).
pub fn resume_seq(lsn_next: u64) -> u64 {
    (lsn_next.saturating_sub(1) >> GROUP_BITS) + 1
}

/// A failure to join or use the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The NATS server could not be reached.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// The stream or the bucket could not be created or opened.
    #[error("JetStream setup failed ({what}): {reason}")]
    Setup {
        /// What was being set up.
        what: String,
        /// Why.
        reason: String,
    },
    /// The stream exists with another partition count.
    #[error(
        "stream {stream} was made for {found} partitions but cluster.partitions is {configured}"
    )]
    Partitions {
        /// The stream.
        stream: String,
        /// Partitions it was made for.
        found: u32,
        /// Partitions configured.
        configured: u32,
    },
}

fn setup_err(what: impl Into<String>) -> impl FnOnce(String) -> ClusterError {
    let what = what.into();
    move |reason| ClusterError::Setup { what, reason }
}

/// The names a fleet uses in NATS, all derived from `cluster.prefix`.
#[derive(Clone, Debug)]
pub struct Names {
    /// The stream holding the log.
    pub stream: String,
    /// Subject prefix.
    pub prefix: String,
    /// The KV bucket of leases and gateway heartbeats.
    pub leases: String,
    /// The KV bucket of shared cursors (webhooks).
    pub state: String,
}

impl Names {
    /// The names for `prefix`.
    pub fn new(prefix: &str) -> Names {
        Names {
            stream: format!("{}_LOG", prefix.to_ascii_uppercase().replace('-', "_")),
            prefix: prefix.to_owned(),
            leases: format!("{prefix}-leases"),
            state: format!("{prefix}-state"),
        }
    }

    /// The subject a record is published to.
    pub fn subject(&self, rec: &LogRecord, partitions: u32) -> String {
        match rec {
            LogRecord::Batch { driver, .. } => {
                format!("{}.fix.{}", self.prefix, partition_of(driver, partitions))
            }
            LogRecord::Tick { .. } => format!("{}.tick", self.prefix),
            _ => format!("{}.cmd", self.prefix),
        }
    }

    /// The message id of a message holding `rec` alone (`n` numbers this gateway's messages).
    pub fn message_id(&self, rec: &LogRecord, node: &str, n: u64) -> String {
        match rec {
            LogRecord::Batch {
                driver, entries, ..
            } => {
                let first = entries.first().map_or(0, |e| e.seq().0);
                let last = entries.last().map_or(0, |e| e.seq().0);
                format!("{driver}:{first}-{last}")
            }
            LogRecord::Tick { now_ms, .. } => format!("t:{node}:{now_ms}"),
            // Commands are not retried by the publisher: a per-gateway counter is unique
            // enough (the node's start time keeps it unique across restarts).
            _ => format!("c:{node}:{n}"),
        }
    }
}

/// A connection to the cluster.
#[derive(Clone)]
pub struct Cluster {
    /// JetStream.
    pub js: jetstream::Context,
    /// Names in use.
    pub names: Arc<Names>,
    /// This gateway's name.
    pub node: String,
    /// The configuration.
    pub cfg: ClusterConfig,
    /// The lease bucket.
    pub leases_kv: kv::Store,
    /// The shared-cursor bucket.
    pub state_kv: kv::Store,
}

impl Cluster {
    /// Connects to NATS and creates (or opens) the stream and the buckets.
    pub async fn connect(cfg: &ClusterConfig, node: String) -> Result<Cluster, ClusterError> {
        let url = cfg.url.clone().unwrap_or_default();
        let client = async_nats::ConnectOptions::new()
            .name(format!("milepost {node}"))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str());
        let client = tokio::time::timeout(Duration::from_secs(15), client)
            .await
            .map_err(|_| ClusterError::Connect {
                url: url.clone(),
                reason: "timed out".into(),
            })?
            .map_err(|e| ClusterError::Connect {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .max_ack_inflight(16_384)
            .build(client);
        let names = Names::new(&cfg.prefix);
        let description = format!("milepost log; partitions={}", cfg.partitions);
        let mut st = js
            .get_or_create_stream(stream::Config {
                name: names.stream.clone(),
                description: Some(description),
                subjects: vec![format!("{}.>", names.prefix)],
                storage: stream::StorageType::File,
                num_replicas: cfg.replicas,
                max_age: Duration::from_secs(cfg.max_age_s),
                max_bytes: cfg.max_bytes,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| setup_err(format!("stream {}", names.stream))(e.to_string()))?;
        let info = st
            .info()
            .await
            .map_err(|e| setup_err("stream info")(e.to_string()))?;
        let found = info
            .config
            .description
            .as_deref()
            .and_then(|d| d.rsplit("partitions=").next())
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(found) = found.filter(|&f| f != cfg.partitions) {
            return Err(ClusterError::Partitions {
                stream: names.stream.clone(),
                found,
                configured: cfg.partitions,
            });
        }
        let bucket = |name: &str, max_age: Duration| kv::Config {
            bucket: name.to_owned(),
            history: 1,
            max_age,
            storage: stream::StorageType::File,
            num_replicas: cfg.replicas,
            ..Default::default()
        };
        let leases_kv = open_bucket(
            &js,
            bucket(&names.leases, Duration::from_secs(cfg.lease_ttl_s)),
        )
        .await?;
        let state_kv = open_bucket(&js, bucket(&names.state, Duration::ZERO)).await?;
        Ok(Cluster {
            js,
            names: Arc::new(names),
            node,
            cfg: cfg.clone(),
            leases_kv,
            state_kv,
        })
    }

    /// The stream's last sequence number now (0 when empty) and its first.
    pub async fn stream_bounds(&self) -> Result<(u64, u64), ClusterError> {
        let mut st = self
            .js
            .get_stream(&self.names.stream)
            .await
            .map_err(|e| setup_err("stream")(e.to_string()))?;
        let info = st
            .info()
            .await
            .map_err(|e| setup_err("stream info")(e.to_string()))?;
        Ok((info.state.first_sequence, info.state.last_sequence))
    }
}

/// Opens the KV bucket, creating its stream first if needed. The stream is made by hand, with
/// the settings of the KV convention (ADR-8), because the client's own `create_key_value` first
/// reads account fields that nats-server 2.9 (Debian's) does not send.
async fn open_bucket(js: &jetstream::Context, cfg: kv::Config) -> Result<kv::Store, ClusterError> {
    let name = cfg.bucket.clone();
    let stream = stream::Config {
        name: format!("KV_{name}"),
        description: Some("milepost".into()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: cfg.history.max(1),
        max_bytes: -1,
        max_age: cfg.max_age,
        max_message_size: -1,
        storage: cfg.storage,
        num_replicas: cfg.num_replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    js.get_or_create_stream(stream)
        .await
        .map_err(|e| setup_err(format!("bucket {name}"))(e.to_string()))?;
    js.get_key_value(&name)
        .await
        .map_err(|e| setup_err(format!("bucket {name}"))(e.to_string()))
}

/// The webhook cursors of a cluster: in the shared KV bucket, so that the gateway taking over
/// partition 0 goes on from where the last one stopped; delivery runs only on that gateway.
pub struct KvCursors {
    kv: kv::Store,
    owned: Arc<lease::Owned>,
    rt: tokio::runtime::Handle,
}

impl KvCursors {
    /// Cursors of `cluster`, active while `owned` holds partition 0. Call from the runtime.
    pub fn new(cluster: &Cluster, owned: Arc<lease::Owned>) -> KvCursors {
        KvCursors {
            kv: cluster.state_kv.clone(),
            owned,
            rt: tokio::runtime::Handle::current(),
        }
    }
}

impl crate::feed::webhook::Cursors for KvCursors {
    fn active(&self) -> bool {
        self.owned.is_leader()
    }

    fn load(&self, key: &str) -> std::io::Result<Option<u64>> {
        let v = self
            .rt
            .block_on(self.kv.get(format!("webhook.{key}")))
            .map_err(std::io::Error::other)?;
        Ok(v.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }

    fn save(&self, key: &str, cursor: u64) -> std::io::Result<()> {
        self.rt
            .block_on(
                self.kv
                    .put(format!("webhook.{key}"), cursor.to_string().into()),
            )
            .map(|_| ())
            .map_err(std::io::Error::other)
    }
}

/// This gateway's default name: the host name and the UDP port.
pub fn default_node(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_else(|_| "gw".into())
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(24)
        .collect::<String>();
    format!("{host}-{port}")
}

/// A key derived from the shared secret for `purpose` (TLS tickets, stateless resets): every
/// gateway of a cluster derives the same one.
pub fn derive_key(secret: &[u8], purpose: &str) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, format!("milepost cluster key: {purpose}").as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::{DriverId, Fix, Seq};

    #[test]
    fn names_and_message_ids() {
        let n = Names::new("mp-test");
        assert_eq!(n.stream, "MP_TEST_LOG");
        let fix = Fix::from_degrees(1_764_000_000_000, 38.9, -77.0, 5.0);
        let rec = LogRecord::Batch {
            driver: DriverId::from("D1"),
            depot: "dc".into(),
            received_ms: 0,
            entries: vec![
                milepost_core::store::BatchEntry::Accepted { seq: Seq(4), fix },
                milepost_core::store::BatchEntry::Accepted { seq: Seq(5), fix },
            ],
        };
        let p = partition_of(&DriverId::from("D1"), 16);
        let (subject, id) = (n.subject(&rec, 16), n.message_id(&rec, "gw1", 7));
        assert_eq!(subject, format!("mp-test.fix.{p}"));
        assert_eq!(id, "D1:4-5");
    }

    #[test]
    fn record_numbers_follow_the_stream() {
        assert_eq!(resume_seq(lsn_of(1, 0)), 1);
        assert_eq!(resume_seq(lsn_of(7, 3) + 1), 8);
        assert!(lsn_of(7, 65_535) < lsn_of(8, 0));
        assert_eq!(resume_seq(0), 1);
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_agree_across_gateways() {
        let a = derive_key(b"s3cret", "reset");
        assert_eq!(a, derive_key(b"s3cret", "reset"));
        assert_ne!(a, derive_key(b"s3cret", "ticket"));
        assert_ne!(a, derive_key(b"other", "reset"));
    }
}
