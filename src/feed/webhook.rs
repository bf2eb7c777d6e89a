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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use milepost_proto::route::ParcelUpdate;
use serde::Serialize;
use sha2::Sha256;

use crate::fleet::state::{lock, FleetState};

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

/// The JSON body of one delivery.
#[derive(Serialize)]
struct Body<'a> {
    /// Position in the gateway's milestone stream: dedupe on it.
    offset: u64,
    tracking: &'a str,
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

/// Starts one delivery thread per URL. Threads exit when `stop` is set.
pub fn start(
    urls: &[String],
    secret: Vec<u8>,
    dir: &Path,
    state: Arc<FleetState>,
    stats: Arc<WebhookStats>,
    lag: Arc<crate::feed::FeedLag>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    std::fs::create_dir_all(dir)?;
    // ureq's rustls needs a process-wide provider; ours is ring (an error means one is set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut threads = Vec::new();
    for url in urls {
        let cursor_file = dir.join(format!(
            "{}.cursor",
            crate::server::guard::fingerprint(url).trim_start_matches("fp:")
        ));
        let endpoint = Endpoint {
            url: url.clone(),
            secret: secret.clone(),
            cursor_file,
            state: state.clone(),
            stats: stats.clone(),
            lag: lag.clone(),
            stop: stop.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name("milepost-webhook".into())
                .spawn(move || endpoint.run())?,
        );
    }
    Ok(threads)
}

struct Endpoint {
    url: String,
    secret: Vec<u8>,
    cursor_file: PathBuf,
    state: Arc<FleetState>,
    stats: Arc<WebhookStats>,
    lag: Arc<crate::feed::FeedLag>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Endpoint {
    fn run(self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        // A new endpoint starts from the milestones emitted from now on.
        let mut cursor = read_cursor(&self.cursor_file)
            .unwrap_or_else(|| lock(&self.state.feed).milestones_last());
        let lag = self.lag.track(
            crate::feed::FeedClass::Webhook,
            crate::feed::LagTarget::Milestones,
            cursor,
        );
        let mut backoff = Duration::from_secs(1);
        while !self.stop.load(Ordering::Relaxed) {
            let batch = lock(&self.state.feed).milestones_after(cursor, 64);
            let batch = match batch {
                Ok(b) => b,
                Err(_) => {
                    let oldest = lock(&self.state.feed).milestones_first().saturating_sub(1);
                    let skipped = oldest.saturating_sub(cursor);
                    self.stats.skipped.fetch_add(skipped, Ordering::Relaxed);
                    tracing::error!(url = %self.url, skipped, "webhook endpoint was down too long: milestones skipped");
                    cursor = oldest;
                    lag.set(cursor);
                    continue;
                }
            };
            if batch.is_empty() {
                self.wait(Duration::from_secs(1), cursor);
                continue;
            }
            for (offset, m) in batch {
                loop {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match self.deliver(&agent, offset, &m) {
                        Ok(()) => {
                            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                            cursor = offset;
                            lag.set(cursor);
                            if let Err(e) = write_cursor(&self.cursor_file, cursor) {
                                tracing::error!(error = %e, "webhook cursor not saved");
                            }
                            backoff = Duration::from_secs(1);
                            break;
                        }
                        Err(why) => {
                            self.stats.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(url = %self.url, offset, %why, retry_in_s = backoff.as_secs(), "webhook delivery failed");
                            self.wait(backoff, u64::MAX);
                            backoff = (backoff * 2).min(Duration::from_secs(60));
                        }
                    }
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
        while waited < d && !self.stop.load(Ordering::Relaxed) {
            if lock(&self.state.feed).milestones_last() > cursor {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
    }

    fn deliver(&self, agent: &ureq::Agent, offset: u64, m: &ParcelUpdate) -> Result<(), String> {
        let body = serde_json::to_vec(&Body {
            offset,
            tracking: &m.tracking.0,
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

fn read_cursor(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
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
