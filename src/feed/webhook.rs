//! Webhooks for notifiers (SMS, email, WhatsApp senders): every parcel milestone is POSTed as
//! JSON to each configured URL, signed with HMAC-SHA256, in order, at least once.
//!
//! The outbox is durable without a second copy of the events: milestones are already in the
//! feed store (rebuilt from snapshot + log after a restart), so each endpoint only persists its
//! cursor, the offset of the last milestone it acknowledged (a 2xx), fsynced after every
//! delivery. A failed delivery is retried with exponential backoff (1 s to 60 s) and counted;
//! nothing is dropped silently: if an endpoint stays down so long that the store's ring no
//! longer holds its cursor, the skipped count is logged as an error and counted.
//!
//! One blocking thread per endpoint (`ureq`): deliveries are slow, remote and rare next to
//! fixes, and a thread keeps their waiting away from the async workers.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use milepost_proto::route::ParcelUpdate;
use serde::Serialize;
use sha2::Sha256;

use crate::auth::short_digest;
use crate::feed::lag::{FeedClass, FeedLag, LagTarget};
use crate::state::{lock, FleetState};

/// Webhook counters, per gateway.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Milestones delivered (2xx).
    pub delivered: AtomicU64,
    /// Failed attempts (errors and non-2xx answers).
    pub failures: AtomicU64,
    /// Milestones skipped because the endpoint was down longer than the store keeps them.
    pub skipped: AtomicU64,
}

/// Deliveries kept per endpoint for people to look at.
const RECENT_KEPT: usize = 20;

/// One delivery attempt, as the API lists them.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The milestone's offset.
    pub offset: u64,
    /// When, UTC ms.
    pub at_ms: i64,
    /// Answered 2xx.
    pub ok: bool,
    /// `HTTP 200`, or what went wrong.
    pub detail: String,
}

/// One endpoint's counters and newest deliveries.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Milestones delivered (2xx).
    pub delivered: AtomicU64,
    /// Failed attempts.
    pub failures: AtomicU64,
    recent: Mutex<VecDeque<Delivery>>,
}

impl EndpointStats {
    fn note(&self, d: Delivery) {
        let mut r = lock(&self.recent);
        if r.len() == RECENT_KEPT {
            r.pop_front();
        }
        r.push_back(d);
    }

    /// The newest deliveries and failures, oldest first.
    pub fn recent(&self) -> Vec<Delivery> {
        lock(&self.recent).iter().cloned().collect()
    }
}

/// What every endpoint of a gateway shares: where cursors are kept, the state to read
/// milestones from, the gateway's counters and lag, and the gateway's stop flag.
#[derive(Clone)]
pub struct Common {
    /// Cursors.
    pub cursors: Arc<dyn Cursors>,
    /// The fleet state (its feed store holds the milestones).
    pub state: Arc<FleetState>,
    /// The gateway's webhook counters.
    pub stats: Arc<WebhookStats>,
    /// Feed lag.
    pub lag: Arc<FeedLag>,
    /// Set when the gateway stops.
    pub stop: Arc<AtomicBool>,
    /// The carriers (which depot is whose): a carrier's endpoint gets its parcels only.
    pub carriers: Arc<crate::tenancy::Carriers>,
}

/// One endpoint to deliver to.
pub struct EndpointSpec {
    /// Its URL.
    pub url: String,
    /// Its signing secret.
    pub secret: Vec<u8>,
    /// Its own counters.
    pub stats: Arc<EndpointStats>,
    /// Set when the endpoint is removed (its thread then ends).
    pub removed: Arc<AtomicBool>,
    /// The carrier whose milestones it gets (none: every carrier's).
    pub carrier: Option<String>,
}

/// Starts the delivery thread of one endpoint.
pub fn spawn(spec: EndpointSpec, common: &Common) -> std::io::Result<std::thread::JoinHandle<()>> {
    // ureq's rustls needs a process-wide provider; ours is ring (an error means one is set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let endpoint = Endpoint {
        key: short_digest(&spec.url),
        url: spec.url,
        secret: spec.secret,
        cursors: common.cursors.clone(),
        state: common.state.clone(),
        stats: common.stats.clone(),
        own: spec.stats,
        lag: common.lag.clone(),
        stop: common.stop.clone(),
        removed: spec.removed,
        carrier: spec.carrier,
        carriers: common.carriers.clone(),
    };
    std::thread::Builder::new()
        .name("milepost-webhook".into())
        .spawn(move || endpoint.run())
}

/// The JSON body of one delivery.
#[derive(Serialize)]
struct Body<'a> {
    /// Position in the gateway's milestone stream: dedupe on it.
    offset: u64,
    tracking: &'a str,
    /// The parcel's depot and carrier (absent when no longer known).
    depot: Option<&'a str>,
    carrier: Option<&'a str>,
    fix_t_ms: i64,
    event: &'a milepost_proto::route::ParcelEvent,
}

/// The signature header value for a body: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Where the endpoints' cursors are kept, and whether this gateway delivers at all.
pub trait Cursors: Send + Sync {
    /// True while this gateway delivers (always on a single box; in a cluster, while it owns
    /// partition 0).
    fn active(&self) -> bool;
    /// The saved cursor of the endpoint named `key` (`None`: none saved yet). An error (the
    /// store is unreachable) must not be taken for "none saved".
    fn load(&self, key: &str) -> std::io::Result<Option<u64>>;
    /// Saves the cursor of the endpoint named `key`, durably.
    fn save(&self, key: &str, cursor: u64) -> std::io::Result<()>;
    /// Forgets the cursor of a removed endpoint (added again, it starts from then on).
    fn forget(&self, key: &str) -> std::io::Result<()>;
}

/// A single box's cursors: one small fsynced file per endpoint in a directory.
pub struct FileCursors {
    dir: PathBuf,
}

impl FileCursors {
    /// Cursors in `dir` (created if missing).
    pub fn new(dir: &Path) -> std::io::Result<FileCursors> {
        std::fs::create_dir_all(dir)?;
        Ok(FileCursors {
            dir: dir.to_owned(),
        })
    }
}

impl Cursors for FileCursors {
    fn active(&self) -> bool {
        true
    }

    fn load(&self, key: &str) -> std::io::Result<Option<u64>> {
        match std::fs::read_to_string(self.dir.join(format!("{key}.cursor"))) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&self, key: &str, cursor: u64) -> std::io::Result<()> {
        write_cursor(&self.dir.join(format!("{key}.cursor")), cursor)
    }

    fn forget(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(format!("{key}.cursor"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

struct Endpoint {
    url: String,
    secret: Vec<u8>,
    key: String,
    cursors: Arc<dyn Cursors>,
    state: Arc<FleetState>,
    stats: Arc<WebhookStats>,
    own: Arc<EndpointStats>,
    lag: Arc<FeedLag>,
    stop: Arc<AtomicBool>,
    removed: Arc<AtomicBool>,
    carrier: Option<String>,
    carriers: Arc<crate::tenancy::Carriers>,
}

impl Endpoint {
    /// The parcel's depot and carrier, if known (an error: the history could not be read).
    fn whose(&self, m: &ParcelUpdate) -> Result<Option<(String, String)>, String> {
        let depot = self
            .state
            .depot_of_parcel(&m.tracking)
            .map_err(|e| e.to_string())?;
        Ok(depot.map(|d| {
            let carrier = self.carriers.carrier_of(&d.0).to_owned();
            (d.0, carrier)
        }))
    }

    /// The gateway stops or the endpoint was removed.
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.removed.load(Ordering::Relaxed)
    }

    fn run(self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut backoff = Duration::from_secs(1);
        // Loaded when delivery (re)starts: in a cluster another gateway may have moved it.
        let mut cursor: Option<u64> = None;
        // Lag is reported while this gateway delivers (in a cluster, by the leader only).
        let mut lag = None;
        while !self.stopped() {
            if !self.cursors.active() {
                cursor = None;
                lag = None;
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
            // A new endpoint starts from the milestones emitted from now on.
            let mut c = match cursor {
                Some(c) => c,
                None => {
                    let c = match self.cursors.load(&self.key) {
                        Ok(Some(c)) => c,
                        Err(e) => {
                            tracing::warn!(url = %self.url, error = %e, "webhook cursor unreadable; retrying");
                            self.wait(Duration::from_secs(1), u64::MAX);
                            continue;
                        }
                        Ok(None) => {
                            // Saved at once: whoever delivers next goes on from here.
                            let c = lock(&self.state.feed).milestones_last();
                            if let Err(e) = self.cursors.save(&self.key, c) {
                                tracing::error!(error = %e, "webhook cursor not saved");
                            }
                            c
                        }
                    };
                    tracing::info!(url = %self.url, cursor = c, "webhook delivery (re)starts");
                    lag = Some(self.lag.track(FeedClass::Webhook, LagTarget::Milestones, c));
                    cursor = Some(c);
                    c
                }
            };
            let batch = lock(&self.state.feed).milestones_after(c, 64);
            let batch = match batch {
                Ok(b) => b,
                Err(_) => {
                    let oldest = lock(&self.state.feed).milestones_first().saturating_sub(1);
                    let skipped = oldest.saturating_sub(c);
                    self.stats.skipped.fetch_add(skipped, Ordering::Relaxed);
                    tracing::error!(url = %self.url, skipped, "webhook endpoint was down too long: milestones skipped");
                    cursor = Some(oldest);
                    if let Some(lag) = &lag {
                        lag.set(oldest);
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                self.wait(Duration::from_secs(1), c);
                continue;
            }
            // Milestones of other carriers' parcels pass by this carrier's endpoint; its
            // cursor moves over them and is saved once the batch is done.
            let mut passed = None;
            'batch: for (offset, m) in batch {
                let whose = match self.whose(&m) {
                    Ok(w) => w,
                    Err(e) => {
                        // Not skipped on a read error: tried again from here.
                        tracing::warn!(url = %self.url, offset, error = %e, "webhook: the parcel's depot could not be read; retrying");
                        self.wait(Duration::from_secs(1), u64::MAX);
                        break 'batch;
                    }
                };
                if let Some(mine) = &self.carrier {
                    if whose.as_ref().is_none_or(|(_, c)| c != mine) {
                        if whose.is_none() {
                            // Its route and history are gone: whose it was is not known.
                            tracing::warn!(url = %self.url, offset, "webhook: milestone of a parcel no longer known, not sent to a carrier's endpoint");
                        }
                        c = offset;
                        cursor = Some(c);
                        passed = Some(c);
                        continue;
                    }
                }
                loop {
                    if self.stopped() {
                        return;
                    }
                    if !self.cursors.active() {
                        break 'batch;
                    }
                    let result = self.deliver(&agent, offset, &m, whose.as_ref());
                    self.own.note(Delivery {
                        offset,
                        at_ms: chrono::Utc::now().timestamp_millis(),
                        ok: result.is_ok(),
                        detail: result.clone().err().unwrap_or_else(|| "HTTP 2xx".into()),
                    });
                    match result {
                        Ok(()) => {
                            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                            self.own.delivered.fetch_add(1, Ordering::Relaxed);
                            c = offset;
                            cursor = Some(c);
                            if let Some(lag) = &lag {
                                lag.set(c);
                            }
                            if let Err(e) = self.cursors.save(&self.key, c) {
                                tracing::error!(error = %e, "webhook cursor not saved");
                            }
                            backoff = Duration::from_secs(1);
                            passed = None;
                            break;
                        }
                        Err(why) => {
                            self.stats.failures.fetch_add(1, Ordering::Relaxed);
                            self.own.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(url = %self.url, offset, %why, retry_in_s = backoff.as_secs(), "webhook delivery failed");
                            self.wait(backoff, u64::MAX);
                            backoff = (backoff * 2).min(Duration::from_secs(60));
                        }
                    }
                }
            }
            if let Some(p) = passed.filter(|_| self.cursors.active()) {
                if let Some(lag) = &lag {
                    lag.set(p);
                }
                if let Err(e) = self.cursors.save(&self.key, p) {
                    tracing::error!(error = %e, "webhook cursor not saved");
                }
            }
        }
    }

    /// Sleeps up to `d` in short steps, waking early when a milestone after `cursor` appears
    /// or the gateway stops. (A std thread cannot await the hub's `Notify`; a 50 ms poll of one
    /// integer is cheap.)
    fn wait(&self, d: Duration, cursor: u64) {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while waited < d && !self.stopped() {
            if lock(&self.state.feed).milestones_last() > cursor {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
    }

    fn deliver(
        &self,
        agent: &ureq::Agent,
        offset: u64,
        m: &ParcelUpdate,
        whose: Option<&(String, String)>,
    ) -> Result<(), String> {
        let body = serde_json::to_vec(&Body {
            offset,
            tracking: &m.tracking.0,
            depot: whose.map(|(d, _)| d.as_str()),
            carrier: whose.map(|(_, c)| c.as_str()),
            fix_t_ms: m.fix_t_ms,
            event: &m.kind,
        })
        .map_err(|e| e.to_string())?;
        let resp = agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-milepost-signature", signature(&self.secret, &body))
            .header("x-milepost-offset", offset.to_string())
            .send(&body[..])
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

fn write_cursor(path: &Path, cursor: u64) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(cursor.to_string().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let s = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
