//! [`LimitsConfig`]: the `[limits]` section: what one phone, one connection and the whole
//! QUIC endpoint may use (frames, batches, streams, rates, handshakes, connections).

use serde::{Deserialize, Serialize};

/// Limits on connections and messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest frame payload accepted, bytes (4096 to 1 MiB).
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
    /// How long a phone may wait before acknowledging the gateway's QUIC packets, ms, asked
    /// of phones whose QUIC stack has the ACK frequency extension (quinn's has; stacks without
    /// it ignore the request). Longer than the interval between fixes, so a phone's next fix
    /// carries the acknowledgement of the last ack: two datagrams per fix instead of three.
    /// The cost: a lost packet of the gateway's (an ack, a push) is probed this much later
    /// (more with each backoff), which lengthens the ack tail on lossy links. 0 (the default):
    /// ask for every packet to be acknowledged at once. 1,500 suits phones sending a fix a
    /// second on clean links (docs/BENCHMARKS.md, "Cost per unit"). At most 10,000.
    pub phone_ack_delay_ms: u64,
    /// Most concurrent connections to the gateway.
    pub max_connections: u32,
    /// How far above a driver's watermark a seq may be (bounds dedupe state per driver).
    pub seq_window: u64,
    /// Most drivers returned by one query.
    pub max_query_results: u32,
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
            phone_ack_delay_ms: 0,
            max_connections: 100_000,
            seq_window: 1 << 20,
            max_query_results: 1000,
        }
    }
}
