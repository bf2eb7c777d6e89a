//! The connection to NATS: [`Cluster`] (JetStream, the stream of the log and the two KV
//! buckets), the [`Names`] a fleet uses there, and [`ClusterError`].

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store::ObjectStore, stream};

use crate::cluster::config::{ClusterConfig, FoldMode};
use crate::notify::store::Op;
use milepost_core::store::record::partition_of;
use milepost_core::store::LogRecord;

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
    /// The fleet's gateways share another `secret`.
    #[error(
        "the gateways of this fleet (prefix {prefix}) share another secret: this gateway's \
         tokens, TLS tickets and resets would not be theirs; give it the fleet's `secret`"
    )]
    Secret {
        /// The fleet's prefix.
        prefix: String,
    },
    /// A carrier's own token secret (`[carriers.<id>] token_secret_file`) differs from the
    /// other gateways', or one has it and another not.
    #[error(
        "carrier {carrier}'s token secret on this gateway is not the one the other gateways of          this fleet (prefix {prefix}) have: its tokens would open on some gateways only; give          every gateway the same [carriers.{carrier}] token_secret_file (or none)"
    )]
    CarrierSecret {
        /// The fleet's prefix.
        prefix: String,
        /// The carrier.
        carrier: String,
    },
    /// The stream's subjects are laid out for another `cluster.fold`.
    #[error(
        "stream {stream} was made for cluster.fold = {found} but this gateway has {configured}: \
         every gateway of a fleet must fold alike"
    )]
    FoldMode {
        /// The stream.
        stream: String,
        /// What it was made for.
        found: String,
        /// What is configured.
        configured: String,
    },
}

/// Headers that have JetStream refuse a message unless the last one on its subject is at
/// stream sequence `last` (0: none yet).
pub fn after_on_subject(last: u64) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert(
        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        last.to_string().as_str(),
    );
    h
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
    /// The object store of partition images (`cluster.fold = "owned"`).
    pub snaps: String,
    /// The stream of the notification store's journal.
    pub notify_stream: String,
    /// Its subjects' root (outside the log's `PREFIX.>`: streams may not overlap).
    pub notify_root: String,
}

impl Names {
    /// The names for `prefix`.
    pub fn new(prefix: &str) -> Names {
        Names {
            stream: format!("{}_LOG", prefix.to_ascii_uppercase().replace('-', "_")),
            prefix: prefix.to_owned(),
            leases: format!("{prefix}-leases"),
            state: format!("{prefix}-state"),
            snaps: format!("{prefix}-snap"),
            notify_stream: format!("{}_NOTIFY", prefix.to_ascii_uppercase().replace('-', "_")),
            notify_root: format!("{prefix}-notify"),
        }
    }

    /// The subject of partition `p` when gateways fold only what they own: every record about
    /// the partition's depots, in stream order.
    pub fn partition_subject(&self, p: u32) -> String {
        format!("{}.p.{p}", self.prefix)
    }

    /// The notification journal's subject of a parcel's contact (`HEX`: its tracking number
    /// in hex, so any tracking number makes a valid subject).
    pub fn notify_contact_subject(&self, tracking: &str) -> String {
        let hex: String = tracking.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}.c.{hex}", self.notify_root)
    }

    /// The notification journal's subject of `op`: a contact's own, the rounds' (where the
    /// fence is kept), or the others'.
    pub fn notify_subject(&self, op: &Op) -> String {
        match op {
            Op::Contacts(c) if c.len() == 1 => self.notify_contact_subject(&c[0].0),
            Op::Round(_) | Op::Lead { .. } => format!("{}.round", self.notify_root),
            _ => format!("{}.ops", self.notify_root),
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
            LogRecord::DepotTick {
                partition, now_ms, ..
            } => format!("t:{node}:{partition}:{now_ms}"),
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
    /// The partitions' images, when each gateway folds only what it owns (see
    /// [`crate::cluster::snapshots`]).
    pub snaps: Option<async_nats::jetstream::object_store::ObjectStore>,
    /// When the stream was made, UTC ms: an image names the stream it was folded from, so
    /// that one of a stream since deleted and made again is not taken for this one's.
    pub stream_made_ms: u64,
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
        // The subjects' layout is in the description: a gateway of another fold mode is
        // refused (it would publish where the others do not read).
        let description = match cfg.fold {
            FoldMode::All => format!("milepost log; partitions={}", cfg.partitions),
            FoldMode::Owned => format!("milepost log; fold=owned; partitions={}", cfg.partitions),
        };
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
        let owned = info
            .config
            .description
            .as_deref()
            .is_some_and(|d| d.contains("fold=owned"));
        if owned != (cfg.fold == FoldMode::Owned) {
            let name = |o: bool| if o { "owned" } else { "all" }.to_string();
            return Err(ClusterError::FoldMode {
                stream: names.stream.clone(),
                found: name(owned),
                configured: name(!owned),
            });
        }
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
        let snaps = match cfg.fold {
            FoldMode::Owned => Some(open_object_store(&js, &names.snaps, cfg.replicas).await?),
            FoldMode::All => None,
        };
        Ok(Cluster {
            js,
            names: Arc::new(names),
            node,
            cfg: cfg.clone(),
            leases_kv,
            state_kv,
            snaps,
            stream_made_ms: (info.created.unix_timestamp_nanos() / 1_000_000).max(0) as u64,
        })
    }

    /// Refuses to join a fleet whose gateways share another secret: the first gateway leaves
    /// a check value derived from its secret in the state bucket (`secret-check`, not the
    /// secret), every later one compares its own.
    pub async fn check_secret(&self, secret: &[u8]) -> Result<(), ClusterError> {
        let mine: String = crate::cluster::node::derive_key(secret, "secret check")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if self
            .state_kv
            .create("secret-check", mine.clone().into())
            .await
            .is_ok()
        {
            return Ok(());
        }
        let theirs = self
            .state_kv
            .get("secret-check")
            .await
            .map_err(|e| setup_err("secret check")(e.to_string()))?;
        match theirs {
            Some(v) if v.as_ref() == mine.as_bytes() => Ok(()),
            Some(_) => Err(ClusterError::Secret {
                prefix: self.names.prefix.clone(),
            }),
            None => Err(setup_err("secret check")("could not be written".into())),
        }
    }

    /// Every gateway of the fleet has the same token secrets of the carriers it knows: each
    /// carrier's fingerprint (`none` for a carrier without a secret of its own) is written by
    /// the first gateway and compared by the others.
    pub async fn check_carrier_secrets(
        &self,
        carriers: &[(String, Option<&[u8]>)],
    ) -> Result<(), ClusterError> {
        for (id, secret) in carriers {
            let mine: String = match secret {
                Some(s) => crate::cluster::node::derive_key(s, "carrier secret check")
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                None => "none".into(),
            };
            let key = format!("secret-check-carrier-{id}");
            if self
                .state_kv
                .create(&key, mine.clone().into())
                .await
                .is_ok()
            {
                continue;
            }
            let theirs = self
                .state_kv
                .get(&key)
                .await
                .map_err(|e| setup_err("carrier secret check")(e.to_string()))?;
            match theirs {
                Some(v) if v.as_ref() == mine.as_bytes() => {}
                Some(_) => {
                    return Err(ClusterError::CarrierSecret {
                        prefix: self.names.prefix.clone(),
                        carrier: id.clone(),
                    })
                }
                None => {
                    return Err(setup_err("carrier secret check")(
                        "could not be written".into(),
                    ))
                }
            }
        }
        Ok(())
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

/// Opens the fleet's image bucket (`PREFIX-snap`), creating its stream with the settings of
/// the object store convention (ADR-20) when it does not exist.
pub async fn open_object_store(
    js: &jetstream::Context,
    bucket: &str,
    replicas: usize,
) -> Result<ObjectStore, ClusterError> {
    let setup = |e: String| ClusterError::Setup {
        what: format!("object store {bucket}"),
        reason: e,
    };
    js.get_or_create_stream(stream::Config {
        name: format!("OBJ_{bucket}"),
        description: Some("milepost partition images".into()),
        subjects: vec![format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")],
        storage: stream::StorageType::File,
        num_replicas: replicas.max(1),
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .map_err(|e| setup(e.to_string()))?;
    js.get_object_store(bucket)
        .await
        .map_err(|e| setup(e.to_string()))
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
}
