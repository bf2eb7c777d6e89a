//! TLS and QUIC settings of the endpoint: the keys that must agree across restarts (and
//! across a cluster's gateways), the endpoint configuration (stateless resets, QUIC-LB
//! connection IDs), and the server configuration (TLS, address-validation tokens, transport
//! limits, ACK frequency). The certificates themselves are in [`crate::certs`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::TokenKey;
use crate::certs::TICKETS_PER_HANDSHAKE;
use crate::cluster::cid::{server_id_for, QuicLbCids};
use crate::cluster::nats::Cluster;
use crate::cluster::node::derive_key;
use crate::config::{Config, ConfigError};
use crate::server::cids::KeyedCids;
use crate::server::error::{io_err, ServerError};
use crate::server::keys::load_or_create_key;

/// A key that must outlive a restart: a single box keeps it in a file of its data directory;
/// every gateway of a cluster derives the same one from the shared secret.
pub(super) struct PersistentKey {
    /// Its purpose, in the cluster's derivation.
    purpose: &'static str,
    /// Its file in the data directory.
    file: &'static str,
    /// What it is, in an error.
    what: &'static str,
}

/// The TLS session-ticket key: a phone resumes its TLS session on any gateway.
pub(super) const TICKET_KEY: PersistentKey = PersistentKey {
    purpose: "tls tickets",
    file: "ticket.key",
    what: "ticket key",
};

/// The QUIC stateless-reset key: any gateway's reset is recognised.
pub(super) const RESET_KEY: PersistentKey = PersistentKey {
    purpose: "stateless reset",
    file: "reset.key",
    what: "reset key",
};

/// The QUIC address-validation token key: a token is good on every gateway, after a restart.
pub(super) const ADDRESS_KEY: PersistentKey = PersistentKey {
    purpose: "address tokens",
    file: "address.key",
    what: "address token key",
};

/// The key `key` of this gateway: derived in a cluster, else read (or made) in `data`.
pub(super) fn persistent_key(
    key: &PersistentKey,
    cluster: Option<&Cluster>,
    secret: &TokenKey,
    data: &Path,
) -> Result<[u8; 32], ServerError> {
    match cluster {
        Some(_) => Ok(derive_key(secret.secret(), key.purpose)),
        None => load_or_create_key(&data.join(key.file)).map_err(io_err(key.what)),
    }
}

/// The endpoint configuration: stateless resets under `reset_key`, sent as fast as a
/// restart needs, and in a cluster connection IDs that carry this gateway's QUIC-LB server id.
pub(super) fn endpoint_config(
    reset_key: &[u8; 32],
    cluster: Option<&Cluster>,
) -> quinn::EndpointConfig {
    let mut endpoint_cfg = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        reset_key,
    )));
    // After a restart every phone's old connection must be reset at once (a reset is
    // always smaller than the packet that caused it, so this cannot amplify); quinn's
    // default of one reset per 20 ms would take minutes for 20,000 phones.
    endpoint_cfg.min_reset_interval(Duration::from_micros(20));
    if let Some(c) = cluster {
        let server_id = match c.cfg.server_id {
            0 => server_id_for(&c.node),
            id => id,
        };
        tracing::info!(node = %c.node, server_id, "cluster connection IDs (QUIC-LB)");
        endpoint_cfg.cid_generator(move || Box::new(QuicLbCids::new(server_id)));
    } else {
        // IDs a restart still validates, so that it resets the phones of before the restart
        // (see `cids`); QuicLbCids above validate every ID of their shape.
        let key = *reset_key;
        endpoint_cfg.cid_generator(move || Box::new(KeyedCids::new(&key)));
    }
    endpoint_cfg
}

/// The quinn server configuration: TLS, stream limits (quinn allocates state for every stream
/// a peer may open, so these stay small), datagrams for live fixes, idle timeout.
pub(super) fn server_config(
    cfg: &Config,
    tls: rustls::ServerConfig,
    address_key: &[u8; 32],
) -> Result<quinn::ServerConfig, ServerError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| io_err("QUIC TLS config")(std::io::Error::other(e.to_string())))?;
    let token_key = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"milepost address tokens")
        .extract(address_key);
    // Retry and NEW_TOKEN tokens are sealed with keys derived from `token_key`; NEW_TOKEN
    // tokens are valid two weeks, their reuse detected by a bounded Bloom filter (which starts
    // empty after a restart). Like TLS tickets, a token is used up by an attempt that fails:
    // as many tokens as tickets.
    let mut server = quinn::ServerConfig::new(Arc::new(crypto), Arc::new(token_key));
    let mut tokens = quinn::ValidationTokenConfig::default();
    tokens
        .sent(TICKETS_PER_HANDSHAKE as u32)
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
        .ack_frequency_config(Some(phone_acks(cfg.limits.phone_ack_delay_ms)))
        .max_idle_timeout(Some(
            Duration::from_secs(cfg.limits.idle_timeout_s)
                .try_into()
                .map_err(|_| {
                    ServerError::Config(ConfigError::Invalid(
                        "limits.idle_timeout_s too large".into(),
                    ))
                })?,
        ));
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// What the gateway asks of phones whose QUIC stack has the ACK frequency extension (quinn's
/// has; stacks without it ignore the frame), from `limits.phone_ack_delay_ms`.
///
/// A phone sends a fix a second and gets one ack back for each. Asked to wait longer than a
/// second before acknowledging, it acknowledges that ack in its next fix's packet: a fix
/// costs two datagrams on the wire (the fix; the QUIC ACK and the application ack together),
/// not three, and the gateway reads one datagram per fix instead of two. Bursts (a backlog
/// resent after a dead zone) still get an ACK every other packet (threshold 1); a gap large
/// enough to declare a loss gets one at once (reordering threshold 2, quinn's default). The
/// price: the gateway's probe timeout grows by the same delay (and doubles with each backoff),
/// so a lost ack or push is probed about that much later (the next ack carries the watermark
/// anyway); the probe itself asks for an immediate ACK.
///
/// 0 asks for every packet to be acknowledged at once (what the gateway asked before: 10%
/// less CPU per fix than quinn's default 25 ms delay, which sent the ACK on its own too).
fn phone_acks(delay_ms: u64) -> quinn::AckFrequencyConfig {
    let mut ack = quinn::AckFrequencyConfig::default();
    if delay_ms == 0 {
        ack.ack_eliciting_threshold(quinn::VarInt::from_u32(0));
    } else {
        ack.ack_eliciting_threshold(quinn::VarInt::from_u32(1))
            .max_ack_delay(Some(Duration::from_millis(delay_ms)))
            .max_ack_delay_above_rtt(true);
    }
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
