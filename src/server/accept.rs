//! The door: the accept loop, which takes phones from quinn's accept queue only while a
//! handshake slot is free (`limits.max_handshakes_in_flight`), refuses or retries them under
//! load and starts a [`crate::server::session`] for each; and the deny-list watcher, which
//! closes the live sessions of tokens revoked in the file.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::server::session::run as run_session;
use crate::server::shared::Shared;

/// Re-reads the token deny list every second and closes the live sessions it now denies.
pub(super) async fn watch_deny_list(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Some(deny) = shared.deny.reload() {
            let n = shared.close_denied(&deny);
            if n > 0 {
                tracing::info!(closed = n, "closed sessions of revoked tokens");
            }
        }
    }
}

/// Accepts phones until `stop` fires: refuses beyond `limits.max_connections`, asks for a
/// stateless retry above `limits.retry_above_handshakes_per_s` (unless the phone's address is
/// already validated), and runs a session for every other one. On stop, ends every session.
pub(super) async fn accept_loop(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    // Handshakes in progress hold a slot until their Welcome (or failure): the next phone is
    // taken from quinn's accept queue only when a slot is free.
    let slots = Arc::new(tokio::sync::Semaphore::new(
        shared.cfg.limits.max_handshakes_in_flight as usize,
    ));
    let next = || {
        let slots = slots.clone();
        let endpoint = endpoint.clone();
        async move {
            let slot = slots.acquire_owned().await.ok()?;
            Some((slot, endpoint.accept().await?))
        }
    };
    loop {
        tokio::select! {
            incoming = next() => {
                let Some((slot, incoming)) = incoming else { break };
                if sessions.len() >= shared.cfg.limits.max_connections as usize {
                    incoming.refuse();
                    continue;
                }
                let now_s = shared.now_ms().max(0) as u64 / 1000;
                let rate = shared.handshakes.tick(now_s);
                if !incoming.remote_address_validated()
                    && rate > shared.cfg.limits.retry_above_handshakes_per_s
                {
                    // Make the client prove its address before we spend a handshake on it.
                    if incoming.may_retry() {
                        shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                        let _ = incoming.retry();
                        continue;
                    }
                }
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                sessions.spawn(run_session(incoming, shared.clone(), stop.clone(), slot));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    sessions.shutdown().await;
}
