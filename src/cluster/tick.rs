//! The cluster's clock for the fold: once a second each gateway logs a
//! [`milepost_core::store::LogRecord::Tick`] for the partitions it owns. Stall detection then runs in
//! every gateway's fold at the same point of the stream with the same time, so every gateway
//! emits the same `DriverStalled` events at the same feed offsets (a single box ticks from its
//! applier's clock instead; nothing else reads the clock in the fold). A gateway that folds
//! only what it owns logs a [`milepost_core::store::LogRecord::DepotTick`] per partition
//! instead, on the partition's subject.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use milepost_core::fleet::engine::FleetCore;
use tokio::sync::watch;

use crate::cluster::lease::Owned;
use crate::state::lock;
use crate::store::writer::queue::WriterHandle;
use milepost_core::store::LogRecord;

/// What the ticker uses of the gateway (the server builds it when it starts the cluster parts).
pub struct TickParts {
    /// `cluster.partitions`.
    pub partitions: u32,
    /// The partitions this gateway owns now.
    pub owned: Arc<Owned>,
    /// The fleet core (an idle fleet is not ticked).
    pub core: Arc<Mutex<FleetCore>>,
    /// The server's clock, UTC milliseconds (the server's `Clock`).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Where the ticks are logged.
    pub log: WriterHandle,
}

/// Runs until `stop` fires.
pub async fn run(parts: TickParts, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let owned = parts.owned.list();
        // Nothing to tick without routes under way (an idle fleet logs nothing).
        if owned.is_empty() || lock(&parts.core).is_idle() {
            continue;
        }
        let now_ms = (parts.clock)();
        let records = if parts.owned.folds_owned_only() {
            // One per partition, on its subject: whoever folds the partition later (after a
            // takeover) folds the same ticks. Only partitions caught up here are ticked.
            owned
                .into_iter()
                .filter(|&p| parts.owned.holds(p))
                .map(|partition| LogRecord::DepotTick {
                    partition,
                    partitions: parts.partitions,
                    now_ms,
                })
                .collect()
        } else {
            vec![LogRecord::Tick {
                owned,
                partitions: parts.partitions,
                now_ms,
            }]
        };
        for record in records {
            // A tick is not worth waiting for: with the queue full it is skipped.
            if let Some(permit) = parts.log.try_reserve() {
                drop(permit.append(Arc::new(record)));
            }
        }
    }
}
