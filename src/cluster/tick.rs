//! The cluster's clock for the fold: once a second each gateway logs a
//! [`milepost_core::store::LogRecord::Tick`] for the partitions it owns. Stall detection then runs in
//! every gateway's fold at the same point of the stream with the same time, so every gateway
//! emits the same `DriverStalled` events at the same feed offsets (a single box ticks from its
//! applier's clock instead; nothing else reads the clock in the fold).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::server::Shared;
use milepost_core::store::LogRecord;

/// Runs until `stop` fires.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let partitions = shared.cfg.cluster.partitions;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let owned = shared.owned.list();
        // Nothing to tick without routes under way (an idle fleet logs nothing).
        if owned.is_empty() || crate::state::lock(&shared.state.core).is_idle() {
            continue;
        }
        let record = Arc::new(LogRecord::Tick {
            owned,
            partitions,
            now_ms: shared.now_ms(),
        });
        // A tick is not worth waiting for: with the queue full it is skipped.
        if let Some(permit) = shared.log.try_reserve() {
            drop(permit.append(record));
        }
    }
}
