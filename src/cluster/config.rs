//! [`ClusterConfig`]: the `[cluster]` section: NATS URL, node name, partitions, leases and
//! the stream's retention, and what each gateway folds ([`FoldMode`]). Off unless `url` is set.

use serde::{Deserialize, Serialize};

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
    /// What each gateway folds: `all` (every gateway folds the whole stream, the default) or
    /// `owned` (each folds only the partitions of depots it leases, so adding gateways adds
    /// capacity; see `docs/CLUSTER.md`). Fixed for the life of the stream, like `partitions`.
    pub fold: FoldMode,
    /// With `fold = "owned"`: every this many seconds, the holder of a partition writes the
    /// partition's image to the fleet's object store, and a takeover starts from the newest
    /// one instead of the start of the stream (0: never; takeovers read the whole subject).
    pub partition_snapshot_s: u64,
    /// The QUIC address other gateways name when they tell a client this gateway holds what
    /// it asked for (`cluster.fold = "owned"`). Unset: the address it listens on.
    pub advertise_quic: Option<String>,
    /// The same for the web listener, a base URL (`https://gw-2.example.com`). Unset:
    /// `http://` and the address it listens on.
    pub advertise_web: Option<String>,
}

/// What a cluster gateway folds (`cluster.fold`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoldMode {
    /// The whole stream: every gateway holds the whole fleet.
    #[default]
    All,
    /// Only the partitions of depots this gateway leases. Records go to one subject per
    /// partition (`PREFIX.p.P`, by depot), and a partition taken over is folded from its
    /// subject.
    Owned,
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
            fold: FoldMode::All,
            partition_snapshot_s: 30,
            advertise_quic: None,
            advertise_web: None,
        }
    }
}
