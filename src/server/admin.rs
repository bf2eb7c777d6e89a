//! The admin HTTP listener (axum): `/metrics` in the Prometheus text format, `/healthz` (the
//! process is up) and `/readyz` (recovery has finished and the gateway serves). It binds before
//! recovery starts, so an orchestrator can tell "recovering" from "dead".

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::metrics::{render_labelled, render_labelled_kind, render_value};
use crate::server::shared::Shared;

/// The running admin listener, before it knows the gateway state.
pub struct AdminServer {
    /// Where it listens.
    pub local_addr: SocketAddr,
    state: Arc<AdminState>,
}

#[derive(Default)]
struct AdminState {
    shared: OnceLock<Arc<Shared>>,
}

impl AdminServer {
    /// Binds and serves; `/readyz` answers 503 until [`AdminServer::ready`].
    pub async fn start(addr: SocketAddr) -> std::io::Result<AdminServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(AdminState::default());
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
        Ok(AdminServer { local_addr, state })
    }

    /// Marks the gateway ready (recovery done) and gives the handlers its state. The listener
    /// stops answering ready once `stop` fires.
    pub fn ready(self, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
        let _ = self.state.shared.set(shared);
        let state = self.state;
        tokio::spawn(async move {
            let _ = stop.changed().await;
            drop(state);
        });
    }
}

async fn readyz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    match s.shared.get() {
        Some(shared) if shared.log.has_failed() => {
            (StatusCode::SERVICE_UNAVAILABLE, "log failed\n".to_string())
        }
        // Folding only what it owns: not ready while a partition it leases is being taken
        // over (its phones and feeds are refused until it is held).
        Some(shared) if !shared.owned.taking_over().is_empty() => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("taking over partitions {:?}\n", shared.owned.taking_over()),
        ),
        Some(_) => (StatusCode::OK, "ready\n".to_string()),
        None => (StatusCode::SERVICE_UNAVAILABLE, "recovering\n".to_string()),
    }
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let mut out = String::with_capacity(8 * 1024);
    render_value(
        &mut out,
        "milepost_ready",
        "gauge",
        "1 once recovery has finished",
        s.shared.get().is_some() as u64,
    );
    if let Some(shared) = s.shared.get() {
        render(shared, &mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Renders every gateway metric.
fn render(sh: &Shared, out: &mut String) {
    let st = &sh.stats;
    let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    render_value(
        out,
        "milepost_connections_total",
        "counter",
        "QUIC connections accepted",
        c(&st.connections),
    );
    render_value(
        out,
        "milepost_connections_live",
        "gauge",
        "Authenticated sessions open now",
        sh.registry.len() as u64,
    );
    render_value(
        out,
        "milepost_fixes_accepted_total",
        "counter",
        "Fixes stored",
        c(&st.fixes_accepted),
    );
    render_value(
        out,
        "milepost_fixes_duplicate_total",
        "counter",
        "Resent fixes acked again",
        c(&st.fixes_duplicate),
    );
    let by_reason: Vec<(&str, u64)> = milepost_proto::RejectReason::ALL
        .iter()
        .map(|r| (r.name(), c(&st.rejected_by_reason[*r as usize])))
        .collect();
    render_labelled(
        out,
        "milepost_fixes_rejected_total",
        "Fixes refused, by reason",
        "reason",
        &by_reason,
    );
    render_value(
        out,
        "milepost_refusals_total",
        "counter",
        "Connections refused or closed for protocol or auth errors",
        c(&st.refusals),
    );
    render_value(
        out,
        "milepost_rate_limited_total",
        "counter",
        "Batches refused by the per-driver rate limit",
        c(&st.rate_limited),
    );
    render_value(
        out,
        "milepost_retries_total",
        "counter",
        "Handshakes answered with a stateless retry",
        c(&st.retries),
    );
    render_value(
        out,
        "milepost_revoked_total",
        "counter",
        "Sessions closed because their token was revoked",
        c(&st.revoked),
    );
    render_value(
        out,
        "milepost_feed_subscriptions",
        "gauge",
        "Feed subscriptions open now",
        c(&st.subscriptions),
    );
    let lag = sh.lag.measure(|f| f(&crate::state::lock(&sh.state.feed)));
    let by_class = |pick: fn(&crate::feed::lag::ClassLag) -> u64| -> Vec<(&str, u64)> {
        crate::feed::FeedClass::ALL
            .iter()
            .zip(lag.iter())
            .map(|(c, l)| (c.name(), pick(l)))
            .collect()
    };
    render_labelled_kind(
        out,
        "milepost_feed_subscribers",
        "gauge",
        "Live feed subscribers, by class",
        "class",
        &by_class(|l| l.subscribers),
    );
    render_labelled_kind(
        out,
        "milepost_feed_lag_events",
        "gauge",
        "Events not yet handed to the subscriber's transport (store head minus cursor), summed over the class",
        "class",
        &by_class(|l| l.sum),
    );
    render_labelled_kind(
        out,
        "milepost_feed_lag_events_max",
        "gauge",
        "Events not yet handed to the subscriber's transport, the worst subscriber of the class",
        "class",
        &by_class(|l| l.max),
    );
    render_value(
        out,
        "milepost_history_backlog",
        "gauge",
        "History writes that failed and wait to be retried (no snapshot is taken until none is left)",
        sh.state.history.as_ref().map_or(0, |h| h.backlog() as u64),
    );
    let a = &sh.applier_stats;
    render_value(
        out,
        "milepost_updates_total",
        "counter",
        "Updates the fleet core emitted",
        c(&a.updates),
    );
    render_value(
        out,
        "milepost_records_applied_total",
        "counter",
        "Log records folded into the fleet state",
        c(&a.records),
    );
    render_value(
        out,
        "milepost_snapshots_total",
        "counter",
        "Snapshots written",
        c(&a.snapshots),
    );
    render_value(
        out,
        "milepost_segments_deleted_total",
        "counter",
        "Log segments deleted by retention",
        c(&a.segments_deleted),
    );
    if let Some(w) = sh.webhook_stats.get() {
        render_value(
            out,
            "milepost_webhook_delivered_total",
            "counter",
            "Milestones delivered to webhooks",
            c(&w.delivered),
        );
        render_value(
            out,
            "milepost_webhook_failures_total",
            "counter",
            "Failed webhook attempts (retried)",
            c(&w.failures),
        );
        render_value(
            out,
            "milepost_webhook_skipped_total",
            "counter",
            "Milestones skipped: endpoint down longer than kept",
            c(&w.skipped),
        );
    }
    if sh.cfg.notify.enabled {
        sh.notify.stats.render(out);
    }
    render_value(
        out,
        "milepost_tls_resumptions_total",
        "counter",
        "TLS sessions resumed from a ticket",
        c(&sh.tickets.resumed),
    );
    st.ack_latency.render(
        "milepost_ack_latency_seconds",
        "Admission to durability of a batch",
        out,
    );
    st.fsync_latency
        .render("milepost_log_fsync_seconds", "Duration of a log fsync", out);
    if sh.cluster.is_some() {
        render_value(
            out,
            "milepost_cluster_partitions_owned",
            "gauge",
            "Partitions of drivers whose ticks (and, for partition 0, webhooks) this gateway owns",
            sh.owned.list().len() as u64,
        );
        if sh.owned.folds_owned_only() {
            sh.owned.takeover.render(out);
        }
    }
    let drivers = crate::state::lock(&sh.state.positions).len();
    render_value(
        out,
        "milepost_rtree_drivers",
        "gauge",
        "Drivers with a live position in the R-trees",
        drivers as u64,
    );
    render_value(
        out,
        "milepost_drivers_known",
        "gauge",
        "Drivers in the dedupe ledger",
        sh.ledger.len() as u64,
    );
    let disk: u64 = crate::store::log::list_segments(&sh.cfg.data_dir.join("log"))
        .map(|segs| {
            segs.iter()
                .filter_map(|(_, p)| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    render_value(
        out,
        "milepost_log_bytes",
        "gauge",
        "Bytes in log segments on disk",
        disk,
    );
    render_value(
        out,
        "milepost_log_failed",
        "gauge",
        "1 if the log writer failed (no more acks)",
        sh.log.has_failed() as u64,
    );
    crate::analytics::gauges::render(&sh.state, &sh.cfg.carriers, sh.now_ms(), out);
}
