//! Archiving finished routes, so that months of operation do not grow the live state.
//!
//! Once a minute the archiver looks for routes that finished longer ago than
//! `log.archive_routes_after_s`, appends their final view (stops, outcomes, ETAs) as JSON lines
//! to `DATA_DIR/archive/routes.jsonl`, then logs a `RoutesArchived` record; the applier removes
//! them (and their parcels' feeds) in log order, so recovery reaches the same state. A crash
//! between the two steps only repeats a line in the archive (at least once). Folding that
//! record also keeps the routes' and their parcels' history ([`crate::history`]), which this
//! task sweeps of what is past its retention once an hour.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::server::shared::Shared;
use crate::state::lock;
use milepost_core::store::record::partition_of_depot;
use milepost_core::store::LogRecord;

/// Runs until `stop` fires.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut minutes = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // Every gateway keeps its own history database: each sweeps it, once an hour.
        if minutes % 60 == 0 {
            purge_history(shared.clone()).await;
        }
        minutes += 1;
        // In a cluster one gateway archives for the fleet: the owner of partition 0; or, when
        // gateways fold only what they own, each gateway for the partitions it holds.
        if !shared.owned.is_leader() && !shared.owned.folds_owned_only() {
            continue;
        }
        if let Err(e) = archive_once(&shared).await {
            tracing::warn!(error = %e, "route archiving failed; will retry");
        }
    }
}

/// Removes history past its retention (blocking disk work, off the async workers).
async fn purge_history(shared: Arc<Shared>) {
    let Some(history) = shared.state.history.clone() else {
        return;
    };
    let now = shared.now_ms();
    match tokio::task::spawn_blocking(move || history.purge(now)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(removed = n, "history past its retention removed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "history retention sweep failed"),
        Err(e) => tracing::warn!(error = %e, "history retention sweep task failed"),
    }
}

/// Archives what is due now; returns how many routes.
pub async fn archive_once(shared: &Shared) -> std::io::Result<usize> {
    let horizon = shared.now_ms() - shared.cfg.log.archive_routes_after_s as i64 * 1000;
    let views: Vec<_> = {
        let core = lock(&shared.state.core);
        core.finished_before(horizon)
            .into_iter()
            .filter_map(|id| core.route_view(&id))
            // Folding only what it owns, a gateway archives the partitions it holds (not one
            // it is still catching up, nor one it has just handed over).
            .filter(|v| shared.serves(&v.depot.0).is_ok())
            .collect()
    };
    if views.is_empty() {
        return Ok(0);
    }
    let dir = shared.cfg.data_dir.join("archive");
    std::fs::create_dir_all(&dir)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("routes.jsonl"))?;
    for v in &views {
        let line = serde_json::to_string(v).map_err(std::io::Error::other)?;
        writeln!(f, "{line}")?;
    }
    f.sync_all()?;
    let n = views.len();
    // One record per partition of depots, when gateways fold only what they own: each goes
    // to its partition's subject.
    let mut by_partition: std::collections::BTreeMap<u32, Vec<_>> = Default::default();
    for v in views {
        let p = match shared.owned.folds_owned_only() {
            true => partition_of_depot(&v.depot.0, shared.owned.partitions()),
            false => 0,
        };
        by_partition.entry(p).or_default().push(v.route_id);
    }
    for routes in by_partition.into_values() {
        let lsn = shared
            .log
            .append(Arc::new(LogRecord::RoutesArchived {
                routes,
                at_ms: shared.now_ms(),
            }))
            .await
            .map_err(std::io::Error::other)?;
        shared.applied.applied(lsn).await;
    }
    tracing::info!(routes = n, "archived finished routes");
    Ok(n)
}
