//! Every gateway's reader of the notification journal ([`run_applier`]): it applies each
//! operation to this gateway's copy of the store, in stream order, and tells the journal's
//! writers how far it got ([`Progress`]). A copy that missed operations the stream no longer
//! holds (the gateway was away longer than the stream keeps them) is marked, and its gateway
//! never leads: its queue could hold messages sent long ago.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cluster::nats::Cluster;
use crate::notify::handle::Notify;
use crate::notify::journal::Op;
use crate::notify::store::StoreError;

/// How far this gateway's copy has applied the journal.
pub struct Progress {
    /// The stream sequence applied last.
    pub applied: watch::Sender<u64>,
    /// Set when the copy missed operations the stream no longer holds.
    pub gap: AtomicBool,
}

impl Progress {
    /// Nothing applied yet.
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            applied: watch::channel(0).0,
            gap: AtomicBool::new(false),
        })
    }
}

/// Reads the journal from after the sequence `notify`'s store records, applies every
/// operation in order and publishes the sequence reached on `progress`. Runs until the store
/// is closed (the gateway stops); reopens its consumer after a failure.
pub async fn run_applier(cluster: Cluster, notify: Arc<Notify>, progress: Arc<Progress>) {
    loop {
        match read(&cluster, &notify, &progress).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "notification journal reader failed; reopening");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Reads until the store closes (`Ok`) or a failure (`Err`).
async fn read(cluster: &Cluster, notify: &Arc<Notify>, progress: &Progress) -> Result<(), String> {
    let n = notify.clone();
    let from = match tokio::task::spawn_blocking(move || n.store.journal_seq()).await {
        Ok(Ok(s)) => s,
        Ok(Err(StoreError::Closed)) => return Ok(()),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(e.to_string()),
    };
    let applied = &progress.applied;
    applied.send_if_modified(|a| {
        let moved = from > *a;
        *a = (*a).max(from);
        moved
    });
    let stream = cluster
        .js
        .get_stream(&cluster.names.notify_stream)
        .await
        .map_err(|e| e.to_string())?;
    let first = stream
        .get_info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .first_sequence;
    // A copy that has read before and whose next operation is gone from the stream.
    if from > 0 && from + 1 < first && !progress.gap.swap(true, Ordering::Relaxed) {
        tracing::error!(
            applied = from,
            first,
            "this gateway's copy of the notification store missed operations the journal no \
             longer holds: it will not send notifications; restart it with an empty \
             DATA_DIR/notify.redb to have it read the journal afresh"
        );
    }
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| e.to_string())?;
        let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
        if seq <= *applied.borrow() {
            continue;
        }
        match serde_json::from_slice::<Op>(&m.payload) {
            Ok(op) => {
                let n = notify.clone();
                let done = tokio::task::spawn_blocking(move || n.apply(&op, Some(seq)))
                    .await
                    .map_err(|e| e.to_string())?;
                match done {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return Ok(()),
                    // Read again from the last applied one.
                    Err(e) => return Err(e.to_string()),
                }
            }
            // Every gateway skips it alike. Only the kind of error: serde quotes the value,
            // which may be a recipient's contact.
            Err(e) => tracing::error!(
                seq,
                kind = ?e.classify(),
                line = e.line(),
                "undecodable notification journal entry skipped"
            ),
        }
        applied.send_replace(seq);
    }
    Err("the consumer ended".into())
}
